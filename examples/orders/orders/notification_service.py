"""The notification service: consumes `orders.created` in a group and notifies the customer.

For each message, in this order: skip it if its `message-id` was processed before (the dedup
table lives in the same SQLite database as the notifications, written in one transaction);
otherwise send the notification, retrying a failed send up to `max_attempts` times; a message
that cannot be parsed, or whose sends all fail, is parked in `orders.created.dlq` with the
reason in a header. Only then is the message's offset committed, so a crash before the commit
means the message is read again and the dedup table drops it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

TOPIC = "orders.created"
DLQ_TOPIC = "orders.created.dlq"
REQUIRED = ("order_id", "customer", "amount_cents")


class SendError(Exception):
    """The notification could not be sent (a transient failure: retried)."""


class NotificationService:
    def __init__(
        self,
        db: sqlite3.Connection,
        consumer: Any,
        producer: Any,
        send: Callable[[dict[str, Any]], None],
        *,
        max_attempts: int = 3,
        retry_backoff_s: float = 0.01,
    ) -> None:
        self.db = db
        self.consumer = consumer
        self.producer = producer
        self.send = send
        self.max_attempts = max_attempts
        self.retry_backoff_s = retry_backoff_s
        db.execute("CREATE TABLE IF NOT EXISTS processed (message_id TEXT PRIMARY KEY)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS notifications (order_id TEXT, customer TEXT, text TEXT)"
        )

    def start(self) -> None:
        self.consumer.subscribe([TOPIC])

    def poll(self, timeout_s: float = 0.2) -> bool:
        """Handle at most one message; True if one was handled."""
        message = self.consumer.poll(timeout_s)
        if message is None or message.error() is not None:
            return False
        self.handle(message)
        self.consumer.commit(message=message, asynchronous=False)
        return True

    def handle(self, message: Any) -> None:
        headers = dict(message.headers() or [])
        message_id = (headers.get("message-id") or b"").decode() or (
            f"{message.topic()}-{message.partition()}-{message.offset()}"
        )
        if self._seen(message_id):
            return
        try:
            event = json.loads(message.value())
            missing = [f for f in REQUIRED if f not in event]
            if missing:
                raise ValueError(f"missing fields {missing}")
        except ValueError as exc:
            self._park(message, f"unreadable: {exc}")
            self._record(message_id, None)
            return
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.send(event)
                break
            except SendError as exc:
                if attempt == self.max_attempts:
                    self._park(message, f"send failed {attempt} times: {exc}")
                    self._record(message_id, None)
                    return
                time.sleep(self.retry_backoff_s * attempt)
        self._record(message_id, event)

    def notifications(self) -> list[tuple[str, str, str]]:
        return self.db.execute("SELECT order_id, customer, text FROM notifications").fetchall()

    def _seen(self, message_id: str) -> bool:
        query = "SELECT 1 FROM processed WHERE message_id = ?"
        return self.db.execute(query, (message_id,)).fetchone() is not None

    def _record(self, message_id: str, event: dict[str, Any] | None) -> None:
        with self.db:
            self.db.execute("INSERT INTO processed VALUES (?)", (message_id,))
            if event is not None:
                text = f"order {event['order_id']} received: {event['amount_cents'] / 100:.2f}"
                self.db.execute(
                    "INSERT INTO notifications VALUES (?, ?, ?)",
                    (event["order_id"], event["customer"], text),
                )

    def _park(self, message: Any, reason: str) -> None:
        outcome: list[Any] = []
        origin = f"{message.topic()}/{message.partition()}/{message.offset()}"
        self.producer.produce(
            DLQ_TOPIC,
            key=message.key(),
            value=message.value(),
            headers=[
                *(message.headers() or []),
                ("dlq-reason", reason.encode()),
                ("dlq-origin", origin.encode()),
            ],
            on_delivery=lambda err, msg: outcome.append(err),
        )
        self.producer.flush(10)
        if not outcome or outcome[0] is not None:
            raise RuntimeError(f"could not park a message in {DLQ_TOPIC}: {outcome}")
