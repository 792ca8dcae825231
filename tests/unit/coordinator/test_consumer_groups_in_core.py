"""Consumer groups (KIP-848) inside the group coordinator core, driven without I/O: the writes
of one group run one at a time, classic and consumer groups share one namespace, consumer group
members commit and fetch offsets by member epoch, and deletion, expiry and reloading cover
consumer groups. The protocol itself is tested in test_consumer_group.py."""

from __future__ import annotations

from collections.abc import Mapping

from test_group_coordinator import GROUP, Box, Driver, subscription

from odradek.common.errors import ErrorCode
from odradek.coordinator.group.consumer_group import ConsumerGroupState
from odradek.coordinator.group.consumer_group_messages import (
    HeartbeatRequest,
    HeartbeatResponse,
)
from odradek.coordinator.group.consumer_group_records import TopicMetadata
from odradek.coordinator.group.coordinator import GroupCoordinator
from odradek.coordinator.group.messages import GroupConfig

FOO_ID = b"\x0f" * 16
TOPICS: Mapping[str, TopicMetadata] = {"foo": TopicMetadata(FOO_ID, "foo", 4)}
REBALANCE_MS = 30_000
SESSION_MS = 45_000  # group.consumer.session.timeout.ms
RETENTION_MS = 60_000


class ConsumerDriver(Driver):
    """`Driver` whose core sees the topic foo (4 partitions) in its metadata image."""

    def __init__(self) -> None:
        super().__init__(GroupConfig(offsets_retention_ms=RETENTION_MS))
        self.core.topics = lambda: TOPICS

    def reloaded(self) -> GroupCoordinator:
        fresh = GroupCoordinator(self.config, topics=lambda: TOPICS)
        for key, value in self.log:
            fresh.replay(key, value)
        fresh.finish_loading(self.now)
        return fresh

    def heartbeat848(
        self, member_id: str, epoch: int, group: str = GROUP, **fields: object
    ) -> Box[HeartbeatResponse]:
        box: Box[HeartbeatResponse] = Box()
        request = HeartbeatRequest(group, member_id, epoch, version=1, **fields)  # type: ignore[arg-type]
        self.core.consumer_group_heartbeat(request, self.now, box)
        self.settle()
        return box

    def join848(self, member_id: str, group: str = GROUP) -> Box[HeartbeatResponse]:
        return self.heartbeat848(
            member_id,
            0,
            group,
            rebalance_timeout_ms=REBALANCE_MS,
            subscribed_topic_names=("foo",),
            topic_partitions=(),
        )

    def epoch(self, member_id: str, group: str = GROUP) -> int:
        return self.core.consumer.groups[group].members[member_id].member_epoch


# --- one operation at a time per group ------------------------------------------------------------


def test_a_heartbeat_waits_for_the_write_before_it_and_computes_from_its_state() -> None:
    d = ConsumerDriver()
    d.hold = True
    first = d.join848("a")
    second = d.join848("b")
    assert not first.done and not second.done
    assert len(d.held) == 1, "b's heartbeat must not compute before a's records are replayed"
    d.hold = False
    d.release()
    assert first.value.member_epoch == 1 and first.value.assignment is not None
    assert second.value.error == ErrorCode.NONE
    group = d.core.consumer.groups[GROUP]
    assert group.group_epoch == 2 and set(group.members) == {"a", "b"}


def test_a_failed_write_changes_nothing_and_the_next_operation_runs() -> None:
    d = ConsumerDriver()
    d.hold = True
    failed = d.join848("a")
    queued = d.join848("b")
    d.hold = False
    d.release(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    assert failed.value.error == ErrorCode.NOT_COORDINATOR
    assert queued.value.error == ErrorCode.NONE
    assert set(d.core.consumer.groups[GROUP].members) == {"b"}
    assert d.core._queues == {}


def test_a_session_expiry_runs_in_the_groups_queue() -> None:
    d = ConsumerDriver()
    d.join848("a")
    d.join848("b")
    d.now += 1000
    d.heartbeat848("b", d.epoch("b"))
    d.advance(SESSION_MS - 500)  # a's session ends; b's does not
    assert set(d.core.consumer.groups[GROUP].members) == {"b"}


# --- one namespace for classic and consumer groups ------------------------------------------------


def test_a_consumer_member_cannot_join_a_classic_group_with_members() -> None:
    d = ConsumerDriver()
    member_id, _ = d.join_new(protocols=(("range", subscription("foo")),))
    d.advance(0)
    assert d.members() == {member_id}
    response = d.join848("x").value
    assert response.error == ErrorCode.GROUP_ID_NOT_FOUND
    assert response.error_message == f"Group {GROUP} is not a consumer group."
    assert GROUP not in d.core.consumer.groups


def test_a_simple_groups_offsets_pass_to_the_consumer_group_that_takes_its_id() -> None:
    d = ConsumerDriver()
    assert d.commit({("foo", 0): 7}).value == [ErrorCode.NONE]
    assert GROUP in d.core.groups  # a simple (memberless classic) group holds the offsets
    assert d.join848("a").value.error == ErrorCode.NONE
    assert GROUP not in d.core.groups and GROUP in d.core.consumer.groups
    assert d.committed()[("foo", 0)] == 7
    reloaded = d.reloaded()
    assert GROUP not in reloaded.groups and GROUP in reloaded.consumer.groups
    assert reloaded.fetch_offsets(GROUP, [("foo", 0)])[0].offset == 7


def test_a_classic_member_cannot_join_a_consumer_group_with_members_but_takes_an_empty_one() -> (
    None
):
    d = ConsumerDriver()
    d.join848("a")
    assert d.join().value.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    d.heartbeat848("a", -1)
    assert d.core.consumer.groups[GROUP].state == ConsumerGroupState.EMPTY
    assert d.join().value.error == ErrorCode.MEMBER_ID_REQUIRED
    assert GROUP not in d.core.consumer.groups
    assert GROUP not in d.reloaded().consumer.groups


def test_list_groups_shows_both_kinds_and_filters_by_type_and_state() -> None:
    d = ConsumerDriver()
    d.join848("a", group="modern")
    d.commit({("foo", 0): 1}, group="simple")
    listed = {(g.group_id, g.group_type, g.state) for g in d.core.list_groups()}
    assert listed == {("modern", "consumer", "Stable"), ("simple", "classic", "Empty")}
    assert [g.group_id for g in d.core.list_groups(types=["Consumer"])] == ["modern"]
    assert [g.group_id for g in d.core.list_groups(states=["empty"])] == ["simple"]


# --- offsets by member epoch ----------------------------------------------------------------------


def test_consumer_group_commits_are_checked_by_member_epoch() -> None:
    d = ConsumerDriver()
    d.join848("a")
    epoch = d.epoch("a")

    def commit(member_id: str, member_epoch: int, version: int = 9) -> ErrorCode:
        box = d.commit(
            {("foo", 0): 5}, generation=member_epoch, member_id=member_id, version=version
        )
        (error,) = box.value
        return error

    assert commit("a", epoch) == ErrorCode.NONE
    assert commit("a", epoch - 1) == ErrorCode.STALE_MEMBER_EPOCH
    assert commit("a", epoch + 1) == ErrorCode.FENCED_MEMBER_EPOCH
    assert commit("nobody", epoch) == ErrorCode.UNKNOWN_MEMBER_ID
    assert commit("a", epoch, version=8) == ErrorCode.UNSUPPORTED_VERSION
    assert commit("", -1) == ErrorCode.UNKNOWN_MEMBER_ID  # admin commits need an empty group
    d.heartbeat848("a", -1)
    assert commit("", -1) == ErrorCode.NONE
    assert d.committed() == {("foo", 0): 5}


def test_offset_fetch_of_a_consumer_group_member_is_checked_by_member_epoch() -> None:
    d = ConsumerDriver()
    d.join848("a")
    epoch = d.epoch("a")
    check = d.core.check_offset_fetch
    assert check(GROUP, "a", epoch) == ErrorCode.NONE
    assert check(GROUP, None, -1) == ErrorCode.NONE
    assert check(GROUP, "a", epoch - 1) == ErrorCode.STALE_MEMBER_EPOCH
    assert check(GROUP, "b", epoch) == ErrorCode.UNKNOWN_MEMBER_ID
    assert check("unknown-group", "a", 3) == ErrorCode.NONE


def test_offset_delete_refuses_the_topics_a_consumer_group_subscribes_to() -> None:
    d = ConsumerDriver()
    d.join848("a")
    d.commit({("foo", 0): 1, ("bar", 0): 2}, generation=d.epoch("a"), member_id="a")
    error, errors = d.delete_offsets([("foo", 0), ("bar", 0)]).value
    assert (error, errors) == (
        ErrorCode.NONE,
        [ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC, ErrorCode.NONE],
    )
    assert d.committed() == {("foo", 0): 1}


# --- deletion, expiry, reloading ------------------------------------------------------------------


def test_delete_groups_deletes_an_empty_consumer_group_and_its_offsets() -> None:
    d = ConsumerDriver()
    d.join848("a")
    d.commit({("foo", 1): 3}, generation=d.epoch("a"), member_id="a")
    assert d.delete_groups(GROUP).value == [ErrorCode.NON_EMPTY_GROUP]
    d.heartbeat848("a", -1)
    assert d.delete_groups(GROUP, "missing").value == [
        ErrorCode.NONE,
        ErrorCode.GROUP_ID_NOT_FOUND,
    ]
    assert GROUP not in d.core.consumer.groups and d.committed() == {}
    reloaded = d.reloaded()
    assert reloaded.consumer.groups == {} and reloaded.offsets == {}


def test_offsets_of_an_empty_consumer_group_expire_and_then_the_group() -> None:
    d = ConsumerDriver()
    d.join848("a")
    d.commit({("foo", 0): 1, ("gone", 0): 2}, generation=d.epoch("a"), member_id="a")
    d.now += RETENTION_MS
    d.core.expire_offsets(d.now)
    d.settle()
    # Only offsets of topics no member subscribes to expire while the group has members.
    assert d.committed() == {("foo", 0): 1}
    d.heartbeat848("a", -1)
    d.core.expire_offsets(d.now)
    d.settle()
    assert d.committed() == {} and GROUP not in d.core.consumer.groups
    assert d.reloaded().consumer.groups == {}


def test_a_reloaded_core_has_the_same_consumer_groups_and_their_members_get_a_session() -> None:
    d = ConsumerDriver()
    d.join848("a")
    d.join848("b")
    d.heartbeat848("a", d.epoch("a"), topic_partitions=())
    d.commit({("foo", 2): 9}, generation=d.epoch("b"), member_id="b")
    before = d.core.consumer.groups[GROUP]
    d.restart()
    after = d.core.consumer.groups[GROUP]
    assert after.members == before.members
    assert (after.group_epoch, after.assignment_epoch) == (
        before.group_epoch,
        before.assignment_epoch,
    )
    assert after.target_assignment == before.target_assignment
    assert d.committed() == {("foo", 2): 9}
    # Nobody heartbeats after the reload: both sessions end one session timeout later.
    d.advance(SESSION_MS)
    assert d.core.consumer.groups[GROUP].members == {}
