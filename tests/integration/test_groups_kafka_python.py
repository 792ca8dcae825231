"""Consumer groups with kafka-python (classic protocol): two members share a topic's partitions
without overlap under the range, round-robin and sticky assignors, process and commit every record,
and new members resume from the committed offsets; a static member (group_instance_id) that
restarts within its session timeout gets its partitions back without a rebalance.

Each member runs its own poll loop in a thread (a kafka-python consumer belongs to one thread).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from kafka.structs import OffsetAndMetadata
from kafka_helpers import admin, create_topic, produce, unique_topic, watermarks

PARTITIONS = 4
TIMEOUT_S = 30.0
ASSIGNORS = {
    "range": RangePartitionAssignor,
    "roundrobin": RoundRobinPartitionAssignor,
    "sticky": StickyPartitionAssignor,
}
LAYOUTS = {"range": [[0, 1], [2, 3]], "roundrobin": [[0, 2], [1, 3]]}


class Member(threading.Thread):
    """One consumer in its own thread: polls, processes, commits each record synchronously."""

    def __init__(self, bootstrap: str, topic: str, group: str, name: str, **config: Any) -> None:
        super().__init__(name=f"member-{name}", daemon=True)
        self.member_name = name
        self.lock = threading.Lock()
        self.events: list[tuple[str, frozenset[int]]] = []
        self.records: list[tuple[int, int, bytes]] = []
        self.owned: frozenset[int] = frozenset()
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=name,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **{"session_timeout_ms": 6000, "heartbeat_interval_ms": 500, **config},
        )
        member = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Any) -> None:
                member._event("revoke", revoked)

            def on_partitions_assigned(self, assigned: Any) -> None:
                member._event("assign", assigned)

        self.consumer.subscribe([topic], listener=Listener())
        # Load the subscribed topic's metadata before the first join. Otherwise the leader's
        # metadata snapshot is still empty when it assigns, and the update that follows makes
        # it rejoin right after the group settled (a rebalance nobody asked for); kafka-python
        # 3.0.12 also sometimes stalls in that rejoin (a SyncGroup answered in 2 ms, then no
        # heartbeat ever again, until the session times out).
        assert self.consumer.partitions_for_topic(topic)
        self.start()

    def _event(self, kind: str, partitions: Any) -> None:
        # Ownership follows the callbacks: revocation runs before the member rejoins, so
        # no partition is ever counted for two members of a correctly working group.
        changed = frozenset(tp.partition for tp in partitions)
        with self.lock:
            self.events.append((kind, changed))
            self.owned = self.owned | changed if kind == "assign" else self.owned - changed

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                for tp, batch in self.consumer.poll(timeout_ms=100).items():
                    for record in batch:
                        with self.lock:
                            self.records.append((tp.partition, record.offset, record.key))
                        self.consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "", -1)})
        except BaseException as exc:  # reported by check()
            self.error = exc
        finally:
            self.consumer.close(autocommit=False)
            with self.lock:
                self.owned = frozenset()

    def check(self) -> None:
        assert self.error is None, f"{self.member_name} failed: {self.error!r}"

    def stop(self) -> None:
        self.stopping.set()
        self.join(TIMEOUT_S)
        assert not self.is_alive(), f"{self.member_name} did not stop"
        self.check()

    def keys(self) -> list[bytes]:
        with self.lock:
            return [key for _, _, key in self.records]


@pytest.fixture
def members() -> Iterator[Callable[..., Member]]:
    started: list[Member] = []

    def start(*args: Any, **config: Any) -> Member:
        started.append(Member(*args, **config))
        return started[-1]

    yield start
    for m in started:
        m.stopping.set()
    for m in started:
        m.join(TIMEOUT_S)


def settle(members: list[Member], timeout_s: float = TIMEOUT_S) -> dict[str, frozenset[int]]:
    """Wait until the members own every partition between them, each at least one, none twice
    (overlap is checked at every look, not only at the end)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for m in members:
            m.check()
        owned = {m.member_name: m.owned for m in members}
        seen: set[int] = set()
        for ps in owned.values():
            assert not seen & ps, f"{sorted(seen & ps)} owned twice: {owned}"
            seen |= ps
        if seen == set(range(PARTITIONS)) and all(owned.values()):
            return owned
        assert time.monotonic() < deadline, f"never settled: {owned}"
        time.sleep(0.05)


def wait_for_keys(members: list[Member], count: int) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while sum(len(m.keys()) for m in members) < count:
        for m in members:
            m.check()
        assert time.monotonic() < deadline, f"{[len(m.keys()) for m in members]} of {count}"
        time.sleep(0.05)
    time.sleep(1.0)  # anything redelivered or extra would arrive now


def described(bootstrap: str, group: str) -> Any:
    client = admin(bootstrap)  # must outlive its future
    return client.describe_consumer_groups([group])[group].result(TIMEOUT_S)


@pytest.mark.parametrize("assignor", sorted(ASSIGNORS))
def test_two_members_share_commit_and_resume(broker, members, assignor: str) -> None:
    topic = unique_topic(f"kp-{assignor}")
    group = unique_topic(f"kp-group-{assignor}")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    strategy = {"partition_assignment_strategy": [ASSIGNORS[assignor]]}

    a = members(broker.bootstrap, topic, group, "a", **strategy)
    settle([a])
    b = members(broker.bootstrap, topic, group, "b", **strategy)
    owned = settle([a, b])
    layout = sorted(sorted(ps) for ps in owned.values())
    if assignor in LAYOUTS:
        assert layout == LAYOUTS[assignor]
    else:  # sticky: any even split, as long as nothing overlaps (settle checks that)
        assert [len(ps) for ps in layout] == [2, 2], layout
    assert any(kind == "revoke" for kind, _ in a.events), "a saw no rebalance when b joined"
    desc = described(broker.bootstrap, group)
    assert desc.partition_assignor == assignor
    assert sorted(m.client_id for m in desc.members) == ["a", "b"]

    keys = [f"{assignor}-{i}".encode() for i in range(40)]
    records = [{"key": k, "value": b"v", "partition": i % PARTITIONS} for i, k in enumerate(keys)]
    produce(broker.bootstrap, topic, records).ok()
    wait_for_keys([a, b], len(keys))
    assert sorted(a.keys() + b.keys()) == sorted(keys)
    for m in (a, b):
        assert {p for p, _, _ in m.records} <= owned[m.member_name]
    a.stop()
    b.stop()

    # Restarted members resume from the committed offsets: nothing old comes back (they would
    # start from the beginning without them) and everything new arrives.
    c = members(broker.bootstrap, topic, group, "c", **strategy)
    d = members(broker.bootstrap, topic, group, "d", **strategy)
    settle([c, d])
    more = [f"{assignor}-late-{i}".encode() for i in range(20)]
    produce(
        broker.bootstrap,
        topic,
        [{"key": k, "value": b"v", "partition": i % PARTITIONS} for i, k in enumerate(more)],
    ).ok()
    wait_for_keys([c, d], len(more))
    assert sorted(c.keys() + d.keys()) == sorted(more)
    c.stop()
    d.stop()

    probe = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group)
    try:
        for p in range(PARTITIONS):
            end = watermarks(broker.bootstrap, topic, p)[1]
            assert probe.committed(TopicPartition(topic, p)) == end, f"partition {p}"
    finally:
        probe.close(autocommit=False)


def test_static_member_rejoins_without_rebalance(broker, members) -> None:
    topic = unique_topic("kp-static")
    group = unique_topic("kp-static-group")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    static = {"group_instance_id": "kp-instance", "session_timeout_ms": 20_000}

    s = members(broker.bootstrap, topic, group, "s", **static)
    settle([s])
    m = members(broker.bootstrap, topic, group, "m")
    owned = settle([s, m])
    mark = len(m.events)
    desc = described(broker.bootstrap, group)
    assert {d.client_id: d.group_instance_id for d in desc.members} == {
        "s": "kp-instance",
        "m": None,
    }

    # A static member's close sends no LeaveGroup; the same instance comes back in time.
    s.stop()
    s2 = members(broker.bootstrap, topic, group, "s", **static)
    deadline = time.monotonic() + TIMEOUT_S
    while not s2.owned:
        s2.check()
        assert time.monotonic() < deadline, "the restarted static member got nothing"
        time.sleep(0.05)
    assert s2.owned == owned["s"]
    time.sleep(3.0)  # six heartbeats of m: a rebalance would have reached it by now
    assert m.events[mark:] == [], "the other member saw a rebalance"
    assert settle([s2, m]) == owned
