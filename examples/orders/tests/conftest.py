"""Fixtures of the example's tests: the plugin's broker, the two services wired to it."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from order_checks import PARTITIONS
from orders.notification_service import DLQ_TOPIC, NotificationService
from orders.order_service import TOPIC, OrderService

from odradek.testing.admin import create_topic


@pytest.fixture
def topics(kafka_admin: Any) -> None:
    create_topic(kafka_admin, TOPIC, PARTITIONS, {"max.message.bytes": "65536"})
    create_topic(kafka_admin, DLQ_TOPIC, 1)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(tmp_path / "app.db")
    yield connection
    connection.close()


@pytest.fixture
def orders(db: sqlite3.Connection, topics: None, kafka_producer_factory: Any) -> OrderService:
    producer = kafka_producer_factory(
        {"partitioner": "murmur2_random", "linger.ms": 0, "acks": "all", "retries": 0}
    )
    return OrderService(db, producer, timeout_s=5)


@pytest.fixture
def sent() -> list[dict[str, Any]]:
    """What the notification sender delivered."""
    return []


@pytest.fixture
def notification_service(
    tmp_path: Path,
    topics: None,
    kafka_consumer_factory: Any,
    kafka_producer_factory: Any,
    sent: list[dict[str, Any]],
) -> Callable[..., NotificationService]:
    """`notification_service(name="a", send=...)`: a member of the `notifications` group."""

    def make(name: str = "a", send: Callable[[dict[str, Any]], None] | None = None) -> Any:
        consumer = kafka_consumer_factory(
            group="notifications",
            **{
                "client.id": f"notifications-{name}",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 200,
            },
        )
        service = NotificationService(
            sqlite3.connect(tmp_path / "notifications.db"),
            consumer,
            kafka_producer_factory({"linger.ms": 0}),
            send or sent.append,
        )
        service.start()
        return service

    return make
