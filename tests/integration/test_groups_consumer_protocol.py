"""Consumer groups of the next-generation protocol (KIP-848) with confluent-kafka's
`group.protocol=consumer`: the coordinator assigns partitions with its server-side assignors
(uniform, range) through ConsumerGroupHeartbeat; members share them without overlap, rebalance
when others join and leave, commit with their member epoch, resume from committed offsets, keep
their partitions across a static member's restart, lose them after a killed member's session,
and subscribe by regular expression. Bad heartbeats get Kafka's errors over raw sockets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from kafka_helpers import admin, create_topic, produce, unique_topic, watermarks
from test_groups_bad_input import Raw, entity
from test_groups_confluent import (
    TIMEOUT_S,
    Member,
    MemberProcess,
    describe,
    events,
    keep_polling,
    poll_until,
    settle,
    settle_with,
)

from odradek.common.errors import ErrorCode

PARTITIONS = 6
SESSION_MS = 6000
BROKER_OVERRIDES = {
    "group.consumer.session.timeout.ms": SESSION_MS,
    "group.consumer.heartbeat.interval.ms": 300,
}


def member(
    bootstrap: str,
    group: str,
    topics: list[str],
    name: str,
    commit_each: bool = False,
    **config: Any,
) -> Member:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "group.protocol": "consumer",
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 1000,
            **config,
        }
    )
    m = Member(name, consumer, commit_each)

    def recorder(kind: str) -> Callable[[Consumer, list[TopicPartition]], None]:
        def on_event(_: Consumer, partitions: list[TopicPartition]) -> None:
            m.events.append((kind, frozenset(p.partition for p in partitions)))

        return on_event

    consumer.subscribe(
        topics, on_assign=recorder("assign"), on_revoke=recorder("revoke"), on_lost=recorder("lost")
    )
    return m


def coordinator_view(bootstrap: str, group: str, owned: dict[str, frozenset[int]]) -> Any:
    """Wait until ConsumerGroupDescribe shows the group Stable with exactly this assignment."""
    wanted = sorted((name, sorted(ps)) for name, ps in owned.items())
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        desc = describe(bootstrap, group)
        got = sorted(
            (m.client_id, sorted(tp.partition for tp in m.assignment.topic_partitions))
            for m in desc.members
        )
        if desc.state.name == "STABLE" and got == wanted:
            assert desc.type.name == "CONSUMER"
            return desc
        if time.monotonic() > deadline:
            raise AssertionError(f"coordinator shows {desc.state} {got}, clients own {wanted}")
        time.sleep(0.2)


@pytest.fixture
def members() -> Iterator[list[Member]]:
    started: list[Member] = []
    yield started
    for m in started:
        if not m.closed:
            m.close()


@pytest.fixture
def processes() -> Iterator[Callable[..., MemberProcess]]:
    started: list[MemberProcess] = []

    def start(*args: Any) -> MemberProcess:
        started.append(MemberProcess(*args))
        return started[-1]

    yield start
    for p in started:
        p.close()


# -- sharing, joining and leaving, with each server-side assignor -----------------------------


@pytest.mark.parametrize("assignor", ["uniform", "range"])
def test_members_share_partitions_and_rebalance(broker, members, assignor: str) -> None:
    topic = unique_topic(f"kip848-{assignor}")
    group = unique_topic(f"kip848-group-{assignor}")
    create_topic(broker.bootstrap, topic, PARTITIONS)

    def join(name: str) -> Member:
        members.append(member(broker.bootstrap, group, [topic], name, **config))
        return members[-1]

    config = {"group.remote.assignor": assignor}
    join("a")
    owned = settle(members)
    assert owned == {"a": frozenset(range(PARTITIONS))}
    desc = coordinator_view(broker.bootstrap, group, owned)
    assert desc.partition_assignor == assignor

    b = join("b")
    owned = settle(members)
    assert sorted(len(ps) for ps in owned.values()) == [3, 3], owned
    coordinator_view(broker.bootstrap, group, owned)

    join("c")
    before = owned
    owned = settle(members)
    assert sorted(len(ps) for ps in owned.values()) == [2, 2, 2], owned
    coordinator_view(broker.bootstrap, group, owned)
    if assignor == "range":
        assert sorted(sorted(ps) for ps in owned.values()) == [[0, 1], [2, 3], [4, 5]]
    else:
        # Incremental and sticky: the first two keep two of their three partitions each.
        assert owned["a"] < before["a"] and owned["b"] < before["b"], (before, owned)

    # b leaves (close sends a heartbeat with epoch -1): a and c take its partitions at once,
    # without waiting for its session to expire.
    b.close()
    started = time.monotonic()
    live = [m for m in members if not m.closed]
    owned = settle(live)
    assert time.monotonic() - started < SESSION_MS / 1000 - 1
    assert sorted(len(ps) for ps in owned.values()) == [3, 3], owned
    coordinator_view(broker.bootstrap, group, owned)

    # Records reach exactly the member that owns their partition, each exactly once.
    keys = [f"{assignor}-{i}".encode() for i in range(60)]
    produce(
        broker.bootstrap,
        topic,
        [{"key": k, "value": b"v", "partition": i % PARTITIONS} for i, k in enumerate(keys)],
    ).ok()
    poll_until(live, lambda: sum(len(m.records) for m in live) >= len(keys))
    keep_polling(live, 0.5)
    assert sorted(r.key for m in live for r in m.records) == sorted(keys)
    for m in live:
        assert {r.partition for r in m.records} <= owned[m.name], m.name


# -- committed offsets -------------------------------------------------------------------------


def test_members_commit_with_their_epoch_and_others_resume_from_there(broker, members) -> None:
    topic = unique_topic("kip848-resume")
    group = unique_topic("kip848-resume-group")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    keys = [f"resume-{i}".encode() for i in range(90)]
    records = [{"key": k, "value": b"v", "partition": i % PARTITIONS} for i, k in enumerate(keys)]

    first = [member(broker.bootstrap, group, [topic], n, commit_each=True) for n in ("a", "b")]
    members.extend(first)
    settle(first)
    produce(broker.bootstrap, topic, records[:60]).ok()
    deadline = time.monotonic() + TIMEOUT_S
    while sum(len(m.records) for m in first) < 25:
        assert time.monotonic() < deadline, events(first)
        for m in first:
            m.poll(0.05)
    for m in first:
        m.close()
    processed_first = [r.key for m in first for r in m.records]
    assert len(processed_first) == len(set(processed_first)) >= 25
    assert len(processed_first) < 60, "nothing was left for the new members: the test is void"

    produce(broker.bootstrap, topic, records[60:]).ok()
    second = [member(broker.bootstrap, group, [topic], n, commit_each=True) for n in ("c", "d")]
    members.extend(second)
    remaining = len(keys) - len(processed_first)
    poll_until(second, lambda: sum(len(m.records) for m in second) >= remaining)
    keep_polling(second, 1.0)  # a redelivery would show up now
    processed_second = [r.key for m in second for r in m.records]
    assert len(processed_second) == len(set(processed_second))
    assert not set(processed_first) & set(processed_second)
    assert sorted(processed_first + processed_second) == sorted(keys)

    client = admin(broker.bootstrap)
    committed = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[
        group
    ].result(TIMEOUT_S)
    got = {tp.partition: tp.offset for tp in committed.topic_partitions if tp.topic == topic}
    assert got == {p: watermarks(broker.bootstrap, topic, p)[1] for p in range(PARTITIONS)}


# -- members in subprocesses: static membership and killed members -----------------------------


def test_static_member_restart_keeps_partitions_without_rebalance(
    broker, members, processes
) -> None:
    topic = unique_topic("kip848-static")
    group = unique_topic("kip848-static-group")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    static = {"client.id": "s", "group.instance.id": "instance-1", "group.protocol": "consumer"}
    s = processes(broker.bootstrap, topic, group, static)
    m = member(broker.bootstrap, group, [topic], "m")
    members.append(m)
    mine, theirs = settle_with(m, s)
    desc = coordinator_view(broker.bootstrap, group, {"m": mine, "s": theirs})
    assert {d.client_id: d.group_instance_id for d in desc.members} == {
        "m": None,
        "s": "instance-1",
    }
    mark = len(m.events)

    # A static member's close leaves for a while (member epoch -2): it keeps its partitions
    # and gets them back when it returns within its session timeout.
    s.stop()
    s2 = processes(broker.bootstrap, topic, group, static)
    deadline = time.monotonic() + TIMEOUT_S
    while not s2.owned():
        m.poll(0.05)
        assert time.monotonic() < deadline, f"restarted member got nothing: {s2.events}"
    assert s2.owned() == theirs
    keep_polling([m], 2.0)
    assert m.events[mark:] == [], "the other member saw a rebalance"
    assert m.owned() == mine
    coordinator_view(broker.bootstrap, group, {"m": mine, "s": theirs})


def test_killed_member_loses_partitions_after_session_timeout(broker, members, processes) -> None:
    topic = unique_topic("kip848-sigkill")
    group = unique_topic("kip848-sigkill-group")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    s = processes(broker.bootstrap, topic, group, {"client.id": "s", "group.protocol": "consumer"})
    m = member(broker.bootstrap, group, [topic], "m")
    members.append(m)
    mine, theirs = settle_with(m, s)
    coordinator_view(broker.bootstrap, group, {"m": mine, "s": theirs})
    s.kill()
    killed_at = time.monotonic()
    owned = settle([m], timeout_s=SESSION_MS / 1000 + TIMEOUT_S)
    waited = time.monotonic() - killed_at
    assert owned == {"m": frozenset(range(PARTITIONS))}
    # Its last heartbeat was at most 0.3 s before the kill: the coordinator waited out the
    # session (6 s) rather than dropping the member when its connection closed.
    assert waited > SESSION_MS / 1000 - 1, f"partitions moved {waited:.1f} s after the kill"
    coordinator_view(broker.bootstrap, group, {"m": owned["m"]})


# -- regular expressions -------------------------------------------------------------------------


def test_a_regex_subscription_follows_the_topics_it_matches(broker, members) -> None:
    prefix = unique_topic("kip848-regex")
    matching = [f"{prefix}-a", f"{prefix}-b"]
    other = unique_topic("kip848-other")
    for name in (*matching, other):
        create_topic(broker.bootstrap, name, 2)
    m = member(broker.bootstrap, unique_topic("kip848-regex-group"), [f"^{prefix}-.*"], "m")
    members.append(m)

    def topics_owned() -> set[str]:
        return {tp.topic for tp in m.consumer.assignment()}

    poll_until([m], lambda: topics_owned() == set(matching))
    # A topic created later that matches joins the subscription.
    late = f"{prefix}-late"
    create_topic(broker.bootstrap, late, 2)
    poll_until([m], lambda: topics_owned() == {*matching, late})
    assert len(m.consumer.assignment()) == 6


# -- bad input over raw sockets ------------------------------------------------------------------


def heartbeat(raw: Raw, version: int = 1, **fields: Any) -> Any:
    fields.setdefault("member_id", "raw-member-1")
    fields.setdefault("member_epoch", 0)
    fields.setdefault("topic_partitions", ())
    fields.setdefault("subscribed_topic_names", ())
    return raw.call(
        entity("consumer_group_heartbeat", version, "ConsumerGroupHeartbeatRequest", **fields)
    )


def test_bad_heartbeats_get_kafkas_errors_and_leave_the_group_unharmed(broker, members) -> None:
    topic = unique_topic("kip848-bad")
    group = unique_topic("kip848-bad-group")
    create_topic(broker.bootstrap, topic, 2)
    m = member(broker.bootstrap, group, [topic], "m", commit_each=True)
    members.append(m)
    settle([m], partitions=2)
    desc = coordinator_view(broker.bootstrap, group, {"m": frozenset({0, 1})})
    (good,) = desc.members
    raw = Raw(broker.port)

    def error(**fields: Any) -> int:
        return int(heartbeat(raw, group_id=group, rebalance_timeout=30_000, **fields).error_code)

    assert error(member_epoch=5, member_id="stranger") == ErrorCode.UNKNOWN_MEMBER_ID
    # An epoch ahead of the coordinator's is fenced
    assert error(member_epoch=999, member_id=good.member_id) == ErrorCode.FENCED_MEMBER_EPOCH
    assert error(subscribed_topic_regex="bad(") == ErrorCode.INVALID_REGULAR_EXPRESSION
    assert error(server_assignor="sticky") == ErrorCode.UNSUPPORTED_ASSIGNOR
    assert error(member_epoch=-3) == ErrorCode.INVALID_REQUEST
    assert error(member_id="") == ErrorCode.INVALID_REQUEST
    response = heartbeat(raw, group_id=unique_topic("nobody"), member_epoch=3, rebalance_timeout=1)
    assert response.error_code == ErrorCode.GROUP_ID_NOT_FOUND

    # A commit with a stale or unknown member epoch is refused.
    commit = entity(
        "offset_commit",
        9,
        "OffsetCommitRequest",
        group_id=group,
        generation_id_or_member_epoch=0,
        member_id=good.member_id,
        group_instance_id=None,
        topics=(
            entity(
                "offset_commit",
                9,
                "OffsetCommitRequestTopic",
                name=topic,
                partitions=(
                    entity(
                        "offset_commit",
                        9,
                        "OffsetCommitRequestPartition",
                        partition_index=0,
                        committed_offset=123,
                        committed_leader_epoch=-1,
                        committed_metadata="",
                    ),
                ),
            ),
        ),
    )
    (topic_result,) = raw.call(commit).topics
    assert topic_result.partitions[0].error_code == ErrorCode.STALE_MEMBER_EPOCH

    # The group is as it was: the same member at the same epoch, and it still commits.
    after = coordinator_view(broker.bootstrap, group, {"m": frozenset({0, 1})})
    assert [(x.member_id, x.client_id) for x in after.members] == [(good.member_id, "m")]
    produce(broker.bootstrap, topic, [{"key": b"k", "value": b"v", "partition": 0}]).ok()
    poll_until([m], lambda: len(m.records) == 1)
    client = admin(broker.bootstrap)  # must outlive its future
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])]
    committed = client.list_consumer_group_offsets(request)[group].result(TIMEOUT_S)
    assert committed.topic_partitions[0].offset == 1


def test_classic_and_consumer_groups_share_one_namespace(broker, members) -> None:
    topic = unique_topic("kip848-namespace")
    group = unique_topic("kip848-namespace-group")
    create_topic(broker.bootstrap, topic, 2)
    m = member(broker.bootstrap, group, [topic], "m")
    members.append(m)
    settle([m], partitions=2)
    raw = Raw(broker.port)
    join = entity(
        "join_group",
        9,
        "JoinGroupRequest",
        group_id=group,
        session_timeout=30_000,
        rebalance_timeout=30_000,
        member_id="",
        group_instance_id=None,
        protocol_type="consumer",
        protocols=(
            entity("join_group", 9, "JoinGroupRequestProtocol", name="range", metadata=b""),
        ),
        reason=None,
    )
    assert raw.call(join).error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    describe_classic = entity(
        "describe_groups",
        5,
        "DescribeGroupsRequest",
        groups=(group,),
        include_authorized_operations=False,
    )
    (described,) = raw.call(describe_classic).groups
    assert described.group_state == "Dead"
    client = admin(broker.bootstrap)  # must outlive its future
    listed = client.list_consumer_groups().result(TIMEOUT_S).valid
    assert [(g.group_id, g.type.name) for g in listed if g.group_id == group] == [
        (group, "CONSUMER")
    ]

    # Once the consumer group is empty, a classic member may take the id over.
    m.close()
    deadline = time.monotonic() + TIMEOUT_S
    while (error := raw.call(join).error_code) == ErrorCode.INCONSISTENT_GROUP_PROTOCOL:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert error == ErrorCode.MEMBER_ID_REQUIRED


# -- a broker restart ------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_the_group_and_its_offsets_survive_a_broker_restart(
    broker_factory, members, how: str
) -> None:
    b = broker_factory(overrides=BROKER_OVERRIDES)
    topic, group = unique_topic("kip848-restart"), unique_topic("kip848-restart-group")
    create_topic(b.bootstrap, topic, 4)
    keys = [f"restart-{i}".encode() for i in range(40)]
    produce(
        b.bootstrap,
        topic,
        [{"key": k, "value": b"v", "partition": i % 4} for i, k in enumerate(keys)],
    ).ok()
    m = member(b.bootstrap, group, [topic], "m", commit_each=True)
    members.append(m)
    poll_until([m], lambda: len(m.records) >= 20)
    before = coordinator_view(b.bootstrap, group, {"m": frozenset(range(4))})

    if how == "kill":
        b.kill()
    else:
        b.stop()
    b.start()
    # The coordinator loads the group from __consumer_offsets: the same member at the same
    # epochs, and the member carries on heartbeating without a rebalance.
    keep_polling([m], 1.0)
    after = coordinator_view(b.bootstrap, group, {"m": frozenset(range(4))})
    assert [(x.member_id, x.client_id) for x in after.members] == [
        (x.member_id, x.client_id) for x in before.members
    ]
    assert [e for e in m.events if e[0] != "assign"] == [], m.events
    processed = [r.key for r in m.records]
    m.close()

    # A new member resumes exactly where the committed offsets say.
    n = member(b.bootstrap, group, [topic], "n", commit_each=True)
    members.append(n)
    poll_until([n], lambda: len(processed) + len(n.records) >= len(keys))
    keep_polling([n], 1.0)
    again = [r.key for r in n.records]
    assert not set(processed) & set(again)
    assert sorted(processed + again) == sorted(keys)
