"""The log of one partition: the directory `<log dir>/<topic>-<partition>/` and its segments.

Layout: one `LogSegment` per base offset (`00000000000000000000.log` + `.index` +
`.timeindex`, and `.txnindex` once a transaction aborts in it), producer state snapshots
(`<offset>.snapshot`, see `producer_state.py`: one written at each roll and at close), plus
the leader epoch cache (`leader-epoch-checkpoint`, see `leader_epochs.py`), plus files other
modules own (`partition.metadata`).
Segments cover increasing, disjoint offset ranges; only the last one (the active segment) is
appended to.

Offsets:

- `log_start_offset`: the first offset a reader may ask for;
- `log_end_offset`: the next offset to assign (the active segment's next offset);
- `recovery_point`: everything below it has been fsync'd. On open, every segment from the one
  holding the recovery point on is recovered (CRC scan, indexes rebuilt, torn tail cut); older
  ones are trusted after a sanity check of their indexes. Producer state is then loaded from
  the latest snapshot at or below the log end and brought up to date from the batches after it.
  A recovered segment's transaction index is re-derived during that replay, so the replay then
  starts from a snapshot at or below the first recovered segment.
- last stable offset: the first offset of the earliest unfinished transaction (see
  `producer_state.py`), capped by the high watermark the caller passes; read_committed readers
  stop there and get the aborted transactions overlapping what they read.

Appends from producers are checked against the producer state (idempotence: duplicates are
answered with the original offsets and not appended again; sequence and epoch errors append
nothing), per batch, by reading the batch headers only.

Threads: appends, reads and truncation run on the event loop thread; `flush()` may run on a
worker thread. `_lock` guards the offsets and the segment list; `_flush_lock` keeps a flush from
racing with anything that closes segments (truncation, delete, close). fsync happens outside
`_lock`, so appends go on while a flush waits for the disk.

This module must not import from the layers above storage.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_right
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from odradek.common.clock import Clock
from odradek.common.errors import (
    CorruptRecordError,
    ErrorCode,
    InvalidConfigError,
    InvalidRecordError,
    KafkaError,
    OffsetOutOfRangeError,
)
from odradek.protocol import records as record_batches
from odradek.protocol.records import BatchHeader
from odradek.storage.cleaner_batches import require_keys
from odradek.storage.fileio import FileIO, guarded
from odradek.storage.leader_epochs import LeaderEpochCache
from odradek.storage.producer_state import (
    NO_PRODUCER_ID,
    AppendOrigin,
    CorruptSnapshotError,
    ProducerStateManager,
    snapshot_name,
    snapshot_offsets,
)
from odradek.storage.segment import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    AppendedBatch,
    LogSegment,
    file_name,
    parse_base_offset,
)
from odradek.storage.txn_index import (
    TXN_INDEX_SUFFIX,
    AbortedTxn,
    EndTransactionMarker,
    end_transaction_marker,
)

logger = logging.getLogger(__name__)

_FOLLOWER_MAX_BATCH_BYTES = 2**31 - 1
CLEANED_SUFFIX = ".cleaned"  # a segment the log cleaner is writing
SWAP_SUFFIX = ".swap"  # a cleaned segment, complete and fsync'd, being swapped in
_STALE_SUFFIXES = (".deleted", CLEANED_SUFFIX, ".tmp")


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Per-log settings; the attribute names are Kafka's topic/broker keys with underscores."""

    segment_bytes: int = 1073741824  # log.segment.bytes / segment.bytes
    segment_ms: int = 604800000  # log.roll.ms / segment.ms
    index_interval_bytes: int = 4096  # log.index.interval.bytes / index.interval.bytes
    segment_index_bytes: int = 10485760  # log.index.size.max.bytes / segment.index.bytes
    max_message_bytes: int = 1048588  # message.max.bytes / max.message.bytes
    message_timestamp_type: str = "CreateTime"  # or "LogAppendTime"
    cleanup_policy: tuple[str, ...] = ("delete",)  # log.cleanup.policy / cleanup.policy
    retention_ms: int = 604800000  # log.retention.ms (-hours) / retention.ms; -1: forever
    retention_bytes: int = -1  # log.retention.bytes / retention.bytes; -1: no limit
    file_delete_delay_ms: int = 60000  # log.segment.delete.delay.ms / file.delete.delay.ms
    delete_retention_ms: int = 86400000  # log.cleaner.delete.retention.ms / delete.retention.ms
    min_cleanable_dirty_ratio: float = 0.5  # log.cleaner.min.cleanable.ratio / min.cleanable...
    min_compaction_lag_ms: int = 0  # log.cleaner.min.compaction.lag.ms / min.compaction.lag.ms
    max_compaction_lag_ms: int = 2**63 - 1  # log.cleaner.max.compaction.lag.ms / max.compaction...

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy

    def __post_init__(self) -> None:
        if not 0 <= self.min_cleanable_dirty_ratio <= 1:
            raise InvalidConfigError(
                f"Invalid value {self.min_cleanable_dirty_ratio} for configuration"
                " min.cleanable.dirty.ratio: Value must be no more than 1"
            )
        if self.min_compaction_lag_ms > self.max_compaction_lag_ms:
            raise InvalidConfigError(
                f"conflict topic config setting min.compaction.lag.ms"
                f" ({self.min_compaction_lag_ms}) > max.compaction.lag.ms"
                f" ({self.max_compaction_lag_ms})"
            )
        if self.message_timestamp_type not in ("CreateTime", "LogAppendTime"):
            raise InvalidConfigError(
                f"message.timestamp.type must be CreateTime or LogAppendTime,"
                f" not {self.message_timestamp_type!r}"
            )
        if self.segment_bytes < record_batches.HEADER_SIZE:
            raise InvalidConfigError(f"segment.bytes {self.segment_bytes} is too small")


@dataclass(frozen=True, slots=True)
class AppendResult:
    first_offset: int
    last_offset: int
    log_append_time_ms: int  # -1 for CreateTime
    log_start_offset: int
    records_count: int


@dataclass(frozen=True, slots=True)
class ReadResult:
    records: bytes  # whole batches, possibly b""
    log_start_offset: int
    log_end_offset: int
    # With include_aborted_transactions: those overlapping the batches read, oldest first.
    aborted_transactions: list[AbortedTxn] | None = None


@dataclass(frozen=True, slots=True)
class ReplayedBatch:
    header: record_batches.BatchHeader
    records: list[record_batches.Record]  # empty for a control batch
    marker: EndTransactionMarker | None  # a control batch's transaction marker


def _markers(
    records: bytes | bytearray | memoryview, validated: record_batches.ValidatedBatches
) -> list[EndTransactionMarker | None] | None:
    """The transaction marker of each producer's control batch of an append (None elsewhere;
    None for the whole append when it has none): the only records the log ever decodes.
    Raises CorruptRecordError before anything is appended."""
    markers: list[EndTransactionMarker | None] | None = None
    view = memoryview(records)
    for index, header in enumerate(validated.headers):
        if header.is_control and header.producer_id >= 0:
            if markers is None:
                markers = [None] * len(validated.headers)
            position = validated.positions[index]
            markers[index] = end_transaction_marker(view[position : position + header.size])
    return markers


def _collect_aborted_transactions(
    segments: list[LogSegment], start_offset: int, upper_bound_offset: int
) -> list[AbortedTxn]:
    """Kafka's collectAbortedTransactions: the segment holding `start_offset` and the later
    ones, until an entry shows no later segment can hold an overlapping transaction (an abort
    marker may land segments after the transaction began)."""
    found: list[AbortedTxn] = []
    for segment in segments:
        if not segment.txn_index.entries:
            continue
        collected, complete = segment.txn_index.collect(start_offset, upper_bound_offset)
        found += collected
        if complete:
            break
    return found


def parse_partition_dir(name: str) -> tuple[str, int]:
    """('orders', 3) for 'orders-3'; ValueError if the name is not `<topic>-<partition>`."""
    topic, dash, partition = name.rpartition("-")
    if not dash or not topic or not partition.isdigit():
        raise ValueError(f"{name!r} is not a <topic>-<partition> directory name")
    return topic, int(partition)


class Log:
    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        fileio: FileIO,
        clock: Clock,
        segments: list[LogSegment],
        log_start_offset: int,
        recovery_point: int,
    ) -> None:
        self.directory = directory
        self.config = config
        self.fileio = fileio
        self.clock = clock
        self.topic, self.partition = parse_partition_dir(directory.name)
        self._segments = segments
        self._bases = [segment.base_offset for segment in segments]
        self._log_end_offset = segments[-1].next_offset
        self._log_start_offset = min(
            max(log_start_offset, segments[0].base_offset), self._log_end_offset
        )
        self._recovery_point = min(recovery_point, self._log_end_offset)
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._directory_dirty = False
        self._prefix = f"[Log partition={self.topic}-{self.partition}]"
        self.producer_state = ProducerStateManager(f"{self.topic}-{self.partition}")
        self.leader_epochs = LeaderEpochCache(fileio, directory, f"{self.topic}-{self.partition}")
        # Files of deleted segments, renamed `.deleted`, and when they may go (wall ms).
        self._retired: list[tuple[int, list[Path]]] = []
        # Segments the cleaner replaced, renamed `.deleted` but still open for readers that
        # took them before the swap, and when they may go.
        self._replaced: list[tuple[int, LogSegment]] = []
        # Held by the log cleaner while it cleans this log; `abort_cleaning` asks it to stop.
        self.cleaning_lock = threading.Lock()
        self.cleaning_aborted = False
        self.cleaning_interrupted = False
        # The lowest log end a truncation left since the cleaner last looked (its checkpoint
        # must not stay above it); the cleaner resets it.
        self.truncated_to = 2**63 - 1

    def __repr__(self) -> str:
        return (
            f"Log({self.topic}-{self.partition}, log_start_offset={self._log_start_offset},"
            f" log_end_offset={self._log_end_offset}, segments={len(self._segments)})"
        )

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        config: LogConfig,
        *,
        fileio: FileIO,
        clock: Clock,
        recovery_point: int = 0,
        log_start_offset: int = 0,
        clean_shutdown: bool = False,
    ) -> Log:
        """Open (or create) the log in `directory`, recovering what the recovery point does
        not cover. After a clean shutdown nothing is recovered unless a segment's files
        disagree with each other."""
        parse_partition_dir(directory.name)
        fileio = guarded(fileio)
        fileio.mkdir(directory)
        names = fileio.list_dir(directory)
        if any(name.endswith(SWAP_SUFFIX) for name in names):
            _complete_swaps(fileio, directory, names)
            names = fileio.list_dir(directory)
        bases: set[int] = set()
        for name in names:
            if name.endswith(_STALE_SUFFIXES):
                fileio.delete(directory / name)
            elif name.endswith(LOG_SUFFIX) and (base := parse_base_offset(name)) is not None:
                bases.add(base)
        for name in names:
            base = parse_base_offset(name)
            orphan_index = (
                name.endswith((INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX))
                and base not in bases
            )
            if base is not None and orphan_index:
                fileio.delete(directory / name)
        now_ms = clock.wall_ms()
        segments = [
            LogSegment(
                fileio,
                directory,
                base,
                index_interval_bytes=config.index_interval_bytes,
                max_index_bytes=config.segment_index_bytes,
                created_ms=now_ms,
            )
            for base in sorted(bases)
        ]
        segments, first_recovered = cls._recover_segments(
            directory, segments, recovery_point, clean_shutdown
        )
        if not segments:
            segments.append(
                LogSegment(
                    fileio,
                    directory,
                    log_start_offset,
                    index_interval_bytes=config.index_interval_bytes,
                    max_index_bytes=config.segment_index_bytes,
                    created_ms=now_ms,
                )
            )
        log = cls(directory, config, fileio, clock, segments, log_start_offset, recovery_point)
        if not bases:
            log._directory_dirty = True
        log._load_producer_state(clean_shutdown, first_recovered, snapshot_offsets(names))
        log._load_leader_epochs()
        logger.info(
            "%s opened: log_start_offset=%d log_end_offset=%d recovery_point=%d segments=%d",
            log._prefix,
            log._log_start_offset,
            log._log_end_offset,
            log._recovery_point,
            len(segments),
        )
        return log

    @staticmethod
    def _recover_segments(
        directory: Path, segments: list[LogSegment], recovery_point: int, clean_shutdown: bool
    ) -> tuple[list[LogSegment], int | None]:
        """The segments to keep, and the base offset of the first one recovered (None: all
        were trusted)."""
        first_recovered: int | None = None
        bases = [segment.base_offset for segment in segments]
        first_unflushed = max(0, bisect_right(bases, recovery_point) - 1)
        if clean_shutdown:
            first_unflushed = len(segments)
        kept: list[LogSegment] = []
        for i, segment in enumerate(segments):
            needs_recovery = i >= first_unflushed or not segment.load()
            if needs_recovery and first_recovered is None:
                first_recovered = segment.base_offset
            if needs_recovery and segment.recover() and i + 1 < len(segments):
                for later in segments[i + 1 :]:
                    logger.warning(
                        "[Log %s] deleting segment %d after a corrupt one",
                        directory.name,
                        later.base_offset,
                    )
                    later.delete()
                kept.append(segment)
                break
            kept.append(segment)
        return kept, first_recovered

    def _load_producer_state(
        self,
        clean_shutdown: bool,
        rebuild_from: int | None = None,
        offsets: list[int] | None = None,
    ) -> None:
        """The latest readable snapshot at or below the log end, then the batches after it.
        Snapshots above the log end (its tail was cut) are deleted; after a clean shutdown
        without any snapshot no producer wrote here, so nothing is read.

        With `rebuild_from` (the base offset of the first recovered segment), the replay starts
        at or below it and writes the aborted transactions it meets from there on into their
        segments' transaction indexes."""
        if offsets is None:  # not listed by the caller already
            offsets = snapshot_offsets(self.fileio.list_dir(self.directory))
        for offset in [o for o in offsets if o > self._log_end_offset]:
            self.fileio.delete(self.directory / snapshot_name(offset))
        offsets = [o for o in offsets if o <= self._log_end_offset]
        if clean_shutdown and not offsets and rebuild_from is None:
            return
        if rebuild_from is not None:
            offsets = [o for o in offsets if o <= rebuild_from]
        start = self._log_start_offset
        for offset in reversed(offsets):
            try:
                entries = ProducerStateManager.decode_snapshot(
                    self.fileio.read_file(self.directory / snapshot_name(offset))
                )
            except CorruptSnapshotError as exc:
                logger.warning("%s skipping snapshot %d: %s", self._prefix, offset, exc)
                self.fileio.delete(self.directory / snapshot_name(offset))
                continue
            self.producer_state.load(entries)
            start = max(offset, start)
            break
        replayed = 0
        for header, batch in self._batches(start):
            marker = None
            if header.is_control and header.producer_id >= 0:
                try:
                    marker = end_transaction_marker(batch)
                except CorruptRecordError as exc:
                    # Stored batches passed their CRC: this one is no marker we know (a newer
                    # control type). It still closes the producer's transaction, as an append.
                    logger.warning(
                        "%s control batch at %d: %s", self._prefix, header.base_offset, exc
                    )
            aborted = self.producer_state.update(header, marker)
            if aborted is not None and rebuild_from is not None:
                segment = self._segment_holding(aborted.last_offset)
                indexed = segment.txn_index.entries
                # Segments that were trusted kept their index; recovered ones start empty.
                if not indexed or indexed[-1].last_offset < aborted.last_offset:
                    self._index_aborted(segment, aborted)
            replayed += 1
        if replayed or self.producer_state.producers:
            logger.info(
                "%s producer state: %d producers after %d batches from offset %d",
                self._prefix,
                len(self.producer_state.producers),
                replayed,
                start,
            )

    def _load_leader_epochs(self) -> None:
        """Read `leader-epoch-checkpoint`; a log without one (written before it existed) gets
        it rebuilt from its batches' leader epochs. The file is written before the appends it
        describes, so it may run ahead of a log that lost unflushed appends: cut it back."""
        cache = self.leader_epochs
        if not cache.load():
            for header, _ in self._batches(self._log_start_offset):
                cache.assign(header.partition_leader_epoch, header.base_offset)
        cache.truncate_from_end(self._log_end_offset)
        cache.truncate_from_start(self._log_start_offset)

    def end_offset_for_epoch(self, leader_epoch: int) -> tuple[int, int]:
        """(epoch, end offset) for OffsetForLeaderEpoch (see leader_epochs.py); (-1, -1) when
        the epoch is unknown."""
        with self._lock:
            return self.leader_epochs.end_offset_for(leader_epoch, self._log_end_offset)

    @property
    def latest_epoch(self) -> int:
        """The leader epoch of the last batch (-1 when the log holds none with an epoch)."""
        with self._lock:
            return self.leader_epochs.latest_epoch

    def assign_epoch_start_offset(self, leader_epoch: int, offset: int) -> None:
        """A new leader's epoch starts at its log end (Kafka's maybeAssignEpochStartOffset),
        so its epoch is known before its first append."""
        with self._lock:
            self.leader_epochs.assign(leader_epoch, offset)

    def _batches(
        self, start: int, chunk_bytes: int = 1 << 20
    ) -> Iterator[tuple[BatchHeader, memoryview]]:
        """The batches from `start` to the log end with their headers, read a chunk at a
        time."""
        offset, end = start, self._log_end_offset
        while offset < end:
            data = self.read(offset, chunk_bytes, min_one_message=True).records
            if not data:
                return
            view = memoryview(data)
            for position, header in record_batches.iter_batches(data):
                if header.last_offset >= offset:
                    yield header, view[position : position + header.size]
                offset = header.next_offset

    def _segment_holding(self, offset: int) -> LogSegment:
        return self._segments[max(bisect_right(self._bases, offset) - 1, 0)]

    def _index_aborted(self, segment: LogSegment, aborted: AbortedTxn) -> None:
        segment.txn_index.append(aborted)
        if len(segment.txn_index) == 1:  # the file was just created
            self._directory_dirty = True

    def _snapshot_producer_state(self, offset: int) -> None:
        """Write the producer state as of `offset` (everything below it applied)."""
        data = self.producer_state.encode_snapshot()
        self.fileio.replace_file(self.directory / snapshot_name(offset), data)

    # --- offsets ---------------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._log_end_offset

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    @property
    def segments(self) -> list[LogSegment]:
        """A snapshot of the segments, oldest first."""
        return list(self._segments)

    @property
    def active_segment(self) -> LogSegment:
        return self._segments[-1]

    @property
    def size_bytes(self) -> int:
        return sum(segment.size for segment in self._segments)

    def update_config(self, config: LogConfig) -> None:
        """Apply changed topic configs; they take effect from the next append."""
        self.config = config

    # --- appending -------------------------------------------------------------------------

    def append_as_leader(
        self,
        records: bytearray | memoryview,
        *,
        leader_epoch: int,
        origin: AppendOrigin = AppendOrigin.CLIENT,
        verified_producer: int = NO_PRODUCER_ID,
    ) -> AppendResult:
        """Validate a produced record set, assign its offsets in place and append it.

        Does not fsync. Raises CorruptRecordError, InvalidRecordError or RecordTooLargeError
        (nothing is appended then), and KafkaError for producer state errors. Only a
        coordinator may write control batches (transaction markers).
        """
        validated = record_batches.validate_batches(records, self.config.max_message_bytes)
        producers = False
        control = False
        for header in validated.headers:
            if header.is_control:
                if origin == AppendOrigin.CLIENT:
                    raise InvalidRecordError("Clients are not allowed to write control records")
                control = True
            if header.producer_id >= 0:
                producers = True
                # Markers carry no sequence; only clients' batches must (Kafka's LogValidator).
                if header.base_sequence < 0 and origin == AppendOrigin.CLIENT:
                    raise InvalidRecordError(
                        f"Invalid sequence number {header.base_sequence} in record batch with"
                        f" producerId {header.producer_id}"
                    )
        markers = _markers(records, validated) if control else None
        if self.config.compact and origin == AppendOrigin.CLIENT:
            require_keys(records, validated, f"{self.topic}-{self.partition}")
        size = len(records)
        self._check_fits_a_segment(size)
        log_append_time = self.config.message_timestamp_type == "LogAppendTime"
        with self._lock:
            now_ms = self.clock.wall_ms()
            first_offset = self._log_end_offset
            checked = None
            if producers:
                checked = self.producer_state.check(
                    validated.headers, first_offset, origin, markers, verified_producer
                )
                if (duplicate := checked.duplicate) is not None:
                    return AppendResult(
                        duplicate.first_offset,
                        duplicate.last_offset,
                        duplicate.timestamp if log_append_time else -1,
                        self._log_start_offset,
                        0,
                    )
            append_time_ms = now_ms if log_append_time else None
            next_offset = record_batches.assign_offsets(
                records, validated, first_offset, leader_epoch, append_time_ms
            )
            batches: list[AppendedBatch] = []
            offset = first_offset
            for position, header in zip(validated.positions, validated.headers, strict=True):
                last = offset + header.last_offset_delta
                max_timestamp = now_ms if log_append_time else header.max_timestamp
                batches.append((position, last, max_timestamp, header.size))
                offset = last + 1
            max_timestamp = now_ms if log_append_time else validated.max_timestamp
            segment = self._maybe_roll(size, max_timestamp, next_offset - 1, now_ms)
            self.leader_epochs.assign(leader_epoch, first_offset)
            segment.append(records, batches)
            self._log_end_offset = next_offset
            if checked is not None:
                for aborted in self.producer_state.apply(checked):
                    self._index_aborted(segment, aborted)
            log_start_offset = self._log_start_offset
        return AppendResult(
            first_offset,
            next_offset - 1,
            now_ms if log_append_time else -1,
            log_start_offset,
            validated.records_count,
        )

    def append_as_follower(self, records: bytes | bytearray | memoryview) -> int:
        """Append batches that already carry their offsets (replication); returns the new
        log end offset."""
        validated = record_batches.validate_batches(records, _FOLLOWER_MAX_BATCH_BYTES)
        size = len(records)
        self._check_fits_a_segment(size)
        markers = _markers(records, validated)
        batches: list[AppendedBatch] = []
        with self._lock:
            expected = self._log_end_offset
            for position, header in zip(validated.positions, validated.headers, strict=True):
                if header.base_offset < expected:
                    raise CorruptRecordError(
                        f"batch at offset {header.base_offset} is below the expected"
                        f" offset {expected}"
                    )
                batches.append((position, header.last_offset, header.max_timestamp, header.size))
                expected = header.next_offset
            now_ms = self.clock.wall_ms()
            segment = self._maybe_roll(size, validated.max_timestamp, expected - 1, now_ms)
            if segment.size == 0 and segment.next_offset < validated.headers[0].base_offset:
                # A fresh active segment may start at the first offset it will hold.
                segment = self._roll(validated.headers[0].base_offset, replace_empty=True)
            for header in validated.headers:
                self.leader_epochs.assign(header.partition_leader_epoch, header.base_offset)
            segment.append(records, batches)
            self._log_end_offset = expected
            for index, header in enumerate(validated.headers):
                marker = markers[index] if markers is not None else None
                aborted = self.producer_state.update(header, marker)
                if aborted is not None:
                    self._index_aborted(segment, aborted)
        return expected

    def _check_fits_a_segment(self, size: int) -> None:
        if size > self.config.segment_bytes:
            raise KafkaError(
                f"record set of {size} bytes is larger than segment.bytes"
                f" {self.config.segment_bytes}",
                ErrorCode.RECORD_LIST_TOO_LARGE,
            )

    def _maybe_roll(
        self, size: int, max_timestamp: int, last_offset: int, now_ms: int
    ) -> LogSegment:
        segment = self._segments[-1]
        if segment.size == 0:
            return segment
        config = self.config
        if (
            segment.size > config.segment_bytes - size
            or segment.time_waited_for_roll(now_ms, max_timestamp) > config.segment_ms
            or segment.indexes_full
            or not segment.can_hold(last_offset)
        ):
            return self._roll(self._log_end_offset)
        return segment

    def _roll(self, base_offset: int, *, replace_empty: bool = False) -> LogSegment:
        old = self._segments[-1]
        if replace_empty:
            old.delete()
            del self._segments[-1]
            del self._bases[-1]
        else:
            old.on_become_inactive()
            self._snapshot_producer_state(base_offset)
        segment = LogSegment(
            self.fileio,
            self.directory,
            base_offset,
            index_interval_bytes=self.config.index_interval_bytes,
            max_index_bytes=self.config.segment_index_bytes,
            created_ms=self.clock.wall_ms(),
        )
        self._segments.append(segment)
        self._bases.append(base_offset)
        self._directory_dirty = True
        logger.info("%s rolled a new segment at offset %d", self._prefix, base_offset)
        return segment

    def roll(self) -> None:
        """Start a new active segment now (if the current one holds anything)."""
        with self._lock:
            if self._segments[-1].size > 0:
                self._roll(self._log_end_offset)

    # --- reading ---------------------------------------------------------------------------

    def read(
        self,
        offset: int,
        max_bytes: int,
        *,
        max_offset: int | None = None,
        min_one_message: bool = True,
        include_aborted_transactions: bool = False,
    ) -> ReadResult:
        """Whole batches from the one holding `offset`, up to `max_bytes` (at least one batch
        with `min_one_message`), leaving out batches whose base offset is >= `max_offset`.
        With `include_aborted_transactions` (read_committed: `max_offset` is then the last
        stable offset), the result lists the aborted transactions overlapping what was read.

        Raises OffsetOutOfRangeError outside [log_start_offset, log_end_offset].
        """
        empty: list[AbortedTxn] | None = [] if include_aborted_transactions else None
        with self._lock:
            log_start_offset = self._log_start_offset
            log_end_offset = self._log_end_offset
            segments = self._segments
            bases = self._bases
            index = bisect_right(bases, offset) - 1
            sizes = [segment.size for segment in segments[max(index, 0) :]]
            segments = segments[max(index, 0) :]
        if offset < log_start_offset or offset > log_end_offset:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside [{log_start_offset}, {log_end_offset}] of"
                f" {self.topic}-{self.partition}"
            )
        if offset == log_end_offset or (max_offset is not None and offset >= max_offset):
            return ReadResult(b"", log_start_offset, log_end_offset, empty)
        for index, (segment, size) in enumerate(zip(segments, sizes, strict=True)):
            if offset >= segment.next_offset:
                continue
            if max_offset is not None and segment.base_offset >= max_offset:
                break
            data, next_offset = segment.read_batches(
                offset,
                max_bytes,
                max_offset=max_offset,
                max_position=size,
                min_one_message=min_one_message,
            )
            aborted = empty
            if include_aborted_transactions and data:
                aborted = _collect_aborted_transactions(segments[index:], offset, next_offset)
            return ReadResult(data, log_start_offset, log_end_offset, aborted)
        return ReadResult(b"", log_start_offset, log_end_offset, empty)

    def last_stable_offset(self, high_watermark: int) -> int:
        """The first offset a read_committed reader may not read yet: the first offset of the
        earliest unfinished transaction, capped by `high_watermark`."""
        first_unstable = self.producer_state.first_unstable_offset(high_watermark)
        if first_unstable is None or first_unstable > high_watermark:
            return high_watermark
        return first_unstable

    def replay_records(
        self, end_offset: int | None = None, chunk_bytes: int = 1 << 20
    ) -> Iterator[record_batches.Record]:
        """Every record of the data batches from the log start offset up to `end_offset`
        (default: the log end), read a chunk at a time: how internal topics are replayed at
        load. Control batches (transaction markers) are skipped."""
        for batch in self.replay_batches(end_offset, chunk_bytes):
            yield from batch.records

    def replay_batches(
        self, end_offset: int | None = None, chunk_bytes: int = 1 << 20
    ) -> Iterator[ReplayedBatch]:
        """Every batch from the log start offset up to `end_offset` (default: the log end)
        with its records decoded, or for a control batch its transaction marker: how an
        internal topic that holds transactional data (`__consumer_offsets`) is replayed."""
        offset = self.log_start_offset
        end = self.log_end_offset if end_offset is None else end_offset
        while offset < end:
            data = self.read(offset, chunk_bytes, max_offset=end).records
            if not data:
                return
            view = memoryview(data)
            for position, header in record_batches.iter_batches(data):
                offset = header.next_offset
                batch = view[position : position + header.size]
                if header.is_control:
                    try:
                        marker = end_transaction_marker(batch)
                    except CorruptRecordError:
                        continue  # a control record that is no transaction marker
                    yield ReplayedBatch(header, [], marker)
                else:
                    yield ReplayedBatch(header, record_batches.decode_records(batch)[1], None)

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record whose timestamp is >= `timestamp_ms`."""
        with self._lock:
            segments = list(self._segments)
            log_start_offset = self._log_start_offset
        for segment in segments:
            if segment.next_offset <= log_start_offset or segment.max_timestamp < timestamp_ms:
                continue
            found = segment.find_offset_by_timestamp(timestamp_ms, log_start_offset)
            if found is not None:
                return found
        return None

    def max_timestamp_offset(self) -> tuple[int, int] | None:
        """(offset, timestamp) of the record with the largest timestamp (ListOffsets -3)."""
        with self._lock:
            segments = list(self._segments)
        best: LogSegment | None = None
        for segment in segments:
            if segment.size and (best is None or segment.max_timestamp > best.max_timestamp):
                best = segment
        if best is None:
            return None
        return best.max_timestamp_record()

    # --- durability, truncation, lifetime --------------------------------------------------

    def flush(self) -> int:
        """fsync everything appended so far; advances and returns the recovery point."""
        with self._flush_lock:
            with self._lock:
                end = self._log_end_offset
                start = max(self._recovery_point - 1, 0)
                directory_dirty = self._directory_dirty
                if end <= self._recovery_point and not directory_dirty:
                    return self._recovery_point
                first = max(bisect_right(self._bases, start) - 1, 0)
                segments = self._segments[first:]
                self._directory_dirty = False
            for segment in segments:
                segment.flush()
            if directory_dirty:
                self.fileio.fsync_dir(self.directory)
            with self._lock:
                self._recovery_point = max(self._recovery_point, end)
                return self._recovery_point

    def truncate_to(self, offset: int) -> None:
        """Remove everything at and after `offset` (whole batches: a batch straddling
        `offset` goes too, so log_end_offset may end up below `offset`)."""
        with self._cleaning_interrupted(), self._flush_lock, self._lock:
            if offset >= self._log_end_offset:
                # No record goes, but an epoch may start at the log end with nothing in it
                # (this replica became leader, then lost the leadership before appending):
                # left in place, it would be the last fetched epoch of every fetch, the leader
                # would answer with the same divergence each time, and the follower would
                # never fetch again (Kafka's UnifiedLog.truncateTo does the same).
                self.leader_epochs.truncate_from_end(self._log_end_offset)
                return
            while len(self._segments) > 1 and self._segments[-1].base_offset >= offset:
                self._segments.pop().delete()
                self._bases.pop()
            last = self._segments[-1]
            if last.base_offset >= offset:
                last.delete()
                self._segments.clear()
                self._bases.clear()
                new = LogSegment(
                    self.fileio,
                    self.directory,
                    offset,
                    index_interval_bytes=self.config.index_interval_bytes,
                    max_index_bytes=self.config.segment_index_bytes,
                    created_ms=self.clock.wall_ms(),
                )
                self._segments.append(new)
                self._bases.append(offset)
                self._directory_dirty = True
            else:
                last.truncate_to(offset)
            self._log_end_offset = self._segments[-1].next_offset
            self._log_start_offset = min(self._log_start_offset, self._log_end_offset)
            self._recovery_point = min(self._recovery_point, self._log_end_offset)
            self.truncated_to = min(self.truncated_to, self._log_end_offset)
            self.leader_epochs.truncate_from_end(self._log_end_offset)
            logger.info("%s truncated to offset %d", self._prefix, self._log_end_offset)
        # What producers wrote above the new end is gone: rebuild their state from below it.
        self.producer_state = ProducerStateManager(f"{self.topic}-{self.partition}")
        self._load_producer_state(clean_shutdown=False)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Drop every segment and start empty at `offset` (Kafka's truncateFullyAndStartAt):
        a follower whose log ends before its leader's log start cannot catch up otherwise."""
        with self._cleaning_interrupted(), self._flush_lock, self._lock:
            for segment in self._segments:
                segment.delete()
            for old in snapshot_offsets(self.fileio.list_dir(self.directory)):
                self.fileio.delete(self.directory / snapshot_name(old))
            self._segments = [
                LogSegment(
                    self.fileio,
                    self.directory,
                    offset,
                    index_interval_bytes=self.config.index_interval_bytes,
                    max_index_bytes=self.config.segment_index_bytes,
                    created_ms=self.clock.wall_ms(),
                )
            ]
            self._bases = [offset]
            self._directory_dirty = True
            self._log_end_offset = self._log_start_offset = self._recovery_point = offset
            self.truncated_to = min(self.truncated_to, offset)
            self.leader_epochs.truncate_from_end(0)
            self.producer_state = ProducerStateManager(f"{self.topic}-{self.partition}")
            logger.info("%s truncated fully, now starting at offset %d", self._prefix, offset)

    def retention_start_offset(self, now_ms: int) -> int | None:
        """Where retention wants the log to start (a segment's base offset, or the log end when
        every segment expired), or None when nothing is due. Only with cleanup.policy
        `delete`: segments whose newest record is older than retention.ms, then the oldest
        segments while the log would still hold retention.bytes without them (Kafka's
        deleteRetentionMsBreachedSegments and deleteRetentionSizeBreachedSegments)."""
        config = self.config
        if "delete" not in config.cleanup_policy:
            return None
        with self._lock:
            segments = [s for s in self._segments if s.size > 0]
            end = self._log_end_offset
        expired = 0
        if config.retention_ms >= 0:
            for segment in segments:
                newest = segment.max_timestamp if segment.max_timestamp >= 0 else segment.created_ms
                if now_ms - newest <= config.retention_ms:
                    break
                expired += 1
        if config.retention_bytes >= 0:
            excess = sum(segment.size for segment in segments) - config.retention_bytes
            oversize = 0
            for segment in segments:
                if excess - segment.size < 0:
                    break
                excess -= segment.size
                oversize += 1
            expired = max(expired, oversize)
        if expired == 0:
            return None
        return segments[expired].base_offset if expired < len(segments) else end

    def apply_retention(self, now_ms: int) -> int:
        """Delete the segments retention no longer keeps (rolling the active one first when it
        expired too); returns the log start offset."""
        target = self.retention_start_offset(now_ms)
        if target is None or target <= self._log_start_offset:
            return self._log_start_offset
        if target == self._log_end_offset:
            self.roll()
        logger.info("%s retention moves the log start offset to %d", self._prefix, target)
        return self.delete_records_before(target)

    def delete_records_before(self, offset: int) -> int:
        """Move the log start offset up to `offset` (DeleteRecords, retention) and delete the
        segments that then hold nothing a reader may ask for; returns the new log start offset.
        """
        with self._cleaning_interrupted(), self._flush_lock, self._lock:
            if offset > self._log_end_offset:
                raise OffsetOutOfRangeError(
                    f"offset {offset} is above the log end offset {self._log_end_offset}"
                )
            if offset <= self._log_start_offset:
                return self._log_start_offset
            self._log_start_offset = offset
            while len(self._segments) > 1 and self._bases[1] <= offset:
                self._retire(self._segments.pop(0))
                self._bases.pop(0)
            self.producer_state.remove_before(offset)
            self.leader_epochs.truncate_from_start(offset)
            for old in snapshot_offsets(self.fileio.list_dir(self.directory)):
                if old < self._bases[0]:
                    self.fileio.delete(self.directory / snapshot_name(old))
            logger.info("%s log start offset is now %d", self._prefix, offset)
            return offset

    def _retire(self, segment: LogSegment) -> None:
        """Take a segment out of the log; its files go after file.delete.delay.ms (renamed
        `.deleted` until then, and removed at the next open if the broker stops first)."""
        delay = self.config.file_delete_delay_ms
        if delay <= 0:
            segment.delete()
            return
        self._retired.append((self.clock.wall_ms() + delay, segment.retire()))
        self._directory_dirty = True

    def delete_retired_files(self, now_ms: int) -> int:
        """Delete the files of retired segments whose delay is over; returns how many."""
        with self._lock:
            due = [paths for when, paths in self._retired if when <= now_ms]
            self._retired = [(when, paths) for when, paths in self._retired if when > now_ms]
            replaced = [segment for when, segment in self._replaced if when <= now_ms]
            self._replaced = [(when, s) for when, s in self._replaced if when > now_ms]
        for paths in due:
            for path in paths:
                self.fileio.delete(path)
        for segment in replaced:
            segment.delete()
        return sum(len(paths) for paths in due) + 4 * len(replaced)

    def close(self, *, flush: bool = True) -> None:
        """Flush (unless told not to) and close every file; the log is unusable afterwards.
        A flushing close also snapshots the producer state at the log end (when there is any,
        or an older snapshot that would otherwise make the next open replay from it)."""
        if flush:
            with self._lock:
                self._segments[-1].on_become_inactive()
                end = self._log_end_offset
                latest = snapshot_offsets(self.fileio.list_dir(self.directory))
                if latest[-1] != end if latest else bool(self.producer_state.producers):
                    self._snapshot_producer_state(end)
            self.flush()
        self.abort_cleaning()
        with self._flush_lock, self._lock:
            for segment in self._segments:
                segment.close()
            for _, segment in self._replaced:
                segment.delete()
            self._replaced = []

    def delete(self) -> None:
        """Remove every file of this log and its directory."""
        self.abort_cleaning()
        with self._flush_lock, self._lock:
            for segment in self._segments:
                segment.delete()
            for _, segment in self._replaced:
                segment.delete()
            self._replaced = []
            self._segments = []
            self._bases = []
            for name in self.fileio.list_dir(self.directory):
                self.fileio.delete(self.directory / name)
            self.fileio.rmdir(self.directory)

    # --- compaction (see cleaner.py) ---------------------------------------------------------

    def stable_offset_for_cleaning(self, high_watermark: int) -> int:
        """`last_stable_offset` for the cleaner's thread: read under the log's lock, changing
        nothing."""
        with self._lock:
            high_watermark = min(high_watermark, self._log_end_offset)
            first_unstable = self.producer_state.first_unstable_offset(high_watermark, prune=False)
        if first_unstable is None or first_unstable > high_watermark:
            return high_watermark
        return first_unstable

    @contextmanager
    def _cleaning_interrupted(self) -> Iterator[None]:
        """Stop a cleaning in progress (it is tried again later) while segments are removed
        from under it: it reads them without the log's lock. Taken before `_flush_lock`."""
        self.cleaning_interrupted = True
        with self.cleaning_lock:
            self.cleaning_interrupted = False
            yield

    def abort_cleaning(self) -> None:
        """Stop a cleaning of this log in progress (its cleaned files are dropped) and keep
        the cleaner away from it from now on; returns once no cleaning runs."""
        self.cleaning_aborted = True
        with self.cleaning_lock:
            pass

    def collect_aborted_transactions(
        self, start_offset: int, upper_bound_offset: int
    ) -> list[AbortedTxn]:
        """The aborted transactions overlapping [start_offset, upper_bound_offset)."""
        with self._lock:
            index = max(bisect_right(self._bases, start_offset) - 1, 0)
            segments = self._segments[index:]
        return _collect_aborted_transactions(segments, start_offset, upper_bound_offset)

    def last_records_of_producers(self) -> dict[int, tuple[int, int]]:
        """producer id -> (offset of its last data batch's last record or -1, epoch): the
        batches the cleaner keeps (maybe emptied) so a replay rebuilds the same producer
        state."""
        with self._lock:
            return {
                producer_id: (entry.last_offset, entry.epoch)
                for producer_id, entry in self.producer_state.producers.items()
            }

    def new_cleaned_segment(self, base_offset: int, created_ms: int) -> LogSegment:
        """An empty segment with `.cleaned` files (any left from an earlier try removed),
        the transaction index file included so a swap moves a complete set of files."""
        for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX):
            self.fileio.delete(self.directory / (file_name(base_offset, suffix) + CLEANED_SUFFIX))
        self.fileio.replace_file(
            self.directory / (file_name(base_offset, TXN_INDEX_SUFFIX) + CLEANED_SUFFIX), b""
        )
        return LogSegment(
            self.fileio,
            self.directory,
            base_offset,
            index_interval_bytes=self.config.index_interval_bytes,
            max_index_bytes=self.config.segment_index_bytes,
            created_ms=created_ms,
            file_suffix=CLEANED_SUFFIX,
        )

    def replace_segments(self, cleaned: LogSegment, old: list[LogSegment]) -> bool:
        """Swap the flushed `cleaned` segment in for the consecutive segments `old`, crash
        safely (Kafka's replaceSegments):

        1. its files go from `.cleaned` to `.swap` (the .log last): from here on, an open
           finishes the swap;
        2. the old segments' files are renamed `.deleted` (still open: a read that took them
           before the swap completes; `delete_retired_files` removes them later);
        3. its files lose the `.swap` suffix (the .log last) and it takes their place.

        Returns False, dropping the cleaned files, when the log changed under the cleaner
        (truncation, retention, deletion): then nothing is swapped."""
        with self._lock:
            try:
                first = next(i for i, s in enumerate(self._segments) if s is old[0])
            except StopIteration:
                first = -1
            current = self._segments[first : first + len(old)] if first >= 0 else []
            unchanged = (
                len(current) == len(old)
                and all(a is b for a, b in zip(current, old, strict=True))
                and first + len(old) < len(self._segments)  # never the active segment
                and not self.cleaning_aborted
            )
            if not unchanged:
                cleaned.delete()
                return False
            cleaned.rename_files(SWAP_SUFFIX)
            self.fileio.fsync_dir(self.directory)
            when = self.clock.wall_ms() + max(self.config.file_delete_delay_ms, 0)
            for segment in old:
                segment.retire_open()
                self._replaced.append((when, segment))
            cleaned.rename_files("")
            self._segments[first : first + len(old)] = [cleaned]
            self._bases[first : first + len(old)] = [cleaned.base_offset]
            self.fileio.fsync_dir(self.directory)
        logger.info(
            "%s swapped cleaned segment %d (%d bytes) in for %d segment(s)",
            self._prefix,
            cleaned.base_offset,
            cleaned.size,
            len(old),
        )
        return True


def _swap_next_offset(fileio: FileIO, path: Path) -> int:
    """The offset after the last whole batch of a `.log.swap` file."""
    handle = fileio.open(path)
    try:
        size = fileio.size(handle)
        position = 0
        next_offset = -1
        while position + record_batches.HEADER_SIZE <= size:
            header = record_batches.read_header(
                fileio.pread(handle, record_batches.HEADER_SIZE, position)
            )
            if (
                header.batch_length < record_batches.HEADER_SIZE - record_batches.LOG_OVERHEAD
                or position + header.size > size
            ):
                break
            next_offset = header.next_offset
            position += header.size
        return next_offset
    finally:
        fileio.close(handle)


def _complete_swaps(fileio: FileIO, directory: Path, names: list[str]) -> None:
    """Finish the segment swaps a crash interrupted (see `Log.replace_segments`).

    A `.log.swap` file is a complete cleaned segment: the segments it replaces (base offsets
    within its offset range) go, and its files take their plain names. Index files with
    `.swap` but no `.log.swap` beside them belong to a swap that did not reach step 1: they go.
    """
    present = set(names)
    swaps = sorted(
        base
        for name in names
        if name.endswith(LOG_SUFFIX + SWAP_SUFFIX) and (base := parse_base_offset(name)) is not None
    )
    suffixes = (INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)
    for name in names:
        if name.endswith(SWAP_SUFFIX) and parse_base_offset(name) not in swaps:
            fileio.delete(directory / name)
    for base in swaps:
        swap_log = directory / (file_name(base, LOG_SUFFIX) + SWAP_SUFFIX)
        next_offset = _swap_next_offset(fileio, swap_log)
        replaced = {
            old
            for name in names
            if name.endswith(LOG_SUFFIX)
            and (old := parse_base_offset(name)) is not None
            and base <= old < max(next_offset, base + 1)
        }
        for old in replaced:
            fileio.delete(directory / file_name(old, LOG_SUFFIX))
            for suffix in suffixes:
                # Step 3 renames the swap's index files before its .log: a plain index file at
                # the swap's own base with no .swap beside it is already the cleaned one.
                if old != base or file_name(base, suffix) + SWAP_SUFFIX in present:
                    fileio.delete(directory / file_name(old, suffix))
        for suffix in (*suffixes, LOG_SUFFIX):
            source = directory / (file_name(base, suffix) + SWAP_SUFFIX)
            if fileio.exists(source):
                fileio.rename(source, directory / file_name(base, suffix))
        logger.warning(
            "[Log %s] finished swapping in cleaned segment %d after a crash", directory.name, base
        )
    fileio.fsync_dir(directory)
