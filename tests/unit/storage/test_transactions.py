"""Transactions on the read side of the log: the last stable offset, the `.txnindex` of aborted
transactions (Kafka's TransactionIndex format), read_committed reads, and what happens to both
on rolls, truncation, deletion, clean restarts and crashes (the index of a recovered segment is
re-derived from its batches with the producer state as of the segment's start)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from storage_helpers import batch, open_log

from odradek.common.clock import FakeClock
from odradek.common.errors import CorruptRecordError, InvalidRecordError
from odradek.protocol import records
from odradek.storage.fileio import LossyFileIO
from odradek.storage.log import Log, LogConfig
from odradek.storage.producer_state import AppendOrigin
from odradek.storage.txn_index import (
    ENTRY_SIZE,
    TXN_INDEX_SUFFIX,
    AbortedTxn,
    ControlRecordType,
    TransactionIndex,
    decode_entries,
    encode_end_transaction_marker,
    end_transaction_marker,
)

DIR = Path("/logs/payments-0")
ABORT = ControlRecordType.ABORT
COMMIT = ControlRecordType.COMMIT


@pytest.fixture
def fileio() -> LossyFileIO:
    fileio = LossyFileIO()
    fileio.mkdir(DIR)
    return fileio


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_ms=1_700_000_000_000)


def transactional(pid: int, sequence: int, count: int = 2, epoch: int = 0) -> bytearray:
    return bytearray(
        records.encode_batch(
            [(b"k", b"v", [])] * count,
            producer_id=pid,
            producer_epoch=epoch,
            base_sequence=sequence,
            timestamp_ms=1_000,
            attributes=records.ATTR_TRANSACTIONAL,
        )
    )


def write(log: Log, pid: int, sequence: int, count: int = 2) -> int:
    """Append a transactional batch; returns its first offset. The coordinator origin stands
    in for the partition having been added to the transaction (verification is not part of
    the read side)."""
    return log.append_as_leader(
        transactional(pid, sequence, count), leader_epoch=0, origin=AppendOrigin.COORDINATOR
    ).first_offset


def end(log: Log, pid: int, control_type: ControlRecordType, epoch: int = 0) -> int:
    """Append a transaction marker as the coordinator does; returns its offset."""
    marker = encode_end_transaction_marker(
        control_type, 7, producer_id=pid, producer_epoch=epoch, timestamp_ms=2_000
    )
    return log.append_as_leader(
        marker, leader_epoch=0, origin=AppendOrigin.COORDINATOR
    ).first_offset


def aborted_in(log: Log) -> list[AbortedTxn]:
    return [txn for segment in log.segments for txn in segment.txn_index.entries]


def committed_read(log: Log, offset: int = 0) -> tuple[list[int], list[AbortedTxn]]:
    high_watermark = log.log_end_offset
    read = log.read(
        offset,
        1 << 20,
        max_offset=log.last_stable_offset(high_watermark),
        include_aborted_transactions=True,
    )
    assert read.aborted_transactions is not None
    return [h.base_offset for _, h in records.iter_batches(read.records)], read.aborted_transactions


# --- the file format ------------------------------------------------------------------------


def test_an_entry_is_kafkas_34_byte_aborted_txn() -> None:
    entry = AbortedTxn(producer_id=4000, first_offset=10, last_offset=25, last_stable_offset=26)
    data = entry.encode()
    assert ENTRY_SIZE == len(data) == 34
    assert struct.unpack(">hqqqq", data) == (0, 4000, 10, 25, 26)
    assert decode_entries(data + data[:5]) == [entry]  # a torn tail is no entry


def test_the_index_file_is_created_with_the_first_abort_and_trims_a_torn_tail(
    fileio: LossyFileIO,
) -> None:
    path = DIR / f"{0:020d}{TXN_INDEX_SUFFIX}"
    index = TransactionIndex(fileio, path, 0)
    assert not fileio.exists(path)
    index.append(AbortedTxn(1, 0, 3, 4))
    index.append(AbortedTxn(2, 1, 5, 6))
    with pytest.raises(ValueError):
        index.append(AbortedTxn(3, 2, 5, 6))  # markers only move forward
    index.close()
    handle = fileio.open(path)
    fileio.write(handle, b"\x00\x00\x01")
    reopened = TransactionIndex(fileio, path, 0)
    assert reopened.entries == [AbortedTxn(1, 0, 3, 4), AbortedTxn(2, 1, 5, 6)]
    assert fileio.size(handle) == 2 * ENTRY_SIZE
    reopened.truncate_to(5)
    assert reopened.entries == [AbortedTxn(1, 0, 3, 4)]
    assert fileio.size(handle) == ENTRY_SIZE


def test_collect_stops_once_an_entry_shows_nothing_later_can_overlap() -> None:
    index = TransactionIndex(LossyFileIO(), DIR / "x.txnindex", 0)
    index.entries = [AbortedTxn(1, 0, 3, 2), AbortedTxn(2, 2, 6, 7), AbortedTxn(3, 8, 9, 10)]
    assert index.collect(4, 9) == ([AbortedTxn(2, 2, 6, 7), AbortedTxn(3, 8, 9, 10)], True)
    assert index.collect(0, 2) == ([AbortedTxn(1, 0, 3, 2)], True)
    assert index.collect(10, 20) == ([], False)


def test_markers_round_trip_and_only_coordinators_may_write_them(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    marker = encode_end_transaction_marker(
        ABORT, 12, producer_id=5, producer_epoch=3, timestamp_ms=1
    )
    decoded = end_transaction_marker(marker)
    assert (decoded.control_type, decoded.coordinator_epoch) == (ABORT, 12)
    log = open_log(DIR, fileio, clock)
    with pytest.raises(InvalidRecordError):
        log.append_as_leader(marker, leader_epoch=0)


# --- the last stable offset and the abort index ------------------------------------------------


def test_without_transactions_the_last_stable_offset_is_the_high_watermark(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    log.append_as_leader(batch(3), leader_epoch=0)
    assert log.last_stable_offset(3) == 3
    assert log.last_stable_offset(2) == 2
    assert committed_read(log) == ([0], [])
    assert not any(fileio.exists(p) for p in fileio.file_paths() if p.suffix == TXN_INDEX_SUFFIX)


def test_the_last_stable_offset_waits_for_the_earliest_open_transaction(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    log.append_as_leader(batch(2), leader_epoch=0)  # 0-1
    first_a = write(log, pid=1, sequence=0)  # 2-3
    assert log.last_stable_offset(log.log_end_offset) == first_a == 2
    first_b = write(log, pid=2, sequence=0)  # 4-5
    write(log, pid=1, sequence=2)  # 6-7
    log.append_as_leader(batch(1), leader_epoch=0)  # 8
    assert log.last_stable_offset(log.log_end_offset) == 2
    assert committed_read(log) == ([0], [])
    commit_a = end(log, pid=1, control_type=COMMIT)  # 9
    assert log.last_stable_offset(log.log_end_offset) == first_b == 4
    abort_b = end(log, pid=2, control_type=ABORT)  # 10
    assert log.last_stable_offset(log.log_end_offset) == log.log_end_offset == 11
    # Only the abort is indexed; its last stable offset is the marker's + 1 (nothing open).
    assert aborted_in(log) == [AbortedTxn(2, first_b, abort_b, abort_b + 1)]
    assert commit_a == 9
    offsets, aborted = committed_read(log)
    assert offsets == [0, 2, 4, 6, 8, 9, 10]
    assert aborted == [AbortedTxn(2, 4, 10, 11)]


def test_an_abort_records_the_first_offset_of_the_transaction_still_open(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    write(log, pid=1, sequence=0)  # 0-1
    write(log, pid=2, sequence=0)  # 2-3
    marker = end(log, pid=1, control_type=ABORT)  # 4
    assert aborted_in(log) == [AbortedTxn(1, 0, marker, 2)]
    assert log.last_stable_offset(log.log_end_offset) == 2
    # The high watermark caps it, and a marker above the high watermark keeps its
    # transaction unstable (Kafka's unreplicated transactions).
    assert log.last_stable_offset(1) == 1
    end(log, pid=2, control_type=COMMIT)  # 5
    assert log.last_stable_offset(5) == 2
    assert log.last_stable_offset(6) == 6


def test_a_marker_without_an_open_transaction_indexes_nothing(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    end(log, pid=1, control_type=ABORT)
    assert aborted_in(log) == []
    assert log.last_stable_offset(log.log_end_offset) == 1


def test_read_committed_lists_aborts_whose_marker_lies_in_a_later_segment(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    first = write(log, pid=1, sequence=0)  # 0-1
    write(log, pid=2, sequence=0)  # 2-3
    end(log, pid=2, control_type=COMMIT)  # 4
    log.roll()
    log.append_as_leader(batch(2), leader_epoch=0)  # 5-6
    log.roll()
    marker = end(log, pid=1, control_type=ABORT)  # 7
    assert [len(s.txn_index) for s in log.segments] == [0, 0, 1]
    offsets, aborted = committed_read(log)
    assert offsets == [0, 2, 4]  # one segment per read
    assert aborted == [AbortedTxn(1, first, marker, marker + 1)]
    # It spans the middle segment too, so a read of that lists it as well.
    assert committed_read(log, 5) == ([5], [AbortedTxn(1, first, marker, marker + 1)])
    assert committed_read(log, 7) == ([7], [AbortedTxn(1, first, marker, marker + 1)])
    # Reading uncommitted lists nothing.
    assert log.read(0, 1 << 20).aborted_transactions is None


def test_a_follower_indexes_the_aborts_it_replicates(fileio: LossyFileIO, clock: FakeClock) -> None:
    leader = open_log(DIR, fileio, clock)
    write(leader, pid=1, sequence=0)
    leader.append_as_leader(batch(1), leader_epoch=0)
    end(leader, pid=1, control_type=ABORT)
    follower_dir = Path("/logs/follower/payments-0")
    follower = open_log(follower_dir, fileio, clock)
    follower.append_as_follower(leader.read(0, 1 << 20).records)
    assert aborted_in(follower) == aborted_in(leader) == [AbortedTxn(1, 0, 3, 4)]


# --- truncation, deletion, restarts, crashes ---------------------------------------------------


def test_truncating_below_a_marker_drops_its_entry_and_reopens_the_transaction(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    write(log, pid=1, sequence=0)  # 0-1
    log.append_as_leader(batch(1), leader_epoch=0)  # 2
    marker = end(log, pid=1, control_type=ABORT)  # 3
    assert len(aborted_in(log)) == 1
    log.truncate_to(marker)
    assert aborted_in(log) == []
    assert log.last_stable_offset(log.log_end_offset) == 0
    index_path = log.active_segment.txn_index.path
    assert fileio.read_file(index_path) == b""
    end(log, pid=1, control_type=ABORT)
    assert aborted_in(log) == [AbortedTxn(1, 0, 3, 4)]


def test_a_deleted_segment_takes_its_transaction_index_along(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    write(log, pid=1, sequence=0)
    end(log, pid=1, control_type=ABORT)
    path = log.active_segment.txn_index.path
    assert fileio.exists(path)
    log.roll()
    log.append_as_leader(batch(1), leader_epoch=0)
    log.delete_records_before(3)
    assert not fileio.exists(path)
    log.delete()
    assert not any(p.suffix == TXN_INDEX_SUFFIX for p in fileio.file_paths())


def test_a_clean_restart_keeps_the_index_and_the_open_transactions(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    write(log, pid=1, sequence=0)  # 0-1
    end(log, pid=1, control_type=ABORT)  # 2
    open_first = write(log, pid=2, sequence=0)  # 3-4
    end_offset = log.log_end_offset
    log.close()
    reopened = open_log(DIR, fileio, clock, recovery_point=end_offset, clean_shutdown=True)
    assert aborted_in(reopened) == [AbortedTxn(1, 0, 2, 3)]
    assert reopened.last_stable_offset(reopened.log_end_offset) == open_first
    end(reopened, pid=2, control_type=ABORT)
    assert reopened.last_stable_offset(reopened.log_end_offset) == reopened.log_end_offset


def test_after_a_crash_a_recovered_segment_re_derives_its_index(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    # The transaction of producer 1 begins in the first segment (below the recovery point,
    # trusted) and aborts in the second, whose index was never fsync'd: the rebuild needs the
    # producer state as of the second segment's start (from the snapshot written at the roll).
    config = LogConfig()
    log = open_log(DIR, fileio, clock, config)
    write(log, pid=1, sequence=0)  # 0-1
    write(log, pid=2, sequence=0)  # 2-3
    end(log, pid=2, control_type=ABORT)  # 4
    log.roll()
    log.flush()
    recovery_point = log.recovery_point
    log.append_as_leader(batch(1), leader_epoch=0)  # 5
    end(log, pid=1, control_type=ABORT)  # 6
    write(log, pid=3, sequence=0)  # 7-8, left open
    before = aborted_in(log)
    # Producer 1's transaction was open when producer 2's aborted: its last stable offset is 0.
    assert before == [AbortedTxn(2, 2, 4, 0), AbortedTxn(1, 0, 6, 7)]
    # The log's bytes reach the disk, the second segment's index does not.
    for segment in log.segments:
        fileio.fsync(segment._log)
    fileio.crash()
    assert not fileio.exists(log.segments[1].txn_index.path)
    reopened = open_log(DIR, fileio, clock, config, recovery_point=recovery_point)
    assert aborted_in(reopened) == before
    assert reopened.last_stable_offset(reopened.log_end_offset) == 7
    offsets, aborted = committed_read(reopened)
    assert aborted == before
    assert offsets == [0, 2, 4]


def test_a_crash_that_loses_a_marker_reopens_its_transaction(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    write(log, pid=1, sequence=0)
    log.flush()
    end(log, pid=1, control_type=ABORT)  # never fsync'd
    fileio.crash()
    reopened = open_log(DIR, fileio, clock, recovery_point=0)
    assert aborted_in(reopened) == []
    assert reopened.log_end_offset == 2
    assert reopened.last_stable_offset(2) == 0


def test_a_recovered_index_is_the_same_as_the_one_written_live(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    config = LogConfig(segment_bytes=400)
    log = open_log(DIR, fileio, clock, config)
    sequences = {1: 0, 2: 0, 3: 0}
    for step in range(30):
        pid = 1 + step % 3
        if step % 4 == 3:
            end(log, pid=pid, control_type=ABORT if step % 8 == 3 else COMMIT)
        else:
            write(log, pid=pid, sequence=sequences[pid], count=1)
            sequences[pid] += 1
    assert len(log.segments) > 3
    live = aborted_in(log)
    assert live
    log.flush()
    fileio.crash()
    # Forget every index: the whole log is recovered from offset 0.
    for path in fileio.file_paths():
        if path.suffix in (TXN_INDEX_SUFFIX, ".index", ".timeindex", ".snapshot"):
            fileio.delete(path)
    reopened = open_log(DIR, fileio, clock, config, recovery_point=0)
    assert aborted_in(reopened) == live


def test_a_marker_with_a_bumped_epoch_restarts_the_producers_sequences(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    write(log, pid=1, sequence=0, count=3)
    end(log, pid=1, control_type=COMMIT, epoch=1)  # KIP-890: every commit bumps the epoch
    assert log.last_stable_offset(log.log_end_offset) == log.log_end_offset
    entry = log.producer_state.producers[1]
    assert (entry.epoch, entry.last_seq) == (1, -1)
    idempotent = records.encode_batch(
        [(b"k", b"v", [])], producer_id=1, producer_epoch=1, base_sequence=0, timestamp_ms=1
    )
    assert log.append_as_leader(bytearray(idempotent), leader_epoch=0).first_offset == 4


def test_a_control_batch_that_holds_no_marker_is_refused_before_anything_is_appended(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    bogus = records.encode_batch(
        [(b"\x00\x00\x00\x07", b"", [])],
        producer_id=1,
        producer_epoch=0,
        base_offset=0,
        attributes=records.ATTR_TRANSACTIONAL | records.ATTR_CONTROL,
    )
    log = open_log(DIR, fileio, clock)
    with pytest.raises(CorruptRecordError):
        log.append_as_leader(bytearray(bogus), leader_epoch=0, origin=AppendOrigin.COORDINATOR)
    with pytest.raises(CorruptRecordError):
        log.append_as_follower(bogus)
    assert log.log_end_offset == 0 and log.size_bytes == 0
