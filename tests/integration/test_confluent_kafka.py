"""confluent-kafka (librdkafka) against Odradek: admin, produce in every codec, consume, offsets."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from confluent_kafka import (
    OFFSET_END,
    TIMESTAMP_CREATE_TIME,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)
from kafka_helpers import (
    CODEC_IDS,
    CODECS,
    TIMEOUT_S,
    admin,
    consume_all,
    consumer,
    create_topic,
    java_partition,
    keyed_records,
    murmur2,
    produce,
    segment_batches,
    unique_topic,
    wait_for_partitions,
    watermarks,
)

# -- the test helper itself: Kafka's published murmur2 values (UtilsTest / kafka-python) -------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_helper_matches_java(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


# -- admin --------------------------------------------------------------------------------------


def test_create_topic_and_list_metadata(broker, topic) -> None:
    client = admin(broker.bootstrap)
    futures = client.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    assert futures[topic].result(TIMEOUT_S) is None
    wait_for_partitions(broker.bootstrap, topic, 3)

    meta = client.list_topics(timeout=TIMEOUT_S)
    assert topic in meta.topics
    assert sorted(meta.topics[topic].partitions) == [0, 1, 2]
    assert list(meta.brokers) == [1]
    assert meta.brokers[1].host == "127.0.0.1"
    assert meta.brokers[1].port == broker.port
    for partition in meta.topics[topic].partitions.values():
        assert partition.leader == 1
        assert partition.replicas == [1]
        assert partition.isrs == [1]


def create_error(bootstrap: str, new_topic: NewTopic) -> int:
    client = admin(bootstrap)  # kept alive until its futures resolve
    futures = client.create_topics([new_topic], request_timeout=TIMEOUT_S)
    with pytest.raises(KafkaException) as excinfo:
        futures[new_topic.topic].result(TIMEOUT_S)
    code: int = excinfo.value.args[0].code()
    return code


def test_create_existing_topic_is_rejected(broker, topic) -> None:
    create_topic(broker.bootstrap, topic, partitions=2)
    code = create_error(broker.bootstrap, NewTopic(topic, num_partitions=5, replication_factor=1))
    assert code == KafkaError.TOPIC_ALREADY_EXISTS
    wait_for_partitions(broker.bootstrap, topic, 2)  # the first topic is untouched


@pytest.mark.parametrize("name", ["bad/name", "with space", "x" * 250, ".", ".."])
def test_create_topic_with_invalid_name(broker, name) -> None:
    code = create_error(broker.bootstrap, NewTopic(name, num_partitions=1, replication_factor=1))
    assert code == KafkaError.TOPIC_EXCEPTION  # INVALID_TOPIC_EXCEPTION, error 17


def test_create_topic_with_zero_partitions(broker, topic) -> None:
    code = create_error(broker.bootstrap, NewTopic(topic, num_partitions=0, replication_factor=1))
    assert code == KafkaError.INVALID_PARTITIONS
    assert topic not in admin(broker.bootstrap).list_topics(timeout=TIMEOUT_S).topics


def test_create_topic_with_more_replicas_than_brokers(broker, topic) -> None:
    code = create_error(broker.bootstrap, NewTopic(topic, num_partitions=1, replication_factor=3))
    assert code == KafkaError.INVALID_REPLICATION_FACTOR
    assert topic not in admin(broker.bootstrap).list_topics(timeout=TIMEOUT_S).topics


def test_create_topic_validate_only_creates_nothing(broker, topic) -> None:
    client = admin(broker.bootstrap)
    futures = client.create_topics(
        [NewTopic(topic, num_partitions=2, replication_factor=1)], validate_only=True
    )
    assert futures[topic].result(TIMEOUT_S) is None
    time.sleep(0.5)
    assert topic not in client.list_topics(timeout=TIMEOUT_S).topics


def test_delete_topic(broker, topic) -> None:
    create_topic(broker.bootstrap, topic, partitions=2)
    produce(broker.bootstrap, topic, [{"value": b"doomed"}]).ok()
    client = admin(broker.bootstrap)
    client.delete_topics([topic], operation_timeout=TIMEOUT_S)[topic].result(TIMEOUT_S)
    deadline = time.monotonic() + TIMEOUT_S
    while topic in client.list_topics(timeout=TIMEOUT_S).topics:
        assert time.monotonic() < deadline, f"{topic} still listed after DeleteTopics"
        time.sleep(0.1)
    # Deleting it again: the topic is unknown.
    futures = client.delete_topics([topic], operation_timeout=TIMEOUT_S)
    with pytest.raises(KafkaException) as excinfo:
        futures[topic].result(TIMEOUT_S)
    assert excinfo.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_create_partitions(broker, topic) -> None:
    create_topic(broker.bootstrap, topic, partitions=1)
    produce(broker.bootstrap, topic, [{"value": b"before", "partition": 0}]).ok()
    client = admin(broker.bootstrap)
    client.create_partitions([NewPartitions(topic, 4)])[topic].result(TIMEOUT_S)
    wait_for_partitions(broker.bootstrap, topic, 4)
    result = produce(broker.bootstrap, topic, [{"value": b"p3", "partition": 3}]).ok()
    assert (result[0].partition, result[0].offset) == (3, 0)
    assert watermarks(broker.bootstrap, topic, 0) == (0, 1)

    # Shrinking is not allowed.
    futures = client.create_partitions([NewPartitions(topic, 2)])
    with pytest.raises(KafkaException) as excinfo:
        futures[topic].result(TIMEOUT_S)
    assert excinfo.value.args[0].code() == KafkaError.INVALID_PARTITIONS


def test_describe_topic_configs(broker, topic) -> None:
    create_topic(broker.bootstrap, topic, partitions=1, **{"retention.ms": "3600000"})
    resource = ConfigResource(ResourceType.TOPIC, topic)
    client = admin(broker.bootstrap)
    configs = client.describe_configs([resource])[resource].result(TIMEOUT_S)
    assert configs["retention.ms"].value == "3600000"
    assert not configs["retention.ms"].is_default
    assert configs["cleanup.policy"].value == "delete"
    assert configs["segment.bytes"].value is not None
    assert configs["max.message.bytes"].value is not None


def test_describe_broker_configs(broker) -> None:
    resource = ConfigResource(ResourceType.BROKER, "1")
    client = admin(broker.bootstrap)
    configs = client.describe_configs([resource])[resource].result(TIMEOUT_S)
    assert configs["num.partitions"].value == "1"
    assert configs["auto.create.topics.enable"].value == "true"
    assert configs["log.segment.bytes"].value == str(1024 * 1024 * 1024)


def test_describe_cluster(broker) -> None:
    client = admin(broker.bootstrap)
    cluster = client.describe_cluster(request_timeout=TIMEOUT_S).result(TIMEOUT_S)
    assert [node.id for node in cluster.nodes] == [1]
    assert cluster.controller is not None
    assert cluster.cluster_id


# -- produce and consume -----------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_keyed_records_with_headers_round_trip(broker, codec) -> None:
    topic = unique_topic(f"round-trip-{codec}")
    partitions = 3
    create_topic(broker.bootstrap, topic, partitions=partitions)
    base_ts = int(time.time() * 1000) - 60_000
    records = keyed_records(60, base_ts, tag=codec)
    deliveries = produce(
        broker.bootstrap,
        topic,
        records,
        **{"compression.type": codec, "partitioner": "murmur2_random", "acks": "all"},
    ).ok()

    # Delivery reports carry the partition murmur2 gives and dense offsets per partition.
    next_offset = dict.fromkeys(range(partitions), 0)
    for delivery in deliveries:
        assert delivery.key is not None
        assert delivery.partition == java_partition(delivery.key, partitions)
        assert delivery.offset == next_offset[delivery.partition]
        next_offset[delivery.partition] += 1
    assert sum(next_offset.values()) == len(records)

    consumed = consume_all(broker.bootstrap, topic, partitions=range(partitions))
    assert len(consumed) == len(records)
    by_position = {(c.partition, c.offset): c for c in consumed}
    for record, delivery in zip(records, deliveries, strict=True):
        got = by_position[(delivery.partition, delivery.offset)]
        assert got.key == record["key"]
        assert got.value == record["value"]
        assert got.headers == record["headers"]
        assert got.timestamp == (TIMESTAMP_CREATE_TIME, record["timestamp"])
    for p in range(partitions):
        offsets = [c.offset for c in consumed if c.partition == p]
        assert offsets == list(range(next_offset[p])), f"partition {p} out of order"
        assert watermarks(broker.bootstrap, topic, p) == (0, next_offset[p])

    # Batches are stored as the client sent them: compressed with the codec it chose.
    stored = {
        b.codec_id for p in range(partitions) for b in segment_batches(broker.data_dir, topic, p)
    }
    assert stored == {CODEC_IDS[codec]}


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_produce_with_acks(broker, topic, acks) -> None:
    values = [f"acks={acks} #{i}".encode() for i in range(50)]
    result = produce(
        broker.bootstrap,
        topic,
        [{"value": v, "partition": 0} for v in values],
        acks=acks,
    ).ok()
    if acks != "0":  # with acks=0 the client learns no offsets
        assert [d.offset for d in result] == list(range(len(values)))
    consumed = consume_all(broker.bootstrap, topic, expected=len(values))
    assert [c.value for c in consumed] == values
    assert [c.offset for c in consumed] == list(range(len(values)))


def test_auto_created_topic_has_default_partitions(broker, topic) -> None:
    produce(broker.bootstrap, topic, [{"value": b"hello"}]).ok()
    meta = admin(broker.bootstrap).list_topics(topic=topic, timeout=TIMEOUT_S)
    assert len(meta.topics[topic].partitions) == 1


def test_offsets_for_times_and_watermarks(broker, topic) -> None:
    create_topic(broker.bootstrap, topic, partitions=1)
    base_ts = 1_700_000_000_000
    # Timestamps 1 s apart: offset i has CreateTime base_ts + 1000 * i.
    records = [
        {"value": f"t{i}".encode(), "timestamp": base_ts + 1000 * i, "partition": 0}
        for i in range(10)
    ]
    produce(broker.bootstrap, topic, records, **{"linger.ms": 0}).ok()
    assert watermarks(broker.bootstrap, topic, 0) == (0, 10)

    c = consumer(broker.bootstrap)
    try:

        def offset_for(ts: int) -> int:
            (found,) = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=TIMEOUT_S)
            assert found.error is None, found.error
            return int(found.offset)

        assert offset_for(base_ts - 5000) == 0
        assert offset_for(base_ts) == 0
        assert offset_for(base_ts + 2500) == 3  # first record at or after the time
        assert offset_for(base_ts + 3000) == 3
        assert offset_for(base_ts + 9000) == 9
        assert offset_for(base_ts + 9001) == OFFSET_END  # nothing that late: -1
    finally:
        c.close()


def test_admin_list_offsets_earliest_latest_max_timestamp(broker, topic) -> None:
    create_topic(broker.bootstrap, topic, partitions=1)
    # CreateTimes out of order: the newest record is at offset 2, not at the end.
    times = [1_700_000_005_000, 1_700_000_001_000, 1_700_000_009_000, 1_700_000_007_000]
    records = [{"value": b"x", "timestamp": ts, "partition": 0} for ts in times]
    produce(broker.bootstrap, topic, records, **{"linger.ms": 0}).ok()

    client = admin(broker.bootstrap)
    tp = TopicPartition(topic, 0)

    def list_offset(spec: OffsetSpec) -> tuple[int, int]:
        info = client.list_offsets({tp: spec}, request_timeout=TIMEOUT_S)[tp].result(TIMEOUT_S)
        return int(info.offset), int(info.timestamp)

    assert list_offset(OffsetSpec.earliest())[0] == 0
    assert list_offset(OffsetSpec.latest())[0] == len(times)
    assert list_offset(OffsetSpec.max_timestamp()) == (2, times[2])
    assert list_offset(OffsetSpec.for_timestamp(1_700_000_006_000))[0] == 2


# -- errors on produce --------------------------------------------------------------------------


def test_record_larger_than_message_max_bytes_is_rejected(broker_factory) -> None:
    small = broker_factory(overrides={"message.max.bytes": 10_000})
    topic = unique_topic("too-large")
    create_topic(small.bootstrap, topic)
    big = os.urandom(50_000)  # random: compression could not shrink it under the limit
    result = produce(
        small.bootstrap,
        topic,
        [{"value": big, "partition": 0}],
        **{"message.max.bytes": 1_000_000, "linger.ms": 0},
    )
    assert [e.code() for e in result.errors] == [KafkaError.MSG_SIZE_TOO_LARGE]
    # The broker keeps serving, and the rejected record is not in the log.
    produce(small.bootstrap, topic, [{"value": b"small", "partition": 0}]).ok()
    consumed = consume_all(small.bootstrap, topic)
    assert [c.value for c in consumed] == [b"small"]


def test_unknown_topic_with_auto_create_off(broker_factory) -> None:
    strict = broker_factory(overrides={"auto.create.topics.enable": "false"})
    topic = unique_topic("never-created")
    meta = admin(strict.bootstrap).list_topics(topic=topic, timeout=TIMEOUT_S)
    assert meta.topics[topic].error is not None
    assert meta.topics[topic].error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    result = produce(
        strict.bootstrap,
        topic,
        [{"value": b"nowhere"}],
        **{"message.timeout.ms": 10_000, "topic.metadata.propagation.max.ms": 1000},
    )
    # librdkafka reports the broker's UNKNOWN_TOPIC_OR_PARTITION either as is or as its local
    # _UNKNOWN_TOPIC once metadata has said the topic does not exist.
    assert [e.code() for e in result.errors] in (
        [KafkaError.UNKNOWN_TOPIC_OR_PART],
        [KafkaError._UNKNOWN_TOPIC],
    )
    assert topic not in admin(strict.bootstrap).list_topics(timeout=TIMEOUT_S).topics


def test_num_partitions_from_environment(broker_factory) -> None:
    configured = broker_factory(env={"ODRADEK_NUM_PARTITIONS": "3"})
    topic = unique_topic("env-partitions")
    produce(configured.bootstrap, topic, [{"key": b"k", "value": b"v"}]).ok()
    wait_for_partitions(configured.bootstrap, topic, 3)


def test_acks_all_below_min_insync_replicas_is_refused(broker, topic) -> None:
    """One broker can never hold an ISR of two: acks=all must fail with NOT_ENOUGH_REPLICAS
    (and write nothing) while acks=1 still succeeds."""
    create_topic(broker.bootstrap, topic, 1, **{"min.insync.replicas": "2"})
    outcomes: list[Any] = []
    strict = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "acks": "all",
            "retries": 0,
            "message.timeout.ms": 5000,
        }
    )
    strict.produce(topic, value=b"refused", on_delivery=lambda err, msg: outcomes.append(err))
    strict.flush(TIMEOUT_S)
    assert outcomes and outcomes[0] is not None
    assert outcomes[0].code() == KafkaError.NOT_ENOUGH_REPLICAS
    assert watermarks(broker.bootstrap, topic, 0) == (0, 0)
    relaxed = Producer({"bootstrap.servers": broker.bootstrap, "acks": "1"})
    relaxed.produce(topic, value=b"accepted")
    assert relaxed.flush(TIMEOUT_S) == 0
    assert watermarks(broker.bootstrap, topic, 0) == (0, 1)
