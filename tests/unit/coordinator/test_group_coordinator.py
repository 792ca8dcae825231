"""The classic group coordinator core, one rule per test, driven without I/O.

`Driver` stands in for `coordinator/runtime.py`: it owns the clock, completes the core's writes
(at once and successfully unless a test holds or fails them), keeps every durable record so a
fresh core can replay it, and collects the responses the core hands to its callbacks. The
rules and error codes are Kafka's classic group coordinator's (GroupMetadataManager and
ClassicGroup in Kafka's group-coordinator module); each test names the rule it pins.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import pytest

from odradek.common.errors import ErrorCode
from odradek.coordinator.group.classic import GroupState
from odradek.coordinator.group.coordinator import GroupCoordinator
from odradek.coordinator.group.messages import (
    CommittedOffset,
    GroupConfig,
    JoinRequest,
    JoinResult,
    OffsetCommit,
    SyncResult,
    Write,
)
from odradek.coordinator.group.records import (
    GroupKey,
    GroupValue,
    OffsetKey,
    OffsetValue,
    decode,
    decode_consumer_group_record,
    encode_key,
    encode_value,
    key_version,
)

T = TypeVar("T")
GROUP = "g"
RANGE = "range"
SESSION_MS = 10_000
REBALANCE_MS = 30_000
DELAY_MS = 3_000
RETENTION_MS = 60_000


# --- consumer protocol bytes, built by hand ---------------------------------------------------


def _string(value: str) -> bytes:
    data = value.encode()
    return struct.pack(">h", len(data)) + data


def subscription(*topics: str) -> bytes:
    """ConsumerProtocolSubscription v1: topics, null user data, no owned partitions."""
    body = struct.pack(">h", 1) + struct.pack(">i", len(topics))
    body += b"".join(_string(t) for t in topics)
    return body + struct.pack(">i", -1) + struct.pack(">i", 0)


def assignment(*pairs: tuple[str, int]) -> bytes:
    """ConsumerProtocolAssignment v0: [(topic, [partition])], null user data."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in pairs:
        by_topic.setdefault(topic, []).append(partition)
    body = struct.pack(">h", 0) + struct.pack(">i", len(by_topic))
    for topic, partitions in by_topic.items():
        body += _string(topic) + struct.pack(">i", len(partitions))
        body += b"".join(struct.pack(">i", p) for p in partitions)
    return body + struct.pack(">i", -1)


# --- the driver -------------------------------------------------------------------------------


@dataclass
class Box(Generic[T]):
    """What a callback received; a parked request has received nothing yet."""

    results: list[T] = field(default_factory=list)

    def __call__(self, result: T) -> None:
        self.results.append(result)

    @property
    def done(self) -> bool:
        return bool(self.results)

    @property
    def value(self) -> T:
        assert len(self.results) == 1, f"expected one response, got {self.results}"
        return self.results[0]


class Driver:
    def __init__(self, config: GroupConfig | None = None, now_ms: int = 1_000_000) -> None:
        self.config = config or GroupConfig()
        self.core = GroupCoordinator(self.config)
        self.now = now_ms
        self.hold = False  # leave writes queued in `held` instead of completing them
        self.fail_with: ErrorCode | None = None  # complete the next writes with this error
        self.held: list[Write] = []
        self.log: list[tuple[bytes, bytes | None]] = []  # durable records, in append order

    # writes and time

    def settle(self) -> None:
        while self.core.writes:
            writes, self.core.writes = self.core.writes, []
            for write in writes:
                if self.hold:
                    self.held.append(write)
                else:
                    self._finish(write, self.fail_with or ErrorCode.NONE)

    def _finish(self, write: Write, error: ErrorCode) -> None:
        assert write.partition == self.core.partition_for(self._group_of(write))
        if error == ErrorCode.NONE:
            self.log.extend(write.records)
        write.on_done(error)

    @staticmethod
    def _group_of(write: Write) -> str:
        key, value = write.records[0]
        if key_version(key) >= 3:  # a consumer group (KIP-848) record
            record = decode_consumer_group_record(key, value)
            assert record is not None
            return record.group_id
        decoded = decode(key, value)
        assert decoded is not None
        return decoded[0].group

    def release(self, error: ErrorCode = ErrorCode.NONE) -> None:
        held, self.held = self.held, []
        for write in held:
            self._finish(write, error)
        self.settle()

    def advance(self, ms: int) -> None:
        """Move the clock, firing each timer at its own deadline as the runtime's timer does."""
        target = self.now + ms
        while (deadline := self.core.next_deadline()) is not None and deadline <= target:
            self.now = max(self.now, deadline)
            self.core.poll(self.now)
            self.settle()
        self.now = target

    def advance_to_next_deadline(self) -> None:
        deadline = self.core.next_deadline()
        assert deadline is not None
        self.advance(max(deadline - self.now, 0))

    def complete(self, *boxes: Box[T]) -> None:
        """Let time pass until every one of these parked requests is answered."""
        for _ in range(100):
            if all(box.done for box in boxes):
                return
            self.advance_to_next_deadline()
        raise AssertionError("requests still parked")

    # requests

    def join(
        self,
        member_id: str = "",
        *,
        group: str = GROUP,
        instance: str | None = None,
        protocols: Iterable[tuple[str, bytes]] = ((RANGE, b"meta"),),
        protocol_type: str = "consumer",
        session_ms: int = SESSION_MS,
        rebalance_ms: int = REBALANCE_MS,
        version: int = 9,
        client_id: str = "client",
    ) -> Box[JoinResult]:
        box: Box[JoinResult] = Box()
        request = JoinRequest(
            group_id=group,
            member_id=member_id,
            group_instance_id=instance,
            client_id=client_id,
            client_host="/10.0.0.1",
            session_timeout_ms=session_ms,
            rebalance_timeout_ms=rebalance_ms,
            protocol_type=protocol_type,
            protocols=tuple(protocols),
            require_known_member_id=version >= 4,
            version=version,
        )
        self.core.join_group(request, self.now, box)
        self.settle()
        return box

    def join_new(self, **kwargs: object) -> tuple[str, Box[JoinResult]]:
        """A new dynamic member the way a v4+ client joins: ask for an id, then join with it."""
        first = self.join(**kwargs)  # type: ignore[arg-type]
        assert first.value.error == ErrorCode.MEMBER_ID_REQUIRED
        member_id = first.value.member_id
        return member_id, self.join(member_id, **kwargs)  # type: ignore[arg-type]

    def sync(
        self,
        member_id: str,
        generation: int,
        assignments: dict[str, bytes] | None = None,
        *,
        group: str = GROUP,
        instance: str | None = None,
    ) -> Box[SyncResult]:
        box: Box[SyncResult] = Box()
        self.core.sync_group(
            group, generation, member_id, instance, "consumer", RANGE, assignments or {},
            self.now, box,
        )  # fmt: skip
        self.settle()
        return box

    def heartbeat(
        self, member_id: str, generation: int, *, group: str = GROUP, instance: str | None = None
    ) -> ErrorCode:
        error = self.core.heartbeat(group, generation, member_id, instance, self.now)
        self.settle()
        return error

    def leave(
        self, *members: tuple[str, str | None], group: str = GROUP
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        outcome = self.core.leave_group(group, list(members), self.now)
        self.settle()
        return outcome

    def commit(
        self,
        offsets: dict[tuple[str, int], int],
        *,
        generation: int = -1,
        member_id: str = "",
        instance: str | None = None,
        group: str = GROUP,
        metadata: str = "",
        retention_ms: int = -1,
        version: int = 9,
    ) -> Box[list[ErrorCode]]:
        box: Box[list[ErrorCode]] = Box()
        commits = [OffsetCommit(t, p, o, 5, metadata) for (t, p), o in offsets.items()]
        self.core.commit_offsets(
            group, generation, member_id, instance, commits, self.now, box, retention_ms, version
        )
        self.settle()
        return box

    def committed(self, group: str = GROUP) -> dict[tuple[str, int], int]:
        return {(c.topic, c.partition): c.offset for c in self.core.fetch_offsets(group, None)}

    def delete_groups(self, *group_ids: str) -> Box[list[ErrorCode]]:
        box: Box[list[ErrorCode]] = Box()
        self.core.delete_groups(list(group_ids), self.now, box)
        self.settle()
        return box

    def delete_offsets(
        self, partitions: list[tuple[str, int]], group: str = GROUP
    ) -> Box[tuple[ErrorCode, list[ErrorCode]]]:
        box: Box[tuple[ErrorCode, list[ErrorCode]]] = Box()
        self.core.delete_offsets(group, partitions, self.now, lambda e, es: box((e, es)))
        self.settle()
        return box

    # views

    def state(self, group: str = GROUP) -> GroupState | None:
        found = self.core.groups.get(group)
        return None if found is None else found.state

    def members(self, group: str = GROUP) -> set[str]:
        return set(self.core.groups[group].members)

    def generation(self, group: str = GROUP) -> int:
        return self.core.groups[group].generation

    def group_records(self, group: str = GROUP) -> list[GroupValue | None]:
        found: list[GroupValue | None] = []
        for key, value in self.log:
            decoded = decode(key, value)
            assert decoded is not None
            if isinstance(decoded[0], GroupKey) and decoded[0].group == group:
                assert decoded[1] is None or isinstance(decoded[1], GroupValue)
                found.append(decoded[1])
        return found

    def restart(self, config: GroupConfig | None = None) -> None:
        """A new coordinator (with `config` if given) takes over from the durable records."""
        self.config = config or self.config
        self.core = self.reloaded()

    def reloaded(self) -> GroupCoordinator:
        """A fresh core that loaded every durable record, as a new coordinator does."""
        fresh = GroupCoordinator(self.config)
        for key, value in self.log:
            fresh.replay(key, value)
        fresh.finish_loading(self.now)
        return fresh


def stable_group(
    driver: Driver,
    count: int,
    *,
    instances: Iterable[str | None] = (),
    rebalance_ms: int = REBALANCE_MS,
) -> tuple[list[str], int]:
    """`count` members joined during the initial delay and synced: (member ids, generation).

    The first id is the leader; each member is assigned `assignment(("t", index))`.
    """
    wanted = list(instances) + [None] * (count - len(list(instances)))
    boxes: list[Box[JoinResult]] = []
    for index, instance in enumerate(wanted):
        if instance is None:
            _, box = driver.join_new(client_id=f"c{index}", rebalance_ms=rebalance_ms)
        else:
            box = driver.join(instance=instance, client_id=f"c{index}", rebalance_ms=rebalance_ms)
        boxes.append(box)
    driver.complete(*boxes)  # the initial delay, extended while members joined during it
    results = [box.value for box in boxes]
    assert all(r.error == ErrorCode.NONE for r in results)
    generation = results[0].generation
    ids = [r.member_id for r in results]
    leader = results[0].leader
    assert leader == ids[0]
    plan = {member_id: assignment(("t", index)) for index, member_id in enumerate(ids)}
    followers = [driver.sync(m, generation) for m in ids[1:]]
    leader_sync = driver.sync(leader, generation, plan)
    for member_id, box in zip(ids, [leader_sync, *followers], strict=True):
        assert box.value == SyncResult(ErrorCode.NONE, "consumer", RANGE, plan[member_id])
    assert driver.state() == GroupState.STABLE
    return ids, generation


# --- JoinGroup: new members -------------------------------------------------------------------


def test_v4_join_without_member_id_is_told_member_id_required_and_joins_with_it() -> None:
    driver = Driver()
    first = driver.join(client_id="app")
    assert first.value.error == ErrorCode.MEMBER_ID_REQUIRED
    member_id = first.value.member_id
    assert member_id.startswith("app-")
    assert driver.members() == set()  # pending: not a member until it comes back
    second = driver.join(member_id, client_id="app")
    assert driver.members() == {member_id}
    driver.advance(DELAY_MS)
    assert second.value.error == ErrorCode.NONE
    assert second.value.member_id == member_id
    assert second.value.generation == 1


def test_v3_join_without_member_id_becomes_a_member_at_once() -> None:
    driver = Driver()
    box = driver.join(version=3)
    assert not box.done
    assert len(driver.members()) == 1
    driver.advance(DELAY_MS)
    assert box.value.error == ErrorCode.NONE


def test_pending_member_that_never_comes_back_expires_after_its_session_timeout() -> None:
    driver = Driver()
    member_id = driver.join().value.member_id
    driver.advance(SESSION_MS)
    rejoin = driver.join(member_id)
    assert rejoin.value.error == ErrorCode.UNKNOWN_MEMBER_ID


def test_a_rebalance_waits_for_a_pending_member_until_it_expires() -> None:
    driver = Driver()
    (leader,), generation = stable_group(driver, 1)
    driver.join(client_id="late")  # pending: told MEMBER_ID_REQUIRED, never returns
    rejoin = driver.join(leader)  # the leader's JoinGroup starts a rebalance
    assert driver.state() == GroupState.PREPARING_REBALANCE
    driver.advance(SESSION_MS - 1)
    assert not rejoin.done
    driver.advance(1)
    assert rejoin.value.error == ErrorCode.NONE
    assert rejoin.value.generation == generation + 1


# --- JoinGroup: the initial rebalance delay ---------------------------------------------------


def test_first_join_of_an_empty_group_waits_the_initial_rebalance_delay() -> None:
    driver = Driver()
    _, box = driver.join_new()
    assert driver.state() == GroupState.PREPARING_REBALANCE
    driver.advance(DELAY_MS - 1)
    assert not box.done
    driver.advance(1)
    assert box.value.error == ErrorCode.NONE
    assert driver.state() == GroupState.COMPLETING_REBALANCE


def test_initial_delay_is_extended_while_members_keep_joining() -> None:
    driver = Driver()
    _, first = driver.join_new()
    driver.advance(2_000)
    _, second = driver.join_new()
    driver.advance(1_000)  # the first delay ends, but someone joined during it: wait again
    assert not first.done
    driver.advance(DELAY_MS - 1)
    assert not first.done
    driver.advance(1)  # nobody joined during the second delay
    assert first.value.error == ErrorCode.NONE
    assert second.value.generation == first.value.generation == 1
    assert len(first.value.members) == 2


def test_initial_delay_stops_at_the_rebalance_timeout_even_if_members_keep_joining() -> None:
    driver = Driver()
    _, first = driver.join_new(rebalance_ms=10_000)
    for _ in range(4):  # t = 2000, 4000, 6000, 8000: a join inside every delay
        driver.advance(2_000)
        driver.join_new(rebalance_ms=10_000)
    driver.advance(1_000)  # t = 9000: delays ended at 3000, 6000, 9000; 1000 ms remain
    assert not first.done
    driver.join_new(rebalance_ms=10_000)
    driver.advance(999)
    assert not first.done
    driver.advance(1)  # t = 10000: the rebalance timeout, though a member joined at 9000
    assert first.value.error == ErrorCode.NONE
    assert len(first.value.members) == 6


def test_zero_initial_delay_completes_the_first_join_at_once() -> None:
    driver = Driver(GroupConfig(initial_rebalance_delay_ms=0))
    _, box = driver.join_new()
    assert box.value.error == ErrorCode.NONE


# --- JoinGroup: completing the join phase ------------------------------------------------------


def test_join_completes_as_soon_as_every_known_member_has_rejoined() -> None:
    driver = Driver()
    (leader, follower), generation = stable_group(driver, 2)
    first = driver.join(leader)
    assert not first.done
    second = driver.join(follower)
    assert first.value.generation == second.value.generation == generation + 1


def test_join_completes_at_the_rebalance_timeout_without_members_that_did_not_rejoin() -> None:
    driver = Driver()
    (leader, follower), generation = stable_group(driver, 2)
    rejoin = driver.join(leader)
    for _ in range(REBALANCE_MS // 5_000 - 1):  # the follower is alive but does not rejoin
        driver.advance(5_000)
        assert driver.heartbeat(follower, generation) == ErrorCode.REBALANCE_IN_PROGRESS
    driver.advance(4_999)
    assert not rejoin.done
    # REBALANCE_MS after the rebalance began; the leader's session timer, renewed while it
    # waited, is due at the same millisecond and must not fire once the join renewed it again
    driver.advance(1)
    assert rejoin.value.error == ErrorCode.NONE
    assert driver.members() == {leader}
    assert [m[0] for m in rejoin.value.members] == [leader]
    assert driver.heartbeat(follower, generation) == ErrorCode.UNKNOWN_MEMBER_ID


def test_static_member_that_misses_a_rebalance_keeps_its_place_until_its_session_ends() -> None:
    driver = Driver()
    (leader, static), generation = stable_group(driver, 2, instances=[None, "i"])
    group = driver.core.groups[GROUP]
    group.members[static].session_timeout_ms = 60_000  # longer than the rebalance timeout
    driver.heartbeat(static, generation, instance="i")
    rejoin = driver.join(leader)  # a rebalance while the static member is restarting
    for _ in range(REBALANCE_MS // 5_000):
        driver.advance(5_000)
        driver.heartbeat(leader, generation)
    result = rejoin.value
    assert result.generation == generation + 1
    assert [m[0] for m in result.members] == [leader, static]  # the leader assigns to it too
    assert driver.members() == {leader, static}
    back = driver.join(static, instance="i")  # back with its id: the generation it missed
    assert back.value.generation == generation + 1 and back.value.members == ()
    driver.sync(leader, generation + 1, {leader: b"L", static: b"S"})
    assert driver.sync(static, generation + 1, instance="i").value.assignment == b"S"


def test_a_static_leader_that_misses_a_rebalance_hands_leadership_to_a_member_that_joined() -> None:
    driver = Driver()
    (static, follower), generation = stable_group(driver, 2, instances=["i", None])
    driver.core.groups[GROUP].members[static].session_timeout_ms = 60_000
    driver.heartbeat(static, generation, instance="i")
    rejoin = driver.join(follower, protocols=[(RANGE, b"new")])
    driver.advance(REBALANCE_MS)
    assert rejoin.value.leader == follower
    assert {m[0] for m in rejoin.value.members} == {static, follower}


def test_rebalance_waits_while_only_static_members_that_did_not_rejoin_are_left() -> None:
    driver = Driver()
    (static, dynamic), generation = stable_group(driver, 2, instances=["i", None])
    driver.core.groups[GROUP].members[static].session_timeout_ms = 45_000
    driver.heartbeat(static, generation, instance="i")
    driver.leave((dynamic, None))
    driver.advance(REBALANCE_MS)  # nobody rejoined: no new generation yet
    assert driver.state() == GroupState.PREPARING_REBALANCE
    assert driver.generation() == generation
    driver.advance(45_000 - REBALANCE_MS)  # the static member's session ends
    assert driver.state() == GroupState.EMPTY
    assert driver.generation() == generation + 1


def test_leader_gets_the_member_list_and_followers_do_not() -> None:
    driver = Driver()
    _, first = driver.join_new(protocols=[(RANGE, b"a")])
    _, second = driver.join_new(protocols=[(RANGE, b"b")])
    driver.complete(first, second)
    leader, follower = first.value, second.value
    assert leader.leader == follower.leader == leader.member_id
    assert leader.members == ((leader.member_id, None, b"a"), (follower.member_id, None, b"b"))
    assert follower.members == ()
    assert leader.protocol_type == "consumer" and leader.protocol == RANGE


def test_protocol_is_chosen_by_vote_among_protocols_every_member_supports() -> None:
    driver = Driver()
    boxes = [
        driver.join_new(protocols=[("x", b""), ("y", b""), ("z", b"")])[1],
        driver.join_new(protocols=[("y", b""), ("x", b"")])[1],
        driver.join_new(protocols=[("y", b""), ("x", b"")])[1],
        driver.join_new(protocols=[("z", b""), ("y", b""), ("x", b"")])[1],
    ]
    driver.complete(*boxes)
    # z is not supported by everyone, so it gets no vote: x gets 1, y gets 3
    assert {box.value.protocol for box in boxes} == {"y"}


@pytest.mark.parametrize(
    ("protocol_type", "protocols"),
    [
        ("connect", [(RANGE, b"")]),  # another protocol type than the group's
        ("consumer", [("roundrobin", b"")]),  # no protocol in common with the members
        ("consumer", []),  # no protocols at all
        ("", [(RANGE, b"")]),  # no protocol type
    ],
)
def test_inconsistent_group_protocol(
    protocol_type: str, protocols: list[tuple[str, bytes]]
) -> None:
    driver = Driver()
    stable_group(driver, 1)
    box = driver.join(protocol_type=protocol_type, protocols=protocols)
    assert box.value.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    assert driver.state() == GroupState.STABLE


def test_the_only_member_may_change_protocols_but_not_the_protocol_type() -> None:
    driver = Driver()
    (member,), _ = stable_group(driver, 1)
    other_type = driver.join(member, protocol_type="connect")
    assert other_type.value.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    switched = driver.join(member, protocols=[("sticky", b"")])
    assert switched.value.error == ErrorCode.NONE and switched.value.protocol == "sticky"


def test_an_empty_group_refuses_a_member_without_protocols() -> None:
    driver = Driver()
    assert driver.join(protocols=[]).value.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL


@pytest.mark.parametrize("session_ms", [5_999, 1_800_001])
def test_session_timeout_outside_the_broker_bounds_is_invalid(session_ms: int) -> None:
    driver = Driver()
    box = driver.join(session_ms=session_ms)
    assert box.value.error == ErrorCode.INVALID_SESSION_TIMEOUT
    assert driver.state() is None


def test_group_max_size_refuses_members_beyond_it() -> None:
    driver = Driver(GroupConfig(max_size=2))
    stable_group(driver, 2)
    box = driver.join()
    assert box.value == JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED)
    assert driver.state() == GroupState.STABLE


def test_members_told_member_id_required_do_not_count_against_the_max_size() -> None:
    driver = Driver(GroupConfig(max_size=2))
    stable_group(driver, 1)
    driver.join(client_id="gone")  # MEMBER_ID_REQUIRED, and never seen again
    member_id, box = driver.join_new()
    assert not box.done  # accepted: waiting for the rebalance it started
    assert member_id in driver.members()


def test_max_size_is_checked_again_when_a_pending_member_joins_with_its_id() -> None:
    driver = Driver(GroupConfig(max_size=1))
    first = driver.join().value.member_id  # an empty group tells everyone MEMBER_ID_REQUIRED
    second = driver.join().value.member_id
    driver.join(first)
    refused = driver.join(second)
    assert refused.value == JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED)
    assert driver.members() == {first}
    assert second not in driver.core.groups[GROUP].pending_members


def test_group_over_a_lowered_max_size_rebalances_at_load_and_sheds_the_last_to_rejoin() -> None:
    driver = Driver()
    (a, b, c), generation = stable_group(driver, 3)
    driver.restart(GroupConfig(max_size=2))
    assert driver.state() == GroupState.PREPARING_REBALANCE
    assert driver.heartbeat(c, generation) == ErrorCode.REBALANCE_IN_PROGRESS
    first, second = driver.join(a), driver.join(b)
    late = driver.join(c)
    assert late.value == JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED)
    assert first.value.generation == second.value.generation == generation + 1
    assert driver.members() == {a, b}


def test_static_member_replacing_itself_in_a_full_group_is_not_refused() -> None:
    driver = Driver(GroupConfig(max_size=1))
    stable_group(driver, 1, instances=["i"])
    assert driver.join(instance="i").value.error == ErrorCode.NONE


def test_empty_group_id_is_invalid() -> None:
    driver = Driver()
    assert driver.join(group="").value.error == ErrorCode.INVALID_GROUP_ID
    assert driver.sync("m", 1, group="").value.error == ErrorCode.INVALID_GROUP_ID
    assert driver.heartbeat("m", 1, group="") == ErrorCode.INVALID_GROUP_ID
    assert driver.leave(("m", None), group="") == (ErrorCode.INVALID_GROUP_ID, [])
    assert driver.commit({("t", 0): 1}, group="").value == [ErrorCode.INVALID_GROUP_ID]


def test_join_with_a_member_id_the_group_does_not_know_is_unknown_member_id() -> None:
    driver = Driver()
    assert driver.join("ghost").value.error == ErrorCode.UNKNOWN_MEMBER_ID
    stable_group(driver, 1)
    assert driver.join("ghost").value.error == ErrorCode.UNKNOWN_MEMBER_ID


def test_follower_rejoining_a_stable_group_unchanged_gets_the_current_generation() -> None:
    driver = Driver()
    (leader, follower), generation = stable_group(driver, 2)
    box = driver.join(follower)
    assert box.value.generation == generation
    assert box.value.leader == leader
    assert driver.state() == GroupState.STABLE


def test_member_rejoining_with_new_metadata_starts_a_rebalance() -> None:
    driver = Driver()
    (_, follower), _ = stable_group(driver, 2)
    box = driver.join(follower, protocols=[(RANGE, b"changed")])
    assert not box.done
    assert driver.state() == GroupState.PREPARING_REBALANCE


def test_lost_join_response_in_completing_rebalance_is_sent_again() -> None:
    driver = Driver()
    (leader, follower), generation = stable_group(driver, 2)
    driver.join(leader)
    driver.join(follower)
    assert driver.state() == GroupState.COMPLETING_REBALANCE
    again = driver.join(leader)
    assert again.value.generation == generation + 1
    assert len(again.value.members) == 2


# --- SyncGroup --------------------------------------------------------------------------------


def test_followers_wait_for_the_leaders_assignment() -> None:
    driver = Driver()
    _, first = driver.join_new()
    _, second = driver.join_new()
    driver.complete(first, second)
    leader, follower = first.value.member_id, second.value.member_id
    generation = first.value.generation
    waiting = driver.sync(follower, generation)
    assert not waiting.done
    assert driver.heartbeat(follower, generation) == ErrorCode.NONE
    driver.sync(leader, generation, {leader: b"L", follower: b"F"})
    assert waiting.value == SyncResult(ErrorCode.NONE, "consumer", RANGE, b"F")
    assert driver.state() == GroupState.STABLE


def test_leader_assignment_is_answered_only_once_the_group_record_is_durable() -> None:
    driver = Driver()
    _, first = driver.join_new()
    driver.advance(DELAY_MS)
    leader, generation = first.value.member_id, first.value.generation
    driver.hold = True
    box = driver.sync(leader, generation, {leader: b"L"})
    assert not box.done
    assert driver.state() == GroupState.COMPLETING_REBALANCE
    driver.release()
    assert box.value.assignment == b"L"
    (record,) = driver.group_records()
    assert record is not None and record.generation == generation
    assert [(m.member_id, m.assignment) for m in record.members] == [(leader, b"L")]


def test_sessions_renewed_when_a_slow_assignment_write_lands_count_from_then() -> None:
    driver = Driver()
    _, first = driver.join_new()
    _, second = driver.join_new()
    driver.complete(first, second)
    leader, follower = first.value.member_id, second.value.member_id
    generation = first.value.generation
    driver.hold = True
    driver.sync(leader, generation, {leader: b"L", follower: b"F"})
    waiting = driver.sync(follower, generation)
    for _ in range(3):  # the write takes 9 s; the follower heartbeats meanwhile
        driver.advance(3_000)
        assert driver.heartbeat(follower, generation) == ErrorCode.NONE
    driver.hold = False
    driver.release()
    assert waiting.value.assignment == b"F"
    driver.advance(SESSION_MS - 1)  # counted from the write's completion, not from the sync
    assert driver.members() == {leader, follower}


def test_sync_with_another_generation_is_illegal_generation() -> None:
    driver = Driver()
    (leader,), generation = stable_group(driver, 1)
    assert driver.sync(leader, generation + 1).value.error == ErrorCode.ILLEGAL_GENERATION


def test_sync_while_preparing_a_rebalance_is_rebalance_in_progress() -> None:
    driver = Driver()
    (leader, follower), generation = stable_group(driver, 2)
    driver.join(leader)
    assert driver.sync(follower, generation).value.error == ErrorCode.REBALANCE_IN_PROGRESS


def test_sync_in_a_stable_group_returns_the_stored_assignment() -> None:
    driver = Driver()
    (_, follower), generation = stable_group(driver, 2)
    again = driver.sync(follower, generation, {follower: b"ignored"})
    assert again.value == SyncResult(ErrorCode.NONE, "consumer", RANGE, assignment(("t", 1)))


def test_sync_from_an_unknown_member_is_unknown_member_id() -> None:
    driver = Driver()
    assert driver.sync("ghost", 1).value.error == ErrorCode.UNKNOWN_MEMBER_ID
    _, generation = stable_group(driver, 1)
    assert driver.sync("ghost", generation).value.error == ErrorCode.UNKNOWN_MEMBER_ID


def test_failed_assignment_write_fails_every_waiting_member_and_rebalances() -> None:
    driver = Driver()
    _, first = driver.join_new()
    _, second = driver.join_new()
    driver.complete(first, second)
    leader, follower = first.value.member_id, second.value.member_id
    generation = first.value.generation
    waiting = driver.sync(follower, generation)
    driver.hold = True
    leader_box = driver.sync(leader, generation, {leader: b"L", follower: b"F"})
    driver.hold = False
    driver.release(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    assert leader_box.value == SyncResult(ErrorCode.NOT_COORDINATOR)
    assert waiting.value == SyncResult(ErrorCode.NOT_COORDINATOR)
    assert driver.state() == GroupState.PREPARING_REBALANCE
    assert all(m.assignment == b"" for m in driver.core.groups[GROUP].members.values())
    assert driver.group_records() == []


def test_members_that_never_sync_are_removed_at_the_rebalance_timeout() -> None:
    driver = Driver()
    _, first = driver.join_new()
    _, second = driver.join_new()
    driver.complete(first, second)
    leader, follower = first.value.member_id, second.value.member_id
    generation = first.value.generation
    waiting = driver.sync(follower, generation)
    for _ in range(REBALANCE_MS // 5_000 - 1):  # the leader heartbeats but never syncs
        driver.advance(5_000)
        assert driver.heartbeat(leader, generation) == ErrorCode.NONE
    driver.advance(4_999)
    assert driver.members() == {leader, follower}  # the parked follower outlived its session
    driver.advance(1)
    assert driver.members() == {follower}
    assert waiting.value.error == ErrorCode.REBALANCE_IN_PROGRESS
    assert driver.state() == GroupState.PREPARING_REBALANCE


def test_member_that_never_syncs_is_removed_even_after_the_group_became_stable() -> None:
    driver = Driver()
    _, first = driver.join_new()
    _, second = driver.join_new()
    driver.complete(first, second)
    leader, follower = first.value.member_id, second.value.member_id
    generation = first.value.generation
    driver.sync(leader, generation, {leader: b"L", follower: b"F"})
    assert driver.state() == GroupState.STABLE
    for _ in range(REBALANCE_MS // 5_000 - 1):  # the follower heartbeats but never syncs
        driver.advance(5_000)
        assert driver.heartbeat(follower, generation) == ErrorCode.NONE
        driver.heartbeat(leader, generation)
    driver.advance(5_000)
    assert driver.members() == {leader}
    assert driver.state() == GroupState.PREPARING_REBALANCE


def test_once_every_member_synced_the_sync_timeout_is_off() -> None:
    driver = Driver()
    (leader, follower), generation = stable_group(driver, 2)
    assert driver.core.timers.deadline(("sync", GROUP, str(generation))) is None
    for _ in range(2 * REBALANCE_MS // 5_000):
        driver.advance(5_000)
        driver.heartbeat(leader, generation)
        driver.heartbeat(follower, generation)
    assert driver.members() == {leader, follower}


# --- Heartbeat --------------------------------------------------------------------------------


def test_new_member_parked_in_join_expires_after_the_new_member_join_timeout() -> None:
    driver = Driver()
    (old,), generation = stable_group(driver, 1, rebalance_ms=600_000)
    _, newcomer = driver.join_new(rebalance_ms=600_000)  # starts a rebalance; `old` never rejoins
    for _ in range(300_000 // 5_000 - 1):
        driver.advance(5_000)
        assert driver.heartbeat(old, generation) == ErrorCode.REBALANCE_IN_PROGRESS
    driver.advance(4_999)
    assert not newcomer.done
    driver.advance(1)
    assert newcomer.value.error == ErrorCode.UNKNOWN_MEMBER_ID
    assert driver.members() == {old}


# --- Heartbeat --------------------------------------------------------------------------------


def test_heartbeat_errors_per_state() -> None:
    driver = Driver()
    assert driver.heartbeat("m", 0) == ErrorCode.UNKNOWN_MEMBER_ID  # no such group
    (leader, follower), generation = stable_group(driver, 2)
    assert driver.heartbeat(follower, generation) == ErrorCode.NONE
    assert driver.heartbeat(follower, generation - 1) == ErrorCode.ILLEGAL_GENERATION
    assert driver.heartbeat("ghost", generation) == ErrorCode.UNKNOWN_MEMBER_ID
    driver.join(leader)
    assert driver.heartbeat(follower, generation) == ErrorCode.REBALANCE_IN_PROGRESS
    driver.join(follower)
    assert driver.state() == GroupState.COMPLETING_REBALANCE
    assert driver.heartbeat(follower, generation + 1) == ErrorCode.NONE
    driver.leave((leader, None), (follower, None))
    assert driver.state() == GroupState.EMPTY
    assert driver.heartbeat(follower, generation + 1) == ErrorCode.UNKNOWN_MEMBER_ID


def test_heartbeat_from_a_replaced_static_member_is_fenced() -> None:
    driver = Driver()
    (old,), generation = stable_group(driver, 1, instances=["i"])
    driver.join(instance="i")
    assert driver.heartbeat(old, generation, instance="i") == ErrorCode.FENCED_INSTANCE_ID


def test_heartbeat_to_a_group_being_deleted_is_coordinator_not_available() -> None:
    driver = Driver()
    driver.commit({("t", 0): 1})
    driver.hold = True
    driver.delete_groups(GROUP)
    assert driver.state() == GroupState.DEAD
    assert driver.heartbeat("m", -1) == ErrorCode.COORDINATOR_NOT_AVAILABLE


def test_a_group_being_deleted_refuses_everything_with_coordinator_not_available() -> None:
    driver = Driver()
    driver.commit({("t", 0): 1})
    driver.hold = True
    driver.delete_groups(GROUP)
    unavailable = ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert driver.join().value.error == unavailable
    assert driver.sync("m", 0).value.error == unavailable
    assert driver.leave(("m", None)) == (unavailable, [])
    assert driver.commit({("t", 0): 2}).value == [unavailable]
    assert driver.delete_offsets([("t", 0)]).value == (ErrorCode.GROUP_ID_NOT_FOUND, [])
    assert driver.delete_groups(GROUP).value == [ErrorCode.GROUP_ID_NOT_FOUND]


def test_session_expiry_removes_the_member_and_rebalances() -> None:
    driver = Driver()
    (leader, follower), generation = stable_group(driver, 2)
    driver.advance(SESSION_MS // 2)  # the leader keeps its session alive, the follower is silent
    assert driver.heartbeat(leader, generation) == ErrorCode.NONE
    driver.advance(SESSION_MS // 2 - 1)
    assert driver.members() == {leader, follower}
    driver.advance(1)
    assert driver.members() == {leader}
    assert driver.state() == GroupState.PREPARING_REBALANCE
    assert driver.heartbeat(leader, generation) == ErrorCode.REBALANCE_IN_PROGRESS
    box = driver.join(leader)
    assert box.value.generation == generation + 1  # the only member has rejoined


# --- LeaveGroup -------------------------------------------------------------------------------


def test_leave_removes_the_member_and_rebalances() -> None:
    driver = Driver()
    (leader, follower), _ = stable_group(driver, 2)
    assert driver.leave((follower, None)) == (ErrorCode.NONE, [ErrorCode.NONE])
    assert driver.members() == {leader}
    assert driver.state() == GroupState.PREPARING_REBALANCE


def test_batched_leave_answers_each_member() -> None:
    driver = Driver()
    (a, b, c), generation = stable_group(driver, 3)
    outcome = driver.leave((a, None), ("ghost", None), (c, None))
    assert outcome == (
        ErrorCode.NONE,
        [ErrorCode.NONE, ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.NONE],
    )
    assert driver.members() == {b}
    assert driver.join(b).value.generation == generation + 1


def test_last_member_leaving_empties_the_group_and_persists_it() -> None:
    driver = Driver()
    (a, b), generation = stable_group(driver, 2)
    driver.leave((a, None), (b, None))
    assert driver.state() == GroupState.EMPTY
    assert driver.generation() == generation + 1
    empty = driver.group_records()[-1]
    assert empty is not None and empty.members == () and empty.generation == generation + 1


def test_static_member_leaves_by_instance_id_alone() -> None:
    driver = Driver()
    (_, static), _ = stable_group(driver, 2, instances=[None, "i"])
    assert driver.leave(("", "i")) == (ErrorCode.NONE, [ErrorCode.NONE])
    assert static not in driver.members()


def test_leave_with_a_stale_member_id_for_an_instance_is_fenced() -> None:
    driver = Driver()
    (static,), _ = stable_group(driver, 1, instances=["i"])
    outcome = driver.leave(("someone-else", "i"), ("", "unknown-instance"))
    assert outcome == (ErrorCode.NONE, [ErrorCode.FENCED_INSTANCE_ID, ErrorCode.UNKNOWN_MEMBER_ID])
    assert driver.members() == {static}


def test_leave_of_an_unknown_group_is_unknown_member_id_per_member() -> None:
    driver = Driver()
    assert driver.leave(("m", None)) == (ErrorCode.NONE, [ErrorCode.UNKNOWN_MEMBER_ID])


def test_pending_member_may_leave() -> None:
    driver = Driver()
    (leader,), _ = stable_group(driver, 1)
    pending = driver.join().value.member_id
    rejoin = driver.join(leader)
    assert not rejoin.done  # waits for the pending member
    assert driver.leave((pending, None)) == (ErrorCode.NONE, [ErrorCode.NONE])
    assert rejoin.value.error == ErrorCode.NONE


def test_leaving_member_parked_in_join_is_answered_unknown_member_id() -> None:
    driver = Driver()
    (leader, _), _ = stable_group(driver, 2)
    parked = driver.join(leader)
    driver.leave((leader, None))
    assert parked.value.error == ErrorCode.UNKNOWN_MEMBER_ID


# --- static membership (KIP-345) --------------------------------------------------------------


def test_member_ids_are_named_after_the_instance_or_the_client() -> None:
    driver = Driver()
    assert driver.join(client_id="app").value.member_id.startswith("app-")
    static = driver.join(client_id="app", instance="host-7")
    driver.complete(static)
    assert static.value.member_id.startswith("host-7-")


def test_static_member_rejoining_a_stable_group_keeps_its_assignment_without_rebalance() -> None:
    driver = Driver()
    (leader, old), generation = stable_group(driver, 2, instances=[None, "i"])
    records_before = len(driver.group_records())
    box = driver.join(instance="i", client_id="c1")
    result = box.value
    assert result.error == ErrorCode.NONE
    new = result.member_id
    assert new != old and result.generation == generation and result.leader == leader
    assert driver.state() == GroupState.STABLE
    assert driver.members() == {leader, new}
    # the new id is persisted, with the assignment the old id had
    record = driver.group_records()[-1]
    assert len(driver.group_records()) == records_before + 1
    assert record is not None
    assert {m.member_id: m.assignment for m in record.members}[new] == assignment(("t", 1))
    assert driver.sync(new, generation, instance="i").value.assignment == assignment(("t", 1))
    # the old id is fenced everywhere
    assert driver.heartbeat(old, generation, instance="i") == ErrorCode.FENCED_INSTANCE_ID
    assert driver.sync(old, generation, instance="i").value.error == ErrorCode.FENCED_INSTANCE_ID
    assert driver.join(old, instance="i").value.error == ErrorCode.FENCED_INSTANCE_ID
    fenced = driver.commit({("t", 1): 3}, generation=generation, member_id=old, instance="i")
    assert fenced.value == [ErrorCode.FENCED_INSTANCE_ID]


def test_static_member_rejoining_with_other_protocols_that_change_the_choice_rebalances() -> None:
    driver = Driver()
    stable_group(driver, 1, instances=["i"])
    box = driver.join(instance="i", protocols=[("sticky", b""), (RANGE, b"")])
    assert driver.state() == GroupState.COMPLETING_REBALANCE  # it was the only member
    assert box.value.protocol == "sticky"


def test_static_member_rejoining_during_completing_rebalance_starts_a_new_rebalance() -> None:
    driver = Driver()
    (leader, old), generation = stable_group(driver, 2, instances=[None, "i"])
    first = driver.join(leader)
    driver.join(old, instance="i")
    assert driver.state() == GroupState.COMPLETING_REBALANCE
    parked_sync = driver.sync(old, generation + 1, instance="i")
    box = driver.join(instance="i")  # the static member restarted: unknown member id
    assert parked_sync.value.error == ErrorCode.FENCED_INSTANCE_ID
    assert driver.state() == GroupState.PREPARING_REBALANCE
    assert first.value.generation == generation + 1
    driver.join(leader)
    assert box.value.generation == generation + 2
    assert box.value.member_id != old


def test_failed_write_of_a_static_rejoin_restores_the_old_member_id() -> None:
    driver = Driver()
    (old,), generation = stable_group(driver, 1, instances=["i"])
    driver.hold = True
    box = driver.join(instance="i", session_ms=20_000)
    driver.hold = False
    driver.release(ErrorCode.REQUEST_TIMED_OUT)
    assert box.value == JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)
    assert driver.members() == {old}
    assert driver.heartbeat(old, generation, instance="i") == ErrorCode.NONE
    assert driver.core.groups[GROUP].members[old].session_timeout_ms == SESSION_MS
    driver.advance(SESSION_MS)  # and the restored member's session runs: it is silent now
    assert driver.state() == GroupState.EMPTY


def test_static_member_replaced_during_its_first_join_waits_like_a_known_member() -> None:
    driver = Driver(GroupConfig(initial_rebalance_delay_ms=0))
    (leader,), generation = stable_group(driver, 1)
    first = driver.join(instance="i")  # new: starts a rebalance the leader is slow to join
    second = driver.join(instance="i")  # its process restarted: replaces the first
    assert first.value.error == ErrorCode.FENCED_INSTANCE_ID
    for _ in range(REBALANCE_MS // 5_000):  # the leader heartbeats; the static member waits
        driver.advance(5_000)
        driver.heartbeat(leader, generation)
    assert second.value.error == ErrorCode.NONE  # the rebalance timeout, not its session
    assert second.value.member_id in driver.members()


def test_static_rejoin_waiting_for_its_write_outlives_its_session() -> None:
    driver = Driver()
    stable_group(driver, 1, instances=["i"])
    driver.hold = True
    box = driver.join(instance="i")
    driver.advance(2 * SESSION_MS)  # the write is slow; the member cannot heartbeat yet
    assert len(driver.members()) == 1
    driver.hold = False
    driver.release()
    assert box.value.error == ErrorCode.NONE
    assert driver.members() == {box.value.member_id}


def test_static_member_removed_while_its_rejoin_is_written_is_told_at_once() -> None:
    driver = Driver()
    stable_group(driver, 2, instances=[None, "i"])
    driver.hold = True
    box = driver.join(instance="i")
    assert driver.leave(("", "i")) == (ErrorCode.NONE, [ErrorCode.NONE])  # an operator
    assert box.value == JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, box.value.member_id)
    driver.hold = False
    driver.release()
    assert len(box.results) == 1  # the write's completion does not answer a second time


@pytest.mark.parametrize("version", [8, 9])
def test_static_leader_rejoining_a_stable_group_learns_whether_it_leads(version: int) -> None:
    driver = Driver()
    (old, follower), generation = stable_group(driver, 2, instances=["i", None])
    result = driver.join(instance="i", version=version).value
    assert result.error == ErrorCode.NONE and result.generation == generation
    if version >= 9:  # KIP-814: it leads (and watches metadata) but must not reassign
        assert result.leader == result.member_id
        assert result.skip_assignment
        assert {m[0] for m in result.members} == {result.member_id, follower}
    else:  # named the old leader id, it acts as a follower and syncs for its assignment
        assert result.leader == old
        assert not result.skip_assignment and result.members == ()
    assert driver.core.groups[GROUP].leader == result.member_id


# --- offsets ----------------------------------------------------------------------------------


def test_simple_commit_creates_a_group_and_is_fetched() -> None:
    driver = Driver()
    box = driver.commit({("t", 0): 10, ("t", 1): 20}, metadata="m")
    assert box.value == [ErrorCode.NONE, ErrorCode.NONE]
    assert driver.state() == GroupState.EMPTY
    fetched = driver.core.fetch_offsets(GROUP, [("t", 0), ("u", 0)])
    assert fetched == [CommittedOffset("t", 0, 10, 5, "m"), CommittedOffset("u", 0, -1, -1, "")]


def test_fetch_of_an_unknown_group_is_minus_one() -> None:
    driver = Driver()
    assert driver.core.fetch_offsets("nobody", [("t", 0)]) == [CommittedOffset("t", 0, -1, -1, "")]
    assert driver.core.fetch_offsets("nobody", None) == []


def test_simple_commit_is_refused_once_the_group_has_members() -> None:
    driver = Driver()
    stable_group(driver, 1)
    assert driver.commit({("t", 0): 1}).value == [ErrorCode.UNKNOWN_MEMBER_ID]


@pytest.mark.parametrize(
    ("version", "expected"),
    [(8, ErrorCode.ILLEGAL_GENERATION), (9, ErrorCode.GROUP_ID_NOT_FOUND)],
)
def test_commit_with_a_generation_to_an_unknown_group_is_refused(
    version: int, expected: ErrorCode
) -> None:
    driver = Driver()
    box = driver.commit({("t", 0): 1}, generation=1, member_id="m", version=version)
    assert box.value == [expected]
    assert driver.state() is None


def test_member_commit_checks_member_and_generation() -> None:
    driver = Driver()
    (leader,), generation = stable_group(driver, 1)
    ok = driver.commit({("t", 0): 1}, generation=generation, member_id=leader)
    assert ok.value == [ErrorCode.NONE]
    unknown = driver.commit({("t", 0): 2}, generation=generation, member_id="ghost")
    assert unknown.value == [ErrorCode.UNKNOWN_MEMBER_ID]
    stale = driver.commit({("t", 0): 3}, generation=generation - 1, member_id=leader)
    assert stale.value == [ErrorCode.ILLEGAL_GENERATION]
    assert driver.committed() == {("t", 0): 1}


def test_commit_during_completing_rebalance_is_rebalance_in_progress() -> None:
    driver = Driver()
    (leader,), generation = stable_group(driver, 1)
    driver.join(leader)
    assert driver.state() == GroupState.COMPLETING_REBALANCE
    box = driver.commit({("t", 0): 1}, generation=generation + 1, member_id=leader)
    assert box.value == [ErrorCode.REBALANCE_IN_PROGRESS]


def test_commit_during_completing_rebalance_checks_member_and_generation_first() -> None:
    driver = Driver()
    (leader,), generation = stable_group(driver, 1)
    driver.join(leader)
    assert driver.state() == GroupState.COMPLETING_REBALANCE
    stale = driver.commit({("t", 0): 1}, generation=generation, member_id=leader)
    assert stale.value == [ErrorCode.ILLEGAL_GENERATION]
    unknown = driver.commit({("t", 0): 1}, generation=generation + 1, member_id="ghost")
    assert unknown.value == [ErrorCode.UNKNOWN_MEMBER_ID]
    assert driver.commit({("t", 0): 1}).value == [ErrorCode.UNKNOWN_MEMBER_ID]  # simple commit


def test_commit_during_preparing_rebalance_with_the_current_generation_is_accepted() -> None:
    driver = Driver()
    (leader, follower), generation = stable_group(driver, 2)
    driver.join(leader)
    box = driver.commit({("t", 1): 7}, generation=generation, member_id=follower)
    assert box.value == [ErrorCode.NONE]


def test_too_large_metadata_fails_only_its_partition() -> None:
    driver = Driver(GroupConfig(offset_metadata_max_bytes=4))
    box = driver.commit({("t", 0): 1}, metadata="12345")
    assert box.value == [ErrorCode.OFFSET_METADATA_TOO_LARGE]
    assert driver.committed() == {}
    assert driver.commit({("t", 0): 1}, metadata="1234").value == [ErrorCode.NONE]


def test_metadata_size_is_counted_in_java_chars_as_kafka_does() -> None:
    driver = Driver(GroupConfig(offset_metadata_max_bytes=4))
    assert driver.commit({("t", 0): 1}, metadata="ééé€").value == [ErrorCode.NONE]  # 9 bytes
    assert driver.commit({("t", 0): 1}, metadata="é🙂é").value == [ErrorCode.NONE]  # 4 units
    too_long = driver.commit({("t", 0): 1}, metadata="🙂🙂é")  # 5 UTF-16 units
    assert too_long.value == [ErrorCode.OFFSET_METADATA_TOO_LARGE]


def test_failed_commit_write_leaves_offsets_unchanged() -> None:
    driver = Driver()
    driver.commit({("t", 0): 1})
    driver.fail_with = ErrorCode.NOT_ENOUGH_REPLICAS
    box = driver.commit({("t", 0): 2})
    assert box.value == [ErrorCode.COORDINATOR_NOT_AVAILABLE]
    assert driver.committed() == {("t", 0): 1}
    driver.fail_with = ErrorCode.RECORD_LIST_TOO_LARGE
    assert driver.commit({("t", 0): 3}).value == [ErrorCode.INVALID_COMMIT_OFFSET_SIZE]
    assert driver.committed() == {("t", 0): 1}


def test_a_simple_commit_that_stores_nothing_leaves_no_group_behind() -> None:
    driver = Driver(GroupConfig(offset_metadata_max_bytes=1))
    driver.fail_with = ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert driver.commit({("t", 0): 1}).value == [ErrorCode.NOT_COORDINATOR]
    driver.fail_with = None
    assert driver.commit({("t", 0): 1}, metadata="xx").value == [
        ErrorCode.OFFSET_METADATA_TOO_LARGE
    ]
    assert driver.state() is None
    assert driver.core.list_groups() == []


def test_commit_is_visible_only_once_durable() -> None:
    driver = Driver()
    driver.hold = True
    box = driver.commit({("t", 0): 1})
    assert not box.done and driver.committed() == {}
    driver.release()
    assert box.value == [ErrorCode.NONE]
    assert driver.committed() == {("t", 0): 1}


def test_member_commit_keeps_its_session_alive() -> None:
    driver = Driver()
    (leader,), generation = stable_group(driver, 1)
    for _ in range(4):
        driver.advance(SESSION_MS // 2)
        driver.commit({("t", 0): 1}, generation=generation, member_id=leader)
    assert driver.members() == {leader}


# --- load -------------------------------------------------------------------------------------


def test_replaying_the_written_records_rebuilds_groups_and_offsets() -> None:
    driver = Driver()
    (leader, follower), generation = stable_group(driver, 2, instances=[None, "i"])
    driver.commit({("t", 0): 11}, generation=generation, member_id=leader)
    driver.commit({("u", 3): 5}, group="simple")
    fresh = driver.reloaded()
    group = fresh.groups[GROUP]
    assert group.state == GroupState.STABLE
    assert group.generation == generation
    assert group.leader == leader
    assert group.protocol_type == "consumer" and group.protocol == RANGE
    assert set(group.members) == {leader, follower}
    assert group.static_members == {"i": follower}
    assert group.members[follower].assignment == assignment(("t", 1))
    assert fresh.fetch_offsets(GROUP, [("t", 0)])[0].offset == 11
    assert fresh.groups["simple"].state == GroupState.EMPTY
    assert fresh.fetch_offsets("simple", None)[0].offset == 5


def test_loaded_members_answer_and_expire_like_live_ones() -> None:
    driver = Driver()
    (leader, follower), generation = stable_group(driver, 2)
    fresh = driver.reloaded()
    start = driver.now
    assert fresh.heartbeat(GROUP, generation, leader, None, start) == ErrorCode.NONE
    box: Box[SyncResult] = Box()
    fresh.sync_group(GROUP, generation, follower, None, None, None, {}, start, box)
    assert box.value.assignment == assignment(("t", 1))
    assert fresh.next_deadline() == start + SESSION_MS  # finish_loading scheduled expiry
    fresh.heartbeat(GROUP, generation, leader, None, start + SESSION_MS - 1)
    fresh.poll(start + SESSION_MS)
    assert set(fresh.groups[GROUP].members) == {leader}
    assert fresh.groups[GROUP].state == GroupState.PREPARING_REBALANCE


def test_replay_applies_tombstones() -> None:
    driver = Driver()
    driver.commit({("t", 0): 1, ("t", 1): 2})
    driver.delete_offsets([("t", 0)])
    fresh = driver.reloaded()
    assert fresh.fetch_offsets(GROUP, None) == [CommittedOffset("t", 1, 2, 5, "")]
    driver.delete_groups(GROUP)
    assert GROUP not in driver.reloaded().groups


def test_group_record_without_protocol_type_loads_as_a_simple_group() -> None:
    driver = Driver(GroupConfig(offsets_retention_ms=RETENTION_MS))
    created = driver.now
    # what Kafka writes when a JoinGroup creates a group: no protocol type, no members
    empty = GroupValue("", 0, None, None, created, ())
    driver.log.append((encode_key(GroupKey(GROUP)), encode_value(empty)))
    driver.advance(RETENTION_MS)
    driver.commit({("t", 0): 1})  # committed long after the group record's timestamp
    driver.restart()
    assert driver.core.groups[GROUP].protocol_type is None
    driver.core.expire_offsets(driver.now)
    driver.settle()
    assert driver.committed() == {("t", 0): 1}  # by commit time: not expired yet


def test_replay_ignores_record_types_it_does_not_hold() -> None:
    core = GroupCoordinator()
    key = struct.pack(">h", 11) + _string(GROUP)  # a share group's metadata (KIP-932)
    core.replay(key, b"\x00\x00whatever")
    assert core.groups == {} and core.consumer.groups == {}


# --- DeleteGroups -----------------------------------------------------------------------------


def test_delete_groups_answers_per_group_and_writes_tombstones() -> None:
    driver = Driver()
    driver.commit({("t", 0): 1, ("t", 1): 2}, group="empty")
    stable_group(driver, 1)
    box = driver.delete_groups("empty", GROUP, "missing", "")
    assert box.value == [
        ErrorCode.NONE,
        ErrorCode.NON_EMPTY_GROUP,
        ErrorCode.GROUP_ID_NOT_FOUND,
        ErrorCode.INVALID_GROUP_ID,
    ]
    assert "empty" not in driver.core.groups
    tombstones = driver.log[-3:]
    assert {key for key, _ in tombstones} == {
        encode_key(OffsetKey("empty", "t", 0)),
        encode_key(OffsetKey("empty", "t", 1)),
        encode_key(GroupKey("empty")),
    }
    assert all(value is None for _, value in tombstones)
    assert driver.delete_groups("empty").value == [ErrorCode.GROUP_ID_NOT_FOUND]


def test_failed_delete_write_keeps_the_group() -> None:
    driver = Driver()
    driver.commit({("t", 0): 1})
    driver.fail_with = ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert driver.delete_groups(GROUP).value == [ErrorCode.NOT_COORDINATOR]
    assert driver.state() == GroupState.EMPTY
    assert driver.committed() == {("t", 0): 1}


# --- OffsetDelete -----------------------------------------------------------------------------


def test_offset_delete_refuses_topics_a_live_consumer_group_subscribes_to() -> None:
    driver = Driver()
    ids, boxes = [], []
    for name in ("a", "b"):
        member_id, box = driver.join_new(protocols=[(RANGE, subscription("orders", name))])
        ids.append(member_id)
        boxes.append(box)
    driver.complete(*boxes)
    generation = driver.generation()
    driver.sync(ids[0], generation, {})
    for topic in ("orders", "a", "old"):
        box = driver.commit({(topic, 0): 1}, generation=generation, member_id=ids[0])
        assert box.value == [ErrorCode.NONE]
    box = driver.delete_offsets([("orders", 0), ("b", 0), ("old", 0), ("never", 0)])
    assert box.value == (
        ErrorCode.NONE,
        [
            ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC,
            ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC,
            ErrorCode.NONE,
            ErrorCode.NONE,
        ],
    )
    assert driver.committed() == {("orders", 0): 1, ("a", 0): 1}
    assert driver.log[-1] == (encode_key(OffsetKey(GROUP, "old", 0)), None)


def test_offset_delete_in_a_non_consumer_group_with_members_is_non_empty_group() -> None:
    driver = Driver()
    driver.join_new(protocol_type="connect")
    driver.advance(DELAY_MS)
    assert driver.delete_offsets([("t", 0)]).value == (ErrorCode.NON_EMPTY_GROUP, [])


def test_offset_delete_in_a_consumer_group_with_unreadable_subscriptions_refuses_all() -> None:
    driver = Driver(GroupConfig(initial_rebalance_delay_ms=0))
    driver.commit({("t", 0): 1})
    driver.join_new(protocols=[(RANGE, b"\x00")])  # not a consumer protocol subscription
    box = driver.delete_offsets([("t", 0)])
    assert box.value == (ErrorCode.NONE, [ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC])
    assert driver.committed() == {("t", 0): 1}


def test_offset_delete_in_an_empty_group_deletes_anything() -> None:
    driver = Driver()
    driver.commit({("t", 0): 1})
    assert driver.delete_offsets([("t", 0)]).value == (ErrorCode.NONE, [ErrorCode.NONE])
    assert driver.committed() == {}
    assert driver.delete_offsets([("t", 0)], group="x").value == (ErrorCode.GROUP_ID_NOT_FOUND, [])


# --- offset expiry (KIP-211) ------------------------------------------------------------------


def test_empty_group_offsets_expire_retention_after_the_group_became_empty() -> None:
    driver = Driver(GroupConfig(offsets_retention_ms=RETENTION_MS))
    (leader,), generation = stable_group(driver, 1)
    driver.commit({("t", 0): 1}, generation=generation, member_id=leader)
    for _ in range(2 * RETENTION_MS // 5_000):  # the member lives on; its commit ages
        driver.advance(5_000)
        assert driver.heartbeat(leader, generation) == ErrorCode.NONE
    driver.leave((leader, None))
    assert driver.state() == GroupState.EMPTY
    driver.advance(RETENTION_MS - 1)
    driver.core.expire_offsets(driver.now)
    driver.settle()
    assert driver.committed() == {("t", 0): 1}
    driver.advance(1)
    driver.core.expire_offsets(driver.now)
    driver.settle()
    assert driver.state() is None


def test_simple_group_offsets_expire_retention_after_their_commit() -> None:
    driver = Driver(GroupConfig(offsets_retention_ms=RETENTION_MS))
    driver.commit({("t", 0): 1})
    driver.advance(RETENTION_MS // 2)
    driver.commit({("t", 1): 1})
    driver.advance(RETENTION_MS // 2 - 1)
    driver.core.expire_offsets(driver.now)
    driver.settle()
    assert driver.committed() == {("t", 0): 1, ("t", 1): 1}
    driver.advance(1)
    driver.core.expire_offsets(driver.now)
    driver.settle()
    assert driver.committed() == {("t", 1): 1}
    assert driver.log[-1] == (encode_key(OffsetKey(GROUP, "t", 0)), None)


def test_explicit_expire_timestamp_wins_over_the_broker_retention() -> None:
    driver = Driver(GroupConfig(offsets_retention_ms=RETENTION_MS))
    driver.commit({("t", 0): 1}, retention_ms=1_000)
    value = decode(*driver.log[-1])
    assert value is not None and isinstance(value[1], OffsetValue)
    assert value[1].expire_timestamp == driver.now + 1_000
    driver.advance(1_000)
    driver.core.expire_offsets(driver.now)
    driver.settle()
    assert driver.committed() == {}


def test_group_is_removed_when_its_last_offset_expires() -> None:
    driver = Driver(GroupConfig(offsets_retention_ms=RETENTION_MS))
    driver.commit({("t", 0): 1})
    driver.advance(RETENTION_MS)
    driver.core.expire_offsets(driver.now)
    driver.settle()
    assert driver.state() is None
    assert driver.log[-2:] == [
        (encode_key(OffsetKey(GROUP, "t", 0)), None),
        (encode_key(GroupKey(GROUP)), None),
    ]


@pytest.mark.parametrize("deletion", ["expiry", "delete_groups"])
def test_a_failed_deletion_leaves_the_time_the_group_became_empty(deletion: str) -> None:
    driver = Driver(GroupConfig(offsets_retention_ms=RETENTION_MS))
    (leader,), generation = stable_group(driver, 1)
    driver.commit({("t", 0): 1}, generation=generation, member_id=leader)
    driver.leave((leader, None))
    driver.advance(RETENTION_MS // 2)
    driver.fail_with = ErrorCode.NOT_ENOUGH_REPLICAS
    if deletion == "expiry":
        driver.advance(RETENTION_MS // 2)
        driver.core.expire_offsets(driver.now)
        driver.settle()
    else:
        assert driver.delete_groups(GROUP).value == [ErrorCode.COORDINATOR_NOT_AVAILABLE]
        driver.advance(RETENTION_MS // 2)
    assert driver.state() == GroupState.EMPTY
    driver.fail_with = None
    driver.core.expire_offsets(driver.now)  # retention after it became empty, not after the try
    driver.settle()
    assert driver.state() is None


def test_stable_group_expires_only_offsets_of_topics_nobody_subscribes_to() -> None:
    driver = Driver(GroupConfig(offsets_retention_ms=RETENTION_MS, initial_rebalance_delay_ms=0))
    member_id, box = driver.join_new(protocols=[(RANGE, subscription("live"))])
    generation = box.value.generation
    driver.sync(member_id, generation, {member_id: assignment(("live", 0))})
    driver.commit({("live", 0): 1, ("gone", 0): 2}, generation=generation, member_id=member_id)
    for _ in range(RETENTION_MS // 5_000):
        driver.advance(5_000)
        assert driver.heartbeat(member_id, generation) == ErrorCode.NONE
    driver.core.expire_offsets(driver.now)
    driver.settle()
    assert driver.committed() == {("live", 0): 1}
    assert driver.state() == GroupState.STABLE


def test_no_offsets_expire_while_a_group_rebalances() -> None:
    driver = Driver(GroupConfig(offsets_retention_ms=RETENTION_MS))
    driver.commit({("t", 0): 1})
    driver.join_new()
    driver.now += 2 * RETENTION_MS  # no poll: the group stays in PreparingRebalance
    driver.core.expire_offsets(driver.now)
    driver.settle()
    assert driver.committed() == {("t", 0): 1}


def test_expiry_does_not_delete_a_group_while_a_commit_to_it_is_being_written() -> None:
    driver = Driver(GroupConfig(offsets_retention_ms=RETENTION_MS))
    driver.commit({("t", 0): 1})
    driver.advance(RETENTION_MS)
    driver.hold = True
    box = driver.commit({("t", 1): 2})  # acknowledged once durable
    driver.core.expire_offsets(driver.now)  # runs while that write is in flight
    driver.settle()
    driver.hold = False
    driver.release()
    assert box.value == [ErrorCode.NONE]
    assert driver.committed() == {("t", 1): 2}  # the expired one went, the group stays
    assert driver.state() == GroupState.EMPTY
    assert driver.reloaded().fetch_offsets(GROUP, None) == [CommittedOffset("t", 1, 2, 5, "")]


def test_expiry_leaves_an_offset_alone_while_a_new_commit_of_it_is_being_written() -> None:
    driver = Driver(GroupConfig(offsets_retention_ms=RETENTION_MS))
    driver.commit({("t", 0): 1, ("t", 1): 1})
    driver.advance(RETENTION_MS)
    driver.hold = True
    box = driver.commit({("t", 0): 2})
    driver.core.expire_offsets(driver.now)
    driver.settle()
    driver.hold = False
    driver.release()
    assert box.value == [ErrorCode.NONE]
    assert driver.committed() == {("t", 0): 2}
    assert driver.reloaded().fetch_offsets(GROUP, None) == [CommittedOffset("t", 0, 2, 5, "")]


# --- describe and list ------------------------------------------------------------------------


def test_list_groups_filters_by_state() -> None:
    driver = Driver()
    driver.commit({("t", 0): 1}, group="idle")
    stable_group(driver, 1)
    assert {g.group_id for g in driver.core.list_groups()} == {"idle", GROUP}
    assert [g.group_id for g in driver.core.list_groups(states=["stable"])] == [GROUP]
    assert driver.core.list_groups(types=["consumer"]) == []
