"""Consumer groups with aiokafka (classic protocol, its default round-robin assignor): two members
share a topic's partitions without overlap, process part of it committing each record, and two
new members resume exactly where the first left off; a static member (group_instance_id) that
restarts within its session timeout gets its partitions back without a rebalance.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from kafka_helpers import admin, create_topic, produce, unique_topic, watermarks

PARTITIONS = 4
TIMEOUT_S = 30.0


class Member:
    """One aiokafka group member. It joins at once but processes nothing until `go` is set;
    then it processes records one by one, committing each, while `budget` (shared by the
    members of one test) lasts."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group: str,
        name: str,
        budget: list[int] | None = None,
        **config: Any,
    ) -> None:
        self.name = name
        self.events: list[tuple[str, frozenset[int]]] = []
        self.owned: frozenset[int] = frozenset()
        self.records: list[tuple[int, int, bytes]] = []
        self.budget = budget if budget is not None else [1 << 30]
        self.go = asyncio.Event()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=name,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **{"session_timeout_ms": 6000, "heartbeat_interval_ms": 500, **config},
        )
        self.topic = topic
        self.task: asyncio.Task[None] | None = None

    def _event(self, kind: str, partitions: Any) -> None:
        # Ownership follows the callbacks: revocation runs before the member rejoins.
        changed = frozenset(tp.partition for tp in partitions)
        self.events.append((kind, changed))
        self.owned = self.owned | changed if kind == "assign" else self.owned - changed

    async def start(self) -> Member:
        member = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_revoked(self, revoked: Any) -> None:
                member._event("revoke", revoked)

            def on_partitions_assigned(self, assigned: Any) -> None:
                member._event("assign", assigned)

        self.consumer.subscribe([self.topic], listener=Listener())
        await self.consumer.start()
        self.task = asyncio.create_task(self._run(), name=f"member-{self.name}")
        return self

    async def _run(self) -> None:
        await self.go.wait()
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            for tp, batch in batches.items():
                for record in batch:
                    if self.budget[0] <= 0:
                        return  # out of budget: the rest stays unprocessed and uncommitted
                    self.budget[0] -= 1
                    self.records.append((tp.partition, record.offset, record.key))
                    await self.consumer.commit({tp: record.offset + 1})

    async def stop(self) -> None:
        assert self.task is not None
        if not self.task.done():
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self.consumer.stop()
        self.owned = frozenset()

    def processed_keys(self) -> list[bytes]:
        return [key for _, _, key in self.records]


async def settle(members: list[Member]) -> dict[str, frozenset[int]]:
    """Every partition owned by exactly one member and each member owning one at least;
    overlap is checked at every look."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        for m in members:
            if m.task is not None and m.task.done():
                m.task.result()  # surfaces a member's exception
        seen: set[int] = set()
        for m in members:
            assert not seen & m.owned, f"{sorted(seen & m.owned)} owned twice"
            seen |= m.owned
        if seen == set(range(PARTITIONS)) and all(m.owned for m in members):
            return {m.name: m.owned for m in members}
        assert time.monotonic() < deadline, (
            f"never settled: {[(m.name, m.events) for m in members]}"
        )
        await asyncio.sleep(0.05)


async def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def run(coroutine: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coroutine(), timeout=120))


def describe(bootstrap: str, group: str) -> Any:
    client = admin(bootstrap)  # must outlive its future
    return client.describe_consumer_groups([group])[group].result(TIMEOUT_S)


def test_two_members_share_commit_and_resume(broker) -> None:
    topic = unique_topic("aio-share")
    group = unique_topic("aio-group")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    keys = [f"aio-{i}".encode() for i in range(60)]
    produce(
        broker.bootstrap,
        topic,
        [{"key": k, "value": b"v", "partition": i % PARTITIONS} for i, k in enumerate(keys)],
    ).ok()

    async def scenario() -> None:
        budget = [25]  # the first pair processes 25 of the 60 records and stops
        first = [
            await Member(broker.bootstrap, topic, group, n, budget).start() for n in ("a", "b")
        ]
        owned = await settle(first)
        assert sorted(sorted(ps) for ps in owned.values()) == [[0, 2], [1, 3]]  # round robin
        desc = await asyncio.to_thread(describe, broker.bootstrap, group)
        assert desc.partition_assignor == "roundrobin"
        assert sorted(m.client_id for m in desc.members) == ["a", "b"]
        for m in first:
            m.go.set()
        await wait_for(lambda: budget[0] == 0, "the first members to use their budget")
        await asyncio.sleep(0.3)  # a member could only overspend now
        for m in first:
            await m.stop()
        processed_first = [k for m in first for k in m.processed_keys()]
        assert len(processed_first) == len(set(processed_first)) == 25
        for m in first:
            assert {p for p, _, _ in m.records} <= owned[m.name]

        second = [await Member(broker.bootstrap, topic, group, n).start() for n in ("c", "d")]
        await settle(second)
        for m in second:
            m.go.set()
        remaining = len(keys) - 25
        await wait_for(lambda: sum(len(m.records) for m in second) >= remaining, "the rest")
        await asyncio.sleep(1.0)  # a redelivery would show up now
        for m in second:
            await m.stop()
        processed_second = [k for m in second for k in m.processed_keys()]
        # Nothing redelivered, nothing skipped.
        assert len(processed_second) == len(set(processed_second)) == remaining
        assert sorted(processed_first + processed_second) == sorted(keys)

        probe = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group)
        await probe.start()
        try:
            for p in range(PARTITIONS):
                committed = await probe.committed(TopicPartition(topic, p))
                assert committed == watermarks(broker.bootstrap, topic, p)[1], f"partition {p}"
        finally:
            await probe.stop()

    run(scenario)


def test_static_member_rejoins_without_rebalance(broker) -> None:
    topic = unique_topic("aio-static")
    group = unique_topic("aio-static-group")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    static = {"group_instance_id": "aio-instance", "session_timeout_ms": 20_000}

    async def scenario() -> None:
        s = await Member(broker.bootstrap, topic, group, "s", **static).start()
        await settle([s])
        m = await Member(broker.bootstrap, topic, group, "m").start()
        owned = await settle([s, m])
        mark = len(m.events)
        desc = await asyncio.to_thread(describe, broker.bootstrap, group)
        assert {d.client_id: d.group_instance_id for d in desc.members} == {
            "s": "aio-instance",
            "m": None,
        }

        # A static member sends no LeaveGroup when it stops; the same instance comes back.
        await s.stop()
        s2 = await Member(broker.bootstrap, topic, group, "s", **static).start()
        await wait_for(lambda: bool(s2.owned), "the restarted static member's partitions")
        assert s2.owned == owned["s"]
        await asyncio.sleep(3.0)  # six heartbeats of m: a rebalance would reach it by now
        assert m.events[mark:] == [], "the other member saw a rebalance"
        assert await settle([s2, m]) == owned
        for member in (s2, m):
            await member.stop()

    run(scenario)
