"""The log cleaner's core: one cleaning of one log (Kafka's LogCleaner.Cleaner.doClean).

Given the first dirty offset (the cleaner checkpoint: everything below it was cleaned before)
and the first uncleanable offset (the active segment, the last stable offset, the minimum
compaction lag), a cleaning

1. builds an offset map key -> latest offset over the dirty section [first dirty, first
   uncleanable), skipping control batches and the data of aborted transactions, until the map
   is full (`OffsetMap.capacity`); the map then covers [first dirty, end);
2. rewrites the segments below `end`, from the log start, in groups that fit one segment
   (segment.bytes, segment.index.bytes, int32 relative offsets), each group into one new
   segment, batch by batch:

   - a record is kept when its offset is above the map, or it has a key and is the latest of
     that key, and it is no tombstone whose batch's delete horizon has passed;
   - the records of aborted transactions go (the transaction indexes say which); a
     transaction's marker goes once no data of the transaction is left and the marker's
     delete horizon has passed; markers are otherwise kept;
   - the first cleaning that keeps a tombstone or a removable marker sets its batch's delete
     horizon to now + delete.retention.ms (KIP-534); a later cleaning past it removes it;
   - a batch that loses all its records is dropped, except the last data batch of each
     producer the log still knows (its sequence and epoch are the producer state), a marker
     of such a producer's epoch after it, and the last batch of each group (so the new
     segment ends where the old ones did, which is what makes an interrupted swap
     recoverable): those stay as empty batches with their original header;

3. swaps each new segment in for its group (`Log.replace_segments`, crash safe).

Runs on a cleaner thread, never on the event loop; reads the old segments without the log's
lock (they are not appended to), and takes it only for the swap. `Log.abort_cleaning` stops it
between batches. No sockets; files only through the log's FileIO.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from odradek.common.errors import CorruptRecordError
from odradek.protocol.records import BatchHeader, read_header
from odradek.storage.cleaner_batches import (
    batch_body,
    build_batch,
    delete_horizon_ms,
    iter_records,
)
from odradek.storage.cleaner_offset_map import OffsetMap
from odradek.storage.log import Log
from odradek.storage.segment import MAX_RELATIVE_OFFSET, LogSegment
from odradek.storage.txn_index import AbortedTxn, ControlRecordType, end_transaction_marker

logger = logging.getLogger(__name__)


class CleaningAbortedError(Exception):
    """The log was closed, deleted or changed while it was being cleaned."""


@dataclass(slots=True)
class CleanerStats:
    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_retained: int = 0
    map_records: int = 0
    segments_replaced: int = 0
    started: float = field(default_factory=time.monotonic)
    elapsed_s: float = 0.0


@dataclass(frozen=True, slots=True)
class CleaningResult:
    end_offset: int  # the new cleaner checkpoint: everything below was cleaned
    stats: CleanerStats


@dataclass(slots=True)
class _OngoingAbort:
    aborted: AbortedTxn
    data_seen: bool = False  # a batch of it was met (and removed) in this cleaning


class _TransactionState:
    """Kafka's CleanedTransactionMetadata: which batches are aborted data and which markers
    close a transaction no data of which is left, walking a log in offset order."""

    def __init__(self) -> None:
        self._pending: list[AbortedTxn] = []
        self._seen: set[tuple[int, int]] = set()
        self._ongoing_aborted: dict[int, _OngoingAbort] = {}  # by producer id
        self._ongoing_committed: set[int] = set()
        self.cleaned_index: LogSegment | None = None

    def add_aborted(self, aborted: list[AbortedTxn]) -> None:
        fresh = [a for a in aborted if (a.producer_id, a.first_offset) not in self._seen]
        self._seen.update((a.producer_id, a.first_offset) for a in fresh)
        self._pending = sorted(self._pending + fresh, key=lambda a: a.first_offset)

    def _consume_up_to(self, offset: int) -> None:
        pending = self._pending
        while pending and pending[0].first_offset <= offset:
            aborted = pending.pop(0)
            self._ongoing_aborted[aborted.producer_id] = _OngoingAbort(aborted)

    def on_data_batch(
        self, producer_id: int, transactional: bool, last_offset: int, empty: bool = False
    ) -> bool:
        """Whether the batch is aborted data (to be removed)."""
        self._consume_up_to(last_offset)
        if not transactional:
            return False
        ongoing = self._ongoing_aborted.get(producer_id)
        if ongoing is not None:
            if not empty:  # an emptied batch kept for its header holds none of its data
                ongoing.data_seen = True
            return True
        self._ongoing_committed.add(producer_id)
        return False

    def on_marker(self, producer_id: int, control_type: int | None, last_offset: int) -> bool:
        """Whether the marker closes a transaction none of whose data is left (it may go once
        its delete horizon passed)."""
        self._consume_up_to(last_offset)
        if control_type == ControlRecordType.ABORT:
            ongoing = self._ongoing_aborted.pop(producer_id, None)
            if ongoing is not None and ongoing.data_seen:
                # Data of it was seen (and is removed now): keep the marker one more pass, and
                # the aborted transaction in the new segment's index.
                if self.cleaned_index is not None:
                    self.cleaned_index.txn_index.append(ongoing.aborted)
                return False
            return True
        if control_type == ControlRecordType.COMMIT:
            if producer_id in self._ongoing_committed:
                self._ongoing_committed.discard(producer_id)
                return False
            return True
        return False  # a control batch we do not know: kept


def group_segments(
    segments: list[LogSegment], max_bytes: int, max_index_bytes: int, end_offset: int
) -> list[list[LogSegment]]:
    """Consecutive segments grouped so each group fits one segment (Kafka's
    groupSegmentsBySize)."""
    groups: list[list[LogSegment]] = []
    index = 0
    while index < len(segments):
        group = [segments[index]]
        log_bytes = segments[index].size
        index_bytes = segments[index].offset_index.size_bytes
        time_index_bytes = len(segments[index].time_index) * 12
        index += 1
        while index < len(segments):
            candidate = segments[index]
            last_offset = (
                segments[index + 1].base_offset - 1 if index + 1 < len(segments) else end_offset - 1
            )
            if (
                log_bytes + candidate.size > max_bytes
                or index_bytes + candidate.offset_index.size_bytes > max_index_bytes
                or time_index_bytes + len(candidate.time_index) * 12 > max_index_bytes
                or (candidate.size > 0 and last_offset - group[0].base_offset > MAX_RELATIVE_OFFSET)
            ):
                break
            group.append(candidate)
            log_bytes += candidate.size
            index_bytes += candidate.offset_index.size_bytes
            time_index_bytes += len(candidate.time_index) * 12
            index += 1
        groups.append(group)
    return groups


class Cleaner:
    def __init__(
        self,
        offset_map: OffsetMap,
        io_buffer_bytes: int = 1 << 20,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.offset_map = offset_map
        self.io_buffer_bytes = max(io_buffer_bytes, 1 << 16)
        self._should_stop = should_stop or (lambda: False)

    def _check_not_aborted(self, log: Log) -> None:
        if log.cleaning_aborted or log.cleaning_interrupted or self._should_stop():
            raise CleaningAbortedError(f"cleaning of {log.topic}-{log.partition} was aborted")

    def clean(
        self, log: Log, first_dirty_offset: int, first_uncleanable_offset: int, now_ms: int
    ) -> CleaningResult:
        """Clean `log` (see the module docstring). The caller holds `log.cleaning_lock`."""
        stats = CleanerStats()
        end = self.build_offset_map(log, first_dirty_offset, first_uncleanable_offset, stats)
        segments = [s for s in log.segments[:-1] if s.base_offset < end]
        transactions = _TransactionState()
        producers = log.last_records_of_producers()
        config = log.config
        for group in group_segments(
            segments, config.segment_bytes, config.segment_index_bytes, end
        ):
            self._clean_group(log, group, now_ms, transactions, producers, stats)
        stats.elapsed_s = time.monotonic() - stats.started
        return CleaningResult(end, stats)

    def build_offset_map(
        self, log: Log, start: int, end: int, stats: CleanerStats | None = None
    ) -> int:
        """Fill the offset map from the dirty section [start, end); returns the offset it
        reached (`end`, or less when the map filled up)."""
        offset_map = self.offset_map
        offset_map.clear()
        transactions = _TransactionState()
        transactions.add_aborted(log.collect_aborted_transactions(start, end))
        reached = start
        for segment in log.segments[:-1]:
            if segment.next_offset <= start or segment.base_offset >= end:
                continue
            for header, _batch in self._batches(log, segment):
                if header.last_offset < start:
                    continue
                if header.base_offset >= end:
                    break
                if header.is_control:
                    reached = header.next_offset
                    continue
                aborted = transactions.on_data_batch(
                    header.producer_id, header.is_transactional, header.last_offset
                )
                if aborted:
                    reached = header.next_offset
                    continue
                if not offset_map.has_room_for(header.records_count) and reached > start:
                    offset_map.latest_offset = reached - 1
                    return reached
                for record in iter_records(batch_body(_batch, header), header):
                    key = record[2]
                    if key is not None and record[0] >= start:
                        offset_map.put(key, record[0])
                if stats is not None:
                    stats.map_records += header.records_count
                reached = header.next_offset
        reached = max(reached, min(end, log.active_segment.base_offset))
        offset_map.latest_offset = reached - 1
        return reached

    def _batches(self, log: Log, segment: LogSegment) -> Iterator[tuple[BatchHeader, memoryview]]:
        """The segment's batches; raises CorruptRecordError unless they fill it to its size
        (a cleaned copy must never end short of what it replaces)."""
        read = 0
        for header, batch in segment.iter_batches(self.io_buffer_bytes):
            self._check_not_aborted(log)
            read += header.size
            yield header, batch
        if read != segment.size:
            raise CorruptRecordError(
                f"{segment.log_path}: batches end at position {read} of {segment.size}"
            )

    def _clean_group(
        self,
        log: Log,
        group: list[LogSegment],
        now_ms: int,
        transactions: _TransactionState,
        producers: dict[int, tuple[int, int]],
        stats: CleanerStats,
    ) -> None:
        cleaned = log.new_cleaned_segment(group[0].base_offset, group[0].created_ms)
        transactions.cleaned_index = cleaned
        try:
            for position, segment in enumerate(group):
                upper = (
                    group[position + 1].base_offset
                    if position + 1 < len(group)
                    else segment.next_offset
                )
                transactions.add_aborted(
                    log.collect_aborted_transactions(segment.base_offset, upper)
                )
                last_of_group = group[-1].next_offset
                for header, batch in self._batches(log, segment):
                    stats.bytes_read += header.size
                    stats.records_read += header.records_count
                    data = self._filter_batch(
                        header,
                        batch,
                        now_ms,
                        log.config.delete_retention_ms,
                        transactions,
                        producers,
                        last_of_group,
                    )
                    if data is None:
                        continue
                    stats.bytes_written += len(data)
                    written = read_header(data)
                    stats.records_retained += written.records_count
                    cleaned.append(
                        data, [(0, written.last_offset, written.max_timestamp, len(data))]
                    )
            cleaned.on_become_inactive()
            cleaned.flush()
            self._check_not_aborted(log)
        except BaseException:
            cleaned.delete()
            raise
        if not log.replace_segments(cleaned, group):
            raise CleaningAbortedError(
                f"{log.topic}-{log.partition} changed while it was being cleaned"
            )
        stats.segments_replaced += len(group)

    def _filter_batch(
        self,
        header: BatchHeader,
        batch: memoryview,
        now_ms: int,
        delete_retention_ms: int,
        transactions: _TransactionState,
        producers: dict[int, tuple[int, int]],
        last_of_group: int,
    ) -> bytes | memoryview | None:
        """The batch as the cleaned segment holds it, or None when it goes."""
        new_horizon = now_ms + delete_retention_ms
        horizon = delete_horizon_ms(header)
        if header.is_control:
            control_type: int | None = None
            if header.producer_id >= 0:
                try:
                    control_type = end_transaction_marker(batch).control_type
                except CorruptRecordError:
                    control_type = None
            empty_transaction = transactions.on_marker(
                header.producer_id, control_type, header.last_offset
            )
            discard = empty_transaction and horizon is not None and horizon <= now_ms
        else:
            empty_transaction = False
            discard = transactions.on_data_batch(
                header.producer_id,
                header.is_transactional,
                header.last_offset,
                header.records_count == 0,
            )
        retain_empty = header.next_offset == last_of_group
        if header.producer_id >= 0 and (last := producers.get(header.producer_id)) is not None:
            last_data_offset, epoch = last
            if last_data_offset >= 0:
                retain_empty = retain_empty or header.last_offset == last_data_offset
            else:
                retain_empty = retain_empty or (
                    header.is_control and header.producer_epoch == epoch
                )
        if discard and not retain_empty:
            return None
        if discard:
            return build_batch(header, b"", [], delete_horizon=None)
        if header.is_control:
            if empty_transaction and horizon is None:
                body = batch_body(batch, header)
                kept_records = iter_records(body, header)
                return build_batch(header, body, kept_records, delete_horizon=new_horizon)
            return batch
        body = batch_body(batch, header)
        all_records = iter_records(body, header)
        offset_map = self.offset_map
        latest = offset_map.latest_offset
        kept = []
        tombstones = False
        for record in all_records:
            offset, _, key, has_value, _, _ = record
            if offset > latest:
                kept.append(record)
                tombstones = tombstones or not has_value
                continue
            if key is None or offset < offset_map.get(key):
                continue
            if not has_value:
                if horizon is not None and now_ms >= horizon:
                    continue
                tombstones = True
            kept.append(record)
        set_horizon = tombstones and horizon is None
        if len(kept) == len(all_records) and not set_horizon:
            return batch
        if not kept and not retain_empty:
            return None
        return build_batch(
            header,
            body,
            kept,
            delete_horizon=new_horizon if set_horizon else None,
        )
