"""The order service: saves an order in SQLite and publishes `orders.created`, keyed by order id.

Events are JSON with every field a consumer needs (`type` is `created` or `amended`), and a
`message-id` header that consumers use to drop duplicates. All events of an order share its
key, so they land in one partition and keep their order. The producer should use Kafka's
default partitioner (`partitioner=murmur2_random` in librdkafka), so services written with the
Java client put an order's events in the same partition.

Publishing waits for the broker's acknowledgement; if it fails, the order is kept with status
`publish_failed` and `PublishError` is raised, so the caller can retry (a production service
would use a transactional outbox instead).
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

TOPIC = "orders.created"


class PublishError(Exception):
    pass


@dataclass(frozen=True)
class Order:
    order_id: str
    customer: str
    amount_cents: int
    created_ms: int


class OrderService:
    def __init__(self, db: sqlite3.Connection, producer: Any, timeout_s: float = 10.0) -> None:
        self.db = db
        self.producer = producer
        self.timeout_s = timeout_s
        db.execute(
            "CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, customer TEXT,"
            " amount_cents INTEGER, created_ms INTEGER, status TEXT)"
        )

    def place(self, customer: str, amount_cents: int, order_id: str | None = None) -> Order:
        if amount_cents <= 0:
            raise ValueError("an order costs something")
        order = Order(order_id or uuid.uuid4().hex, customer, amount_cents, int(time.time() * 1000))
        with self.db:
            self.db.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, 'new')",
                (order.order_id, order.customer, order.amount_cents, order.created_ms),
            )
        self._publish(order, "created")
        return order

    def amend(self, order_id: str, amount_cents: int) -> Order:
        row = self.db.execute(
            "SELECT customer, created_ms FROM orders WHERE order_id = ?", (order_id,)
        ).fetchone()
        if row is None:
            raise KeyError(order_id)
        order = Order(order_id, row[0], amount_cents, row[1])
        with self.db:
            self.db.execute(
                "UPDATE orders SET amount_cents = ? WHERE order_id = ?", (amount_cents, order_id)
            )
        self._publish(order, "amended")
        return order

    def status(self, order_id: str) -> str | None:
        row = self.db.execute(
            "SELECT status FROM orders WHERE order_id = ?", (order_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def _publish(self, order: Order, event_type: str) -> None:
        outcome: list[Any] = []
        self.producer.produce(
            TOPIC,
            key=order.order_id.encode(),
            value=json.dumps({"type": event_type, **asdict(order)}).encode(),
            headers=[("message-id", uuid.uuid4().hex.encode())],
            on_delivery=lambda err, msg: outcome.append(err),
        )
        self.producer.flush(self.timeout_s)
        error = outcome[0] if outcome else "no acknowledgement"
        status = "published" if error is None else "publish_failed"
        with self.db:
            self.db.execute(
                "UPDATE orders SET status = ? WHERE order_id = ?", (status, order.order_id)
            )
        if error is not None:
            raise PublishError(f"order {order.order_id} not published: {error}")
