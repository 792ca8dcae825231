"""Idempotent producers against the broker: InitProducerId hands out producer ids that are never
reused, retries of applied requests (forced by a proxy that loses responses) leave no
duplicates and keep the order, while the same retries without idempotence do duplicate (the
negative control), and the partitions still recognise a retried batch after a broker restart
or SIGKILL. Bad sequences and old epochs get Kafka's errors over raw sockets, and
DescribeProducers shows what a partition remembers of its producers.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError as ClientError
from confluent_kafka import Producer
from kafka_helpers import consume_all, create_topic, unique_topic, watermarks
from kafka_proxy import PRODUCE, LossyProxy
from test_groups_bad_input import Raw, entity

from odradek.common.errors import ErrorCode
from odradek.protocol.records import encode_batch

PID_BLOCK = 1000


def init_producer_id(raw: Raw, version: int = 4, transactional_id: str | None = None) -> Any:
    fields: dict[str, Any] = {"transactional_id": transactional_id, "transaction_timeout": 60_000}
    if version >= 3:
        fields.update(producer_id=-1, producer_epoch=-1)
    return raw.call(entity("init_producer_id", version, "InitProducerIdRequest", **fields))


def produce(raw: Raw, topic: str, batch: bytes, partition: int = 0) -> Any:
    request = entity(
        "produce",
        9,
        "ProduceRequest",
        transactional_id=None,
        acks=-1,
        timeout=10_000,
        topic_data=(
            entity(
                "produce",
                9,
                "TopicProduceData",
                name=topic,
                partition_data=(
                    entity("produce", 9, "PartitionProduceData", index=partition, records=batch),
                ),
            ),
        ),
    )
    (topic_response,) = raw.call(request).responses
    (partition_response,) = topic_response.partition_responses
    return partition_response


def idempotent_batch(producer_id: int, sequence: int, epoch: int = 0, count: int = 3) -> bytes:
    return encode_batch(
        [(b"k", b"v%d" % (sequence + i), []) for i in range(count)],
        producer_id=producer_id,
        producer_epoch=epoch,
        base_sequence=sequence,
        timestamp_ms=int(time.time() * 1000),
    )


# -- InitProducerId -------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 2, 3, 4, 5])
def test_every_producer_gets_a_new_id_at_epoch_zero(broker, version: int) -> None:
    raw = Raw(broker.port)
    answers = [init_producer_id(raw, version) for _ in range(3)]
    assert [(a.error_code, a.producer_epoch) for a in answers] == [(0, 0)] * 3
    ids = [a.producer_id for a in answers]
    assert len(set(ids)) == 3 and all(i >= 0 for i in ids)


def test_a_transactional_id_keeps_its_producer_id_and_each_init_bumps_the_epoch(broker) -> None:
    raw = Raw(broker.port)
    assert init_producer_id(raw, transactional_id="").error_code == ErrorCode.INVALID_REQUEST
    first = init_producer_id(raw, transactional_id="orders-tx")
    second = init_producer_id(raw, transactional_id="orders-tx")
    other = init_producer_id(raw, transactional_id="payments-tx")
    assert (first.error_code, first.producer_epoch) == (ErrorCode.NONE, 0)
    assert (second.producer_id, second.producer_epoch) == (first.producer_id, 1)
    assert other.producer_id not in (first.producer_id, -1)
    # KIP-360: the id and epoch a client had must come together
    half = raw.call(
        entity(
            "init_producer_id",
            4,
            "InitProducerIdRequest",
            transactional_id="orders-tx",
            transaction_timeout=60_000,
            producer_id=first.producer_id,
            producer_epoch=-1,
        )
    )
    assert half.error_code == ErrorCode.INVALID_REQUEST
    too_long = raw.call(
        entity(
            "init_producer_id",
            4,
            "InitProducerIdRequest",
            transactional_id="orders-tx",
            transaction_timeout=900_001,
            producer_id=-1,
            producer_epoch=-1,
        )
    )
    assert too_long.error_code == ErrorCode.INVALID_TRANSACTION_TIMEOUT


# -- sequence and epoch checks over raw sockets ---------------------------------------------------


def test_a_retried_batch_gets_its_original_offset_and_gaps_and_old_epochs_are_refused(
    broker,
) -> None:
    topic = unique_topic("idem-raw")
    create_topic(broker.bootstrap, topic, 1)
    raw = Raw(broker.port)
    pid = init_producer_id(raw).producer_id
    first = produce(raw, topic, idempotent_batch(pid, 0))
    second = produce(raw, topic, idempotent_batch(pid, 3))
    assert (first.error_code, first.base_offset, second.base_offset) == (0, 0, 3)
    retry = produce(raw, topic, idempotent_batch(pid, 0))
    assert (retry.error_code, retry.base_offset) == (0, 0)
    assert produce(raw, topic, idempotent_batch(pid, 9)).error_code == (
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    )
    assert produce(raw, topic, idempotent_batch(pid, 0, epoch=1)).base_offset == 6
    assert produce(raw, topic, idempotent_batch(pid, 3, epoch=0)).error_code == (
        ErrorCode.INVALID_PRODUCER_EPOCH
    )
    assert watermarks(broker.bootstrap, topic, 0) == (0, 9)


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_retry_is_still_recognised_after_a_broker_restart(broker_factory, how: str) -> None:
    b = broker_factory()
    topic = unique_topic(f"idem-restart-{how}")
    create_topic(b.bootstrap, topic, 1)
    raw = Raw(b.port)
    pid = init_producer_id(raw).producer_id
    for sequence in range(0, 15, 3):
        assert produce(raw, topic, idempotent_batch(pid, sequence)).error_code == 0
    if how == "kill":
        b.kill()
    else:
        b.stop()
    b.start()
    raw = Raw(b.port)
    retry = produce(raw, topic, idempotent_batch(pid, 12))
    assert (retry.error_code, retry.base_offset) == (0, 12)
    assert produce(raw, topic, idempotent_batch(pid, 20)).error_code == (
        ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    )
    assert produce(raw, topic, idempotent_batch(pid, 15)).base_offset == 15
    # Producer ids are never handed out twice: the restarted broker starts a new block.
    assert init_producer_id(raw).producer_id >= PID_BLOCK > pid


# -- forced retries with librdkafka ---------------------------------------------------------------


@pytest.fixture
def lossy() -> Iterator[LossyProxy]:
    proxy = LossyProxy(0, lambda api_key: False)
    yield proxy
    proxy.close()


def forced_retries(
    broker_factory, proxy: LossyProxy, idempotent: bool, drops: int, records: int
) -> tuple[list[bytes], int]:
    """Produce `records` through a proxy that loses the response of every other produce
    request until `drops` responses are lost; returns what partition 0 holds."""
    b = broker_factory(overrides={"advertised.listeners": f"PLAINTEXT://{proxy.bootstrap}"})
    proxy.broker_port = b.port
    topic = unique_topic("idem-retries")
    create_topic(b.bootstrap, topic, 1)
    produce_requests = [0]

    def drop(api_key: int) -> bool:
        if api_key != PRODUCE or proxy.dropped >= drops:
            return False
        produce_requests[0] += 1
        return produce_requests[0] % 2 == 1

    proxy.drop = drop
    producer = Producer(
        {
            "bootstrap.servers": proxy.bootstrap,
            "enable.idempotence": idempotent,
            "acks": "all",
            "linger.ms": 1,
            "batch.num.messages": 5,
            "max.in.flight.requests.per.connection": 5,
            "retries": 1_000_000,
            "retry.backoff.ms": 1,
            "reconnect.backoff.ms": 1,
            "reconnect.backoff.max.ms": 10,
            "message.timeout.ms": 300_000,
            "log_level": 0,
        }
    )
    failures: list[ClientError] = []
    for i in range(records):
        producer.produce(
            topic,
            value=b"%08d" % i,
            partition=0,
            on_delivery=lambda err, _: failures.append(err) if err else None,
        )
        if i % 100 == 0:
            producer.poll(0)
    assert producer.flush(300) == 0
    assert failures == []
    values = [r.value for r in consume_all(b.bootstrap, topic)]
    return values, proxy.dropped


@pytest.mark.parametrize(
    ("drops", "records"),
    [(400, 4_000), pytest.param(10_000, 60_000, marks=pytest.mark.slow)],
    ids=["400", "10000"],
)
def test_forced_retries_of_an_idempotent_producer_leave_no_duplicates(
    broker_factory, lossy: LossyProxy, drops: int, records: int
) -> None:
    values, dropped = forced_retries(broker_factory, lossy, True, drops, records)
    assert dropped >= drops
    assert values == [b"%08d" % i for i in range(records)]  # each once, in order


def test_the_same_retries_without_idempotence_duplicate(broker_factory, lossy: LossyProxy) -> None:
    """The negative control: were the proxy not forcing retries of applied requests, the test
    above could not fail."""
    records = 2000
    values, dropped = forced_retries(broker_factory, lossy, False, drops=50, records=records)
    assert dropped >= 50
    assert len(values) > records
    assert set(values) == {b"%08d" % i for i in range(records)}


# -- DescribeProducers -----------------------------------------------------------------------


def test_describe_producers_shows_what_each_partition_remembers(broker) -> None:
    topic = unique_topic("idem-describe")
    create_topic(broker.bootstrap, topic, 1)
    raw = Raw(broker.port)
    pid = init_producer_id(raw).producer_id
    batch = idempotent_batch(pid, 0, count=4)
    assert produce(raw, topic, batch).error_code == 0
    request = entity(
        "describe_producers",
        0,
        "DescribeProducersRequest",
        topics=(
            entity("describe_producers", 0, "TopicRequest", name=topic, partition_indexes=(0, 7)),
        ),
    )
    (described,) = raw.call(request).topics
    known, missing = described.partitions
    assert (known.error_code, missing.error_code) == (0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    (state,) = known.active_producers
    timestamp = struct.unpack_from(">q", batch, 27)[0]  # the batch's first timestamp
    assert (state.producer_id, state.producer_epoch, state.last_sequence) == (pid, 0, 3)
    assert (state.last_timestamp, state.current_txn_start_offset) == (timestamp, -1)
