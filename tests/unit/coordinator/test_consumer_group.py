"""The consumer group protocol core (KIP-848) driven through ConsumerGroupHeartbeat as a
client would drive it, with every emitted record replayed before the next request, as the
coordinator runtime will. Expected values follow Kafka's GroupMetadataManager."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import replace

import pytest

from odradek.common.errors import ErrorCode
from odradek.coordinator.group.consumer_group import (
    ConsumerGroup,
    ConsumerGroupMember,
    ConsumerGroupState,
    IllegalStateError,
    MemberState,
    current_assignment_record,
)
from odradek.coordinator.group.consumer_group_manager import (
    ConsumerGroupConfig,
    ConsumerGroupManager,
    HeartbeatRequest,
    HeartbeatResponse,
)
from odradek.coordinator.group.consumer_group_records import (
    ConsumerGroupCurrentMemberAssignmentKey,
    ConsumerGroupMemberMetadataKey,
    ConsumerGroupMetadataKey,
    ConsumerGroupPartitionMetadataKey,
    ConsumerGroupRecord,
    ConsumerGroupTargetAssignmentMemberKey,
    ConsumerGroupTargetAssignmentMetadataKey,
    TopicMetadata,
)
from odradek.coordinator.group.reconciliation import FencedMemberEpochError, reconcile

FOO = b"\x0f" * 16
BAR = b"\x0b" * 16
SESSION_MS = 45_000
REBALANCE_MS = 30_000
INVALID = ErrorCode.INVALID_REQUEST
NOT_FOUND = ErrorCode.GROUP_ID_NOT_FOUND


class Harness:
    """A manager, the topics of a metadata image, a clock, and every record written so far."""

    def __init__(self, config: ConsumerGroupConfig | None = None, **topics: int) -> None:
        ids = itertools.count(1)
        self.manager = ConsumerGroupManager(config, new_member_id=lambda: f"gen-{next(ids)}")
        self.topics = {
            name: TopicMetadata(FOO if name == "foo" else BAR, name, count)
            for name, count in (topics or {"foo": 4}).items()
        }
        self.now_ms = 0
        self.log: list[ConsumerGroupRecord] = []

    @property
    def group(self) -> ConsumerGroup:
        return self.manager.groups["g"]

    def write(self, records: Iterable[ConsumerGroupRecord]) -> None:
        for record in records:
            self.log.append(record)
            self.manager.replay(record)
        assert_exclusive(self.manager)

    def send(
        self, request: HeartbeatRequest
    ) -> tuple[HeartbeatResponse, list[ConsumerGroupRecord]]:
        result = self.manager.heartbeat(request, self.topics, self.now_ms)
        self.write(result.records)
        return result.response, list(result.records)

    def hb(self, member_id: str, epoch: int, **fields: object) -> HeartbeatResponse:
        return self.send(HeartbeatRequest("g", member_id, epoch, version=1, **fields))[0]

    def join(self, member_id: str, *topics: str, **fields: object) -> HeartbeatResponse:
        fields.setdefault("rebalance_timeout_ms", REBALANCE_MS)
        fields.setdefault("topic_partitions", ())
        return self.hb(member_id, 0, subscribed_topic_names=topics or ("foo",), **fields)

    def tick(self, ms: int) -> None:
        self.now_ms += ms
        while records := self.manager.poll(self.now_ms, self.topics):
            self.write(records)

    def member(self, member_id: str) -> ConsumerGroupMember:
        return self.group.members[member_id]


def assert_exclusive(manager: ConsumerGroupManager) -> None:
    """No partition is assigned to, or pending revocation by, two members at once."""
    for group in manager.groups.values():
        seen: dict[tuple[bytes, int], str] = {}
        for member in group.members.values():
            for position in member.owned():
                assert position not in seen, f"{position} owned by {seen[position]} and {member}"
                seen[position] = member.member_id


def parts(*partitions: int, topic: bytes = FOO) -> tuple[tuple[bytes, tuple[int, ...]], ...]:
    return ((topic, tuple(partitions)),) if partitions else ()


def kinds(records: Iterable[ConsumerGroupRecord]) -> list[str]:
    return [f"{type(r.key).__name__}{'' if r.value is not None else '-'}" for r in records]


# --- joining --------------------------------------------------------------------------------------


def test_first_member_gets_every_partition_at_epoch_1() -> None:
    h = Harness()
    response, records = h.send(
        HeartbeatRequest(
            "g",
            "m1",
            0,
            rebalance_timeout_ms=REBALANCE_MS,
            subscribed_topic_names=("foo",),
            topic_partitions=(),
            version=1,
        )
    )
    assert response == HeartbeatResponse(
        member_id="m1", member_epoch=1, heartbeat_interval_ms=5000, assignment=parts(0, 1, 2, 3)
    )
    assert kinds(records) == [
        "ConsumerGroupMemberMetadataKey",
        "ConsumerGroupPartitionMetadataKey",
        "ConsumerGroupMetadataKey",
        "ConsumerGroupTargetAssignmentMemberKey",
        "ConsumerGroupTargetAssignmentMetadataKey",
        "ConsumerGroupCurrentMemberAssignmentKey",
    ]
    assert h.group.state == ConsumerGroupState.STABLE
    assert (h.group.group_epoch, h.group.assignment_epoch) == (1, 1)
    assert h.member("m1").previous_member_epoch == 0


def test_v0_join_without_member_id_gets_one_from_the_coordinator() -> None:
    h = Harness()
    response, _ = h.send(
        HeartbeatRequest(
            "g",
            "",
            0,
            rebalance_timeout_ms=1000,
            subscribed_topic_names=("foo",),
            topic_partitions=(),
            version=0,
        )
    )
    assert response.error == ErrorCode.NONE
    assert response.member_id == "gen-1"
    assert "gen-1" in h.group.members


def test_random_member_ids_look_like_kafka_uuids() -> None:
    from odradek.coordinator.group.consumer_group_manager import random_member_id

    ids = {random_member_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") and "=" not in i for i in ids)


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (HeartbeatRequest("g", "", 0, version=1), INVALID, "MemberId can't be empty."),
        (HeartbeatRequest("g", "", 3, version=0), INVALID, "MemberId can't be empty."),
        (HeartbeatRequest("", "m", 0, version=1), INVALID, "GroupId can't be empty."),
        (
            HeartbeatRequest("g", "m", 0, instance_id=" ", version=1),
            INVALID,
            "InstanceId can't be empty.",
        ),
        (
            HeartbeatRequest("g", "m", 0, subscribed_topic_names=("foo",), topic_partitions=()),
            INVALID,
            "RebalanceTimeoutMs must be provided in first request.",
        ),
        (
            HeartbeatRequest("g", "m", 0, rebalance_timeout_ms=1, subscribed_topic_names=("foo",)),
            INVALID,
            "TopicPartitions must be empty when (re-)joining.",
        ),
        (
            HeartbeatRequest(
                "g",
                "m",
                0,
                rebalance_timeout_ms=1,
                subscribed_topic_names=("foo",),
                topic_partitions=parts(1),
            ),
            INVALID,
            "TopicPartitions must be empty when (re-)joining.",
        ),
        (
            HeartbeatRequest("g", "m", 0, rebalance_timeout_ms=1, topic_partitions=()),
            INVALID,
            "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when "
            "(re-)joining.",
        ),
        (
            HeartbeatRequest(
                "g",
                "m",
                0,
                rebalance_timeout_ms=1,
                topic_partitions=(),
                subscribed_topic_regex="foo(",
            ),
            ErrorCode.INVALID_REGULAR_EXPRESSION,
            "SubscribedTopicRegex `foo(` is not a valid regular expression: missing ), "
            "unterminated subpattern at position 3.",
        ),
        (HeartbeatRequest("g", "m", -2), INVALID, "InstanceId can't be null."),
        (HeartbeatRequest("g", "m", -3), INVALID, "MemberEpoch is invalid."),
        (
            HeartbeatRequest(
                "g",
                "m",
                0,
                rebalance_timeout_ms=1,
                subscribed_topic_names=("foo",),
                topic_partitions=(),
                server_assignor="sticky",
            ),
            ErrorCode.UNSUPPORTED_ASSIGNOR,
            "ServerAssignor sticky is not supported. Supported assignors: uniform, range.",
        ),
        (HeartbeatRequest("g", "m", 5), NOT_FOUND, "Consumer group g not found."),
        (HeartbeatRequest("g", "m", -1), NOT_FOUND, "Consumer group g not found."),
    ],
)
def test_bad_requests_are_refused_without_records(
    request_: HeartbeatRequest, error: ErrorCode, message: str
) -> None:
    h = Harness()
    response, records = h.send(request_)
    assert (response.error, response.error_message) == (error, message)
    assert response.member_id is None and response.assignment is None
    assert records == []
    assert h.manager.groups == {}


def test_an_empty_subscription_joins_without_partitions() -> None:
    h = Harness()
    response = h.hb("m", 0, rebalance_timeout_ms=1, topic_partitions=(), subscribed_topic_names=())
    assert (response.error, response.member_epoch, response.assignment) == (ErrorCode.NONE, 1, ())


def test_unknown_member_in_an_existing_group() -> None:
    h = Harness()
    h.join("m1")
    response = h.hb("m2", 1)
    assert response.error == ErrorCode.UNKNOWN_MEMBER_ID
    assert h.hb("m2", -1).error == ErrorCode.UNKNOWN_MEMBER_ID


def test_the_group_max_size_refuses_new_members_only() -> None:
    h = Harness(ConsumerGroupConfig(max_size=1))
    h.join("m1")
    assert h.join("m2").error == ErrorCode.GROUP_MAX_SIZE_REACHED
    assert h.hb("m1", 1).error == ErrorCode.NONE


def test_a_subscription_to_a_missing_topic_is_assigned_when_the_topic_appears() -> None:
    h = Harness()
    assert h.join("m1", "bar").assignment == ()
    assert h.group.state == ConsumerGroupState.STABLE
    h.topics["bar"] = TopicMetadata(BAR, "bar", 2)
    response = h.hb("m1", 1)
    assert (response.member_epoch, response.assignment) == (2, parts(0, 1, topic=BAR))


def test_more_partitions_bump_the_group_epoch() -> None:
    h = Harness()
    h.join("m1")
    h.topics["foo"] = TopicMetadata(FOO, "foo", 6)
    response = h.hb("m1", 1)
    assert (response.member_epoch, response.assignment) == (2, parts(0, 1, 2, 3, 4, 5))


def test_a_subscription_change_bumps_the_group_epoch() -> None:
    h = Harness(foo=2, bar=2)
    h.join("m1", "foo")
    response = h.hb("m1", 1, subscribed_topic_names=("foo", "bar"))
    assert h.group.group_epoch == 2
    assert response.assignment == parts(0, 1, topic=BAR) + parts(0, 1)


def test_metadata_changes_without_subscription_changes_do_not_bump() -> None:
    h = Harness()
    h.join("m1")
    h.hb("m1", 1, rack_id="r1", rebalance_timeout_ms=5, server_assignor="range")
    assert h.group.group_epoch == 1
    member = h.member("m1")
    assert (member.rack_id, member.rebalance_timeout_ms, member.server_assignor) == (
        "r1",
        5,
        "range",
    )


# --- the response ---------------------------------------------------------------------------------


def test_the_assignment_is_sent_only_when_it_changed_or_the_request_is_full() -> None:
    h = Harness()
    h.join("m1")
    assert h.hb("m1", 1).assignment is None
    assert h.hb("m1", 1, topic_partitions=parts(0, 1, 2, 3)).assignment is None
    full = h.hb(
        "m1", 1, rebalance_timeout_ms=1, subscribed_topic_names=("foo",), topic_partitions=parts(0)
    )
    assert full.assignment == parts(0, 1, 2, 3)
    assert full.heartbeat_interval_ms == 5000


# --- two members: revocation before assignment ----------------------------------------------------


def test_partitions_move_only_after_their_owner_revoked_them() -> None:
    h = Harness()
    h.join("a")
    assert h.member("a").assigned_partitions == {FOO: frozenset({0, 1, 2, 3})}

    # b joins: the target moves 2 and 3 to b, but a still owns them.
    response = h.join("b")
    assert (response.member_epoch, response.assignment) == (2, ())
    assert h.member("b").state == MemberState.UNRELEASED_PARTITIONS
    assert h.group.state == ConsumerGroupState.RECONCILING

    # a is asked to revoke 2 and 3 and stays at epoch 1 until it has.
    response = h.hb("a", 1, topic_partitions=parts(0, 1, 2, 3))
    assert (response.member_epoch, response.assignment) == (1, parts(0, 1))
    member = h.member("a")
    assert member.state == MemberState.UNREVOKED_PARTITIONS
    assert member.partitions_pending_revocation == {FOO: frozenset({2, 3})}

    # b still gets nothing; a heartbeat without owned partitions counts as still owning.
    assert h.hb("b", 2).assignment is None
    assert h.hb("a", 1).member_epoch == 1
    assert h.hb("b", 2).assignment is None

    # a revokes: it moves to epoch 2; then b gets 2 and 3.
    response = h.hb("a", 1, topic_partitions=parts(0, 1))
    assert (response.member_epoch, response.assignment) == (2, None)
    assert h.member("a").state == MemberState.STABLE
    response = h.hb("b", 2)
    assert (response.member_epoch, response.assignment) == (2, parts(2, 3))
    assert h.group.state == ConsumerGroupState.STABLE


def test_a_leaving_member_frees_its_partitions_for_the_others() -> None:
    h = Harness()
    h.join("a")
    h.join("b")
    h.hb("a", 1, topic_partitions=parts(0, 1))
    h.hb("b", 2)
    response, records = h.send(HeartbeatRequest("g", "b", -1, version=1))
    assert (response.member_id, response.member_epoch, response.error) == ("b", -1, ErrorCode.NONE)
    assert kinds(records) == [
        "ConsumerGroupCurrentMemberAssignmentKey-",
        "ConsumerGroupTargetAssignmentMemberKey-",
        "ConsumerGroupMemberMetadataKey-",
        "ConsumerGroupMetadataKey",
    ]
    assert set(h.group.members) == {"a"}
    assert h.group.state == ConsumerGroupState.ASSIGNING
    response = h.hb("a", 2)
    assert (response.member_epoch, response.assignment) == (3, parts(0, 1, 2, 3))


def test_a_member_that_left_can_join_again_with_its_id() -> None:
    h = Harness()
    h.join("a")
    h.hb("a", -1)
    assert h.group.state == ConsumerGroupState.EMPTY
    response = h.join("a")
    assert (response.error, response.member_epoch) == (ErrorCode.NONE, 3)
    assert response.assignment == parts(0, 1, 2, 3)


def test_the_last_member_to_leave_makes_the_group_empty_and_the_subscription_metadata_empty() -> (
    None
):
    h = Harness()
    h.join("a")
    h.hb("a", -1)
    assert h.group.subscription_metadata == {}
    assert h.group.state == ConsumerGroupState.EMPTY


# --- epochs ---------------------------------------------------------------------------------------


def test_a_greater_epoch_is_fenced() -> None:
    h = Harness()
    h.join("a")
    assert h.hb("a", 2).error == ErrorCode.FENCED_MEMBER_EPOCH


def test_the_previous_epoch_is_accepted_while_owning_a_subset() -> None:
    h = Harness()
    h.join("a")
    h.join("b")
    h.hb("a", 1, topic_partitions=parts(0, 1, 2, 3))
    h.hb("a", 1, topic_partitions=parts(0, 1))  # a moved to epoch 2; say the response was lost
    assert (h.member("a").member_epoch, h.member("a").previous_member_epoch) == (2, 1)
    response = h.hb("a", 1, topic_partitions=parts(0, 1))
    assert (response.error, response.member_epoch) == (ErrorCode.NONE, 2)
    assert h.hb("a", 1, topic_partitions=parts(0, 1, 2)).error == ErrorCode.FENCED_MEMBER_EPOCH
    assert h.hb("a", 1).error == ErrorCode.FENCED_MEMBER_EPOCH  # owned partitions unknown
    assert h.hb("a", 0, **JOIN).error == ErrorCode.FENCED_MEMBER_EPOCH  # older than previous


JOIN: dict[str, object] = {
    "rebalance_timeout_ms": REBALANCE_MS,
    "subscribed_topic_names": ("foo",),
    "topic_partitions": (),
}


def test_a_join_whose_response_was_lost_is_accepted_again() -> None:
    h = Harness()
    h.join("a")
    response = h.join("a")
    assert (response.error, response.member_epoch) == (ErrorCode.NONE, 1)


# --- timeouts -------------------------------------------------------------------------------------


def test_a_silent_member_is_removed_after_the_session_timeout() -> None:
    h = Harness()
    h.join("a")
    h.join("b")
    h.tick(SESSION_MS - 5000)
    h.hb("a", 1, topic_partitions=parts(0, 1))  # a revoked; b never heartbeats again
    h.tick(4999)
    assert set(h.group.members) == {"a", "b"}
    h.tick(1)
    assert set(h.group.members) == {"a"}
    assert h.hb("a", 2).assignment == parts(0, 1, 2, 3)
    assert h.manager.next_deadline() == h.now_ms + SESSION_MS


def test_a_member_that_does_not_revoke_in_time_is_fenced() -> None:
    h = Harness()
    h.join("a")
    h.join("b")
    h.hb("a", 1, topic_partitions=parts(0, 1, 2, 3))  # asked to revoke; never does
    h.tick(REBALANCE_MS - 1)
    h.hb("a", 1, topic_partitions=parts(0, 1, 2, 3))
    h.hb("b", 2)
    assert "a" in h.group.members
    h.tick(1)
    assert set(h.group.members) == {"b"}
    assert h.hb("b", 2).assignment == parts(0, 1, 2, 3)
    assert h.hb("a", 1).error == ErrorCode.UNKNOWN_MEMBER_ID


def test_the_rebalance_timeout_is_dropped_once_the_member_revoked() -> None:
    h = Harness()
    h.join("a")
    h.join("b")
    h.hb("a", 1, topic_partitions=parts(0, 1, 2, 3))
    h.hb("a", 1, topic_partitions=parts(0, 1))
    h.hb("b", 2)
    h.tick(REBALANCE_MS + 1)
    assert set(h.group.members) == {"a", "b"}


def test_loading_gives_every_member_a_new_session() -> None:
    h = Harness()
    h.join("a")
    loaded = ConsumerGroupManager()
    for record in h.log:
        loaded.replay(record)
    loaded.finish_loading(now_ms=1000)
    assert loaded.next_deadline() == 1000 + SESSION_MS
    assert loaded.poll(1000 + SESSION_MS - 1, h.topics) == []
    assert kinds(loaded.poll(1000 + SESSION_MS, h.topics))[0] == (
        "ConsumerGroupCurrentMemberAssignmentKey-"
    )


# --- static members -------------------------------------------------------------------------------


def test_a_static_member_comes_back_under_a_new_id_with_its_partitions() -> None:
    h = Harness()
    h.join("a", instance_id="i-a")
    h.join("b", instance_id="i-b")
    h.hb("a", 1, instance_id="i-a", topic_partitions=parts(0, 1))
    h.hb("b", 2, instance_id="i-b")
    before = h.group.target_assignment["a"]

    response = h.hb("a", -2, instance_id="i-a")
    assert (response.member_id, response.member_epoch) == ("a", -2)
    assert h.member("a").assigned_partitions == before  # kept while it is away
    assert h.group.group_epoch == 2

    response = h.join("a2", instance_id="i-a")
    assert (response.error, response.member_epoch, response.assignment) == (
        ErrorCode.NONE,
        2,
        parts(*sorted(before[FOO])),
    )
    assert set(h.group.members) == {"a2", "b"}
    assert h.group.static_members == {"i-a": "a2", "i-b": "b"}
    assert h.group.group_epoch == 2  # no rebalance
    assert h.hb("a", 2, instance_id="i-a").error == ErrorCode.FENCED_INSTANCE_ID


def test_an_instance_id_in_use_cannot_join_again() -> None:
    h = Harness()
    h.join("a", instance_id="i-a")
    response = h.join("a2", instance_id="i-a")
    assert response.error == ErrorCode.UNRELEASED_INSTANCE_ID


def test_static_member_errors() -> None:
    h = Harness()
    h.join("a", instance_id="i-a")
    assert h.hb("a", 1, instance_id="i-x").error == ErrorCode.UNKNOWN_MEMBER_ID
    assert h.hb("z", 1, instance_id="i-a").error == ErrorCode.FENCED_INSTANCE_ID
    assert h.hb("z", -2, instance_id="i-a").error == ErrorCode.FENCED_INSTANCE_ID
    assert h.hb("a", -2, instance_id="i-x").error == ErrorCode.UNKNOWN_MEMBER_ID
    h.hb("a", -2, instance_id="i-a")
    assert h.hb("a", 1, instance_id="i-a").error == ErrorCode.FENCED_MEMBER_EPOCH


def test_a_static_member_that_does_not_come_back_expires() -> None:
    h = Harness()
    h.join("a", instance_id="i-a")
    h.join("b")
    h.hb("a", 1, instance_id="i-a", topic_partitions=parts(0, 1))
    h.hb("a", -2, instance_id="i-a")
    h.tick(SESSION_MS - 1)
    h.hb("b", 2)
    assert "a" in h.group.members
    h.tick(1)
    assert set(h.group.members) == {"b"}
    assert h.hb("b", 2).assignment == parts(0, 1, 2, 3)


def test_a_static_member_leaving_for_good_is_removed() -> None:
    h = Harness()
    h.join("a", instance_id="i-a")
    h.hb("a", -1, instance_id="i-a")
    assert h.group.members == {} and h.group.static_members == {}


# --- assignors ------------------------------------------------------------------------------------


def test_the_assignor_most_members_ask_for_is_used() -> None:
    h = Harness(foo=3, bar=3)
    h.join("a", "foo", "bar", server_assignor="range")
    h.join("b", "foo", "bar")
    assert h.group.target_assignment == {
        "a": {FOO: frozenset({0, 1}), BAR: frozenset({0, 1})},
        "b": {FOO: frozenset({2}), BAR: frozenset({2})},
    }
    assert h.manager.describe(["g"])[0].assignor_name == "range"


# --- describe and delete --------------------------------------------------------------------------


def test_describe_shows_states_epochs_and_assignments() -> None:
    h = Harness()
    [missing] = h.manager.describe(["g"])
    assert (missing.error, missing.group_state) == (ErrorCode.GROUP_ID_NOT_FOUND, "")
    h.join("a", client_id="c", client_host="/127.0.0.1")
    h.join("b")
    [described] = h.manager.describe(["g"])
    assert (described.group_state, described.group_epoch, described.assignment_epoch) == (
        "Reconciling",
        2,
        2,
    )
    a = described.members[0]
    assert (a.member_id, a.member_epoch, a.client_id, a.client_host) == ("a", 1, "c", "/127.0.0.1")
    assert [(t.topic_name, t.partitions) for t in a.assignment] == [("foo", (0, 1, 2, 3))]
    assert [(t.topic_name, t.partitions) for t in a.target_assignment] == [("foo", (0, 1))]
    assert a.subscribed_topic_names == ("foo",)
    h.hb("a", 1, topic_partitions=parts(0, 1))
    h.hb("b", 2)
    assert h.manager.describe(["g"])[0].group_state == "Stable"
    h.hb("a", -1)
    assert h.manager.describe(["g"])[0].group_state == "Assigning"
    h.hb("b", -1)
    assert h.manager.describe(["g"])[0].group_state == "Empty"


def test_only_an_empty_group_is_deleted() -> None:
    h = Harness()
    assert h.manager.delete("g") == (ErrorCode.GROUP_ID_NOT_FOUND, [])
    h.join("a")
    assert h.manager.delete("g") == (ErrorCode.NON_EMPTY_GROUP, [])
    h.hb("a", -1)
    error, records = h.manager.delete("g")
    assert error == ErrorCode.NONE
    h.write(records)
    assert h.manager.groups == {}


# --- replay ---------------------------------------------------------------------------------------


def test_replaying_the_records_rebuilds_the_same_groups() -> None:
    h = Harness(foo=5, bar=3)
    h.join("a", "foo", instance_id="i-a")
    h.join("b", "foo", "bar")
    h.hb("a", 1, instance_id="i-a", topic_partitions=parts(0, 1, 2, 3, 4))
    h.hb("a", 1, instance_id="i-a", topic_partitions=parts(0, 1, 2))
    h.hb("b", 2, topic_partitions=())
    h.join("c", "bar", server_assignor="range")
    h.hb("a", -2, instance_id="i-a")
    rebuilt = ConsumerGroupManager()
    for record in h.log:
        rebuilt.replay(record)
    assert rebuilt.groups == h.manager.groups


def test_replay_refuses_a_partition_owned_twice() -> None:
    group = ConsumerGroup("g")
    group.replay(
        current_assignment_record(
            "g", ConsumerGroupMember("a", 1, assigned_partitions={FOO: frozenset({0})})
        )
    )
    with pytest.raises(IllegalStateError):
        group.replay(
            current_assignment_record(
                "g",
                ConsumerGroupMember("b", 1, partitions_pending_revocation={FOO: frozenset({0})}),
            )
        )


def test_replay_refuses_to_delete_a_member_before_its_assignment() -> None:
    group = ConsumerGroup("g")
    group.replay(current_assignment_record("g", ConsumerGroupMember("a", 1)))
    with pytest.raises(IllegalStateError):
        group.replay(ConsumerGroupRecord(ConsumerGroupMemberMetadataKey("g", "a"), None))


def test_tombstones_of_unknown_groups_and_members_are_ignored() -> None:
    manager = ConsumerGroupManager()
    for key in (
        ConsumerGroupMetadataKey("g"),
        ConsumerGroupPartitionMetadataKey("g"),
        ConsumerGroupMemberMetadataKey("g", "m"),
        ConsumerGroupTargetAssignmentMetadataKey("g"),
        ConsumerGroupTargetAssignmentMemberKey("g", "m"),
        ConsumerGroupCurrentMemberAssignmentKey("g", "m"),
    ):
        manager.replay(ConsumerGroupRecord(key, None))
    assert manager.groups == {}


# --- reconciliation, directly ---------------------------------------------------------------------


def free(topic_id: bytes, partition: int) -> int:
    return -1


def test_a_member_in_an_unknown_state_must_own_nothing() -> None:
    member = ConsumerGroupMember("m", 3, 2, MemberState.from_value(42))
    assert member.state == MemberState.UNKNOWN
    target = {FOO: frozenset({1})}
    with pytest.raises(FencedMemberEpochError):
        reconcile(member, 4, target, free, None)
    with pytest.raises(FencedMemberEpochError):
        reconcile(member, 4, target, free, parts(1))
    again = reconcile(member, 4, target, free, ())
    assert (again.state, again.member_epoch, again.assigned_partitions) == (
        MemberState.STABLE,
        4,
        target,
    )


def test_a_stable_member_at_the_target_epoch_is_left_alone() -> None:
    member = ConsumerGroupMember("m", 3, 2, assigned_partitions={FOO: frozenset({1})})
    assert reconcile(member, 3, {}, free, None) is member
    moved = reconcile(replace(member, member_epoch=2, previous_member_epoch=1), 3, {}, free, ())
    assert (moved.member_epoch, moved.previous_member_epoch, moved.assigned_partitions) == (
        3,
        2,
        {},
    )


# --- regular expressions (ConsumerGroupHeartbeat v1) ----------------------------------------------


def regex_harness() -> Harness:
    h = Harness(foo=2, bar=2)
    h.topics["__consumer_offsets"] = TopicMetadata(b"\x01" * 16, "__consumer_offsets", 50)
    return h


def join_regex(h: Harness, regex: str, *names: str) -> HeartbeatResponse:
    return h.hb(
        "m",
        0,
        subscribed_topic_names=names,
        subscribed_topic_regex=regex,
        rebalance_timeout_ms=REBALANCE_MS,
        topic_partitions=(),
    )


def test_a_regex_selects_whole_topic_names_and_never_internal_topics() -> None:
    h = regex_harness()
    response = join_regex(h, "fo.*|__.*")
    assert response.error == ErrorCode.NONE
    assert response.assignment == parts(0, 1)
    assert set(h.group.subscription_metadata) == {"foo"}
    assert h.member("m").subscribed_topic_regex == "fo.*|__.*"
    # "fo" alone would only match a prefix: a whole name must match, as Matcher.matches does
    h.hb("m", 1, subscribed_topic_regex="fo", rebalance_timeout_ms=REBALANCE_MS)
    assert set(h.group.subscription_metadata) == set()


def test_names_and_a_regex_add_up_and_a_new_matching_topic_joins_the_subscription() -> None:
    h = regex_harness()
    join_regex(h, "nothing-yet.*", "bar")
    assert set(h.group.subscription_metadata) == {"bar"}
    epoch = h.group.group_epoch
    h.topics["nothing-yet-2"] = TopicMetadata(b"\x02" * 16, "nothing-yet-2", 1)
    response = h.hb("m", 1)
    assert h.group.group_epoch == epoch + 1
    assert set(h.group.subscription_metadata) == {"bar", "nothing-yet-2"}
    assert response.assignment is not None
    assert dict(response.assignment)[b"\x02" * 16] == (0,)


def test_an_empty_regex_clears_the_members_regex() -> None:
    h = regex_harness()
    join_regex(h, "foo")
    assert h.member("m").subscribed_topic_regex == "foo"
    h.hb("m", 1, subscribed_topic_regex="")
    assert h.member("m").subscribed_topic_regex is None
    assert h.group.subscription_metadata == {}
