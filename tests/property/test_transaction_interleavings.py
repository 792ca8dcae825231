"""For any interleaving of transactional writes, commits, aborts, plain records and segment
rolls from a few producers: the last stable offset is the first offset of the earliest open
transaction; a reader that filters what read_committed reads return with their aborted lists,
as Kafka's consumer does, sees exactly the plain and committed records, in small fetches or
large; and a log recovered from offset 0 after a crash re-derives the same transaction index."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.common.clock import FakeClock
from odradek.protocol import records
from odradek.storage.fileio import LossyFileIO
from odradek.storage.log import Log, LogConfig
from odradek.storage.producer_state import AppendOrigin
from odradek.storage.txn_index import (
    TXN_INDEX_SUFFIX,
    AbortedTxn,
    ControlRecordType,
    encode_end_transaction_marker,
    end_transaction_marker,
)

DIR = Path("/data/ledger-0")
PRODUCERS = (11, 12, 13)
COORDINATOR = AppendOrigin.COORDINATOR

operation = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(PRODUCERS), st.integers(1, 3)),
    st.tuples(st.just("write"), st.sampled_from(PRODUCERS), st.integers(1, 3)),
    st.tuples(st.just("commit"), st.sampled_from(PRODUCERS), st.just(0)),
    st.tuples(st.just("abort"), st.sampled_from(PRODUCERS), st.just(0)),
    st.tuples(st.just("plain"), st.just(-1), st.integers(1, 3)),
    st.tuples(st.just("roll"), st.just(-1), st.just(0)),
)


class Model:
    def __init__(self, log: Log) -> None:
        self.log = log
        self.sequences = dict.fromkeys(PRODUCERS, 0)
        self.pending: dict[int, list[bytes]] = {}  # producer -> values of its open transaction
        self.first_offsets: dict[int, int] = {}
        self.committed: list[bytes] = []
        self.counter = 0

    def values(self, count: int) -> list[bytes]:
        self.counter += count
        return [f"{self.counter - count + 1 + i}".encode() for i in range(count)]

    def apply(self, kind: str, pid: int, count: int) -> None:
        log = self.log
        if kind == "roll":
            log.roll()
        elif kind == "plain":
            values = self.values(count)
            data = records.encode_batch([(None, v, []) for v in values], timestamp_ms=1)
            log.append_as_leader(bytearray(data), leader_epoch=0)
            self.committed += values
        elif kind == "write":
            values = self.values(count)
            data = records.encode_batch(
                [(None, v, []) for v in values],
                timestamp_ms=1,
                producer_id=pid,
                producer_epoch=0,
                base_sequence=self.sequences[pid],
                attributes=records.ATTR_TRANSACTIONAL,
            )
            self.sequences[pid] += count
            first = log.append_as_leader(
                bytearray(data), leader_epoch=0, origin=COORDINATOR
            ).first_offset
            self.first_offsets.setdefault(pid, first)
            self.pending.setdefault(pid, []).extend(values)
        else:
            control = ControlRecordType.COMMIT if kind == "commit" else ControlRecordType.ABORT
            marker = encode_end_transaction_marker(
                control, 0, producer_id=pid, producer_epoch=0, timestamp_ms=2
            )
            log.append_as_leader(marker, leader_epoch=0, origin=COORDINATOR)
            values = self.pending.pop(pid, [])
            self.first_offsets.pop(pid, None)
            if kind == "commit":
                self.committed += values

    @property
    def last_stable_offset(self) -> int:
        return min(self.first_offsets.values(), default=self.log.log_end_offset)


def read_committed(log: Log, max_bytes: int) -> list[bytes]:
    """Fetch below the last stable offset and drop aborted records with each fetch's aborted
    list, as Kafka's consumer does (per fetch, by producer, opened at first offsets, closed at
    ABORT markers)."""
    out: list[bytes] = []
    offset = 0
    end = log.last_stable_offset(log.log_end_offset)
    while offset < end:
        read = log.read(offset, max_bytes, max_offset=end, include_aborted_transactions=True)
        assert read.records and read.aborted_transactions is not None
        pending = sorted(read.aborted_transactions, key=lambda txn: txn.first_offset)
        aborting: set[int] = set()
        view = memoryview(read.records)
        for position, header in records.iter_batches(read.records):
            batch = view[position : position + header.size]
            while pending and pending[0].first_offset <= header.last_offset:
                aborting.add(pending.pop(0).producer_id)
            offset = header.next_offset
            if header.is_control:
                if end_transaction_marker(batch).control_type == ControlRecordType.ABORT:
                    aborting.discard(header.producer_id)
                continue
            if header.is_transactional and header.producer_id in aborting:
                continue
            out += [r.value or b"" for r in records.decode_records(batch)[1]]
    return out


def aborted_in(log: Log) -> list[AbortedTxn]:
    return [txn for segment in log.segments for txn in segment.txn_index.entries]


@settings(max_examples=150, deadline=None)
@given(operations=st.lists(operation, max_size=40), max_bytes=st.sampled_from([1, 200, 1 << 20]))
def test_read_committed_sees_exactly_the_committed_records(
    operations: list[tuple[str, int, int]], max_bytes: int
) -> None:
    fileio = LossyFileIO()
    clock = FakeClock(wall_ms=1_000)
    log = Log.open(DIR, LogConfig(), fileio=fileio, clock=clock)
    model = Model(log)
    for kind, pid, count in operations:
        model.apply(kind, pid, count)
        assert log.last_stable_offset(log.log_end_offset) == model.last_stable_offset
    # Open transactions end (aborted), so everything becomes stable.
    for pid in list(model.pending):
        model.apply("abort", pid, 0)
    assert log.last_stable_offset(log.log_end_offset) == log.log_end_offset
    expected = sorted(model.committed, key=int)  # values count up in offset order
    assert read_committed(log, max_bytes) == expected

    live = aborted_in(log)
    log.flush()
    fileio.crash()
    for path in fileio.file_paths():
        if path.suffix in (TXN_INDEX_SUFFIX, ".snapshot"):
            fileio.delete(path)
    reopened = Log.open(DIR, LogConfig(), fileio=fileio, clock=clock, recovery_point=0)
    assert aborted_in(reopened) == live
    assert read_committed(reopened, max_bytes) == expected
