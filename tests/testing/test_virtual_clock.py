"""The broker's virtual clock: a jump fires group session timeouts and ends fetch long-polls
without sleeping."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
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


MEMBER = """
import sys
from confluent_kafka import Consumer

consumer = Consumer({
    "bootstrap.servers": sys.argv[1], "group.id": "workers", "client.id": "doomed",
    "session.timeout.ms": 6000, "heartbeat.interval.ms": 200,
})
consumer.subscribe(
    [sys.argv[2]], on_assign=lambda c, parts: print("assigned", len(parts), flush=True)
)
while True:
    consumer.poll(0.1)
"""


def test_a_killed_member_loses_its_partitions_to_another(
    kafka_clock, kafka_topic, kafka_consumer_factory, bootstrap_servers
) -> None:
    topic = kafka_topic(partitions=4)
    survivor = kafka_consumer_factory(
        group="workers",
        topics=[topic],
        **{"session.timeout.ms": 6000, "heartbeat.interval.ms": 200},
    )
    member = subprocess.Popen(
        [sys.executable, "-c", MEMBER, bootstrap_servers, topic],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assigned = []
        threading.Thread(target=lambda: assigned.extend(member.stdout or ()), daemon=True).start()

        def split() -> bool:
            survivor.poll(0.05)
            owned = len(survivor.assignment())
            return 0 < owned < 4 and any(line != "assigned 0\n" for line in assigned[-1:])

        wait_until(split, timeout=20)
        member.kill()  # SIGKILL: no LeaveGroup, the broker must notice by itself
        member.wait(10)

        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # inside the session: nobody takes over yet
            survivor.poll(0.05)
        assert len(survivor.assignment()) < 4

        kafka_clock.advance(7)
        wait_until(lambda: survivor.poll(0.05) is None and len(survivor.assignment()) == 4, 5)
    finally:
        if member.poll() is None:
            member.kill()
            member.wait(10)


def _fetch_v4(topic: str, max_wait_ms: int) -> bytes:
    """A raw Fetch v4 of partition 0 from offset 0 that waits for a megabyte to arrive."""
    name = topic.encode()
    body = struct.pack(">iiiib", -1, max_wait_ms, 1 << 20, 1 << 20, 0)
    body += struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
    body += struct.pack(">i", 1) + struct.pack(">iqi", 0, 0, 1 << 20)
    header = struct.pack(">hhih", 1, 4, 7, 3) + b"raw"
    return struct.pack(">i", len(header) + len(body)) + header + body


def test_a_jump_past_its_deadline_ends_a_fetch_long_poll(
    kafka_broker, kafka_clock, kafka_topic
) -> None:
    topic = kafka_topic()
    host, port = kafka_broker.bootstrap_servers.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(_fetch_v4(topic, max_wait_ms=600_000))  # ten minutes, nothing to read
        time.sleep(0.5)  # the fetch is parked
        kafka_clock.advance(601)
        size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
        response = sock.recv(size, socket.MSG_WAITALL)
    assert struct.unpack_from(">i", response)[0] == 7  # answered, not timed out by the socket
