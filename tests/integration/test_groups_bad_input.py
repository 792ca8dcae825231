"""Bad group requests over raw sockets: each gets the error Kafka's group coordinator returns,
harms no group state, and after every test a real confluent-kafka group consumer still resumes
exactly from its committed offsets.

Requests are kio entities (kio is the encoding of Kafka's JSON message schemas) sent over a
plain socket, so every field is under the test's control: member ids, generations, protocol
lists, session timeouts and megabytes of member metadata that no client would send.
"""

from __future__ import annotations

import importlib
import io
import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions
from kafka_helpers import TIMEOUT_S, admin, create_topic, produce, unique_topic, watermarks
from kio.index import load_response_schema
from kio.schema.errors import ErrorCode
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i32

from odradek.protocol.codec import build

PARTITIONS = 2
RECORDS_PER_PARTITION = 10
SESSION_MS = 30_000  # raw members never heartbeat: they must outlive their test
MIB = 1024 * 1024


# -- requests and responses ---------------------------------------------------------------------


def entity(api: str, version: int, cls: str, /, **fields: Any) -> Any:
    """A kio request entity (or one of its nested structs) of `api` at `version`."""
    module = importlib.import_module(f"kio.schema.{api}.v{version}.request")
    return build(getattr(module, cls), **fields)


class Raw:
    """One connection to the broker; `call` sends a request entity and decodes the answer."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.correlation_id = 0

    def call(self, request: Any) -> Any:
        self.correlation_id += 1
        header_cls = request.__header_schema__
        header = header_cls(
            request_api_key=request.__api_key__,
            request_api_version=request.__version__,
            correlation_id=i32(self.correlation_id),
            client_id="raw-groups",
        )
        buffer = io.BytesIO()
        entity_writer(header_cls)(buffer, header)
        entity_writer(type(request))(buffer, request)
        payload = buffer.getvalue()
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", self._read(4))
        view = memoryview(self._read(size)).toreadonly()
        response_cls = load_response_schema(request.__api_key__, request.__version__)
        response_header, position = entity_reader(response_cls.__header_schema__)(view, 0)
        assert response_header.correlation_id == self.correlation_id
        response, _ = entity_reader(response_cls)(view, position)
        return response

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "the broker closed the connection"
            data += chunk
        return data


def string(value: str) -> bytes:
    encoded = value.encode()
    return struct.pack(">h", len(encoded)) + encoded


def subscription(topics: list[str], user_data: bytes | None = None) -> bytes:
    """ConsumerProtocolSubscription v0: version, topics, user data."""
    out = struct.pack(">hi", 0, len(topics)) + b"".join(string(t) for t in topics)
    if user_data is None:
        return out + struct.pack(">i", -1)
    return out + struct.pack(">i", len(user_data)) + user_data


def assignment(topic: str, partitions: list[int]) -> bytes:
    """ConsumerProtocolAssignment v0: version, [topic, [partition]], user data."""
    out = struct.pack(">hi", 0, 1) + string(topic) + struct.pack(">i", len(partitions))
    return out + b"".join(struct.pack(">i", p) for p in partitions) + struct.pack(">i", -1)


def join(
    raw: Raw,
    group: str,
    topic: str,
    member_id: str = "",
    version: int = 5,
    session_ms: int = SESSION_MS,
    rebalance_ms: int = SESSION_MS,
    protocol_type: str = "consumer",
    protocols: tuple[tuple[str, bytes], ...] | None = None,
) -> Any:
    if protocols is None:
        protocols = (("range", subscription([topic])),)
    api = "join_group"
    return raw.call(
        entity(
            api,
            version,
            "JoinGroupRequest",
            group_id=group,
            session_timeout=session_ms,
            rebalance_timeout=rebalance_ms,
            member_id=member_id,
            group_instance_id=None,
            protocol_type=protocol_type,
            protocols=tuple(
                entity(api, version, "JoinGroupRequestProtocol", name=n, metadata=m)
                for n, m in protocols
            ),
            reason=None,
        )
    )


def join_two_step(raw: Raw, group: str, topic: str, **kwargs: Any) -> Any:
    """JoinGroup v4+ as clients do it: ask, get MEMBER_ID_REQUIRED and an id, join with it."""
    first = join(raw, group, topic, **kwargs)
    assert first.error_code == ErrorCode.member_id_required, first
    response = join(raw, group, topic, member_id=first.member_id, **kwargs)
    assert response.error_code == ErrorCode.none, response
    return response


def sync(
    raw: Raw,
    group: str,
    generation: int,
    member_id: str,
    assignments: dict[str, bytes],
    protocol_name: str = "range",
) -> Any:
    api = "sync_group"
    return raw.call(
        entity(
            api,
            5,
            "SyncGroupRequest",
            group_id=group,
            generation_id=generation,
            member_id=member_id,
            group_instance_id=None,
            protocol_type="consumer",
            protocol_name=protocol_name,
            assignments=tuple(
                entity(api, 5, "SyncGroupRequestAssignment", member_id=m, assignment=a)
                for m, a in assignments.items()
            ),
        )
    )


def stable_member(raw: Raw, group: str, topic: str) -> tuple[str, int]:
    """A raw member alone in `group`, through join and sync: (member id, generation)."""
    joined = join_two_step(raw, group, topic)
    assert joined.leader == joined.member_id
    synced = sync(
        raw,
        group,
        joined.generation_id,
        joined.member_id,
        {joined.member_id: assignment(topic, list(range(PARTITIONS)))},
    )
    assert synced.error_code == ErrorCode.none, synced
    return joined.member_id, joined.generation_id


def commit(
    raw: Raw,
    group: str,
    generation: int,
    member_id: str,
    topic: str,
    offsets: dict[int, int],
    metadata: dict[int, str] | None = None,
    version: int = 8,
) -> dict[int, ErrorCode]:
    api = "offset_commit"
    response = raw.call(
        entity(
            api,
            version,
            "OffsetCommitRequest",
            group_id=group,
            generation_id_or_member_epoch=generation,
            member_id=member_id,
            group_instance_id=None,
            topics=(
                entity(
                    api,
                    version,
                    "OffsetCommitRequestTopic",
                    name=topic,
                    partitions=tuple(
                        entity(
                            api,
                            version,
                            "OffsetCommitRequestPartition",
                            partition_index=p,
                            committed_offset=offset,
                            committed_leader_epoch=-1,
                            committed_metadata=(metadata or {}).get(p, ""),
                        )
                        for p, offset in offsets.items()
                    ),
                ),
            ),
        )
    )
    (answer,) = response.topics
    return {p.partition_index: p.error_code for p in answer.partitions}


def fetch(raw: Raw, group: str, topic: str) -> dict[int, tuple[int, str]]:
    api = "offset_fetch"
    response = raw.call(
        entity(
            api,
            8,
            "OffsetFetchRequest",
            groups=(
                entity(
                    api,
                    8,
                    "OffsetFetchRequestGroup",
                    group_id=group,
                    topics=(
                        entity(
                            api,
                            8,
                            "OffsetFetchRequestTopics",
                            name=topic,
                            partition_indexes=tuple(range(PARTITIONS)),
                        ),
                    ),
                ),
            ),
            require_stable=False,
        )
    )
    (answer,) = response.groups
    assert answer.error_code == ErrorCode.none, answer
    (partitions,) = answer.topics
    return {
        p.partition_index: (p.committed_offset, p.metadata or "") for p in partitions.partitions
    }


def describe(raw: Raw, group: str, version: int = 5) -> Any:
    request = entity(
        "describe_groups",
        version,
        "DescribeGroupsRequest",
        groups=(group,),
        include_authorized_operations=False,
    )
    (described,) = raw.call(request).groups
    return described


def heartbeat(raw: Raw, group: str, generation: int, member_id: str) -> ErrorCode:
    request = entity(
        "heartbeat",
        4,
        "HeartbeatRequest",
        group_id=group,
        generation_id=generation,
        member_id=member_id,
        group_instance_id=None,
    )
    return raw.call(request).error_code


def leave(raw: Raw, group: str, member_id: str) -> Any:
    member = entity("leave_group", 5, "MemberIdentity", member_id=member_id, reason=None)
    return raw.call(
        entity("leave_group", 5, "LeaveGroupRequest", group_id=group, members=(member,))
    )


def delete_groups(raw: Raw, groups: list[str]) -> dict[str, ErrorCode]:
    request = entity("delete_groups", 2, "DeleteGroupsRequest", groups_names=tuple(groups))
    return {r.group_id: r.error_code for r in raw.call(request).results}


# -- fixtures: a topic with data, and a group a real consumer checks after every test ----------


@pytest.fixture
def raw(broker) -> Iterator[Raw]:
    connection = Raw(broker.port)
    yield connection
    connection.sock.close()


@pytest.fixture(scope="module")
def data_topic(broker) -> str:
    """A topic with RECORDS_PER_PARTITION records in each partition, for groups to commit on."""
    topic = unique_topic("raw-groups-data")
    create_topic(broker.bootstrap, topic, PARTITIONS)
    records = [
        {"key": f"data-{p}-{i}".encode(), "value": b"v", "partition": p}
        for i in range(RECORDS_PER_PARTITION)
        for p in range(PARTITIONS)
    ]
    produce(broker.bootstrap, topic, records).ok()
    return topic


def consume_as_group(bootstrap: str, group: str, topic: str, expected: set[bytes]) -> None:
    """A confluent-kafka group member reads until it has seen `expected`, committing each
    record; anything else it reads (a record before the committed offsets) fails the test."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    c.subscribe([topic])
    seen: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not expected <= set(seen):
            assert time.monotonic() < deadline, f"read {seen}, expected {sorted(expected)}"
            msg = c.poll(0.1)
            if msg is None or msg.error() is not None:
                continue
            seen.append(msg.key())
            c.commit(message=msg, asynchronous=False)
    finally:
        c.close()
    assert sorted(seen) == sorted(expected), "read records before the committed offsets"


def committed_offsets(bootstrap: str, group: str) -> dict[tuple[str, int], int]:
    client = admin(bootstrap)  # must outlive its future
    future = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    return {(tp.topic, tp.partition): tp.offset for tp in future.result(TIMEOUT_S).topic_partitions}


class Sentinel:
    """A topic and a group that a real consumer advances by a few records after each test."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.topic = unique_topic("raw-groups-sentinel")
        self.group = unique_topic("raw-groups-sentinel")
        self.round = 0
        create_topic(bootstrap, self.topic, PARTITIONS)

    def check(self) -> None:
        before = committed_offsets(self.bootstrap, self.group)
        ends = {(self.topic, p): watermarks(self.bootstrap, self.topic, p)[1] for p in (0, 1)}
        if self.round:
            assert before == ends, "the sentinel group's committed offsets changed"
        self.round += 1
        keys = [f"round-{self.round}-{i}".encode() for i in range(4)]
        records = [
            {"key": k, "value": b"v", "partition": i % PARTITIONS} for i, k in enumerate(keys)
        ]
        produce(self.bootstrap, self.topic, records).ok()
        consume_as_group(self.bootstrap, self.group, self.topic, set(keys))
        ends = {(self.topic, p): watermarks(self.bootstrap, self.topic, p)[1] for p in (0, 1)}
        assert committed_offsets(self.bootstrap, self.group) == ends


@pytest.fixture(scope="module")
def sentinel(broker) -> Sentinel:
    guard = Sentinel(broker.bootstrap)
    guard.check()
    return guard


@pytest.fixture(autouse=True)
def group_consumers_still_work(broker, sentinel: Sentinel) -> Iterator[None]:
    yield
    assert broker.running, broker.log()
    sentinel.check()


# -- OffsetCommit -------------------------------------------------------------------------------


def test_offset_commit_from_an_unknown_member(raw, data_topic) -> None:
    group = unique_topic("raw-unknown-member")
    member_id, generation = stable_member(raw, group, data_topic)
    assert commit(raw, group, generation, member_id, data_topic, {0: 5}) == {0: ErrorCode.none}

    ghost = commit(raw, group, generation, "ghost-member", data_topic, {0: 9})
    assert ghost == {0: ErrorCode.unknown_member_id}
    # A "simple" commit (no generation, no member) is refused while the group has members.
    simple = commit(raw, group, -1, "", data_topic, {0: 9})
    assert simple == {0: ErrorCode.unknown_member_id}
    assert fetch(raw, group, data_topic) == {0: (5, ""), 1: (-1, "")}
    assert describe(raw, group).group_state == "Stable"


def test_offset_commit_with_a_stale_generation(raw, data_topic) -> None:
    group = unique_topic("raw-stale-generation")
    member_id, first = stable_member(raw, group, data_topic)
    assert commit(raw, group, first, member_id, data_topic, {1: 3}) == {1: ErrorCode.none}

    # The leader rejoins a stable group: a rebalance, and a new generation.
    rejoined = join(raw, group, data_topic, member_id=member_id)
    assert rejoined.error_code == ErrorCode.none, rejoined
    second = rejoined.generation_id
    assert second == first + 1
    own = {member_id: assignment(data_topic, [0, 1])}
    assert sync(raw, group, second, member_id, own).error_code == ErrorCode.none

    for generation in (first, second + 1):
        stale = commit(raw, group, generation, member_id, data_topic, {1: 8})
        assert stale == {1: ErrorCode.illegal_generation}, generation
        assert heartbeat(raw, group, generation, member_id) == ErrorCode.illegal_generation
    assert heartbeat(raw, group, second, member_id) == ErrorCode.none
    assert fetch(raw, group, data_topic) == {0: (-1, ""), 1: (3, "")}


@pytest.mark.parametrize(
    ("version", "error"),
    [
        (8, ErrorCode.illegal_generation),
        (9, ErrorCode.group_id_not_found),
    ],
)
def test_offset_commit_with_a_generation_to_an_unknown_group(
    raw, data_topic, version: int, error: ErrorCode
) -> None:
    """Kafka (OffsetMetadataManager.validateOffsetCommit): a generation >= 0 for a group that
    does not exist is ILLEGAL_GENERATION before v9 and GROUP_ID_NOT_FOUND from v9."""
    group = unique_topic("raw-no-such-group")
    answer = commit(raw, group, 1, "someone", data_topic, {0: 4}, version=version)
    assert answer == {0: error}
    assert describe(raw, group).group_state == "Dead"  # not created by the failed commit


def test_offset_commit_with_too_much_metadata(raw, data_topic) -> None:
    """offset.metadata.max.bytes (4096) is checked per partition; the others are committed."""
    group = unique_topic("raw-metadata")
    assert commit(raw, group, -1, "", data_topic, {0: 2, 1: 2}) == {
        0: ErrorCode.none,
        1: ErrorCode.none,
    }
    answer = commit(raw, group, -1, "", data_topic, {0: 7, 1: 7}, metadata={0: "m" * 4097, 1: "ok"})
    assert answer == {0: ErrorCode.offset_metadata_too_large, 1: ErrorCode.none}
    assert fetch(raw, group, data_topic) == {0: (2, ""), 1: (7, "ok")}


def test_offset_commit_while_the_group_completes_a_rebalance(raw, data_topic) -> None:
    """Between JoinGroup and SyncGroup the assignment is not settled: REBALANCE_IN_PROGRESS."""
    group = unique_topic("raw-commit-completing")
    joined = join_two_step(raw, group, data_topic)
    member_id, generation = joined.member_id, joined.generation_id
    early = commit(raw, group, generation, member_id, data_topic, {0: 1})
    assert early == {0: ErrorCode.rebalance_in_progress}
    own = {member_id: assignment(data_topic, [0, 1])}
    assert sync(raw, group, generation, member_id, own).error_code == ErrorCode.none
    assert commit(raw, group, generation, member_id, data_topic, {0: 1}) == {0: ErrorCode.none}
    assert fetch(raw, group, data_topic) == {0: (1, ""), 1: (-1, "")}


def test_offset_commit_to_a_topic_that_does_not_exist(raw, data_topic) -> None:
    group = unique_topic("raw-commit-no-topic")
    missing = unique_topic("raw-no-such-topic")
    assert commit(raw, group, -1, "", missing, {0: 1}) == {0: ErrorCode.unknown_topic_or_partition}
    beyond = commit(raw, group, -1, "", data_topic, {0: 1, PARTITIONS: 1})
    assert beyond == {0: ErrorCode.none, PARTITIONS: ErrorCode.unknown_topic_or_partition}
    assert fetch(raw, group, data_topic) == {0: (1, ""), 1: (-1, "")}


# -- JoinGroup and SyncGroup ---------------------------------------------------------------------


@pytest.mark.parametrize("version", [3, 5, 9])
def test_join_without_protocols_or_protocol_type(raw, data_topic, version: int) -> None:
    """Checked before MEMBER_ID_REQUIRED, as Kafka does (classicGroupJoinNewMember)."""
    group = unique_topic("raw-no-protocols")
    no_protocols = join(raw, group, data_topic, version=version, protocols=())
    assert no_protocols.error_code == ErrorCode.inconsistent_group_protocol
    no_type = join(raw, group, data_topic, version=version, protocol_type="")
    assert no_type.error_code == ErrorCode.inconsistent_group_protocol


def test_join_with_protocols_the_group_does_not_speak(raw, data_topic) -> None:
    group = unique_topic("raw-other-protocol")
    member_id, generation = stable_member(raw, group, data_topic)
    other_type = join(raw, group, data_topic, protocol_type="connect")
    assert other_type.error_code == ErrorCode.inconsistent_group_protocol
    sub = subscription([data_topic])
    no_common = join(raw, group, data_topic, protocols=(("roundrobin", sub),))
    assert no_common.error_code == ErrorCode.inconsistent_group_protocol
    described = describe(raw, group)
    assert (described.group_state, described.protocol_data) == ("Stable", "range")
    assert [m.member_id for m in described.members] == [member_id]
    assert heartbeat(raw, group, generation, member_id) == ErrorCode.none


@pytest.mark.parametrize("session_ms", [0, 5999, 1_800_001])
def test_session_timeout_outside_the_broker_bounds(raw, data_topic, session_ms: int) -> None:
    """group.min.session.timeout.ms is 6000 and group.max.session.timeout.ms 1800000."""
    group = unique_topic("raw-session-timeout")
    for version in (3, 5):
        refused = join(raw, group, data_topic, version=version, session_ms=session_ms)
        assert refused.error_code == ErrorCode.invalid_session_timeout, (version, refused)
    assert describe(raw, group).group_state == "Dead"
    # The bounds themselves are accepted.
    for bound in (6000, 1_800_000):
        joined = join(raw, unique_topic("raw-session-bound"), data_topic, session_ms=bound)
        assert joined.error_code == ErrorCode.member_id_required


@pytest.mark.parametrize("version", [4, 5, 6, 7, 8, 9])
def test_join_v4_and_later_without_member_id(raw, data_topic, version: int) -> None:
    group = unique_topic(f"raw-member-id-v{version}")
    first = join(raw, group, data_topic, version=version)
    assert first.error_code == ErrorCode.member_id_required
    assert first.member_id.startswith("raw-groups-"), first.member_id  # client id, then a UUID
    assert first.generation_id == -1
    second = join(raw, group, data_topic, member_id=first.member_id, version=version)
    assert second.error_code == ErrorCode.none, second
    assert (second.member_id, second.leader, second.generation_id) == (
        first.member_id,
        first.member_id,
        1,
    )


def test_join_v3_needs_no_member_id_round_trip(raw, data_topic) -> None:
    joined = join(raw, unique_topic("raw-member-id-v3"), data_topic, version=3)
    assert joined.error_code == ErrorCode.none, joined
    assert joined.member_id and joined.generation_id == 1


def test_a_pending_member_that_never_returns_expires_after_its_session(raw, data_topic) -> None:
    """Kafka waits for members told MEMBER_ID_REQUIRED (ClassicGroup.hasAllMembersJoined)
    but drops them when their session timeout passes without the second JoinGroup."""
    group = unique_topic("raw-pending")
    pending = join(raw, group, data_topic, session_ms=6000)
    assert pending.error_code == ErrorCode.member_id_required
    started = time.monotonic()
    member_id, generation = stable_member(raw, group, data_topic)
    waited = time.monotonic() - started
    assert generation == 1
    assert 4.0 < waited < 12.0, f"the join completed {waited:.1f} s after the pending one"
    assert [m.member_id for m in describe(raw, group).members] == [member_id]
    assert pending.member_id != member_id
    assert heartbeat(raw, group, 1, pending.member_id) == ErrorCode.unknown_member_id


def test_join_with_an_empty_group_id(raw, data_topic) -> None:
    for version in (3, 5):
        refused = join(raw, "", data_topic, version=version)
        assert refused.error_code == ErrorCode.invalid_group_id, (version, refused)


def test_a_member_that_misses_the_rebalance_is_removed(broker, data_topic) -> None:
    """Kafka completes the join phase after the rebalance timeout without the members that did
    not rejoin, and forgets them (ClassicGroup: members not awaiting join are removed)."""
    a, b = Raw(broker.port), Raw(broker.port)
    try:
        group = unique_topic("raw-missed-rebalance")
        quick = {"rebalance_ms": 2000}
        first = join_two_step(a, group, data_topic, **quick)
        own = {first.member_id: assignment(data_topic, [0, 1])}
        assert sync(a, group, 1, first.member_id, own).error_code == ErrorCode.none
        second = join(b, group, data_topic, **quick)  # a new member: a rebalance begins
        assert second.error_code == ErrorCode.member_id_required
        # a is still in generation 1 and says nothing more; b joins with its id and waits.
        started = time.monotonic()
        joined = join(b, group, data_topic, member_id=second.member_id, **quick)
        waited = time.monotonic() - started
        assert joined.error_code == ErrorCode.none, joined
        assert (joined.generation_id, joined.leader) == (2, second.member_id)
        assert [m.member_id for m in joined.members] == [second.member_id]
        assert 1.0 < waited < 10.0, f"the join completed after {waited:.1f} s"
        gone = heartbeat(a, group, first.generation_id, first.member_id)
        assert gone == ErrorCode.unknown_member_id
    finally:
        a.sock.close()
        b.sock.close()


def test_a_member_that_never_syncs_is_removed(broker, data_topic) -> None:
    """Kafka (expirePendingSync): members that joined a generation but sent no SyncGroup
    within the rebalance timeout are removed, and the group rebalances without them."""
    a, b = Raw(broker.port), Raw(broker.port)
    try:
        group = unique_topic("raw-never-syncs")
        quick = {"rebalance_ms": 2000}
        first = join_two_step(a, group, data_topic, **quick)
        leader = first.member_id
        own = {leader: assignment(data_topic, [0, 1])}
        assert sync(a, group, 1, leader, own).error_code == ErrorCode.none
        ask = join(b, group, data_topic, **quick)
        assert ask.error_code == ErrorCode.member_id_required
        with ThreadPoolExecutor(1) as pool:
            # b's JoinGroup waits for a to rejoin; both then get generation 2.
            joining = pool.submit(join, b, group, data_topic, member_id=ask.member_id, **quick)
            rejoined = join(a, group, data_topic, member_id=leader, **quick)
            follower = joining.result(TIMEOUT_S)
        assert (rejoined.error_code, follower.error_code) == (ErrorCode.none, ErrorCode.none)
        assert rejoined.generation_id == follower.generation_id == 2
        both = {
            leader: assignment(data_topic, [0]),
            follower.member_id: assignment(data_topic, [1]),
        }
        assert sync(a, group, 2, leader, both).error_code == ErrorCode.none
        # b never syncs: within a few rebalance timeouts the group rebalances without it.
        deadline = time.monotonic() + 10
        while heartbeat(a, group, 2, leader) == ErrorCode.none:
            assert time.monotonic() < deadline, "b was never removed"
            time.sleep(0.2)
        assert heartbeat(a, group, 2, leader) == ErrorCode.rebalance_in_progress
        again = join(a, group, data_topic, member_id=leader, **quick)
        assert again.error_code == ErrorCode.none, again
        assert again.generation_id == 3
        assert [m.member_id for m in again.members] == [leader]
        assert heartbeat(b, group, 2, follower.member_id) == ErrorCode.unknown_member_id
    finally:
        a.sock.close()
        b.sock.close()


def test_sync_with_the_wrong_generation_member_or_protocol(raw, data_topic) -> None:
    group = unique_topic("raw-sync")
    joined = join_two_step(raw, group, data_topic)
    member_id, generation = joined.member_id, joined.generation_id
    mine = {member_id: assignment(data_topic, [0, 1])}

    for wrong in (generation + 1, generation - 1):
        answer = sync(raw, group, wrong, member_id, mine)
        assert answer.error_code == ErrorCode.illegal_generation, (wrong, answer)
    assert sync(raw, group, generation, "ghost", mine).error_code == ErrorCode.unknown_member_id
    wrong_protocol = sync(raw, group, generation, member_id, mine, protocol_name="roundrobin")
    assert wrong_protocol.error_code == ErrorCode.inconsistent_group_protocol
    assert describe(raw, group).group_state == "CompletingRebalance"

    synced = sync(raw, group, generation, member_id, mine)
    assert synced.error_code == ErrorCode.none
    assert synced.assignment == mine[member_id]
    described = describe(raw, group)
    assert described.group_state == "Stable"
    assert [m.member_assignment for m in described.members] == [mine[member_id]]


def test_megabytes_of_member_metadata_leave_the_group_intact(
    broker, raw, data_topic, sentinel: Sentinel
) -> None:
    """Several MB of subscription user data (below socket.request.max.bytes): the broker stays
    up, the group stays consistent and keeps its offsets, and works for real consumers after.

    As Kafka does: the join is answered, but the group record the leader's SyncGroup must
    write exceeds the offsets topic's max message size (1 MB), so the sync fails with
    UNKNOWN_SERVER_ERROR (MESSAGE_TOO_LARGE as the group coordinator maps it) and the group
    goes back to PreparingRebalance, keeping its member and its offsets.
    """
    group = unique_topic("raw-huge")
    assert commit(raw, group, -1, "", data_topic, {0: 4, 1: 4}) == {
        0: ErrorCode.none,
        1: ErrorCode.none,
    }
    blob = bytes(range(256)) * (5 * MIB // 256)
    huge = subscription([data_topic], user_data=blob)
    joined = join_two_step(raw, group, data_topic, protocols=(("range", huge),))
    (listed,) = joined.members  # the leader gets every member's metadata back, intact
    assert listed.metadata == huge
    member_id = joined.member_id
    mine = {member_id: assignment(data_topic, [0, 1])}
    synced = sync(raw, group, joined.generation_id, member_id, mine)
    assert synced.error_code == ErrorCode.unknown_server_error, synced

    described = describe(raw, group)
    assert described.error_code == ErrorCode.none
    assert described.group_state == "PreparingRebalance"
    assert [m.member_id for m in described.members] == [member_id]
    assert fetch(raw, group, data_topic) == {0: (4, ""), 1: (4, "")}
    sentinel.check()  # another group works while this one holds megabytes

    (left,) = leave(raw, group, member_id).members
    assert left.error_code == ErrorCode.none
    described = describe(raw, group)
    assert (described.group_state, described.members) == ("Empty", ())
    # A real consumer of the group starts at the committed offsets.
    rest = {
        f"data-{p}-{i}".encode() for p in range(PARTITIONS) for i in range(4, RECORDS_PER_PARTITION)
    }
    consume_as_group(broker.bootstrap, group, data_topic, rest)


# -- DeleteGroups, DescribeGroups, Heartbeat, LeaveGroup ----------------------------------------


def test_delete_groups_refuses_a_group_with_members(raw, data_topic) -> None:
    group = unique_topic("raw-delete")
    member_id, generation = stable_member(raw, group, data_topic)
    assert commit(raw, group, generation, member_id, data_topic, {0: 6}) == {0: ErrorCode.none}
    missing = unique_topic("raw-delete-missing")
    assert delete_groups(raw, [group, missing, ""]) == {
        group: ErrorCode.non_empty_group,
        missing: ErrorCode.group_id_not_found,
        "": ErrorCode.invalid_group_id,
    }
    described = describe(raw, group)
    assert (described.group_state, [m.member_id for m in described.members]) == (
        "Stable",
        [member_id],
    )
    assert fetch(raw, group, data_topic) == {0: (6, ""), 1: (-1, "")}

    # Positive control: once the member has left, the group and its offsets can be deleted.
    assert leave(raw, group, member_id).members[0].error_code == ErrorCode.none
    assert delete_groups(raw, [group]) == {group: ErrorCode.none}
    assert describe(raw, group).group_state == "Dead"
    assert fetch(raw, group, data_topic) == {0: (-1, ""), 1: (-1, "")}


def test_describe_groups_v6_of_an_unknown_group(raw, data_topic) -> None:
    """KIP-1043: v6 answers GROUP_ID_NOT_FOUND; earlier versions a Dead group and no error."""
    missing = unique_topic("raw-describe-missing")
    described = describe(raw, missing, version=6)
    assert described.error_code == ErrorCode.group_id_not_found
    assert described.error_message
    old = describe(raw, missing, version=5)
    assert (old.error_code, old.group_state, old.members) == (ErrorCode.none, "Dead", ())
    assert describe(raw, "", version=6).error_code == ErrorCode.invalid_group_id

    group = unique_topic("raw-describe")
    member_id, _ = stable_member(raw, group, data_topic)
    known = describe(raw, group, version=6)
    assert (known.error_code, known.group_state) == (ErrorCode.none, "Stable")
    assert [m.member_id for m in known.members] == [member_id]


def test_heartbeat_and_leave_from_unknown_members(raw, data_topic) -> None:
    missing = unique_topic("raw-heartbeat-missing")
    assert heartbeat(raw, missing, 1, "nobody") == ErrorCode.unknown_member_id
    left = leave(raw, missing, "nobody")
    assert left.error_code == ErrorCode.none
    assert [m.error_code for m in left.members] == [ErrorCode.unknown_member_id]

    group = unique_topic("raw-heartbeat")
    member_id, generation = stable_member(raw, group, data_topic)
    assert heartbeat(raw, group, generation, "nobody") == ErrorCode.unknown_member_id
    left = leave(raw, group, "nobody")
    assert [m.error_code for m in left.members] == [ErrorCode.unknown_member_id]
    # The real member is untouched: no rebalance, same generation.
    assert heartbeat(raw, group, generation, member_id) == ErrorCode.none
    assert describe(raw, group).group_state == "Stable"
