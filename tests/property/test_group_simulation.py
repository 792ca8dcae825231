"""A classic consumer group under a simulated population of clients, checked after every step.

The clients follow the JoinGroup/SyncGroup protocol as a Kafka consumer with the eager range
assignor does: a new dynamic member asks for its id (MEMBER_ID_REQUIRED) and joins with it; on
a join response the leader assigns the partitions of a fixed topic set by range over the member
list, everyone sends SyncGroup, and members heartbeat every third of their session; they rejoin
on REBALANCE_IN_PROGRESS and ILLEGAL_GENERATION, start over on UNKNOWN_MEMBER_ID and stop on
FENCED_INSTANCE_ID; a rejoining member gives up its partitions first. Some clients are static
(group.instance.id). Hypothesis drives them: start, crash silently, leave, be removed by an admin,
rejoin, let the fake clock run, and, when writes are delayed, complete or fail the oldest ones.

Checked after every step:

- within one generation no partition is owned by two members (owned: delivered by a successful
  SyncGroup for that generation), and no member is given two different assignments;
- in a Stable group every member holds exactly what the leader sent for it, every dynamic
  member was sent the JoinGroup response of the current generation, and the leader is a member;
- when the group is Stable and the clients are quiet (every live client is a member of the
  current generation holding its assignment, nothing in flight), every partition is owned by
  exactly one live member;
- a live client that follows the protocol is never told UNKNOWN_MEMBER_ID (unless an operator
  removed it) nor FENCED_INSTANCE_ID: while parked in a request it needs no heartbeat, it
  heartbeats well within its session otherwise, and only dead clients are replaced.

After the steps, with writes succeeding, the group must settle (Stable, quiet, all partitions
owned by live clients); once every client has crashed, it must become Empty.

Negative controls run the same checker against a client that keeps its old partitions across
a rebalance and a coordinator that keeps members that did not rejoin; both must be caught.
"""

from __future__ import annotations

import itertools
import struct
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from odradek.common.errors import ErrorCode
from odradek.coordinator.group import coordinator as coordinator_module
from odradek.coordinator.group.classic import ClassicGroup, GroupState
from odradek.coordinator.group.consumer_protocol import assignment_partitions
from odradek.coordinator.group.coordinator import GroupCoordinator
from odradek.coordinator.group.messages import (
    GroupConfig,
    JoinRequest,
    JoinResult,
    SyncResult,
    Write,
)

GROUP = "sim"
TOPICS = {"orders": 3, "payments": 2}
PARTITIONS = frozenset((topic, p) for topic, count in TOPICS.items() for p in range(count))
Partition = tuple[str, int]


class InvariantViolation(AssertionError):
    pass


# --- the consumer protocol, by hand -----------------------------------------------------------


def _string(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">h", len(data)) + data


def subscription_bytes() -> bytes:
    """ConsumerProtocolSubscription v0 for every topic, with null user data."""
    body = struct.pack(">hi", 0, len(TOPICS)) + b"".join(_string(t) for t in sorted(TOPICS))
    return body + struct.pack(">i", -1)


def assignment_bytes(partitions: list[Partition]) -> bytes:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    body = struct.pack(">hi", 0, len(by_topic))
    for topic, numbers in sorted(by_topic.items()):
        body += _string(topic) + struct.pack(">i", len(numbers))
        body += b"".join(struct.pack(">i", n) for n in numbers)
    return body + struct.pack(">i", -1)


def range_assign(member_ids: list[str]) -> dict[str, list[Partition]]:
    """The range assignor: per topic, consecutive partitions to members in id order."""
    ordered = sorted(member_ids)
    plan: dict[str, list[Partition]] = {m: [] for m in ordered}
    for topic, count in sorted(TOPICS.items()):
        per_member, extra = divmod(count, len(ordered))
        start = 0
        for index, member_id in enumerate(ordered):
            size = per_member + (1 if index < extra else 0)
            plan[member_id].extend((topic, p) for p in range(start, start + size))
            start += size
    return plan


# --- clients ----------------------------------------------------------------------------------


@dataclass
class Client:
    index: int
    instance_id: str | None
    session_ms: int
    rebalance_ms: int
    alive: bool = False
    incarnation: int = 0
    member_id: str = ""
    generation: int = -1
    waiting: str | None = None  # "join" or "sync" while a request is parked
    stable: bool = False
    owned: tuple[int, frozenset[Partition]] | None = None
    next_heartbeat_ms: int | None = None
    removed_by_admin: bool = False  # so being told UNKNOWN_MEMBER_ID is expected

    @property
    def identity(self) -> str:
        """Who the member is across member ids: its instance id if static."""
        return self.instance_id or self.member_id


def identity_of(member_id: str, instance_id: str | None) -> str:
    return instance_id or member_id


class World:
    """The coordinator core, the clients, the writes in flight and what the checkers saw."""

    def __init__(
        self,
        clients: list[Client],
        *,
        delay_writes: bool,
        initial_delay_ms: int,
        coordinator: type[GroupCoordinator] = GroupCoordinator,
        stubborn: frozenset[int] = frozenset(),
    ) -> None:
        config = GroupConfig(
            min_session_timeout_ms=100, initial_rebalance_delay_ms=initial_delay_ms
        )
        self.core = coordinator(config)
        self.clients = clients
        self.delay_writes = delay_writes
        self.stubborn = stubborn  # clients that keep their old partitions (a negative control)
        self.now = 0
        self.inbox: deque[tuple[str, int, int, Any]] = deque()
        self.writes: deque[Write] = deque()
        self.deliveries: dict[int, dict[str, frozenset[Partition]]] = {}
        self.leader_sent: dict[int, dict[str, bytes]] = {}
        self.told: dict[str, int] = {}  # member id -> generation of its last join response

    # the coordinator and its writes

    def _settle_writes(self) -> None:
        self.writes.extend(self.core.writes)
        self.core.writes.clear()
        if not self.delay_writes:
            self.complete_writes(len(self.writes), ErrorCode.NONE)

    def complete_writes(self, count: int, error: ErrorCode) -> None:
        for _ in range(min(count, len(self.writes))):
            self.writes.popleft().on_done(error)
            self.writes.extend(self.core.writes)  # an on_done may queue more
            self.core.writes.clear()

    def _join(self, client: Client) -> None:
        client.waiting, client.stable = "join", False
        if client.index not in self.stubborn:
            client.owned = None  # eager rebalancing: give the partitions up before rejoining
        incarnation = client.incarnation

        def respond(result: JoinResult) -> None:
            if result.error == ErrorCode.NONE:
                self.told[result.member_id] = result.generation
            self.inbox.append(("join", client.index, incarnation, result))

        request = JoinRequest(
            GROUP,
            client.member_id,
            client.instance_id,
            f"client-{client.index}",
            "/127.0.0.1",
            client.session_ms,
            client.rebalance_ms,
            "consumer",
            (("range", subscription_bytes()),),
        )
        self.core.join_group(request, self.now, respond)
        self._settle_writes()

    def _sync(self, client: Client, assignments: dict[str, bytes]) -> None:
        client.waiting = "sync"
        client.next_heartbeat_ms = self.now + client.session_ms // 3
        incarnation = client.incarnation

        def respond(result: SyncResult) -> None:
            self.inbox.append(("sync", client.index, incarnation, result))

        self.core.sync_group(
            GROUP,
            client.generation,
            client.member_id,
            client.instance_id,
            "consumer",
            "range",
            assignments,
            self.now,
            respond,
        )
        self._settle_writes()

    # what a client does with a response

    def drain(self) -> None:
        for _ in range(10_000):
            if not self.inbox:
                return
            kind, index, incarnation, result = self.inbox.popleft()
            client = self.clients[index]
            if not client.alive or client.incarnation != incarnation:
                continue  # the process that asked is gone
            client.waiting = None
            self._check_not_expelled(client, result.error)
            if kind == "join":
                self._on_join_response(client, result)
            else:
                self._on_sync_response(client, result)
        raise AssertionError("the clients never went quiet")

    def _on_join_response(self, client: Client, result: JoinResult) -> None:
        if result.error == ErrorCode.MEMBER_ID_REQUIRED:
            client.member_id = result.member_id
            self._join(client)
        elif result.error == ErrorCode.NONE:
            client.member_id, client.generation = result.member_id, result.generation
            client.removed_by_admin = False
            assignments: dict[str, bytes] = {}
            if result.leader == client.member_id and not result.skip_assignment:
                plan = range_assign([member_id for member_id, _, _ in result.members])
                assignments = {m: assignment_bytes(parts) for m, parts in plan.items()}
                self.leader_sent[result.generation] = {
                    identity_of(m, instance): assignments[m] for m, instance, _ in result.members
                }
            self._sync(client, assignments)
        elif result.error == ErrorCode.FENCED_INSTANCE_ID:
            client.alive = False  # fatal for a consumer
        elif result.error == ErrorCode.UNKNOWN_MEMBER_ID:
            client.member_id, client.generation = "", -1
            self._join(client)
        else:  # REBALANCE_IN_PROGRESS, or a failed write: try again
            self._join(client)

    def _on_sync_response(self, client: Client, result: SyncResult) -> None:
        if result.error == ErrorCode.NONE:
            partitions = frozenset(assignment_partitions(result.assignment))
            if client.index in self.stubborn and client.owned is not None:
                partitions = client.owned[1]
            self._record_delivery(client.generation, client.identity, partitions)
            client.owned = (client.generation, partitions)
            client.stable = True
        elif result.error == ErrorCode.FENCED_INSTANCE_ID:
            client.alive = False
        elif result.error == ErrorCode.UNKNOWN_MEMBER_ID:
            client.member_id, client.generation = "", -1
            self._join(client)
        else:
            self._join(client)

    def _heartbeat(self, client: Client) -> None:
        client.next_heartbeat_ms = self.now + client.session_ms // 3
        error = self.core.heartbeat(
            GROUP, client.generation, client.member_id, client.instance_id, self.now
        )
        self._settle_writes()
        self._check_not_expelled(client, error)
        if client.waiting is not None:
            return  # the parked SyncGroup will say what happened
        if error in (ErrorCode.REBALANCE_IN_PROGRESS, ErrorCode.ILLEGAL_GENERATION):
            self._join(client)
        elif error == ErrorCode.UNKNOWN_MEMBER_ID:
            client.member_id, client.generation = "", -1
            self._join(client)
        elif error == ErrorCode.FENCED_INSTANCE_ID:
            client.alive = False

    # the steps

    def start(self, client: Client) -> None:
        if client.alive:
            return
        client.alive, client.incarnation = True, client.incarnation + 1
        client.member_id, client.generation, client.owned = "", -1, None
        client.next_heartbeat_ms = None
        self._join(client)

    def crash(self, client: Client) -> None:
        client.alive = False

    def leave(self, client: Client) -> None:
        if client.alive and client.member_id:
            self.core.leave_group(GROUP, [(client.member_id, client.instance_id)], self.now)
            self._settle_writes()
        client.alive = False

    def remove_by_admin(self, client: Client) -> None:
        """An operator removes a static member by its instance id; the client lives on."""
        if client.instance_id is not None:
            client.removed_by_admin = True
            self.core.leave_group(GROUP, [("", client.instance_id)], self.now)
            self._settle_writes()

    def rejoin(self, client: Client) -> None:
        if client.alive and client.stable:
            self._join(client)

    def step(self, action: str, argument: int) -> None:
        client = self.clients[argument % len(self.clients)]
        if action == "advance":
            self.advance(argument)
        elif action == "start":
            self.start(client)
        elif action == "crash":
            self.crash(client)
        elif action == "leave":
            self.leave(client)
        elif action == "remove":
            self.remove_by_admin(client)
        elif action == "rejoin":
            self.rejoin(client)
        elif action == "complete":
            self.complete_writes(argument, ErrorCode.NONE)
        else:
            assert action == "fail"
            self.complete_writes(argument, ErrorCode.NOT_LEADER_OR_FOLLOWER)

    def advance(self, ms: int) -> None:
        """Let time pass, firing timers and heartbeats at their own instants, in order."""
        target = self.now + ms
        while True:
            due = [
                c
                for c in self.clients
                if c.alive and c.member_id and (c.stable or c.waiting == "sync")
            ]
            instants = [c.next_heartbeat_ms for c in due if c.next_heartbeat_ms is not None]
            deadline = self.core.next_deadline()
            if deadline is not None:
                instants.append(deadline)
            if not instants or min(instants) > target:
                break
            self.now = max(self.now, min(instants))
            self.core.poll(self.now)
            self._settle_writes()
            self.drain()
            for client in due:
                beat = client.next_heartbeat_ms
                if client.alive and beat is not None and beat <= self.now:
                    self._heartbeat(client)
                    self.drain()
        self.now = target

    # the checkers

    def _check_not_expelled(self, client: Client, error: ErrorCode) -> None:
        """A live client that follows the protocol keeps its membership: it is parked or
        heartbeats in time and rejoins within the rebalance timeout, and only dead clients
        are replaced by a newer incarnation. Only an admin's removal may expel it."""
        if error == ErrorCode.FENCED_INSTANCE_ID or (
            error == ErrorCode.UNKNOWN_MEMBER_ID and not client.removed_by_admin
        ):
            raise InvariantViolation(
                f"live client {client.index} ({client.member_id}) was told {error.name}"
            )

    def _record_delivery(
        self, generation: int, identity: str, partitions: frozenset[Partition]
    ) -> None:
        owners = self.deliveries.setdefault(generation, {})
        before = owners.get(identity)
        if before is not None and before != partitions:
            raise InvariantViolation(
                f"generation {generation}: {identity} was given {sorted(before)} and then "
                f"{sorted(partitions)}"
            )
        for other, theirs in owners.items():
            if other != identity and theirs & partitions:
                raise InvariantViolation(
                    f"generation {generation}: {sorted(theirs & partitions)} owned by both "
                    f"{other} and {identity}"
                )
        owners[identity] = partitions

    def group(self) -> ClassicGroup | None:
        return self.core.groups.get(GROUP)

    def quiet(self) -> bool:
        group = self.group()
        if group is None or group.state != GroupState.STABLE or self.writes or self.inbox:
            return False
        live = [c for c in self.clients if c.alive]
        if not all(
            c.stable and c.waiting is None and c.owned and c.owned[0] == group.generation
            for c in live
        ):
            return False
        members = {identity_of(m.member_id, m.group_instance_id) for m in group.members.values()}
        return members == {c.identity for c in live}

    def check(self) -> None:
        group = self.group()
        if group is None or group.state != GroupState.STABLE:
            return
        if group.leader not in group.members:
            raise InvariantViolation(f"the leader {group.leader} is not a member")
        sent = self.leader_sent.get(group.generation)
        if sent is None:
            raise InvariantViolation(f"Stable at generation {group.generation}, no leader sync")
        for member in group.members.values():
            identity = identity_of(member.member_id, member.group_instance_id)
            if member.assignment != sent.get(identity, b""):
                raise InvariantViolation(f"{identity} holds another assignment than the leader's")
            if member.group_instance_id is None and self.told.get(member.member_id) != (
                group.generation
            ):
                raise InvariantViolation(
                    f"{member.member_id} is in generation {group.generation} but was not told"
                )
        if self.quiet():
            owned = [c.owned[1] for c in self.clients if c.alive and c.owned is not None]
            union = frozenset().union(*owned)
            if sum(len(o) for o in owned) != len(union) or union != PARTITIONS:
                raise InvariantViolation(f"quiet and Stable, but owned: {owned}")


# --- running a scenario -----------------------------------------------------------------------


@contextmanager
def predictable_member_ids() -> Iterator[None]:
    """uuid4 in member ids would make the range assignment differ from run to run."""
    counter = itertools.count()

    class Uuid:
        @staticmethod
        def uuid4() -> str:
            return f"{next(counter):04d}"

    with patch.object(coordinator_module, "uuid", Uuid):
        yield


CLIENT_COUNT = 4
client_specs = st.lists(
    st.tuples(
        st.booleans(),  # static
        st.sampled_from([1_000, 2_000, 4_000]),  # session timeout
        st.sampled_from([1_500, 3_000]),  # rebalance timeout
    ),
    min_size=2,
    max_size=CLIENT_COUNT,
)
who = st.integers(0, CLIENT_COUNT - 1)
step = st.one_of(
    st.tuples(st.just("advance"), st.integers(1, 1_500)),
    st.tuples(st.just("advance"), st.integers(1, 300)),
    st.tuples(st.just("start"), who),
    st.tuples(st.just("crash"), who),
    st.tuples(st.just("leave"), who),
    st.tuples(st.just("remove"), who),
    st.tuples(st.just("rejoin"), who),
    st.tuples(st.just("complete"), st.integers(1, 4)),
    st.tuples(st.just("fail"), st.integers(1, 2)),
)
scenarios = st.fixed_dictionaries(
    {
        "clients": client_specs,
        "steps": st.lists(step, min_size=10, max_size=80),
        "delay_writes": st.booleans(),
        "initial_delay_ms": st.sampled_from([0, 300]),
    }
)


def run(
    scenario: dict[str, Any],
    *,
    coordinator: type[GroupCoordinator] = GroupCoordinator,
    stubborn: frozenset[int] = frozenset(),
) -> None:
    clients = [
        Client(index, f"instance-{index}" if static else None, session_ms, rebalance_ms)
        for index, (static, session_ms, rebalance_ms) in enumerate(scenario["clients"])
    ]
    with predictable_member_ids():
        world = World(
            clients,
            delay_writes=scenario["delay_writes"],
            initial_delay_ms=scenario["initial_delay_ms"],
            coordinator=coordinator,
            stubborn=stubborn,
        )
        for client in clients:
            world.start(client)
        world.drain()
        world.check()
        for action, argument in scenario["steps"]:
            world.step(action, argument)
            world.drain()
            world.check()
        settle(world)


def settle(world: World) -> None:
    """With writes succeeding and no more faults, the group settles; then all crash."""
    world.delay_writes = False
    world.complete_writes(len(world.writes), ErrorCode.NONE)
    world.drain()
    for _ in range(400):
        if world.quiet() or not any(c.alive for c in world.clients):
            break
        world.advance(100)
        world.check()
    if any(c.alive for c in world.clients):
        assert world.quiet(), "the group never settled with its live clients"
        world.check()
    for client in world.clients:
        world.crash(client)
    world.advance(60_000)
    group = world.group()
    assert group is None or group.state == GroupState.EMPTY, "no live member, yet not Empty"


# --- the properties ---------------------------------------------------------------------------

SIMULATION = settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@SIMULATION
@given(scenarios)
def test_group_keeps_its_invariants_under_churn_and_faults(scenario: dict[str, Any]) -> None:
    run(scenario)


class KeepsMembersThatDidNotRejoin(GroupCoordinator):
    """Broken on purpose: a dynamic member that missed the join phase stays in the group."""

    def _drop_members_that_did_not_rejoin(self, group: ClassicGroup) -> None:
        pass


NEGATIVE = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    phases=[Phase.generate],
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_checker_catches_a_client_that_keeps_its_old_partitions() -> None:
    @NEGATIVE
    @given(scenarios)
    def stubborn_first_client(scenario: dict[str, Any]) -> None:
        run(scenario, stubborn=frozenset({0}))

    with pytest.raises(InvariantViolation, match="owned by both"):
        stubborn_first_client()


def test_checker_catches_a_coordinator_that_keeps_members_that_did_not_rejoin() -> None:
    @NEGATIVE
    @given(scenarios)
    def broken_coordinator(scenario: dict[str, Any]) -> None:
        run(scenario, coordinator=KeepsMembersThatDidNotRejoin)

    with pytest.raises(InvariantViolation, match="was not told"):
        broken_coordinator()
