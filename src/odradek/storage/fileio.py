"""The FileIO seam: every file operation of the storage layer goes through it.

Files are addressed by `Path` and, once opened, by an integer handle (a real file descriptor in
`OsFileIO`). Writes always append at the end of the file; reads are positional (`pread`), so a
reader never disturbs the writer and needs no lock.

Two implementations live here:

- `OsFileIO`: os.open/os.write/os.pread/os.fsync on descriptors kept open.
- `LossyFileIO`: in memory, for tests. It remembers, per file, the content at its last fsync;
  `crash()` reverts every file to that content, and files never fsync'd vanish. Renames, deletes
  and directory creation are treated as durable at once (a simplification: a real file system
  also needs the directory fsync'd).

`GuardedFileIO` wraps either one so that every `OSError` goes through `raise_storage_error`,
the single place that turns it into `StorageError` and tells the owner (the log manager) that the
log directory must be taken offline. Nothing outside this module catches `OSError`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, Protocol

from odradek.common.errors import StorageError

logger = logging.getLogger(__name__)

Buffer = bytes | bytearray | memoryview


class FileIO(Protocol):
    def open(self, path: Path, *, create: bool = False) -> int:
        """Open `path` for reading and appending; with `create`, create it if missing."""
        ...

    def close(self, handle: int) -> None: ...

    def write(self, handle: int, data: Buffer) -> None:
        """Append all of `data` at the end of the file."""
        ...

    def pread(self, handle: int, size: int, position: int) -> bytes:
        """Up to `size` bytes from `position`; shorter only at the end of the file."""
        ...

    def fsync(self, handle: int) -> None: ...

    def truncate(self, handle: int, size: int) -> None: ...

    def size(self, handle: int) -> int: ...

    def exists(self, path: Path) -> bool: ...

    def is_dir(self, path: Path) -> bool: ...

    def rename(self, source: Path, target: Path) -> None: ...

    def delete(self, path: Path) -> None:
        """Remove a file; a missing file is not an error."""
        ...

    def rmdir(self, path: Path) -> None:
        """Remove an empty directory; a missing one is not an error."""
        ...

    def list_dir(self, path: Path) -> list[str]:
        """Names in the directory, sorted."""
        ...

    def mkdir(self, path: Path) -> None:
        """Create the directory and its parents; an existing one is not an error."""
        ...

    def fsync_dir(self, path: Path) -> None: ...

    def read_file(self, path: Path) -> bytes:
        """The whole content of a small file."""
        ...

    def replace_file(self, path: Path, data: bytes) -> None:
        """Atomically replace a small file: write a .tmp, fsync, rename over, fsync the dir."""
        ...


# --- the real thing --------------------------------------------------------------------------


class OsFileIO:
    """FileIO on the operating system's files, through descriptors."""

    def open(self, path: Path, *, create: bool = False) -> int:
        flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        if create:
            flags |= os.O_CREAT
        return os.open(path, flags, 0o644)

    def close(self, handle: int) -> None:
        os.close(handle)

    def write(self, handle: int, data: Buffer) -> None:
        view = memoryview(data)
        while view:
            written = os.write(handle, view)
            view = view[written:]

    def pread(self, handle: int, size: int, position: int) -> bytes:
        return os.pread(handle, size, position)

    def fsync(self, handle: int) -> None:
        os.fsync(handle)

    def truncate(self, handle: int, size: int) -> None:
        os.ftruncate(handle, size)

    def size(self, handle: int) -> int:
        return os.fstat(handle).st_size

    def exists(self, path: Path) -> bool:
        return os.path.exists(path)

    def is_dir(self, path: Path) -> bool:
        return os.path.isdir(path)

    def rename(self, source: Path, target: Path) -> None:
        os.rename(source, target)

    def delete(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    def rmdir(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(path)

    def list_dir(self, path: Path) -> list[str]:
        return sorted(os.listdir(path))

    def mkdir(self, path: Path) -> None:
        os.makedirs(path, exist_ok=True)

    def fsync_dir(self, path: Path) -> None:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(handle)
        finally:
            os.close(handle)

    def read_file(self, path: Path) -> bytes:
        with open(path, "rb") as file:
            return file.read()

    def replace_file(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self.write(handle, data)
            os.fsync(handle)
        finally:
            os.close(handle)
        os.replace(tmp, path)
        self.fsync_dir(path.parent)


# --- the one way out for OSError -------------------------------------------------------------


def raise_storage_error(
    err: OSError, operation: str, target: object, on_error: Callable[[OSError], None] | None
) -> NoReturn:
    """Turn an OSError into StorageError, after telling the owner of the log dir about it."""
    logger.error("storage I/O failed: %s %s: %s", operation, target, err)
    if on_error is not None:
        on_error(err)
    raise StorageError(f"{operation} {target}: {err.strerror or err}") from err


class GuardedFileIO:
    """A FileIO whose every OSError goes through `raise_storage_error`."""

    def __init__(self, inner: FileIO, on_error: Callable[[OSError], None] | None = None) -> None:
        self.inner = inner
        self.on_error = on_error

    def _fail(self, err: OSError, operation: str, target: object) -> NoReturn:
        raise_storage_error(err, operation, target, self.on_error)

    def open(self, path: Path, *, create: bool = False) -> int:
        try:
            return self.inner.open(path, create=create)
        except OSError as err:
            self._fail(err, "open", path)

    def close(self, handle: int) -> None:
        try:
            self.inner.close(handle)
        except OSError as err:
            self._fail(err, "close", handle)

    def write(self, handle: int, data: Buffer) -> None:
        try:
            self.inner.write(handle, data)
        except OSError as err:
            self._fail(err, "write", handle)

    def pread(self, handle: int, size: int, position: int) -> bytes:
        try:
            return self.inner.pread(handle, size, position)
        except OSError as err:
            self._fail(err, "pread", handle)

    def fsync(self, handle: int) -> None:
        try:
            self.inner.fsync(handle)
        except OSError as err:
            self._fail(err, "fsync", handle)

    def truncate(self, handle: int, size: int) -> None:
        try:
            self.inner.truncate(handle, size)
        except OSError as err:
            self._fail(err, "truncate", handle)

    def size(self, handle: int) -> int:
        try:
            return self.inner.size(handle)
        except OSError as err:
            self._fail(err, "size", handle)

    def exists(self, path: Path) -> bool:
        try:
            return self.inner.exists(path)
        except OSError as err:
            self._fail(err, "exists", path)

    def is_dir(self, path: Path) -> bool:
        try:
            return self.inner.is_dir(path)
        except OSError as err:
            self._fail(err, "is_dir", path)

    def rename(self, source: Path, target: Path) -> None:
        try:
            self.inner.rename(source, target)
        except OSError as err:
            self._fail(err, "rename", source)

    def delete(self, path: Path) -> None:
        try:
            self.inner.delete(path)
        except OSError as err:
            self._fail(err, "delete", path)

    def rmdir(self, path: Path) -> None:
        try:
            self.inner.rmdir(path)
        except OSError as err:
            self._fail(err, "rmdir", path)

    def list_dir(self, path: Path) -> list[str]:
        try:
            return self.inner.list_dir(path)
        except OSError as err:
            self._fail(err, "list_dir", path)

    def mkdir(self, path: Path) -> None:
        try:
            self.inner.mkdir(path)
        except OSError as err:
            self._fail(err, "mkdir", path)

    def fsync_dir(self, path: Path) -> None:
        try:
            self.inner.fsync_dir(path)
        except OSError as err:
            self._fail(err, "fsync_dir", path)

    def read_file(self, path: Path) -> bytes:
        try:
            return self.inner.read_file(path)
        except OSError as err:
            self._fail(err, "read_file", path)

    def replace_file(self, path: Path, data: bytes) -> None:
        try:
            self.inner.replace_file(path, data)
        except OSError as err:
            self._fail(err, "replace_file", path)


def guarded(fileio: FileIO, on_error: Callable[[OSError], None] | None = None) -> GuardedFileIO:
    """`fileio` wrapped so that OSErrors become StorageError (not wrapped twice)."""
    if isinstance(fileio, GuardedFileIO):
        return fileio
    return GuardedFileIO(fileio, on_error)


# --- in memory, losing what was not fsync'd --------------------------------------------------


@dataclass(slots=True)
class _MemoryFile:
    data: bytearray = field(default_factory=bytearray)
    durable: bytes | None = None  # content at the last fsync; None: never fsync'd


class LossyFileIO:
    """An in-memory FileIO that, on `crash()`, loses every byte not fsync'd.

    `fail_operations` names operations (e.g. {"write", "fsync"}) that raise OSError(EIO), to
    exercise the error path.
    """

    def __init__(self) -> None:
        self._files: dict[Path, _MemoryFile] = {}
        self._dirs: set[Path] = set()
        self._handles: dict[int, _MemoryFile] = {}
        self._next_handle = 3
        self._lock = threading.Lock()
        self.fail_operations: set[str] = set()
        self.fsync_count = 0

    def _check(self, operation: str) -> None:
        if operation in self.fail_operations:
            raise OSError(errno.EIO, f"injected failure of {operation}")

    def _file(self, handle: int) -> _MemoryFile:
        try:
            return self._handles[handle]
        except KeyError:
            raise OSError(errno.EBADF, "bad file handle") from None

    def crash(self, keep_unsynced_bytes: int = 0) -> None:
        """Forget all that was not fsync'd; every handle becomes invalid.

        With `keep_unsynced_bytes`, that many bytes written after a file's last fsync survive
        (a torn write: the disk got part of an append).
        """
        with self._lock:
            self._handles.clear()
            for path in list(self._files):
                file = self._files[path]
                if file.durable is None:
                    del self._files[path]
                    continue
                durable = file.durable
                if keep_unsynced_bytes and file.data.startswith(durable):
                    durable = bytes(file.data[: len(durable) + keep_unsynced_bytes])
                file.data = bytearray(durable)
                file.durable = durable

    def file_paths(self) -> list[Path]:
        return sorted(self._files)

    def open(self, path: Path, *, create: bool = False) -> int:
        self._check("open")
        with self._lock:
            file = self._files.get(path)
            if file is None:
                if not create:
                    raise FileNotFoundError(errno.ENOENT, "no such file", str(path))
                if path.parent not in self._dirs:
                    raise FileNotFoundError(errno.ENOENT, "no such directory", str(path.parent))
                file = self._files[path] = _MemoryFile()
            handle = self._next_handle
            self._next_handle += 1
            self._handles[handle] = file
            return handle

    def close(self, handle: int) -> None:
        with self._lock:
            self._handles.pop(handle, None)

    def write(self, handle: int, data: Buffer) -> None:
        self._check("write")
        self._file(handle).data += data

    def pread(self, handle: int, size: int, position: int) -> bytes:
        self._check("pread")
        return bytes(self._file(handle).data[position : position + size])

    def fsync(self, handle: int) -> None:
        self._check("fsync")
        file = self._file(handle)
        file.durable = bytes(file.data)
        self.fsync_count += 1

    def truncate(self, handle: int, size: int) -> None:
        self._check("truncate")
        file = self._file(handle)
        del file.data[size:]

    def size(self, handle: int) -> int:
        return len(self._file(handle).data)

    def exists(self, path: Path) -> bool:
        return path in self._files or path in self._dirs

    def is_dir(self, path: Path) -> bool:
        return path in self._dirs

    def rename(self, source: Path, target: Path) -> None:
        self._check("rename")
        with self._lock:
            if source in self._files:
                self._files[target] = self._files.pop(source)
                return
            if source not in self._dirs:
                raise FileNotFoundError(errno.ENOENT, "no such file", str(source))
            for path in [p for p in self._dirs if p == source or source in p.parents]:
                self._dirs.remove(path)
                self._dirs.add(target / path.relative_to(source))
            for path in [p for p in self._files if source in p.parents]:
                self._files[target / path.relative_to(source)] = self._files.pop(path)

    def delete(self, path: Path) -> None:
        self._check("delete")
        with self._lock:
            self._files.pop(path, None)

    def rmdir(self, path: Path) -> None:
        with self._lock:
            if any(path in p.parents for p in (*self._files, *self._dirs)):
                raise OSError(errno.ENOTEMPTY, "directory not empty", str(path))
            self._dirs.discard(path)

    def list_dir(self, path: Path) -> list[str]:
        self._check("list_dir")
        if path not in self._dirs:
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(path))
        with self._lock:
            names = {p.name for p in (*self._files, *self._dirs) if p.parent == path}
        return sorted(names)

    def mkdir(self, path: Path) -> None:
        self._check("mkdir")
        with self._lock:
            self._dirs.add(path)
            self._dirs.update(path.parents)

    def fsync_dir(self, path: Path) -> None:
        self._check("fsync_dir")

    def read_file(self, path: Path) -> bytes:
        self._check("read_file")
        try:
            return bytes(self._files[path].data)
        except KeyError:
            raise FileNotFoundError(errno.ENOENT, "no such file", str(path)) from None

    def replace_file(self, path: Path, data: bytes) -> None:
        self._check("replace_file")
        if path.parent not in self._dirs:
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(path.parent))
        with self._lock:
            self._files[path] = _MemoryFile(bytearray(data), bytes(data))
