"""The leader epoch cache of a partition: for each leader epoch, the first offset written in it
(Kafka's LeaderEpochFileCache, KIP-101/KIP-279), kept in `leader-epoch-checkpoint`.

It answers "where does epoch E end?" (`end_offset_for`), which a follower asks to find where
its log diverges from the leader's (OffsetForLeaderEpoch, then it truncates) and a consumer asks
to check that the position it resumes from was not truncated away (KIP-320):

- the latest epoch ends at the log end offset (it is still being written);
- an older epoch E ends where the first epoch above it starts, and the answer names the largest
  epoch at or below E that the log holds;
- an epoch below every entry ends where the first entry starts (that data is gone);
- an epoch above every entry, or -1, is unknown: (-1, -1).

Entries only grow: assigning an epoch lower than the latest, or at an offset below the latest
entry's, first removes the entries it contradicts (after a truncation). Truncating the log end
removes the entries starting at or after it; moving the log start moves the first entry up.

The file, written atomically through FileIO on every change (changes are rare: one per leader
election that reaches the log):

    0           <- version
    2           <- number of entries
    0 0         <- epoch, start offset
    3 1200
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from pathlib import Path

from odradek.common.errors import StorageError
from odradek.storage.fileio import FileIO

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1
_VERSION = 0


class LeaderEpochCache:
    def __init__(self, fileio: FileIO, directory: Path, name: str = "") -> None:
        self.fileio = fileio
        self.path = directory / CHECKPOINT_NAME
        self._name = name
        self.epochs: list[int] = []  # ascending
        self.start_offsets: list[int] = []  # ascending, one per epoch

    # --- the file -----------------------------------------------------------------------------

    def load(self) -> bool:
        """Read the checkpoint; False when there is none (the caller rebuilds from batches)."""
        if not self.fileio.exists(self.path):
            return False
        text = self.fileio.read_file(self.path).decode("ascii", "replace")
        lines = text.split("\n")
        try:
            if int(lines[0]) != _VERSION:
                raise ValueError(f"version {lines[0]!r}")
            count = int(lines[1])
            entries = [tuple(int(x) for x in line.split(" ")) for line in lines[2 : 2 + count]]
            if len(entries) != count or any(len(e) != 2 for e in entries):
                raise ValueError("fewer entries than announced")
        except (ValueError, IndexError) as exc:
            raise StorageError(f"malformed {self.path}: {exc}") from exc
        self.epochs, self.start_offsets = [], []
        for epoch, start in entries:
            self._assign(epoch, start)
        return True

    def _write(self) -> None:
        lines = [str(_VERSION), str(len(self.epochs))]
        lines += [f"{e} {o}" for e, o in zip(self.epochs, self.start_offsets, strict=True)]
        self.fileio.replace_file(self.path, ("\n".join(lines) + "\n").encode("ascii"))

    # --- changes ------------------------------------------------------------------------------

    def assign(self, epoch: int, start_offset: int) -> None:
        """Epoch `epoch` starts at `start_offset` (a no-op unless that is news)."""
        if epoch < 0 or start_offset < 0:
            return  # batches written without a leader epoch
        if self._assign(epoch, start_offset):
            self._write()

    def _assign(self, epoch: int, start_offset: int) -> bool:
        if self.epochs and self.epochs[-1] == epoch and start_offset >= self.start_offsets[-1]:
            return False  # the common case: one more append in the current epoch
        removed = 0
        while self.epochs and (self.epochs[-1] >= epoch or self.start_offsets[-1] >= start_offset):
            self.epochs.pop()
            self.start_offsets.pop()
            removed += 1
        if removed > 1:
            logger.warning(
                "[LeaderEpochCache %s] epoch %d at offset %d replaced %d entries",
                self._name,
                epoch,
                start_offset,
                removed,
            )
        self.epochs.append(epoch)
        self.start_offsets.append(start_offset)
        return True

    def truncate_from_end(self, end_offset: int) -> None:
        """The log now ends at `end_offset`: forget the epochs that start at or after it."""
        keep = len(self.epochs)
        while keep and self.start_offsets[keep - 1] >= end_offset:
            keep -= 1
        if keep < len(self.epochs):
            del self.epochs[keep:], self.start_offsets[keep:]
            self._write()

    def truncate_from_start(self, start_offset: int) -> None:
        """The log now starts at `start_offset`: the epoch holding it starts there, older
        ones are forgotten."""
        holding = bisect_right(self.start_offsets, start_offset) - 1
        if holding < 0 or (holding == 0 and self.start_offsets[0] == start_offset):
            return
        del self.epochs[:holding], self.start_offsets[:holding]
        self.start_offsets[0] = start_offset
        self._write()

    # --- queries ------------------------------------------------------------------------------

    @property
    def latest_epoch(self) -> int:
        return self.epochs[-1] if self.epochs else UNDEFINED_EPOCH

    def entries(self) -> list[tuple[int, int]]:
        return list(zip(self.epochs, self.start_offsets, strict=True))

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(epoch, end offset) of `requested_epoch`, as described in the module docstring."""
        if requested_epoch == UNDEFINED_EPOCH or not self.epochs:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if requested_epoch == self.epochs[-1]:
            return requested_epoch, log_end_offset
        higher = bisect_right(self.epochs, requested_epoch)
        if higher == len(self.epochs):
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if higher == 0:
            return requested_epoch, self.start_offsets[0]
        return self.epochs[higher - 1], self.start_offsets[higher]
