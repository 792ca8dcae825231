"""What a partition remembers of each idempotent or transactional producer, as Kafka's
ProducerStateManager does: the producer's epoch, the metadata of its last five batches, and
the first offset of its open transaction.

An append from a client is checked batch by batch before anything is written (`check`):

- a batch whose epoch and sequence range equal one of the last five is a duplicate (a retry
  whose response was lost): nothing is appended, and the original batch's offsets are the
  answer;
- an epoch below the producer's is INVALID_PRODUCER_EPOCH;
- at the producer's epoch the first sequence must follow the last one (wrapping after
  2^31 - 1), else OUT_OF_ORDER_SEQUENCE_NUMBER; a new epoch must start at sequence 0; a producer
  the partition does not know (new, or expired) may start anywhere, as in Kafka since KIP-360;
- a transactional batch needs a transaction already open on this partition, or the
  transaction coordinator's word that the partition is in the producer's transaction (KIP-890
  verification, `verified_producer`); else INVALID_TXN_STATE. A producer with an open
  transaction may not write outside it.

What passes is applied with `apply` once the batches are appended. Appends that are not from
clients (replication, recovery) only update the state (`update`).

Transactions: a producer's transactional batch opens its transaction at that batch's first
offset; its next transaction marker (a control batch, written by the coordinator) closes it.
The open transactions, by first offset, give the first unstable offset: a read_committed reader
may read only below it (and below the high watermark). A closed transaction stays unstable until
the high watermark passes its marker, as in Kafka. Closing a transaction with an ABORT marker
yields an `AbortedTxn` for the segment's transaction index, with the last stable offset as of
that moment (the first offset of the earliest transaction still open, else the marker's offset
+ 1). The marker's type is the only thing read from inside a batch, and only for control
batches; the caller passes it in.

Snapshots (`<offset>.snapshot`, Kafka's ProducerSnapshot v1 format: version, CRC32C, then one
entry per producer with its last batch) hold the state as of an offset; the log writes one when
it rolls a segment and when it closes, and after a crash replays its batches from the latest
snapshot. Producers are forgotten `producer.id.expiration.ms` after their last batch's
timestamp unless they have a transaction open.

This module does no I/O but through the FileIO it is given.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.records import BatchHeader, crc32c
from odradek.storage.txn_index import AbortedTxn, ControlRecordType, EndTransactionMarker

logger = logging.getLogger(__name__)

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
BATCHES_TO_RETAIN = 5
INT32_MAX = 2**31 - 1
SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOT_VERSION = 1

_SNAPSHOT_HEAD = struct.Struct(">hIi")  # version, crc, entry count
_SNAPSHOT_ENTRY = struct.Struct(">qhiqiqiq")
_CRC_START = 6  # the CRC covers everything after the version and itself


def increment_sequence(sequence: int, increment: int) -> int:
    """Sequences wrap to 0 after 2^31 - 1, as DefaultRecordBatch.incrementSequence does."""
    if sequence > INT32_MAX - increment:
        return increment - (INT32_MAX - sequence) - 1
    return sequence + increment


def decrement_sequence(sequence: int, decrement: int) -> int:
    if sequence < decrement:
        return INT32_MAX - (decrement - sequence) + 1
    return sequence - decrement


def snapshot_name(offset: int) -> str:
    return f"{offset:020d}{SNAPSHOT_SUFFIX}"


def parse_snapshot_name(name: str) -> int | None:
    stem = name.removesuffix(SNAPSHOT_SUFFIX)
    if stem == name or not stem.isdigit():
        return None
    return int(stem)


class CorruptSnapshotError(ValueError):
    pass


class AppendOrigin(StrEnum):
    """Who appends: a client's batches are checked in full; a coordinator's (markers, its own
    internal topics) only by producer epoch, as Kafka's AppendOrigin.COORDINATOR."""

    CLIENT = "client"
    COORDINATOR = "coordinator"


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    last_seq: int
    last_offset: int
    offset_delta: int
    timestamp: int

    @property
    def first_seq(self) -> int:
        return decrement_sequence(self.last_seq, self.offset_delta)

    @property
    def first_offset(self) -> int:
        return self.last_offset - self.offset_delta


@dataclass(slots=True)
class ProducerEntry:
    producer_id: int
    epoch: int = NO_PRODUCER_EPOCH
    batches: deque[BatchMetadata] = field(default_factory=lambda: deque(maxlen=BATCHES_TO_RETAIN))
    coordinator_epoch: int = -1
    last_timestamp: int = -1
    txn_first_offset: int = -1  # -1: no transaction open

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    def copy(self) -> ProducerEntry:
        return ProducerEntry(
            self.producer_id,
            self.epoch,
            deque(self.batches, maxlen=BATCHES_TO_RETAIN),
            self.coordinator_epoch,
            self.last_timestamp,
            self.txn_first_offset,
        )

    def add_batch(self, epoch: int, last_seq: int, last_offset: int, delta: int, ts: int) -> None:
        if epoch != self.epoch:
            self.batches.clear()
            self.epoch = epoch
        self.batches.append(BatchMetadata(last_seq, last_offset, delta, ts))
        self.last_timestamp = ts

    def find_duplicate(self, epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        if epoch != self.epoch:
            return None
        for batch in self.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None


@dataclass(frozen=True, slots=True)
class CompletedTxn:
    producer_id: int
    first_offset: int
    last_offset: int  # the marker's offset
    is_aborted: bool


@dataclass(frozen=True, slots=True)
class Checked:
    """The outcome of `check`: a duplicate to answer with, or the entries to apply, with the
    transactions the append opens (first offset, producer id) and closes, in log order."""

    duplicate: BatchMetadata | None
    updated: dict[int, ProducerEntry]
    started: list[tuple[int, int]] = field(default_factory=list)
    completed: list[CompletedTxn] = field(default_factory=list)
    transactional: list[int] = field(default_factory=list)  # producers of transactional batches


def _last_seq(header: BatchHeader) -> int:
    return increment_sequence(header.base_sequence, header.last_offset_delta)


class ProducerStateManager:
    def __init__(self, topic_partition: str = "") -> None:
        self.producers: dict[int, ProducerEntry] = {}
        self._name = topic_partition
        # Open transactions: first offset -> producer id, in offset order (they open in log
        # order; a loaded snapshot is sorted).
        self._ongoing: dict[int, int] = {}
        # Closed transactions whose marker the high watermark has not passed, in marker order.
        self._unreplicated: deque[CompletedTxn] = deque()
        # KIP-890 verifications under way, by producer id (see `start_verification`).
        self._verifications: dict[int, object] = {}

    # --- appends from clients -----------------------------------------------------------------

    def check(
        self,
        headers: Sequence[BatchHeader],
        first_offset: int,
        origin: AppendOrigin = AppendOrigin.CLIENT,
        markers: Sequence[EndTransactionMarker | None] | None = None,
        verified_producer: int = NO_PRODUCER_ID,
    ) -> Checked:
        """Validate the producer batches of an append that will start at `first_offset`;
        raises KafkaError (nothing may be appended then). `markers` holds, for each control
        batch of `headers`, its transaction marker (None elsewhere). `verified_producer` may
        open a transaction here: the coordinator verified the partition is in it."""
        updated: dict[int, ProducerEntry] = {}
        started: list[tuple[int, int]] = []
        completed: list[CompletedTxn] = []
        transactional: list[int] = []
        offset = first_offset
        for index, header in enumerate(headers):
            batch_first, offset = offset, offset + header.last_offset_delta + 1
            producer_id = header.producer_id
            if producer_id == NO_PRODUCER_ID:
                continue
            current = self.producers.get(producer_id)
            last_seq = _last_seq(header)
            if not header.is_control and current is not None and origin == AppendOrigin.CLIENT:
                duplicate = current.find_duplicate(
                    header.producer_epoch, header.base_sequence, last_seq
                )
                if duplicate is not None:
                    return Checked(duplicate, {})
            entry = updated.get(producer_id)
            if entry is None:
                entry = current.copy() if current is not None else ProducerEntry(producer_id)
                updated[producer_id] = entry
            self._check_epoch(entry, header, batch_first)
            if header.is_transactional:
                transactional.append(producer_id)
            if header.is_control:  # a transaction marker, from the coordinator
                marker = markers[index] if markers is not None else None
                self._check_coordinator_epoch(entry, marker, batch_first)
                ended = self._end_transaction(entry, header, batch_first, marker)
                if ended is not None:
                    completed.append(ended)
                continue
            if origin == AppendOrigin.CLIENT:
                self._check_sequence(entry, current, header, batch_first)
                self._check_transaction(
                    entry, header, batch_first, header.producer_id == verified_producer
                )
            if header.is_transactional and entry.txn_first_offset < 0:
                entry.txn_first_offset = batch_first
                started.append((batch_first, producer_id))
            entry.add_batch(
                header.producer_epoch,
                last_seq,
                batch_first + header.last_offset_delta,
                header.last_offset_delta,
                header.max_timestamp,
            )
        return Checked(None, updated, started, completed, transactional)

    @staticmethod
    def _end_transaction(
        entry: ProducerEntry,
        header: BatchHeader,
        marker_offset: int,
        marker: EndTransactionMarker | None,
    ) -> CompletedTxn | None:
        """Close the entry's transaction at a marker; what closed, if one was open. A marker
        may carry a bumped epoch (KIP-890): the producer then starts again at sequence 0, so
        the batches of the old epoch are forgotten, as Kafka's maybeUpdateProducerEpoch does."""
        if header.producer_epoch != entry.epoch:
            entry.batches.clear()
            entry.epoch = header.producer_epoch
        entry.last_timestamp = header.max_timestamp
        if marker is not None:
            entry.coordinator_epoch = marker.coordinator_epoch
        first_offset, entry.txn_first_offset = entry.txn_first_offset, -1
        if first_offset < 0:
            return None
        aborted = marker is not None and marker.control_type == ControlRecordType.ABORT
        return CompletedTxn(entry.producer_id, first_offset, marker_offset, aborted)

    def _check_coordinator_epoch(
        self, entry: ProducerEntry, marker: EndTransactionMarker | None, offset: int
    ) -> None:
        """A marker from a transaction coordinator older than the last one seen here (a
        coordinator that lost its `__transaction_state` partition and does not know yet)."""
        if marker is not None and marker.coordinator_epoch < entry.coordinator_epoch:
            raise KafkaError(
                f"Marker of producer {entry.producer_id} at offset {offset} in {self._name} "
                f"has coordinator epoch {marker.coordinator_epoch}, which is smaller than the "
                f"last seen coordinator epoch {entry.coordinator_epoch}",
                ErrorCode.TRANSACTION_COORDINATOR_FENCED,
            )

    def _check_epoch(self, entry: ProducerEntry, header: BatchHeader, offset: int) -> None:
        if header.producer_epoch < entry.epoch:
            raise KafkaError(
                f"Epoch of producer {header.producer_id} at offset {offset} in {self._name} is "
                f"{header.producer_epoch}, which is smaller than the last seen epoch "
                f"{entry.epoch}",
                ErrorCode.INVALID_PRODUCER_EPOCH,
            )

    def _check_sequence(
        self,
        entry: ProducerEntry,
        current: ProducerEntry | None,
        header: BatchHeader,
        offset: int,
    ) -> None:
        first_seq = header.base_sequence
        if header.producer_epoch != entry.epoch:
            if first_seq != 0 and entry.epoch != NO_PRODUCER_EPOCH:
                raise KafkaError(
                    f"Invalid sequence number for new epoch of producer {header.producer_id} at "
                    f"offset {offset} in {self._name}: {header.producer_epoch} (request epoch), "
                    f"{first_seq} (seq. number), {entry.epoch} (current producer epoch)",
                    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                )
            return
        if current is None or current.epoch == NO_PRODUCER_EPOCH:
            return  # a producer this partition does not know may start anywhere
        last_seq = entry.last_seq
        if not (first_seq == last_seq + 1 or (first_seq == 0 and last_seq == INT32_MAX)):
            raise KafkaError(
                f"Out of order sequence number for producer {header.producer_id} at offset "
                f"{offset} in {self._name}: {first_seq} (incoming seq. number), {last_seq} "
                "(current end sequence number)",
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
            )

    @staticmethod
    def _check_transaction(
        entry: ProducerEntry, header: BatchHeader, offset: int, verified: bool
    ) -> None:
        if header.is_transactional and entry.txn_first_offset < 0 and not verified:
            raise KafkaError(
                "Record was not part of an ongoing transaction", ErrorCode.INVALID_TXN_STATE
            )
        if not header.is_transactional and entry.txn_first_offset >= 0:
            raise KafkaError(
                f"Expected transactional write from producer {header.producer_id} at offset "
                f"{offset}",
                ErrorCode.INVALID_TXN_STATE,
            )

    def apply(self, checked: Checked) -> list[AbortedTxn]:
        """Keep what `check` computed, once its batches are in the log; returns the
        transactions it aborted, for the transaction index."""
        self.producers.update(checked.updated)
        for producer_id in checked.transactional:  # its transaction here opened or ended
            self._verifications.pop(producer_id, None)
        for first_offset, producer_id in checked.started:
            self._ongoing[first_offset] = producer_id
        if not checked.completed:
            return []
        return [
            aborted
            for completed in checked.completed
            if (aborted := self._complete(completed)) is not None
        ]

    def _complete(self, completed: CompletedTxn) -> AbortedTxn | None:
        last_stable_offset = completed.last_offset + 1
        for first_offset, producer_id in self._ongoing.items():
            if producer_id != completed.producer_id:
                last_stable_offset = first_offset
                break
        self._ongoing.pop(completed.first_offset, None)
        self._unreplicated.append(completed)
        if not completed.is_aborted:
            return None
        return AbortedTxn(
            completed.producer_id,
            completed.first_offset,
            completed.last_offset,
            last_stable_offset,
        )

    # --- KIP-890 verification -----------------------------------------------------------------

    def start_verification(self, producer_id: int) -> object:
        """A guard for a verification with the transaction coordinator that the producer's
        next transactional batch here is in its transaction. Verifications under way at once
        share it; the producer's next transactional batch or marker appended here drops it, so
        a batch verified before a marker ended the transaction finds its guard gone
        (`verification_holds`) and cannot open a transaction the coordinator has ended."""
        return self._verifications.setdefault(producer_id, object())

    def verification_holds(self, producer_id: int, guard: object) -> bool:
        return self._verifications.get(producer_id) is guard

    def may_append_verified(self, producer_id: int, guard: object) -> bool:
        """Whether a batch verified under `guard` may be appended now: its guard still holds,
        or another batch of the producer has opened the transaction here meanwhile."""
        return self.verification_holds(producer_id, guard) or self.has_open_transaction(producer_id)

    def end_verification(self, producer_id: int, guard: object) -> None:
        """Drop a guard whose verification failed."""
        if self._verifications.get(producer_id) is guard:
            del self._verifications[producer_id]

    # --- the last stable offset -------------------------------------------------------------

    def has_open_transaction(self, producer_id: int) -> bool:
        """Whether the producer has a transaction open on this partition (its batches need no
        further verification by the coordinator)."""
        entry = self.producers.get(producer_id)
        return entry is not None and entry.txn_first_offset >= 0

    def first_unstable_offset(self, high_watermark: int, *, prune: bool = True) -> int | None:
        """The first offset of the earliest transaction that is open, or closed by a marker
        the high watermark has not reached; None when there is none (the common case, checked
        first). `prune=False` changes nothing (for a reader on another thread)."""
        if not self._ongoing and not self._unreplicated:
            return None
        unreplicated = self._unreplicated
        if prune:
            while unreplicated and unreplicated[0].last_offset < high_watermark:
                unreplicated.popleft()
        first: int | None = next(iter(self._ongoing), None)
        for completed in list(unreplicated):
            if completed.last_offset < high_watermark:
                continue
            if first is None or completed.first_offset < first:
                first = completed.first_offset
        return first

    # --- appends that are not checked: replication and recovery -------------------------------

    def update(
        self, header: BatchHeader, marker: EndTransactionMarker | None = None
    ) -> AbortedTxn | None:
        """Follow a batch already in the log (its offsets assigned); control batches (markers,
        `marker` read from the batch) close the producer's transaction. Returns what the
        batch aborted, for the transaction index."""
        if header.producer_id == NO_PRODUCER_ID:
            return None
        entry = self.producers.get(header.producer_id)
        if entry is None:
            entry = self.producers[header.producer_id] = ProducerEntry(header.producer_id)
        if header.is_control:
            if header.producer_epoch < entry.epoch:
                return None
            completed = self._end_transaction(entry, header, header.base_offset, marker)
            return self._complete(completed) if completed is not None else None
        entry.add_batch(
            header.producer_epoch,
            _last_seq(header),
            header.last_offset,
            header.last_offset_delta,
            header.max_timestamp,
        )
        if header.is_transactional and entry.txn_first_offset < 0:
            entry.txn_first_offset = header.base_offset
            self._ongoing[header.base_offset] = header.producer_id
        return None

    # --- expiry ---------------------------------------------------------------------------------

    def remove_expired(self, now_ms: int, expiration_ms: int) -> list[int]:
        """Forget producers idle for `expiration_ms` (by their last batch's timestamp) that
        have no transaction open; returns their ids."""
        expired = [
            producer_id
            for producer_id, entry in self.producers.items()
            if entry.txn_first_offset < 0 and now_ms - entry.last_timestamp >= expiration_ms
        ]
        for producer_id in expired:
            del self.producers[producer_id]
        return expired

    def remove_before(self, offset: int) -> None:
        """Forget producers whose last batch is below `offset` (the log start moved past it),
        unless a transaction of theirs is open."""
        for producer_id in [
            pid
            for pid, entry in self.producers.items()
            if entry.txn_first_offset < 0 and 0 <= entry.last_offset < offset
        ]:
            del self.producers[producer_id]

    # --- snapshots ------------------------------------------------------------------------------

    def encode_snapshot(self) -> bytes:
        body = bytearray(struct.pack(">i", len(self.producers)))
        for producer_id in sorted(self.producers):
            entry = self.producers[producer_id]
            last = entry.batches[-1] if entry.batches else None
            body += _SNAPSHOT_ENTRY.pack(
                producer_id,
                entry.epoch,
                last.last_seq if last else NO_SEQUENCE,
                last.last_offset if last else -1,
                last.offset_delta if last else 0,
                entry.last_timestamp,
                entry.coordinator_epoch,
                entry.txn_first_offset,
            )
        return struct.pack(">hI", SNAPSHOT_VERSION, crc32c(body)) + bytes(body)

    @staticmethod
    def decode_snapshot(data: bytes) -> list[ProducerEntry]:
        if len(data) < _SNAPSHOT_HEAD.size:
            raise CorruptSnapshotError("the snapshot is truncated")
        version, crc, count = _SNAPSHOT_HEAD.unpack_from(data)
        if version != SNAPSHOT_VERSION:
            raise CorruptSnapshotError(f"unknown snapshot version {version}")
        if crc32c(memoryview(data)[_CRC_START:]) != crc:
            raise CorruptSnapshotError("the snapshot's CRC does not match its contents")
        if count < 0 or len(data) != _SNAPSHOT_HEAD.size + count * _SNAPSHOT_ENTRY.size:
            raise CorruptSnapshotError(f"the snapshot's size does not hold {count} entries")
        entries = []
        for index in range(count):
            position = _SNAPSHOT_HEAD.size + index * _SNAPSHOT_ENTRY.size
            pid, epoch, last_seq, last_offset, delta, timestamp, coordinator_epoch, txn_first = (
                _SNAPSHOT_ENTRY.unpack_from(data, position)
            )
            entry = ProducerEntry(pid, epoch, coordinator_epoch=coordinator_epoch)
            entry.last_timestamp = timestamp
            entry.txn_first_offset = txn_first
            if last_offset >= 0:
                entry.batches.append(BatchMetadata(last_seq, last_offset, delta, timestamp))
            entries.append(entry)
        return entries

    def load(self, entries: Iterable[ProducerEntry]) -> None:
        self.producers = {entry.producer_id: entry for entry in entries}
        self._ongoing = {
            entry.txn_first_offset: entry.producer_id
            for entry in sorted(self.producers.values(), key=lambda e: e.txn_first_offset)
            if entry.txn_first_offset >= 0
        }
        self._unreplicated.clear()


def snapshot_offsets(names: Iterable[str]) -> list[int]:
    """Offsets of the snapshot files among a directory's file `names`, ascending."""
    return sorted(o for name in names if (o := parse_snapshot_name(name)) is not None)
