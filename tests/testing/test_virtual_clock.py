"""The broker's virtual clock: a jump fires group session timeouts without sleeping."""

from __future__ import annotations

import time
from typing import Any

from odradek.testing import wait_until


def members(kafka_admin: Any, group: str) -> list[str]:
    description = kafka_admin.describe_consumer_groups([group])[group].result(10)
    return [m.client_id for m in description.members]


def test_advancing_the_clock_expires_a_silent_member(
    kafka_broker, kafka_clock, kafka_topic, kafka_consumer_factory, kafka_admin
) -> None:
    topic = kafka_topic()
    consumer = kafka_consumer_factory(
        group="billing",
        topics=[topic],
        **{"client.id": "member-a", "session.timeout.ms": 6000, "heartbeat.interval.ms": 200},
    )
    wait_until(lambda: consumer.poll(0.1) is None and consumer.assignment(), timeout=15)
    assert members(kafka_admin, "billing") == ["member-a"]
    # The member's process hangs: none of its requests reach the broker any more.
    kafka_broker.faults.drop_request(client_id="member-a")

    time.sleep(1.0)  # well inside the 6 s session: still a member (the negative control)
    assert members(kafka_admin, "billing") == ["member-a"]
    started = time.monotonic()
    kafka_clock.advance(6)

    assert members(kafka_admin, "billing") == []
    assert time.monotonic() - started < 2  # not the 5 s the session had left
    kafka_broker.faults.clear()
