"""Idempotent producers in the log: duplicates are answered with the original offsets and not
appended, sequence gaps and old epochs append nothing, and the producer state survives clean
closes (snapshots), crashes (replay after the latest snapshot), rolls, truncation and expiry.
The rules are Kafka's ProducerAppendInfo and ProducerStateEntry."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storage_helpers import batch, open_log, read_all

from odradek.common.clock import FakeClock
from odradek.common.errors import ErrorCode, InvalidRecordError, KafkaError
from odradek.protocol import records
from odradek.storage.fileio import LossyFileIO
from odradek.storage.log import Log, LogConfig
from odradek.storage.producer_state import (
    INT32_MAX,
    AppendOrigin,
    CorruptSnapshotError,
    ProducerEntry,
    ProducerStateManager,
    decrement_sequence,
    increment_sequence,
    snapshot_name,
)
from odradek.storage.txn_index import ControlRecordType, encode_end_transaction_marker

DIR = Path("/logs/payments-0")
PID = 4000


@pytest.fixture
def fileio() -> LossyFileIO:
    return LossyFileIO()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_ms=1_700_000_000_000)


def produced(
    sequence: int, count: int = 2, *, pid: int = PID, epoch: int = 0, ts: int = 1_000, **kw: int
) -> bytearray:
    return bytearray(
        records.encode_batch(
            [(b"k", b"v", [])] * count,
            producer_id=pid,
            producer_epoch=epoch,
            base_sequence=sequence,
            timestamp_ms=ts,
            **kw,
        )
    )


def error_of(log: Log, data: bytearray) -> ErrorCode:
    with pytest.raises(KafkaError) as raised:
        log.append_as_leader(data, leader_epoch=0)
    return raised.value.code


# --- sequence arithmetic --------------------------------------------------------------------------


def test_sequences_wrap_after_int32_max() -> None:
    assert increment_sequence(INT32_MAX, 1) == 0
    assert increment_sequence(INT32_MAX - 1, 3) == 1
    assert decrement_sequence(1, 3) == INT32_MAX - 1
    assert decrement_sequence(10, 3) == 7


# --- appends from a producer ----------------------------------------------------------------------


def test_a_retried_batch_gets_its_original_offsets_and_is_not_appended_again(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    first = log.append_as_leader(produced(0), leader_epoch=0)
    log.append_as_leader(batch(3), leader_epoch=0)  # another (non-idempotent) producer
    second = log.append_as_leader(produced(2), leader_epoch=0)
    size = log.size_bytes
    for original, sequence in ((first, 0), (second, 2)):
        retry = log.append_as_leader(produced(sequence), leader_epoch=0)
        assert (retry.first_offset, retry.last_offset) == (
            original.first_offset,
            original.last_offset,
        )
    assert log.size_bytes == size and log.log_end_offset == 7


def test_only_the_last_five_batches_are_recognised(fileio: LossyFileIO, clock: FakeClock) -> None:
    log = open_log(DIR, fileio, clock)
    for sequence in range(0, 12, 2):  # six batches
        log.append_as_leader(produced(sequence), leader_epoch=0)
    assert log.append_as_leader(produced(2), leader_epoch=0).first_offset == 2
    # The first batch fell out of the five: its retry is a sequence error, not a duplicate.
    assert error_of(log, produced(0)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_a_gap_in_sequence_appends_nothing(fileio: LossyFileIO, clock: FakeClock) -> None:
    log = open_log(DIR, fileio, clock)
    log.append_as_leader(produced(0), leader_epoch=0)
    assert error_of(log, produced(5)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.log_end_offset == 2
    assert log.append_as_leader(produced(2), leader_epoch=0).first_offset == 2


def test_an_unknown_producer_may_start_at_any_sequence(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    assert log.append_as_leader(produced(42), leader_epoch=0).first_offset == 0
    assert error_of(log, produced(50)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.append_as_leader(produced(44), leader_epoch=0).first_offset == 2


def test_epochs_fence_older_producers_and_a_new_epoch_starts_at_zero(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    log.append_as_leader(produced(0, epoch=3), leader_epoch=0)
    assert error_of(log, produced(2, epoch=2)) == ErrorCode.INVALID_PRODUCER_EPOCH
    assert error_of(log, produced(2, epoch=4)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.append_as_leader(produced(0, epoch=4), leader_epoch=0).first_offset == 2
    assert error_of(log, produced(2, epoch=3)) == ErrorCode.INVALID_PRODUCER_EPOCH


def test_sequence_wraps_to_zero(fileio: LossyFileIO, clock: FakeClock) -> None:
    log = open_log(DIR, fileio, clock)
    log.append_as_leader(produced(INT32_MAX - 1, 2), leader_epoch=0)
    assert log.append_as_leader(produced(0, 1), leader_epoch=0).first_offset == 2


def test_several_batches_of_one_producer_in_one_append(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    log.append_as_leader(produced(0), leader_epoch=0)
    assert log.append_as_leader(produced(2) + produced(4), leader_epoch=0).last_offset == 5
    bad = produced(6) + produced(9)
    assert error_of(log, bad) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.log_end_offset == 6


def test_transactional_batches_need_a_transaction_the_coordinator_opened(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    transactional = produced(0, attributes=records.ATTR_TRANSACTIONAL)
    assert error_of(log, transactional) == ErrorCode.INVALID_TXN_STATE
    assert log.log_end_offset == 0


def marker(commit: bool, coordinator_epoch: int, *, epoch: int = 0) -> bytearray:
    control = ControlRecordType.COMMIT if commit else ControlRecordType.ABORT
    return encode_end_transaction_marker(
        control, coordinator_epoch, producer_id=PID, producer_epoch=epoch, timestamp_ms=1_000
    )


def test_a_marker_from_an_older_coordinator_epoch_is_fenced(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    transactional = produced(0, attributes=records.ATTR_TRANSACTIONAL)
    log.append_as_leader(transactional, leader_epoch=0, verified_producer=PID)
    log.append_as_leader(marker(True, 5), leader_epoch=0, origin=AppendOrigin.COORDINATOR)
    log.append_as_leader(
        produced(2, attributes=records.ATTR_TRANSACTIONAL), leader_epoch=0, verified_producer=PID
    )
    end = log.log_end_offset
    with pytest.raises(KafkaError) as raised:  # a coordinator that lost its partition
        log.append_as_leader(marker(False, 4), leader_epoch=0, origin=AppendOrigin.COORDINATOR)
    assert raised.value.code == ErrorCode.TRANSACTION_COORDINATOR_FENCED
    assert log.log_end_offset == end
    assert log.producer_state.has_open_transaction(PID)
    log.append_as_leader(marker(False, 5), leader_epoch=0, origin=AppendOrigin.COORDINATOR)
    assert not log.producer_state.has_open_transaction(PID)


def test_a_marker_drops_the_guard_of_a_verification_under_way() -> None:
    state = ProducerStateManager("payments-0")
    guard = state.start_verification(PID)
    assert state.start_verification(PID) is guard  # verifications at once share it
    assert state.verification_holds(PID, guard)
    header = records.read_header(memoryview(marker(False, 0)))
    state.apply(state.check([header], 0, AppendOrigin.COORDINATOR))
    assert not state.verification_holds(PID, guard)
    assert state.start_verification(PID) is not guard


def test_the_verified_batch_itself_drops_the_guard_and_a_failed_one_ends_it() -> None:
    state = ProducerStateManager("payments-0")
    guard = state.start_verification(PID)
    header = records.read_header(memoryview(produced(0, attributes=records.ATTR_TRANSACTIONAL)))
    state.apply(state.check([header], 0, verified_producer=PID))
    assert not state.verification_holds(PID, guard)
    assert state.has_open_transaction(PID)
    other = state.start_verification(PID + 1)
    state.end_verification(PID + 1, other)
    assert not state.verification_holds(PID + 1, other)


def test_clients_may_not_write_control_batches_or_producer_batches_without_sequence(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    control = bytearray(
        records.encode_batch(
            [(b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00", [])],
            producer_id=PID,
            producer_epoch=0,
            base_sequence=0,
            attributes=records.ATTR_CONTROL | records.ATTR_TRANSACTIONAL,
        )
    )
    with pytest.raises(InvalidRecordError):
        log.append_as_leader(control, leader_epoch=0)
    with pytest.raises(InvalidRecordError, match="Invalid sequence number -1"):
        log.append_as_leader(produced(-1), leader_epoch=0)
    assert log.log_end_offset == 0


# --- snapshots, recovery, truncation, expiry ------------------------------------------------------


def test_a_clean_close_writes_a_snapshot_and_a_retry_after_reopening_is_recognised(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    log.append_as_leader(produced(0), leader_epoch=0)
    log.close()
    assert fileio.exists(DIR / snapshot_name(2))
    reopened = open_log(DIR, fileio, clock, recovery_point=2, clean_shutdown=True)
    assert reopened.append_as_leader(produced(0), leader_epoch=0).first_offset == 0
    assert reopened.log_end_offset == 2
    assert reopened.append_as_leader(produced(2), leader_epoch=0).first_offset == 2


def test_after_a_crash_the_state_is_replayed_from_the_latest_snapshot(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    config = LogConfig(segment_bytes=300)
    log = open_log(DIR, fileio, clock, config)
    for sequence in range(0, 20, 2):
        log.append_as_leader(produced(sequence, ts=5_000 + sequence), leader_epoch=0)
    rolled = [s.base_offset for s in log.segments[1:]]
    assert rolled, "the test needs rolls, hence snapshots"
    assert all(fileio.exists(DIR / snapshot_name(offset)) for offset in rolled)
    log.flush()
    before = read_all(log)
    fileio.crash()  # no clean close: no snapshot at the end
    reopened = open_log(DIR, fileio, clock, config, recovery_point=20)
    assert read_all(reopened) == before
    entry = reopened.producer_state.producers[PID]
    assert (entry.last_seq, entry.last_offset, entry.last_timestamp) == (19, 19, 5_018)
    assert reopened.append_as_leader(produced(18), leader_epoch=0).first_offset == 18
    assert error_of(reopened, produced(30)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_a_corrupt_snapshot_is_skipped_for_an_older_one(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    config = LogConfig(segment_bytes=300)
    log = open_log(DIR, fileio, clock, config)
    for sequence in range(0, 20, 2):
        log.append_as_leader(produced(sequence), leader_epoch=0)
    log.close()
    fileio.replace_file(DIR / snapshot_name(20), b"\x00\x01garbage")
    reopened = open_log(DIR, fileio, clock, config, recovery_point=20, clean_shutdown=True)
    assert not fileio.exists(DIR / snapshot_name(20))
    assert reopened.producer_state.producers[PID].last_seq == 19


def test_truncation_rebuilds_the_state_below_the_new_end(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    for sequence in range(0, 8, 2):
        log.append_as_leader(produced(sequence), leader_epoch=0)
    log.truncate_to(4)
    assert log.producer_state.producers[PID].last_seq == 3
    assert log.append_as_leader(produced(4), leader_epoch=0).first_offset == 4


def test_follower_appends_update_the_state_without_checks(
    fileio: LossyFileIO, clock: FakeClock
) -> None:
    log = open_log(DIR, fileio, clock)
    log.append_as_follower(produced(7, base_offset=0))
    assert log.producer_state.producers[PID].last_seq == 8


def test_idle_producers_expire_unless_a_transaction_is_open() -> None:
    manager = ProducerStateManager()
    manager.load(
        [
            ProducerEntry(1, 0, last_timestamp=1_000),
            ProducerEntry(2, 0, last_timestamp=9_000),
            ProducerEntry(3, 0, last_timestamp=1_000, txn_first_offset=5),
        ]
    )
    assert manager.remove_expired(now_ms=10_000, expiration_ms=5_000) == [1]
    assert sorted(manager.producers) == [2, 3]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**62),
            st.integers(-1, 100),
            st.integers(-1, INT32_MAX),
            st.integers(-1, 10**6),
            st.integers(0, 1000),
            st.integers(-1, 10**12),
        ),
        max_size=20,
        unique_by=lambda t: t[0],
    )
)
def test_snapshots_round_trip(entries: list[tuple[int, int, int, int, int, int]]) -> None:
    manager = ProducerStateManager()
    for pid, epoch, last_seq, last_offset, delta, timestamp in entries:
        entry = ProducerEntry(pid, epoch, coordinator_epoch=3, txn_first_offset=-1)
        if last_offset >= 0:
            entry.add_batch(epoch, last_seq, last_offset, delta, timestamp)
        entry.last_timestamp = timestamp
        manager.producers[pid] = entry
    data = manager.encode_snapshot()
    loaded = ProducerStateManager.decode_snapshot(data)
    assert {e.producer_id: e for e in loaded} == manager.producers
    with pytest.raises(CorruptSnapshotError):
        ProducerStateManager.decode_snapshot(data[:-1] + bytes([data[-1] ^ 1]) if entries else b"x")
