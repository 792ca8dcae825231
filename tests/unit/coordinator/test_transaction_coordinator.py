"""The transaction coordinator core, one rule per test, driven without I/O by `TxnDriver`.

The rules and error codes are those of Kafka's TransactionCoordinator and TransactionMetadata,
with KIP-890 part 2 (an epoch bump on every commit and abort for transaction version 2).
"""

from __future__ import annotations

from dataclasses import replace

from txn_driver import TIMEOUT_MS, TxnDriver, group_partition

from odradek.common.errors import ErrorCode
from odradek.coordinator.transaction.messages import (
    ListedTransaction,
    ProducerIdAndEpoch,
    TransactionConfig,
)
from odradek.coordinator.transaction.metadata import TransactionMetadata, TransactionState
from odradek.coordinator.transaction.records import (
    TransactionLogKey,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)

TX = "tx"
A0 = ("a", 0)
A1 = ("a", 1)
B0 = ("b", 0)
S = TransactionState


def open_transaction(
    driver: TxnDriver, *partitions: tuple[str, int], transaction_version: int | None = None
) -> ProducerIdAndEpoch:
    producer = driver.start(TX)
    added = driver.add(TX, producer, *partitions, transaction_version=transaction_version)
    assert added.value == ErrorCode.NONE
    return producer


# --- InitProducerId ---------------------------------------------------------------------------


def test_a_new_transactional_id_gets_a_new_producer_id_at_epoch_0() -> None:
    driver = TxnDriver()
    result = driver.init(TX).value
    assert result == ProducerIdAndEpoch(ErrorCode.NONE, 1000, 0)
    ((partition, key, value),) = driver.log
    assert partition == driver.core.partition_for(TX)
    assert decode_key(key) == TransactionLogKey(TX)
    decoded = decode_value(value)
    assert decoded is not None and decoded.transaction_status == S.EMPTY.id


def test_the_response_waits_until_the_record_is_durable() -> None:
    driver = TxnDriver()
    driver.hold_writes = True
    box = driver.init(TX)
    assert not box.done and TX not in driver.core.transactions
    driver.release_writes()
    assert box.value.error == ErrorCode.NONE
    assert driver.state(TX).producer_epoch == 0


def test_init_again_bumps_the_epoch_of_the_same_producer_id() -> None:
    driver = TxnDriver()
    first = driver.start(TX)
    second = driver.start(TX)
    assert (second.producer_id, second.producer_epoch) == (first.producer_id, 1)


def test_a_timeout_above_the_maximum_is_refused() -> None:
    driver = TxnDriver()
    assert driver.init(TX, timeout_ms=900_001).value.error == ErrorCode.INVALID_TRANSACTION_TIMEOUT
    assert driver.init(TX, timeout_ms=0).value.error == ErrorCode.INVALID_TRANSACTION_TIMEOUT
    assert driver.log == []


def test_a_failed_first_write_leaves_no_id_behind() -> None:
    driver = TxnDriver()
    driver.fail_with = ErrorCode.NOT_ENOUGH_REPLICAS
    assert driver.init(TX).value.error == ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert TX not in driver.core.transactions and driver.log == []


def test_values_are_written_at_v0_until_transaction_version_1() -> None:
    for level, version in ((0, 0), (1, 1), (2, 1)):
        driver = TxnDriver(TransactionConfig(state_partitions=4, transaction_version_level=level))
        driver.start(TX)
        value = driver.log[-1][2]
        assert value is not None and value[:2] == version.to_bytes(2, "big"), level


def test_an_empty_transactional_id_is_an_invalid_request() -> None:
    assert TxnDriver().init("").value.error == ErrorCode.INVALID_REQUEST


def test_zombie_is_fenced_by_the_next_instance() -> None:
    driver = TxnDriver()
    zombie = driver.start(TX)
    driver.start(TX)
    assert driver.add(TX, zombie, A0).value == ErrorCode.PRODUCER_FENCED
    assert driver.end(TX, zombie, commit=True).value.error == ErrorCode.PRODUCER_FENCED


def test_init_aborts_an_open_transaction_with_a_bumped_epoch_first() -> None:
    driver = TxnDriver(TransactionConfig(state_partitions=4, transaction_version_level=0))
    zombie = open_transaction(driver, A0, B0)
    assert driver.init(TX).value.error == ErrorCode.CONCURRENT_TRANSACTIONS
    assert {(m.topic, m.partition, m.producer_epoch, m.commit) for m in driver.markers} == {
        ("a", 0, 1, False),
        ("b", 0, 1, False),
    }
    assert driver.state(TX).state == S.COMPLETE_ABORT
    retried = driver.init(TX).value
    assert retried == ProducerIdAndEpoch(ErrorCode.NONE, zombie.producer_id, 2)


def test_init_while_a_commit_completes_is_concurrent_transactions() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    driver.hold_markers = True
    assert driver.end(TX, producer, commit=True).value.error == ErrorCode.NONE
    assert driver.init(TX).value.error == ErrorCode.CONCURRENT_TRANSACTIONS
    driver.release_markers()
    assert driver.init(TX).value.error == ErrorCode.NONE


def test_an_exhausted_epoch_moves_to_a_new_producer_id() -> None:
    driver = TxnDriver()
    driver.start(TX)
    set_epoch(driver, 32766)
    result = driver.init(TX).value
    assert (result.producer_id, result.producer_epoch) == (1001, 0)


def test_a_retried_init_with_the_epoch_before_the_bump_gets_the_same_epoch() -> None:
    driver = TxnDriver()
    first = driver.start(TX)
    expected = (first.producer_id, first.producer_epoch)
    bumped = driver.init(TX, expected=expected).value
    assert bumped.producer_epoch == 1
    assert driver.init(TX, expected=expected).value == bumped  # the response was lost


def test_init_with_an_unknown_expected_epoch_is_fenced() -> None:
    driver = TxnDriver()
    first = driver.start(TX)
    driver.start(TX)
    driver.start(TX)
    assert driver.init(TX, expected=(first.producer_id, 0)).value.error == ErrorCode.PRODUCER_FENCED


def test_init_with_an_expected_producer_id_of_another_producer_is_fenced() -> None:
    driver = TxnDriver()
    driver.start(TX)
    assert driver.init(TX, expected=(4242, 0)).value.error == ErrorCode.PRODUCER_FENCED


# --- AddPartitionsToTxn, AddOffsetsToTxn ------------------------------------------------------


def test_adding_partitions_starts_the_transaction() -> None:
    driver = TxnDriver()
    open_transaction(driver, A0, B0)
    state = driver.state(TX)
    assert state.state == S.ONGOING
    assert state.partitions == {A0, B0}
    assert state.start_timestamp_ms == driver.now


def test_adding_partitions_already_in_the_transaction_writes_nothing() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0, A1)
    records = len(driver.log)
    assert driver.add(TX, producer, A1).value == ErrorCode.NONE
    assert len(driver.log) == records


def test_adding_for_an_unknown_id_or_producer_is_invalid_producer_id_mapping() -> None:
    driver = TxnDriver()
    stranger = ProducerIdAndEpoch(ErrorCode.NONE, 1000, 0)
    assert driver.add(TX, stranger, A0).value == ErrorCode.INVALID_PRODUCER_ID_MAPPING
    producer = driver.start(TX)
    other = replace(producer, producer_id=producer.producer_id + 1)
    assert driver.add(TX, other, A0).value == ErrorCode.INVALID_PRODUCER_ID_MAPPING


def test_a_transition_in_flight_makes_others_concurrent_transactions() -> None:
    driver = TxnDriver()
    producer = driver.start(TX)
    driver.hold_writes = True
    first = driver.add(TX, producer, A0)
    assert driver.add(TX, producer, B0).value == ErrorCode.CONCURRENT_TRANSACTIONS
    assert driver.end(TX, producer, commit=True).value.error == ErrorCode.CONCURRENT_TRANSACTIONS
    assert driver.init(TX).value.error == ErrorCode.CONCURRENT_TRANSACTIONS
    driver.release_writes()
    assert first.value == ErrorCode.NONE


def test_adding_while_the_transaction_ends_is_concurrent_transactions() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    driver.hold_markers = True
    driver.end(TX, producer, commit=False)
    assert driver.add(TX, producer, B0).value == ErrorCode.CONCURRENT_TRANSACTIONS


def test_verify_answers_per_partition_without_writing() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    records = len(driver.log)
    answers: list[dict[tuple[str, int], ErrorCode]] = []
    driver.core.verify_partitions(
        TX, producer.producer_id, producer.producer_epoch, [A0, B0], driver.now, answers.append
    )
    assert answers == [{A0: ErrorCode.NONE, B0: ErrorCode.TRANSACTION_ABORTABLE}]
    assert len(driver.log) == records and driver.core.writes == []


def test_verify_with_an_old_epoch_is_fenced_for_every_partition() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    answers: list[dict[tuple[str, int], ErrorCode]] = []
    driver.core.verify_partitions(
        TX, producer.producer_id, producer.producer_epoch - 1, [A0, B0], driver.now, answers.append
    )
    assert answers == [{A0: ErrorCode.PRODUCER_FENCED, B0: ErrorCode.PRODUCER_FENCED}]


def test_verify_ignores_a_transition_in_flight() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    driver.hold_writes = True
    driver.add(TX, producer, B0)
    answers: list[dict[tuple[str, int], ErrorCode]] = []
    driver.core.verify_partitions(
        TX, producer.producer_id, producer.producer_epoch, [A0, B0], driver.now, answers.append
    )
    assert answers == [{A0: ErrorCode.NONE, B0: ErrorCode.TRANSACTION_ABORTABLE}]


def test_add_offsets_adds_the_groups_consumer_offsets_partition() -> None:
    driver = TxnDriver()
    producer = driver.start(TX)
    box: list[ErrorCode] = []
    driver.core.add_offsets(
        TX, producer.producer_id, producer.producer_epoch, "group", driver.now, box.append
    )
    driver.settle()
    assert box == [ErrorCode.NONE]
    assert driver.state(TX).partitions == {("__consumer_offsets", group_partition("group"))}


# --- EndTxn -----------------------------------------------------------------------------------


def test_commit_writes_markers_to_every_partition_then_completes() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0, B0)
    driver.hold_markers = True
    result = driver.end(TX, producer, commit=True).value
    assert result == ProducerIdAndEpoch(ErrorCode.NONE, producer.producer_id, 0)
    assert driver.state(TX).state == S.PREPARE_COMMIT
    (request,) = driver.held_markers
    assert [(m.topic, m.partition, m.commit) for m in request.markers] == [
        ("a", 0, True),
        ("b", 0, True),
    ]
    assert {m.coordinator_epoch for m in request.markers} == {driver.coordinator_epoch}
    driver.release_markers()
    assert driver.state(TX).state == S.COMPLETE_COMMIT
    assert driver.state(TX).partitions == frozenset()


def test_markers_are_requested_only_once_the_decision_is_durable() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    driver.hold_writes = True
    box = driver.end(TX, producer, commit=True)
    assert not box.done and driver.core.marker_requests == [] and driver.held_markers == []
    driver.release_writes()
    assert box.value.error == ErrorCode.NONE and driver.markers != []


def test_a_retried_commit_after_it_completed_succeeds() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    driver.end(TX, producer, commit=True)
    assert driver.end(TX, producer, commit=True).value.error == ErrorCode.NONE


def test_abort_after_a_completed_commit_is_invalid_txn_state() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    driver.end(TX, producer, commit=True)
    assert driver.end(TX, producer, commit=False).value.error == ErrorCode.INVALID_TXN_STATE


def test_a_retried_commit_while_its_markers_are_written_is_concurrent_transactions() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    driver.hold_markers = True
    driver.end(TX, producer, commit=True)
    assert driver.end(TX, producer, commit=True).value.error == ErrorCode.CONCURRENT_TRANSACTIONS
    assert driver.end(TX, producer, commit=False).value.error == ErrorCode.INVALID_TXN_STATE


def test_ending_a_transaction_that_never_started_is_invalid_txn_state() -> None:
    driver = TxnDriver()
    producer = driver.start(TX)
    assert driver.end(TX, producer, commit=True).value.error == ErrorCode.INVALID_TXN_STATE


def test_a_failed_prepare_write_leaves_the_transaction_open() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    driver.fail_with = ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert driver.end(TX, producer, commit=True).value.error == ErrorCode.NOT_COORDINATOR
    driver.fail_with = None
    assert driver.state(TX).state == S.ONGOING and driver.markers == []
    assert driver.end(TX, producer, commit=True).value.error == ErrorCode.NONE


def test_a_failed_complete_write_is_retried_after_the_backoff() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    driver.hold_markers = True
    driver.end(TX, producer, commit=True)
    driver.fail_with = ErrorCode.NOT_ENOUGH_REPLICAS
    driver.release_markers()
    assert driver.state(TX).state == S.PREPARE_COMMIT
    driver.fail_with = None
    driver.advance(driver.config.retry_backoff_ms)
    assert driver.state(TX).state == S.COMPLETE_COMMIT
    assert len(driver.markers) == 1  # the markers were not written again


def test_a_transaction_without_partitions_completes_without_markers() -> None:
    driver = TxnDriver()
    producer = driver.start(TX)
    # a transaction with only offsets added is one partition; none at all needs a replayed
    # Ongoing with no partitions, which Kafka can hold after a topic deletion
    ongoing = replace(driver.state(TX), state=S.ONGOING, start_timestamp_ms=driver.now)
    replay(driver, ongoing)
    assert driver.end(TX, producer, commit=False).value.error == ErrorCode.NONE
    assert driver.markers == [] and driver.state(TX).state == S.COMPLETE_ABORT


# --- KIP-890 part 2: an epoch bump on every commit and abort ----------------------------------


def test_transaction_version_2_bumps_the_epoch_at_every_end() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0, transaction_version=2)
    result = driver.end(TX, producer, commit=True, transaction_version=2).value
    assert result == ProducerIdAndEpoch(ErrorCode.NONE, producer.producer_id, 1)
    assert {m.producer_epoch for m in driver.markers} == {1}
    assert driver.state(TX).producer_epoch == 1


def test_transaction_version_2_retry_with_the_old_epoch_gets_the_new_one() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0, transaction_version=2)
    driver.end(TX, producer, commit=True, transaction_version=2)
    again = driver.end(TX, producer, commit=True, transaction_version=2).value
    assert again == ProducerIdAndEpoch(ErrorCode.NONE, producer.producer_id, 1)


def test_a_delayed_end_txn_cannot_end_the_next_transaction() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0, transaction_version=2)
    next_epoch = driver.end(TX, producer, commit=True, transaction_version=2).value
    assert driver.add(TX, next_epoch, B0, transaction_version=2).value == ErrorCode.NONE
    # the first EndTxn, delayed in the network, arrives again during the next transaction
    late = driver.end(TX, producer, commit=False, transaction_version=2).value
    assert late.error == ErrorCode.PRODUCER_FENCED
    assert driver.state(TX).state == S.ONGOING
    assert driver.state(TX).partitions == {B0}


def test_without_the_epoch_bump_a_delayed_end_txn_does_end_the_next_transaction() -> None:
    """Negative control of the test above: transaction version 0 has KAFKA-17754's hole."""
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    driver.end(TX, producer, commit=True)
    assert driver.add(TX, producer, B0).value == ErrorCode.NONE
    late = driver.end(TX, producer, commit=False).value
    assert late.error == ErrorCode.NONE
    assert driver.state(TX).state == S.COMPLETE_ABORT


def test_transaction_version_2_end_at_an_exhausted_epoch_moves_to_a_new_producer_id() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0, transaction_version=2)
    set_epoch(driver, 32766)
    producer = replace(producer, producer_epoch=32766)
    result = driver.end(TX, producer, commit=True, transaction_version=2).value
    assert result == ProducerIdAndEpoch(ErrorCode.NONE, 1001, 0)
    assert [(m.producer_id, m.producer_epoch) for m in driver.markers] == [(1000, 32767)]
    assert (driver.state(TX).producer_id, driver.state(TX).producer_epoch) == (1001, 0)
    # a retry with the old producer id and epoch is recognised
    retried = driver.end(TX, producer, commit=True, transaction_version=2).value
    assert retried == ProducerIdAndEpoch(ErrorCode.NONE, 1001, 0)


# --- timeouts ---------------------------------------------------------------------------------


def test_a_transaction_open_past_its_timeout_is_aborted_and_its_producer_fenced() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    driver.advance(TIMEOUT_MS + driver.config.abort_timed_out_interval_ms)
    assert driver.state(TX).state == S.COMPLETE_ABORT
    assert [(m.commit, m.producer_epoch) for m in driver.markers] == [(False, 2)]
    assert driver.end(TX, producer, commit=True).value.error == ErrorCode.PRODUCER_FENCED


def test_a_transaction_within_its_timeout_is_left_alone() -> None:
    driver = TxnDriver()
    open_transaction(driver, A0)
    driver.advance(TIMEOUT_MS)
    assert driver.state(TX).state == S.ONGOING


def test_next_deadline_is_the_next_timeout_check() -> None:
    driver = TxnDriver()
    assert driver.core.next_deadline() == driver.now + driver.config.abort_timed_out_interval_ms


# --- loading ----------------------------------------------------------------------------------


def test_reload_in_the_middle_of_a_commit_writes_the_markers_again_and_completes() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0, B0)
    driver.hold_markers = True
    driver.end(TX, producer, commit=True)
    driver.hold_markers = False
    driver.reload()  # the markers were never written
    assert {(m.topic, m.partition, m.commit) for m in driver.markers} == {
        ("a", 0, True),
        ("b", 0, True),
    }
    assert {m.coordinator_epoch for m in driver.markers} == {2}
    assert driver.state(TX).state == S.COMPLETE_COMMIT


def test_reload_rebuilds_the_same_state() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0, transaction_version=2)
    driver.end(TX, producer, commit=False, transaction_version=2)
    driver.start("other")
    before = dict(driver.core.transactions)
    driver.reload()
    after = driver.core.transactions
    assert after.keys() == before.keys()
    for transactional_id, metadata in before.items():
        # the last epoch is not in the log: a new coordinator does not know it, as in Kafka
        assert after[transactional_id] == replace(metadata, last_producer_epoch=-1)


def test_markers_of_an_unloaded_partition_complete_nothing() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    driver.hold_markers = True
    driver.end(TX, producer, commit=True)
    driver.core.unload(driver.core.partition_for(TX))
    records = len(driver.log)
    driver.release_markers()
    assert len(driver.log) == records


def test_a_complete_write_retry_does_not_outlive_a_reload() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    driver.hold_markers = True
    driver.end(TX, producer, commit=True)
    driver.fail_with = ErrorCode.NOT_ENOUGH_REPLICAS
    driver.release_markers()  # the Complete write fails: retried after the backoff
    driver.fail_with = None
    driver.hold_markers = True
    driver.reload_in_place()  # the new load sends the markers again and waits for them
    driver.advance(driver.config.retry_backoff_ms)
    assert driver.state(TX).state == S.PREPARE_COMMIT
    driver.release_markers()
    assert driver.state(TX).state == S.COMPLETE_COMMIT


def test_requests_during_load_get_coordinator_load_in_progress() -> None:
    driver = TxnDriver()
    driver.core.begin_loading(driver.core.partition_for(TX), 7)
    assert driver.init(TX).value.error == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    driver.core.finish_loading(driver.now)
    assert driver.init(TX).value.error == ErrorCode.NONE


def test_requests_for_a_partition_not_owned_get_not_coordinator() -> None:
    driver = TxnDriver()
    driver.core.unload(driver.core.partition_for(TX))
    assert driver.init(TX).value.error == ErrorCode.NOT_COORDINATOR


# --- expiry -----------------------------------------------------------------------------------


def test_an_idle_transactional_id_expires_with_a_tombstone() -> None:
    driver = TxnDriver()
    driver.start(TX)
    driver.advance(driver.config.transactional_id_expiration_ms + 3_600_000)
    assert TX not in driver.core.transactions
    assert driver.log[-1][1:] == (encode_key(TransactionLogKey(TX)), None)
    assert driver.core.describe(TX).error == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND


def test_ids_of_one_partition_expire_in_one_write() -> None:
    driver = TxnDriver(TransactionConfig(state_partitions=1))
    for transactional_id in ("x", "y", "z"):
        driver.start(transactional_id)
    driver.core.remove_expired_transactional_ids(
        driver.now + driver.config.transactional_id_expiration_ms
    )
    (write,) = driver.core.writes
    assert [value for _, value in write.records] == [None, None, None]
    driver.settle()
    assert driver.core.transactions == {}


def test_an_open_transaction_does_not_expire() -> None:
    config = TransactionConfig(state_partitions=4, max_timeout_ms=2**31 - 1)
    driver = TxnDriver(config)
    producer = driver.start(TX)
    assert driver.add(TX, producer, A0).value == ErrorCode.NONE
    driver.core.remove_expired_transactional_ids(driver.now + config.transactional_id_expiration_ms)
    driver.settle()
    assert driver.state(TX).state == S.ONGOING


# --- DescribeTransactions, ListTransactions ---------------------------------------------------


def test_describe_shows_the_open_transaction() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A1, A0, B0)
    described = driver.core.describe(TX)
    assert described.error == ErrorCode.NONE
    assert (described.state, described.producer_id, described.producer_epoch) == (
        "Ongoing",
        producer.producer_id,
        producer.producer_epoch,
    )
    assert described.topics == (("a", (0, 1)), ("b", (0,)))
    assert described.timeout_ms == TIMEOUT_MS


def test_list_filters_by_state_producer_id_and_duration() -> None:
    driver = TxnDriver()
    producer = open_transaction(driver, A0)
    other = driver.start("other")
    core = driver.core
    everything = core.list_transactions(driver.now).transactions
    assert {t.transactional_id for t in everything} == {TX, "other"}
    ongoing = core.list_transactions(driver.now, states=["Ongoing", "Nope"])
    assert ongoing.transactions == (ListedTransaction(TX, producer.producer_id, "Ongoing"),)
    assert ongoing.unknown_state_filters == ("Nope",)
    by_id = core.list_transactions(driver.now, producer_ids=[other.producer_id]).transactions
    assert [t.transactional_id for t in by_id] == ["other"]
    # the duration counts from the start of the transaction; an id with none open (start -1)
    # passes the filter, as in Kafka
    recent = core.list_transactions(driver.now + 10, min_duration_ms=10).transactions
    assert [t.transactional_id for t in recent] == ["other"]
    long_running = core.list_transactions(driver.now + 11, min_duration_ms=10).transactions
    assert [t.transactional_id for t in long_running] == ["other", TX]


# --- helpers ----------------------------------------------------------------------------------


def replay(driver: TxnDriver, metadata: TransactionMetadata) -> None:
    """Make `metadata` the durable state, as if a record had been written and loaded."""
    key = encode_key(TransactionLogKey(metadata.transactional_id))
    value = encode_value(metadata.to_value())
    driver.log.append((driver.core.partition_for(metadata.transactional_id), key, value))
    driver.core.replay(key, value)


def set_epoch(driver: TxnDriver, epoch: int) -> None:
    replay(driver, replace(driver.state(TX), producer_epoch=epoch))
