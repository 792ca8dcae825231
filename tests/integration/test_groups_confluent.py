"""Consumer groups with confluent-kafka (librdkafka), the classic protocol: members share a
topic's partitions without overlap under each assignor, rebalance when members join and leave,
resume from committed offsets, keep their partitions across a static member's restart, and lose
them after a killed member's session times out.

Members that must be restarted or killed run in subprocesses: this file run as a script
(`python test_groups_confluent.py BOOTSTRAP TOPIC GROUP CONFIG_JSON`) is one group member that
prints one JSON line per event (assign, revoke, record) until SIGTERM closes it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Message, TopicPartition
from confluent_kafka.admin import ConsumerGroupDescription
from kafka_helpers import EventProcess, admin, create_topic, produce, unique_topic, watermarks

TIMEOUT_S = 30.0
PARTITIONS = 6


FAST = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


@dataclass
class Record:
    partition: int
    offset: int
    key: bytes


@dataclass
class Member:
    """One in-process group member; every rebalance callback and record is kept in order."""

    name: str
    consumer: Consumer
    commit_each: bool = False  # commit every record synchronously once it is processed
    events: list[tuple[str, frozenset[int]]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    closed: bool = False

    def owned(self) -> frozenset[int]:
        if self.closed:
            return frozenset()
        return frozenset(tp.partition for tp in self.consumer.assignment())

    def poll(self, timeout_s: float) -> None:
        msg = self.consumer.poll(timeout_s)
        if msg is None:
            return
        err = msg.error()
        if err is not None:
            assert not err.fatal(), f"{self.name}: {err}"
            return
        self.records.append(Record(msg.partition(), msg.offset(), msg.key()))
        if self.commit_each:
            self.commit(msg)

    def commit(self, msg: Message) -> None:
        tp = TopicPartition(msg.topic(), msg.partition(), msg.offset() + 1)
        (done,) = self.consumer.commit(offsets=[tp], asynchronous=False)
        assert done.error is None, f"{self.name}: commit of {tp} failed: {done.error}"

    def close(self) -> None:
        self.consumer.close()
        self.closed = True


def member(
    bootstrap: str, group: str, topic: str, name: str, commit_each: bool = False, **config: Any
) -> Member:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **FAST,
            **config,
        }
    )
    m = Member(name, consumer, commit_each)

    def recorder(kind: str) -> Callable[[Consumer, list[TopicPartition]], None]:
        def on_event(_: Consumer, partitions: list[TopicPartition]) -> None:
            m.events.append((kind, frozenset(p.partition for p in partitions)))

        return on_event

    # librdkafka assigns (incrementally under cooperative-sticky) after each callback returns.
    consumer.subscribe(
        [topic],
        on_assign=recorder("assign"),
        on_revoke=recorder("revoke"),
        on_lost=recorder("lost"),
    )
    return m


def assert_no_overlap(members: Sequence[Member]) -> None:
    seen: dict[int, str] = {}
    for m in members:
        for p in m.owned():
            assert p not in seen, f"partition {p} owned by both {seen[p]} and {m.name}"
            seen[p] = m.name


def settle(
    members: Sequence[Member], partitions: int = PARTITIONS, timeout_s: float = TIMEOUT_S
) -> dict[str, frozenset[int]]:
    """Poll every member until together they own every partition, each owns at least one, and
    no partition is owned twice (checked at every step, not only at the end)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for m in members:
            m.poll(0.05)
            assert_no_overlap(members)
        owned = {m.name: m.owned() for m in members}
        union = frozenset().union(*owned.values())
        if union == frozenset(range(partitions)) and all(owned.values()):
            return owned
        if time.monotonic() > deadline:
            raise AssertionError(f"group never settled: {owned}; events: {events(members)}")


def events(members: Sequence[Member]) -> dict[str, list[tuple[str, list[int]]]]:
    return {m.name: [(k, sorted(ps)) for k, ps in m.events] for m in members}


def keep_polling(members: Sequence[Member], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for m in members:
            m.poll(0.05)
            assert_no_overlap(members)


def describe(bootstrap: str, group: str) -> ConsumerGroupDescription:
    client = admin(bootstrap)
    result: ConsumerGroupDescription = client.describe_consumer_groups([group], request_timeout=10)[
        group
    ].result(TIMEOUT_S)
    return result


def broker_view(bootstrap: str, group: str, owned: dict[str, frozenset[int]]) -> Any:
    """Wait until the coordinator describes the group as Stable with exactly this assignment
    (by client id); return the description."""
    wanted = sorted((name, sorted(ps)) for name, ps in owned.items())
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        desc = describe(bootstrap, group)
        got = sorted(
            (m.client_id, sorted(tp.partition for tp in m.assignment.topic_partitions))
            for m in desc.members
        )
        if desc.state.name == "STABLE" and got == wanted:
            return desc
        if time.monotonic() > deadline:
            raise AssertionError(f"coordinator shows {desc.state} {got}, clients own {wanted}")
        time.sleep(0.2)


def poll_until(
    members: Sequence[Member], done: Callable[[], bool], timeout_s: float = TIMEOUT_S
) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out; events: {events(members)}"
        keep_polling(members, 0.1)


# -- sharing, joining, leaving, and each assignor ---------------------------------------------


@pytest.mark.parametrize("strategy", ["range", "roundrobin", "cooperative-sticky"])
def test_members_share_partitions_and_rebalance(broker, strategy: str) -> None:
    topic = unique_topic(f"share-{strategy}")
    group = unique_topic(f"group-{strategy}")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    config = {"partition.assignment.strategy": strategy}
    cooperative = strategy == "cooperative-sticky"
    members: list[Member] = []
    try:
        a = member(broker.bootstrap, group, topic, "a", **config)
        members.append(a)
        owned = settle(members)
        assert owned == {"a": frozenset(range(PARTITIONS))}
        desc = broker_view(broker.bootstrap, group, owned)
        assert desc.partition_assignor == strategy

        # A second member joins: the first gives up half of the partitions.
        a_mark = len(a.events)
        b = member(broker.bootstrap, group, topic, "b", **config)
        members.append(b)
        owned = settle(members)
        assert len(owned["a"]) == len(owned["b"]) == PARTITIONS // 2
        broker_view(broker.bootstrap, group, owned)
        a_changes = a.events[a_mark:]
        revoked = [ps for kind, ps in a_changes if kind == "revoke"]
        assert revoked, f"a saw no rebalance when b joined: {a_changes}"
        if cooperative:
            # Incremental: only the partitions that move are revoked; a keeps the rest throughout.
            assert frozenset().union(*revoked) == owned["b"], a_changes
            assert all(kind != "assign" or not ps for kind, ps in a_changes), a_changes
        else:
            # Eager: everything is revoked, then the new assignment comes in one piece.
            assert revoked[0] == frozenset(range(PARTITIONS)), a_changes
            assert a_changes[-1] == ("assign", owned["a"]), a_changes

        # A third member joins: two partitions each, laid out as the assignor lays them out.
        before = dict(owned)
        b_mark = len(b.events)
        c = member(broker.bootstrap, group, topic, "c", **config)
        members.append(c)
        owned = settle(members)
        assert sorted(len(ps) for ps in owned.values()) == [2, 2, 2], owned
        broker_view(broker.bootstrap, group, owned)
        if strategy == "range":
            assert sorted(sorted(ps) for ps in owned.values()) == [[0, 1], [2, 3], [4, 5]]
        elif strategy == "roundrobin":
            assert sorted(sorted(ps) for ps in owned.values()) == [[0, 3], [1, 4], [2, 5]]
        else:
            # Sticky: a and b keep two of their three each; c gets one from each of them.
            assert owned["a"] < before["a"] and owned["b"] < before["b"], (before, owned)
            assert len(owned["c"] & before["a"]) == len(owned["c"] & before["b"]) == 1
        assert b.events[b_mark:], "b saw no rebalance when c joined"

        # b leaves (close sends LeaveGroup): a and c take its partitions over at once, without
        # waiting for b's session to time out.
        before = dict(owned)
        a_mark, c_mark = len(a.events), len(c.events)
        b.close()
        members.remove(b)
        started = time.monotonic()
        owned = settle(members)
        assert time.monotonic() - started < FAST["session.timeout.ms"] / 1000 - 0.5
        assert sorted(len(ps) for ps in owned.values()) == [3, 3], owned
        broker_view(broker.bootstrap, group, owned)
        assert (owned["a"] | owned["c"]) == frozenset(range(PARTITIONS))
        assert a.events[a_mark:] and c.events[c_mark:], events(members)
        if cooperative:
            # Nobody gives anything up when a member leaves: b's partitions are only added.
            assert owned["a"] > before["a"] and owned["c"] > before["c"], (before, owned)
            for m, mark in ((a, a_mark), (c, c_mark)):
                assert not [ps for k, ps in m.events[mark:] if k == "revoke" and ps], events(
                    members
                )

        # Records reach exactly the member that owns their partition, each exactly once.
        keys = [f"{strategy}-{i}".encode() for i in range(60)]
        produce(
            broker.bootstrap,
            topic,
            [{"key": k, "value": b"v", "partition": i % PARTITIONS} for i, k in enumerate(keys)],
        ).ok()
        poll_until(members, lambda: sum(len(m.records) for m in members) >= len(keys))
        keep_polling(members, 0.5)  # anything extra would show up now
        assert sorted(r.key for m in members for r in m.records) == sorted(keys)
        for m in members:
            assert {r.partition for r in m.records} <= owned[m.name], m.name
    finally:
        for m in members:
            if not m.closed:
                m.close()


# -- committed offsets ----------------------------------------------------------------------------


def test_new_members_resume_from_committed_offsets(broker) -> None:
    topic = unique_topic("resume")
    group = unique_topic("resume-group")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    keys = [f"resume-{i}".encode() for i in range(90)]
    records = [{"key": k, "value": b"v", "partition": i % PARTITIONS} for i, k in enumerate(keys)]

    first = [member(broker.bootstrap, group, topic, n, commit_each=True) for n in ("a", "b")]
    try:
        settle(first)
        produce(broker.bootstrap, topic, records[:60]).ok()
        # Process (and commit, synchronously, one by one) only part of what is there.
        deadline = time.monotonic() + TIMEOUT_S
        while sum(len(m.records) for m in first) < 25:
            assert time.monotonic() < deadline, events(first)
            for m in first:
                m.poll(0.05)  # one record at most
    finally:
        for m in first:
            m.close()
    processed_first = [r.key for m in first for r in m.records]
    assert len(processed_first) == len(set(processed_first)) >= 25
    assert len(processed_first) < 60, "nothing was left for the new members: the test is void"

    produce(broker.bootstrap, topic, records[60:]).ok()
    second = [member(broker.bootstrap, group, topic, n, commit_each=True) for n in ("c", "d")]
    try:
        remaining = len(keys) - len(processed_first)
        poll_until(second, lambda: sum(len(m.records) for m in second) >= remaining)
        settle(second)
        keep_polling(second, 1.0)  # a redelivery would show up now
    finally:
        for m in second:
            m.close()
    processed_second = [r.key for m in second for r in m.records]
    # Nothing redelivered, nothing skipped.
    assert len(processed_second) == len(set(processed_second))
    assert not set(processed_first) & set(processed_second)
    assert sorted(processed_first + processed_second) == sorted(keys)

    client = admin(broker.bootstrap)  # must outlive its future
    request = [ConsumerGroupTopicPartitions(group)]
    committed = client.list_consumer_group_offsets(request)[group].result(TIMEOUT_S)
    got = {tp.partition: tp.offset for tp in committed.topic_partitions if tp.topic == topic}
    assert got == {p: watermarks(broker.bootstrap, topic, p)[1] for p in range(PARTITIONS)}


# -- members in subprocesses: static membership and killed members --------------------------------


class MemberProcess(EventProcess):
    """This file run as a group member in a subprocess; its JSON events are collected."""

    def __init__(self, bootstrap: str, topic: str, group: str, config: dict[str, Any]) -> None:
        super().__init__([__file__, bootstrap, topic, group, json.dumps(config)], TIMEOUT_S)


@pytest.fixture
def processes() -> Iterator[Callable[..., MemberProcess]]:
    started: list[MemberProcess] = []

    def start(*args: Any) -> MemberProcess:
        started.append(MemberProcess(*args))
        return started[-1]

    yield start
    for p in started:
        p.close()


def settle_with(
    m: Member, p: MemberProcess, timeout_s: float = TIMEOUT_S
) -> tuple[frozenset[int], frozenset[int]]:
    """Poll the in-process member until it and the subprocess share all partitions."""
    deadline = time.monotonic() + timeout_s
    while True:
        m.poll(0.05)
        mine, theirs = m.owned(), p.owned()
        assert not mine & theirs, f"both own {sorted(mine & theirs)}"
        if mine and theirs and mine | theirs == frozenset(range(PARTITIONS)):
            return mine, theirs
        assert time.monotonic() < deadline, f"never settled: {m.events} / {p.events}"


@pytest.mark.parametrize("restart", ["close", "kill"])
def test_static_member_restart_keeps_partitions_without_rebalance(
    broker, processes, restart: str
) -> None:
    topic = unique_topic(f"static-{restart}")
    group = unique_topic(f"static-group-{restart}")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    static = {
        "client.id": "s",
        "group.instance.id": f"instance-{restart}",
        "session.timeout.ms": 20_000,
        "heartbeat.interval.ms": 500,
    }
    s = processes(broker.bootstrap, topic, group, static)
    m = member(broker.bootstrap, group, topic, "m")
    try:
        mine, theirs = settle_with(m, s)
        desc = broker_view(broker.bootstrap, group, {"m": mine, "s": theirs})
        instances = {d.client_id: d.group_instance_id for d in desc.members}
        assert instances == {"m": None, "s": f"instance-{restart}"}
        mark = len(m.events)

        # The static member's process goes away (a clean close sends no LeaveGroup for a static
        # member) and comes back well within its session timeout.
        if restart == "close":
            s.stop()
        else:
            s.kill()
        s2 = processes(broker.bootstrap, topic, group, static)
        deadline = time.monotonic() + TIMEOUT_S
        while not s2.owned():
            m.poll(0.05)
            assert time.monotonic() < deadline, f"restarted member got nothing: {s2.events}"
        assert s2.owned() == theirs
        keep_polling([m], 3.0)  # six heartbeats of m: a rebalance would reach it by now
        assert m.events[mark:] == [], "the other member saw a rebalance"
        assert m.owned() == mine
        broker_view(broker.bootstrap, group, {"m": mine, "s": theirs})
    finally:
        m.close()


def test_killed_member_loses_partitions_after_session_timeout(broker, processes) -> None:
    topic = unique_topic("sigkill")
    group = unique_topic("sigkill-group")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    timeouts = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
    s = processes(broker.bootstrap, topic, group, {"client.id": "s", **timeouts})
    m = member(broker.bootstrap, group, topic, "m", **timeouts)
    try:
        mine, theirs = settle_with(m, s)
        broker_view(broker.bootstrap, group, {"m": mine, "s": theirs})
        s.kill()
        killed_at = time.monotonic()
        owned = settle([m], timeout_s=6 + TIMEOUT_S)
        waited = time.monotonic() - killed_at
        assert owned == {"m": frozenset(range(PARTITIONS))}
        # The killed member's last heartbeat was at most 1 s before the kill: the coordinator
        # must have waited out (most of) its session, not dropped it when its socket closed.
        assert waited > 4.5, f"partitions moved {waited:.1f} s after the kill"
        broker_view(broker.bootstrap, group, {"m": frozenset(range(PARTITIONS))})
    finally:
        m.close()


# -- one member in a subprocess -------------------------------------------------------------------


def member_main(argv: list[str]) -> None:
    bootstrap, topic, group, config = argv[0], argv[1], argv[2], json.loads(argv[3])
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    def say(**event: Any) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **config,
        }
    )
    consumer.subscribe(
        [topic],
        on_assign=lambda c, ps: say(event="assign", partitions=sorted(p.partition for p in ps)),
        on_revoke=lambda c, ps: say(event="revoke", partitions=sorted(p.partition for p in ps)),
        on_lost=lambda c, ps: say(event="lost", partitions=sorted(p.partition for p in ps)),
    )
    say(event="started", pid=os.getpid())
    while not stopping.is_set():
        msg = consumer.poll(0.1)
        if msg is None or msg.error() is not None:
            continue
        say(event="record", partition=msg.partition(), offset=msg.offset())
    consumer.close()
    say(event="closed")


if __name__ == "__main__":
    member_main(sys.argv[1:])
