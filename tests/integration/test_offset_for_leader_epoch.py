"""OffsetForLeaderEpoch over real sockets: raw requests get Kafka's answers and errors, and
librdkafka's KIP-320 validation of a committed position (which it does when that position
carries a leader epoch) lets a consumer resume where it committed, and detects a position whose
epoch the log does not hold (it then resets by auto.offset.reset)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka_helpers import create_topic, unique_topic
from test_groups_bad_input import Raw, entity

from odradek.common.errors import ErrorCode


def offsets_for(raw: Raw, topic: str, leader_epoch: int, current_epoch: int = -1) -> Any:
    request = entity(
        "offset_for_leader_epoch",
        4,
        "OffsetForLeaderEpochRequest",
        replica_id=-1,
        topics=(
            entity(
                "offset_for_leader_epoch",
                4,
                "OffsetForLeaderTopic",
                topic=topic,
                partitions=(
                    entity(
                        "offset_for_leader_epoch",
                        4,
                        "OffsetForLeaderPartition",
                        partition=0,
                        current_leader_epoch=current_epoch,
                        leader_epoch=leader_epoch,
                    ),
                ),
            ),
        ),
    )
    (result,) = raw.call(request).topics
    (partition,) = result.partitions
    return partition


def fill(bootstrap: str, topic: str, count: int, start: int = 0) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(start, start + count):
        producer.produce(topic, value=b"%d" % i, partition=0)
    producer.flush(30)


def offsets_after_seek(bootstrap: str, topic: str, position: TopicPartition) -> list[int]:
    """Offsets read after seeking to `position` (which carries a leader epoch, so librdkafka
    validates it with OffsetForLeaderEpoch first), auto.offset.reset=latest."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"seek-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "latest",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    read: list[int] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not read:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                read.append(int(message.offset()))
        assert read == [0]
        consumer.seek(position)
        read = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                read.append(int(message.offset()))
    finally:
        consumer.close()
    return read


def test_raw_answers_and_errors(broker) -> None:
    topic = unique_topic("ofle")
    create_topic(broker.bootstrap, topic)
    fill(broker.bootstrap, topic, 7)
    raw = Raw(broker.port)
    current = offsets_for(raw, topic, 0)
    assert (current.error_code, current.leader_epoch, current.end_offset) == (0, 0, 7)
    unknown = offsets_for(raw, topic, 9)
    assert (unknown.error_code, unknown.leader_epoch, unknown.end_offset) == (0, -1, -1)
    assert offsets_for(raw, topic, 0, current_epoch=3).error_code == ErrorCode.UNKNOWN_LEADER_EPOCH
    assert offsets_for(raw, topic, 0, current_epoch=0).error_code == ErrorCode.NONE
    assert offsets_for(raw, "no-such-topic", 0).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_librdkafka_validates_a_position_and_resumes_there(broker) -> None:
    topic = unique_topic("ofle-resume")
    create_topic(broker.bootstrap, topic)
    fill(broker.bootstrap, topic, 10)
    read = offsets_after_seek(broker.bootstrap, topic, TopicPartition(topic, 0, 5, leader_epoch=0))
    assert read == [5, 6, 7, 8, 9]


def test_a_position_from_an_epoch_the_log_does_not_hold_is_reset(broker) -> None:
    # Negative control of the test above: librdkafka asks where epoch 7 ends, learns the log
    # holds no such epoch, takes the position as truncated and resets it to the latest offset:
    # the records from 5 on are not read.
    topic = unique_topic("ofle-reset")
    create_topic(broker.bootstrap, topic)
    fill(broker.bootstrap, topic, 10)
    read = offsets_after_seek(broker.bootstrap, topic, TopicPartition(topic, 0, 5, leader_epoch=7))
    assert read == []
