"""Faults through the control endpoint of a subprocess broker, as a test in another language
would install them, observed by librdkafka."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient

from odradek.testing import ProcessBroker, read_records
from odradek.testing.admin import create_topic


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessBroker]:
    broker = ProcessBroker(Path(tmp_path_factory.mktemp("controlled")))
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture
def topic(broker: ProcessBroker) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    create_topic(AdminClient({"bootstrap.servers": broker.bootstrap_servers}), name)
    yield name
    broker.faults.clear()


def deliver(bootstrap: str, topic: str, value: bytes, **config: Any) -> list[Any]:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, **config})
    reports: list[Any] = []
    producer.produce(topic, value=value, on_delivery=lambda err, msg: reports.append(err))
    producer.flush(15)
    return reports


FAST_RETRY = {
    "request.timeout.ms": 400,
    "socket.timeout.ms": 400,
    "enable.idempotence": False,
    "acks": "all",
}


def http(broker: ProcessBroker, method: str, path: str, body: object = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(broker.control_url + path, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_status(broker: ProcessBroker, topic: str) -> None:
    status, body = http(broker, "GET", "/v1/status")
    assert status == 200
    assert body == {
        "node_id": 1,
        "bootstrap": broker.bootstrap_servers,
        "faults_active": False,
    }


def test_drop_response_over_http(broker: ProcessBroker, topic: str) -> None:
    assert deliver(broker.bootstrap_servers, topic, b"create") == [None]
    status, body = http(
        broker,
        "POST",
        "/v1/faults",
        {"action": "drop_response", "api": "produce", "topic": topic, "times": 1},
    )
    assert status == 201

    assert deliver(broker.bootstrap_servers, topic, b"twice", **FAST_RETRY) == [None]

    assert http(broker, "GET", f"/v1/faults/{body['id']}") == (200, {"id": body["id"], "hits": 1})
    values = [r.value for r in read_records(broker.bootstrap_servers, topic)]
    assert values == [b"create", b"twice", b"twice"]


def test_error_through_the_python_api(broker: ProcessBroker, topic: str) -> None:
    fault = broker.faults.error("TOPIC_AUTHORIZATION_FAILED", api="produce", topic=topic)
    [error] = deliver(broker.bootstrap_servers, topic, b"refused", **FAST_RETRY)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert fault.hits >= 1
    fault.remove()
    assert deliver(broker.bootstrap_servers, topic, b"accepted", **FAST_RETRY) == [None]


def test_disk_faults_over_http(tmp_path: Path) -> None:
    # A broker of its own: the failed write takes its log dir offline for good.
    broker = ProcessBroker(tmp_path / "data")
    broker.start()
    try:
        create_topic(AdminClient({"bootstrap.servers": broker.bootstrap_servers}), "full")
        assert http(broker, "POST", "/v1/disk", {"operation": "write", "errno": "ENOSPC"})[0] == 204
        [error] = deliver(broker.bootstrap_servers, "full", b"x", **{"message.timeout.ms": 1000})
        assert error is not None
        assert broker.disk.injected >= 1
        broker.disk.clear()
        assert broker.disk.injected >= 1
    finally:
        broker.close()


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/v1/faults", {"action": "explode"}, 400),
        ("POST", "/v1/faults", {"action": "delay"}, 400),  # no delay_ms
        ("POST", "/v1/faults", {"action": "drop_request", "api": "nope"}, 400),
        ("POST", "/v1/faults", {"action": "drop_request", "colour": "red"}, 400),
        ("POST", "/v1/disk", {"operation": "format"}, 400),
        ("GET", "/v1/nothing", None, 404),
        ("GET", "/elsewhere", None, 404),
    ],
)
def test_bad_requests_are_refused(
    broker: ProcessBroker, topic: str, method: str, path: str, body: object, status: int
) -> None:
    got, answer = http(broker, method, path, body)
    assert got == status
    assert "error" in answer
    assert http(broker, "GET", "/v1/status")[1]["faults_active"] is False
