"""Disk faults through the FileIO seam: a FileIO whose chosen operations fail on demand.

`FaultyFileIO` wraps the FileIO a node is built with. `fail("fsync", errno.EIO)` makes every
later fsync raise that OSError (or only the next `times` of them) until `clear()`; the storage
layer then does what it does with any I/O error (the log dir goes offline, producers get
KAFKA_STORAGE_ERROR). Without failures installed, each call costs one truthiness check.
"""

from __future__ import annotations

import errno as errno_codes
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from odradek.storage.fileio import Buffer, FileIO

OPERATIONS = frozenset(
    {
        "open",
        "close",
        "write",
        "pread",
        "fsync",
        "truncate",
        "size",
        "exists",
        "is_dir",
        "rename",
        "delete",
        "rmdir",
        "list_dir",
        "mkdir",
        "fsync_dir",
        "read_file",
        "replace_file",
    }
)


@dataclass(slots=True)
class _Failure:
    errno: int
    remaining: int | None


class FaultyFileIO:
    def __init__(self, inner: FileIO) -> None:
        self.inner = inner
        self._failures: dict[str, _Failure] = {}
        self._lock = threading.Lock()
        self.injected = 0  # how many operations failed on purpose so far

    def fail(self, operation: str, errno: int = errno_codes.EIO, times: int | None = None) -> None:
        """Make `operation` raise OSError(errno): always, or for its next `times` calls."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown FileIO operation {operation!r}; one of {sorted(OPERATIONS)}")
        if times is not None and times <= 0:
            raise ValueError("times must be positive")
        with self._lock:
            self._failures[operation] = _Failure(errno, times)

    def clear(self) -> None:
        with self._lock:
            self._failures = {}

    def _check(self, operation: str) -> None:
        with self._lock:
            failure = self._failures.get(operation)
            if failure is None:
                return
            if failure.remaining is not None:
                failure.remaining -= 1
                if failure.remaining == 0:
                    del self._failures[operation]
            self.injected += 1
        raise OSError(failure.errno, f"injected: {os.strerror(failure.errno)}")

    def open(self, path: Path, *, create: bool = False) -> int:
        if self._failures:
            self._check("open")
        return self.inner.open(path, create=create)

    def close(self, handle: int) -> None:
        if self._failures:
            self._check("close")
        self.inner.close(handle)

    def write(self, handle: int, data: Buffer) -> None:
        if self._failures:
            self._check("write")
        self.inner.write(handle, data)

    def pread(self, handle: int, size: int, position: int) -> bytes:
        if self._failures:
            self._check("pread")
        return self.inner.pread(handle, size, position)

    def fsync(self, handle: int) -> None:
        if self._failures:
            self._check("fsync")
        self.inner.fsync(handle)

    def truncate(self, handle: int, size: int) -> None:
        if self._failures:
            self._check("truncate")
        self.inner.truncate(handle, size)

    def size(self, handle: int) -> int:
        if self._failures:
            self._check("size")
        return self.inner.size(handle)

    def exists(self, path: Path) -> bool:
        if self._failures:
            self._check("exists")
        return self.inner.exists(path)

    def is_dir(self, path: Path) -> bool:
        if self._failures:
            self._check("is_dir")
        return self.inner.is_dir(path)

    def rename(self, source: Path, target: Path) -> None:
        if self._failures:
            self._check("rename")
        self.inner.rename(source, target)

    def delete(self, path: Path) -> None:
        if self._failures:
            self._check("delete")
        self.inner.delete(path)

    def rmdir(self, path: Path) -> None:
        if self._failures:
            self._check("rmdir")
        self.inner.rmdir(path)

    def list_dir(self, path: Path) -> list[str]:
        if self._failures:
            self._check("list_dir")
        return self.inner.list_dir(path)

    def mkdir(self, path: Path) -> None:
        if self._failures:
            self._check("mkdir")
        self.inner.mkdir(path)

    def fsync_dir(self, path: Path) -> None:
        if self._failures:
            self._check("fsync_dir")
        self.inner.fsync_dir(path)

    def read_file(self, path: Path) -> bytes:
        if self._failures:
            self._check("read_file")
        return self.inner.read_file(path)

    def replace_file(self, path: Path, data: bytes) -> None:
        if self._failures:
            self._check("replace_file")
        self.inner.replace_file(path, data)
