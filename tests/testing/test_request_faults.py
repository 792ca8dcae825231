"""Request faults, each observed by confluent-kafka (librdkafka) over a real socket."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from odradek.testing import read_records, wait_until


@pytest.fixture
def broker(kafka_broker: Any) -> Any:
    if kafka_broker.mode != "inprocess":
        pytest.skip("request faults need the in-process broker")
    return kafka_broker


def produce_one(producer: Any, topic: str, value: bytes, timeout_s: float = 15) -> list[Any]:
    """Produce one record and wait for its delivery report; returns [error or None]."""
    reports: list[Any] = []
    producer.produce(topic, value=value, on_delivery=lambda err, msg: reports.append(err))
    producer.flush(timeout_s)
    assert reports, "no delivery report"
    return reports


# Short request timeouts so a lost request or response is noticed in a fraction of a second.
FAST_RETRY = {
    "request.timeout.ms": 400,
    "socket.timeout.ms": 400,
    "retry.backoff.ms": 20,
    "enable.idempotence": False,
    "acks": "all",
    "linger.ms": 0,
}


def test_drop_response_produce_is_applied_and_the_retry_appends_again(
    broker, kafka_topic, kafka_producer_factory, bootstrap_servers
) -> None:
    topic = kafka_topic()
    fault = broker.faults.drop_response(api="produce", topic=topic, times=1)
    producer = kafka_producer_factory(FAST_RETRY)

    assert produce_one(producer, topic, b"once") == [None]

    assert fault.hits == 1
    # The first attempt was written although its answer never came; the retry wrote it again:
    # two copies are what a client without idempotence gets from Kafka.
    assert [r.value for r in read_records(bootstrap_servers, topic)] == [b"once", b"once"]


def test_drop_response_produce_retried_by_an_idempotent_producer_is_written_once(
    broker, kafka_topic, kafka_producer_factory, bootstrap_servers
) -> None:
    topic = kafka_topic()
    fault = broker.faults.drop_response(api="produce", topic=topic, times=3)
    producer = kafka_producer_factory({**FAST_RETRY, "enable.idempotence": True})

    assert produce_one(producer, topic, b"once") == [None]

    assert fault.hits == 3
    assert [r.value for r in read_records(bootstrap_servers, topic)] == [b"once"]


def test_drop_request_produce_is_not_applied_and_the_retry_is(
    broker, kafka_topic, kafka_producer_factory, bootstrap_servers
) -> None:
    topic = kafka_topic()
    fault = broker.faults.drop_request(api="produce", topic=topic, times=1)
    producer = kafka_producer_factory(FAST_RETRY)

    assert produce_one(producer, topic, b"once") == [None]

    assert fault.hits == 1
    assert [r.value for r in read_records(bootstrap_servers, topic)] == [b"once"]


def test_delay_holds_the_request_for_its_window_only(
    broker, kafka_topic, kafka_producer_factory
) -> None:
    topic = kafka_topic()
    producer = kafka_producer_factory(FAST_RETRY, **{"request.timeout.ms": 5000})
    produce_one(producer, topic, b"warm-up")  # connection and metadata ready
    fault = broker.faults.delay(300, api="produce", duration_s=1.0)

    started = time.monotonic()
    assert produce_one(producer, topic, b"slow") == [None]
    assert time.monotonic() - started >= 0.3
    assert fault.hits == 1

    time.sleep(1.0)  # the window is over
    started = time.monotonic()
    assert produce_one(producer, topic, b"fast") == [None]
    assert time.monotonic() - started < 0.3
    assert fault.hits == 1


def test_retriable_error_makes_the_client_retry(
    broker, kafka_topic, kafka_producer_factory, bootstrap_servers
) -> None:
    topic = kafka_topic()
    fault = broker.faults.error("NOT_LEADER_OR_FOLLOWER", api="produce", topic=topic, times=2)
    producer = kafka_producer_factory(FAST_RETRY)

    assert produce_one(producer, topic, b"eventually") == [None]

    assert fault.hits == 2
    assert [r.value for r in read_records(bootstrap_servers, topic)] == [b"eventually"]


def test_permanent_error_reaches_the_delivery_report(
    broker, kafka_topic, kafka_producer_factory, bootstrap_servers
) -> None:
    topic, other = kafka_topic(), kafka_topic()
    broker.faults.error("TOPIC_AUTHORIZATION_FAILED", api="produce", topic=topic)
    producer = kafka_producer_factory(FAST_RETRY)

    [error] = produce_one(producer, topic, b"refused")
    assert error is not None
    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce_one(producer, other, b"fine") == [None]  # the rule names one topic only
    assert read_records(bootstrap_servers, topic) == []


def test_error_on_offset_commit_reaches_the_consumer(
    broker, kafka_topic, kafka_producer_factory, kafka_consumer_factory
) -> None:
    topic = kafka_topic()
    produce_one(kafka_producer_factory(), topic, b"x")
    consumer = kafka_consumer_factory(group="payments", topics=[topic])
    message = wait_until(lambda: consumer.poll(0.2), timeout=15)
    assert message.error() is None
    broker.faults.error("GROUP_AUTHORIZATION_FAILED", api="offset_commit", group="payments")

    with pytest.raises(KafkaException) as raised:
        consumer.commit(message=message, asynchronous=False)
    assert raised.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED

    broker.faults.clear()
    [committed] = consumer.commit(message=message, asynchronous=False)
    assert committed.error is None
    assert consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 1


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_close_connection_makes_the_client_reconnect(
    broker, kafka_topic, kafka_producer_factory, bootstrap_servers
) -> None:
    topic = kafka_topic()
    lines = _Lines()
    log = logging.getLogger(f"librdkafka.{topic}")
    log.addHandler(lines)
    log.setLevel(logging.DEBUG)
    producer = kafka_producer_factory(FAST_RETRY, logger=log, debug="broker")
    produce_one(producer, topic, b"first")
    connections = len(broker.node.connections)
    fault = broker.faults.close_connection(api="produce", topic=topic, times=1)

    assert produce_one(producer, topic, b"second") == [None]

    assert fault.hits == 1
    assert any("Disconnected" in line or "connection closed" in line for line in lines.lines)
    # The client connected again (the broker holds as many connections as before).
    wait_until(lambda: len(broker.node.connections) >= connections, timeout=5)
    assert [r.value for r in read_records(bootstrap_servers, topic)] == [b"first", b"second"]


def test_rules_match_on_client_id(broker, kafka_topic, kafka_producer_factory) -> None:
    topic = kafka_topic()
    broker.faults.error("TOPIC_AUTHORIZATION_FAILED", api="produce", client_id="billing")
    billing = kafka_producer_factory(FAST_RETRY, **{"client.id": "billing"})
    shipping = kafka_producer_factory(FAST_RETRY, **{"client.id": "shipping"})

    [error] = produce_one(billing, topic, b"b")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert produce_one(shipping, topic, b"s") == [None]


def test_clear_returns_the_broker_to_the_no_fault_path(broker, kafka_topic) -> None:
    broker.faults.delay(1000, api="produce")
    assert broker.node.faults is not None
    broker.faults.clear()
    assert broker.node.faults is None


def test_fetch_rules_find_topics_named_by_id(
    broker, kafka_topic, kafka_producer_factory, kafka_consumer_factory
) -> None:
    # librdkafka fetches with v13+, which names topics by id only; the rule names the topic.
    topic = kafka_topic()
    assert produce_one(kafka_producer_factory(), topic, b"x") == [None]
    fault = broker.faults.error("NOT_LEADER_OR_FOLLOWER", api="fetch", topic=topic, times=2)
    consumer = kafka_consumer_factory(topics=[topic])

    message = wait_until(lambda: consumer.poll(0.2), timeout=15)

    assert message.error() is None and message.value() == b"x"
    assert fault.hits == 2


def test_group_rules_match_coordinator_lookups(
    broker, kafka_topic, kafka_producer_factory, kafka_consumer_factory
) -> None:
    topic = kafka_topic()
    assert produce_one(kafka_producer_factory(), topic, b"x") == [None]
    fault = broker.faults.error(
        "COORDINATOR_NOT_AVAILABLE", api="find_coordinator", group="payments", times=2
    )
    consumer = kafka_consumer_factory(group="payments", topics=[topic])

    message = wait_until(lambda: consumer.poll(0.2), timeout=15)

    assert message.error() is None and message.value() == b"x"
    assert fault.hits == 2
