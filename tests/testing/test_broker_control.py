"""Stopping, killing, pausing brokers and failing their disks, as a client sees it."""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from odradek.testing import ProcessBroker, read_records


def deliver(producer: Any, topic: str, value: bytes, timeout_s: float = 15) -> list[Any]:
    reports: list[Any] = []
    producer.produce(topic, value=value, on_delivery=lambda err, msg: reports.append(err))
    producer.flush(timeout_s)
    return reports


@pytest.fixture
def broker(kafka_broker: Any) -> Any:
    if kafka_broker.mode != "inprocess":
        pytest.skip("needs the in-process broker")
    return kafka_broker


def test_restart_keeps_port_and_data(broker, kafka_topic, kafka_producer_factory) -> None:
    topic = kafka_topic()
    producer = kafka_producer_factory(acks="all")
    assert deliver(producer, topic, b"before") == [None]
    port = broker.port

    broker.kill()
    assert not broker.running
    broker.restart()

    assert broker.port == port
    assert deliver(producer, topic, b"after") == [None]  # the same client reconnects
    values = [r.value for r in read_records(broker.bootstrap_servers, topic)]
    assert values == [b"before", b"after"]


def test_pause_holds_every_answer_until_resume(broker, kafka_topic, kafka_producer_factory) -> None:
    topic = kafka_topic()
    producer = kafka_producer_factory(**{"linger.ms": 0})
    assert deliver(producer, topic, b"warm-up") == [None]

    broker.pause()
    reports: list[Any] = []
    producer.produce(topic, value=b"held", on_delivery=lambda err, msg: reports.append(err))
    producer.flush(0.5)
    assert reports == []
    broker.resume()

    producer.flush(10)
    assert reports == [None]


def test_failing_fsync_fails_acks_all_produce(broker, kafka_topic, kafka_producer_factory) -> None:
    topic = kafka_topic()
    producer = kafka_producer_factory(acks="all", **{"message.timeout.ms": 1000})
    assert deliver(producer, topic, b"durable") == [None]

    broker.disk.fail("fsync", errno.EIO)
    [error] = deliver(producer, topic, b"not durable")

    assert error is not None, "the produce succeeded although fsync failed"
    assert broker.disk.injected >= 1
    assert error.code() in (KafkaError.KAFKA_STORAGE_ERROR, KafkaError._MSG_TIMED_OUT)


def test_full_disk_fails_produce(broker, kafka_topic, kafka_producer_factory) -> None:
    topic = kafka_topic()
    producer = kafka_producer_factory(**{"message.timeout.ms": 1000})
    broker.disk.fail("write", errno.ENOSPC)

    [error] = deliver(producer, topic, b"no room")

    assert error is not None
    assert broker.disk.injected >= 1


def test_a_broker_whose_disk_fails_still_stops(broker, kafka_topic, kafka_producer_factory) -> None:
    topic = kafka_topic()
    assert deliver(kafka_producer_factory(), topic, b"v") == [None]
    for operation in ("write", "fsync", "replace_file"):
        broker.disk.fail(operation, errno.EIO)
    broker.stop()  # every close fails; the shutdown must still finish
    assert not broker.running
    broker.disk.clear()
    broker.start()
    assert [r.value for r in read_records(broker.bootstrap_servers, topic)] == [b"v"]


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_process_broker_sigkill_pause_resume(tmp_path: Path, start_method: str) -> None:
    from confluent_kafka import Producer

    broker = ProcessBroker(
        tmp_path / "data", {"auto.create.topics.enable": "true"}, start_method=start_method
    )
    broker.start()
    try:
        producer = Producer(
            {"bootstrap.servers": broker.bootstrap_servers, "acks": "all", "linger.ms": 0}
        )
        assert deliver(producer, "t", b"synced") == [None]
        broker.kill()
        assert not broker.running
        broker.start()
        assert deliver(producer, "t", b"after restart") == [None]

        broker.pause()
        reports: list[Any] = []
        producer.produce("t", value=b"held", on_delivery=lambda err, msg: reports.append(err))
        started = time.monotonic()
        producer.flush(0.5)
        assert reports == [] and time.monotonic() - started >= 0.5
        broker.resume()
        producer.flush(10)
        assert reports == [None]

        values = [r.value for r in read_records(broker.bootstrap_servers, "t")]
        assert values == [b"synced", b"after restart", b"held"]
        del producer
    finally:
        broker.close()
    assert broker.proc is not None and broker.proc.poll() is not None


def test_a_broker_that_cannot_start_leaves_no_thread(tmp_path: Path) -> None:
    import threading

    from odradek.common.errors import StorageError
    from odradek.testing import InProcessBroker

    InProcessBroker(tmp_path).start().close()
    threads = threading.active_count()

    with pytest.raises(StorageError, match="belongs to node 1"):
        InProcessBroker(tmp_path, {"node.id": 2}).start()

    assert threading.active_count() == threads


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_process_broker_that_cannot_start_says_why(tmp_path: Path, start_method: str) -> None:
    from odradek.testing.broker import BrokerError

    broker = ProcessBroker(tmp_path, {"no.such.property": 1}, start_method=start_method)
    with pytest.raises(BrokerError, match=r"no\.such\.property"):
        broker.start()
    assert broker.proc is not None and broker.proc.poll() not in (None, 0)


def test_forked_brokers_are_processes_of_their_own(tmp_path: Path) -> None:
    import os

    first = ProcessBroker(tmp_path / "a", start_method="fork").start()
    second = ProcessBroker(tmp_path / "b", start_method="fork").start()
    try:
        assert first.proc is not None and second.proc is not None
        assert len({first.proc.pid, second.proc.pid, os.getpid()}) == 3
        first.kill()
        assert first.proc.poll() == -9
        assert second.running
        assert second.faults.drop_request(api="produce", times=1).hits == 0  # still answers
    finally:
        first.close()
        second.close()
    assert second.proc.poll() == 0  # SIGTERM: a graceful exit
