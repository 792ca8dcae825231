"""The replicated log as the Raft core sees it: batches, the leader epoch cache, the flushed
offset and the latest snapshot.

This is a model, not storage: the runtime mirrors every change the core makes here onto the
real `__cluster_metadata-0` log through commands (`AppendToLog`, `TruncateLog`, `FlushLog`,
`DeleteLogBefore`, `WriteSnapshot`, `LoadSnapshot`) and restores it from disk on start-up.

Invariants:
- batches are contiguous from `log_start_offset` to `end_offset`, and their epochs never
  decrease; the epoch cache is the list of (epoch, first offset) where the epoch changes;
- a snapshot, when there is one, ends exactly at `log_start_offset` and only covers committed
  records;
- `flushed_offset` <= `end_offset`: records below it are durable.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from odradek.metadata.raft.messages import Batch, EpochEndOffset, OffsetAndEpoch


@dataclass(frozen=True, slots=True)
class Snapshot:
    snapshot_id: OffsetAndEpoch
    payload: bytes


@dataclass(frozen=True, slots=True)
class ValidOffset:
    """A fetch position that matches this log."""


@dataclass(frozen=True, slots=True)
class Diverging:
    """The fetcher's log diverges: it must truncate (Fetch's DivergingEpoch)."""

    diverging_epoch: EpochEndOffset


@dataclass(frozen=True, slots=True)
class SnapshotNeeded:
    """The fetch position is below the log start: fetch this snapshot first."""

    snapshot_id: OffsetAndEpoch


FetchValidation = ValidOffset | Diverging | SnapshotNeeded


class RaftLog:
    def __init__(self, batches: tuple[Batch, ...] = (), snapshot: Snapshot | None = None) -> None:
        self.snapshot = snapshot
        self.log_start_offset = snapshot.snapshot_id.offset if snapshot else 0
        self._batches: list[Batch] = []
        self._bases: list[int] = []
        self._epochs: list[tuple[int, int]] = []  # (epoch, first offset), the epoch cache
        for batch in batches:
            self.append(batch)
        self.flushed_offset = self.end_offset  # what was read back from disk is durable
        # Flushes asked for and not yet done: [end asked for, end it can still vouch for].
        # A truncation caps them: records written after it are not covered by an older fsync.
        self._pending_flushes: list[list[int]] = []

    # -- reading ------------------------------------------------------------------------------

    @property
    def end_offset(self) -> int:
        return self._batches[-1].end_offset if self._batches else self.log_start_offset

    @property
    def last_fetched_epoch(self) -> int:
        """The epoch of the last record, of the snapshot if the log is empty, else 0."""
        if self._batches:
            return self._batches[-1].epoch
        return self.snapshot.snapshot_id.epoch if self.snapshot else 0

    @property
    def batches(self) -> tuple[Batch, ...]:
        return tuple(self._batches)

    def is_batch_boundary(self, offset: int) -> bool:
        if offset in (self.log_start_offset, self.end_offset):
            return True
        i = bisect.bisect_left(self._bases, offset)
        return i < len(self._bases) and self._bases[i] == offset

    def epoch_before(self, end_offset: int) -> int:
        """The epoch of the record at `end_offset - 1` (or of the snapshot ending there)."""
        if self.snapshot is not None and end_offset == self.log_start_offset:
            return self.snapshot.snapshot_id.epoch
        if not self.log_start_offset < end_offset <= self.end_offset:
            raise ValueError(f"offset {end_offset} is outside the log")
        i = bisect.bisect_right(self._bases, end_offset - 1) - 1
        return self._batches[i].epoch

    def read(self, offset: int, max_bytes: int) -> tuple[Batch, ...]:
        """Batches from the one holding `offset`, at least one, up to about `max_bytes`."""
        i = bisect.bisect_right(self._bases, offset) - 1
        i = max(i, 0)
        out: list[Batch] = []
        size = 0
        while i < len(self._batches):
            batch = self._batches[i]
            if batch.end_offset > offset:
                if out and size + batch.size_bytes > max_bytes:
                    break
                out.append(batch)
                size += batch.size_bytes
            i += 1
        return tuple(out)

    def batches_between(self, start: int, end: int) -> tuple[Batch, ...]:
        """Whole batches with `start <= base_offset` and `end_offset <= end`."""
        i = bisect.bisect_left(self._bases, start)
        out: list[Batch] = []
        while i < len(self._batches) and self._batches[i].end_offset <= end:
            out.append(self._batches[i])
            i += 1
        return tuple(out)

    def end_offset_for_epoch(self, epoch: int) -> OffsetAndEpoch:
        """The largest epoch <= `epoch` this log knows and the offset where it ends.

        Offsets before the log start belong to the snapshot's epoch or older ones; an epoch
        older than anything known answers (log start, 0).
        """
        for i in range(len(self._epochs) - 1, -1, -1):
            known, _ = self._epochs[i]
            if known <= epoch:
                end = self._epochs[i + 1][1] if i + 1 < len(self._epochs) else self.end_offset
                return OffsetAndEpoch(end, known)
        if self.snapshot is not None and self.snapshot.snapshot_id.epoch <= epoch:
            return OffsetAndEpoch(self.log_start_offset, self.snapshot.snapshot_id.epoch)
        return OffsetAndEpoch(self.log_start_offset, 0)

    def validate_fetch(self, fetch_offset: int, last_fetched_epoch: int) -> FetchValidation:
        """Is (fetch_offset, last_fetched_epoch) of a fetcher a prefix of this log?

        Kafka's ReplicatedLog.validateOffsetAndEpoch: below the log start, or inside the
        snapshot's epoch before its end, the fetcher needs the snapshot; otherwise the epoch
        must end at or after the fetch offset in this log.
        """
        if fetch_offset == 0 and self.log_start_offset == 0:
            return ValidOffset()
        snapshot = self.snapshot
        if snapshot is not None:
            snap_id = snapshot.snapshot_id
            if (
                fetch_offset < self.log_start_offset
                or last_fetched_epoch < snap_id.epoch
                or (fetch_offset == self.log_start_offset and last_fetched_epoch != snap_id.epoch)
            ):
                return SnapshotNeeded(snap_id)
        end = self.end_offset_for_epoch(last_fetched_epoch)
        if end.epoch != last_fetched_epoch or fetch_offset > end.offset:
            return Diverging(EpochEndOffset(epoch=end.epoch, end_offset=end.offset))
        return ValidOffset()

    def truncation_offset(self, diverging: EpochEndOffset) -> int:
        """Where a follower truncates on a DivergingEpoch (Kafka's truncateToEndOffset)."""
        if diverging.epoch == 0:
            return min(diverging.end_offset, self.end_offset)
        local = self.end_offset_for_epoch(diverging.epoch)
        if local.epoch == diverging.epoch:
            return min(local.offset, diverging.end_offset)
        return local.offset

    # -- changing -----------------------------------------------------------------------------

    def append(self, batch: Batch) -> None:
        if batch.base_offset != self.end_offset:
            raise ValueError(f"batch at {batch.base_offset} does not follow {self.end_offset}")
        if not batch.records:
            raise ValueError("empty batch")
        if self._epochs and batch.epoch < self._epochs[-1][0]:
            raise ValueError(f"epoch {batch.epoch} after {self._epochs[-1][0]}")
        if not self._epochs or self._epochs[-1][0] != batch.epoch:
            self._epochs.append((batch.epoch, batch.base_offset))
        self._batches.append(batch)
        self._bases.append(batch.base_offset)

    def truncate_to(self, end_offset: int) -> None:
        if end_offset < self.log_start_offset:
            raise ValueError(f"cannot truncate to {end_offset} below {self.log_start_offset}")
        if not self.is_batch_boundary(end_offset):
            raise ValueError(f"{end_offset} is inside a batch")
        i = bisect.bisect_left(self._bases, end_offset)
        del self._batches[i:]
        del self._bases[i:]
        while self._epochs and self._epochs[-1][1] >= end_offset:
            self._epochs.pop()
        self.flushed_offset = min(self.flushed_offset, end_offset)
        self._cap_pending_flushes(end_offset)

    def request_flush(self) -> int:
        """Note an fsync of everything written so far; the runtime answers `mark_flushed`."""
        end = self.end_offset
        self._pending_flushes.append([end, end])
        return end

    def mark_flushed(self, end_offset: int) -> bool:
        """Record the completion of the flush asked for at `end_offset` (and of any asked for
        before it); True when the flushed offset moved."""
        for i, (asked, vouched) in enumerate(self._pending_flushes):
            if asked == end_offset:
                del self._pending_flushes[: i + 1]
                flushed = min(vouched, self.end_offset)
                if flushed > self.flushed_offset:
                    self.flushed_offset = flushed
                    return True
                return False
        return False  # not a flush this log asked for (or one already superseded)

    def _cap_pending_flushes(self, end_offset: int) -> None:
        for pending in self._pending_flushes:
            pending[1] = min(pending[1], end_offset)

    def install_snapshot(self, snapshot: Snapshot) -> None:
        """A snapshot of our own committed prefix: drop the records it covers."""
        end = snapshot.snapshot_id.offset
        if not self.log_start_offset < end <= self.end_offset or not self.is_batch_boundary(end):
            raise ValueError(f"snapshot end {end} is not a batch boundary inside the log")
        kept: list[tuple[int, int]] = []
        for i, (epoch, start) in enumerate(self._epochs):
            epoch_end = self._epochs[i + 1][1] if i + 1 < len(self._epochs) else self.end_offset
            if epoch_end > end:
                kept.append((epoch, max(start, end)))
        i = bisect.bisect_left(self._bases, end)
        del self._batches[:i]
        del self._bases[:i]
        self._epochs = kept
        self.snapshot = snapshot
        self.log_start_offset = end
        self.flushed_offset = max(self.flushed_offset, end)

    def reset_to_snapshot(self, snapshot: Snapshot) -> None:
        """A snapshot fetched from the leader replaces the whole log (Kafka truncates fully)."""
        self._batches.clear()
        self._bases.clear()
        self._epochs.clear()
        self.snapshot = snapshot
        self.log_start_offset = snapshot.snapshot_id.offset
        self.flushed_offset = self.log_start_offset
        self._cap_pending_flushes(self.log_start_offset)
