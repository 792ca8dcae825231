"""Core messages <-> kio entities, for the quorum APIs.

Fetch v12-17 (1, as a KRaft replica uses it on `__cluster_metadata`), Vote v0-1 (52),
BeginQuorumEpoch v0-1 (53), EndQuorumEpoch v0-1 (54), DescribeQuorum v0-2 (55) and
FetchSnapshot v0-1 (59), both directions, requests and responses: what a broker handler and
the internal client will call once the quorum runs over the network. A Fetch response's
records are v2 batches: each `Batch` becomes one batch with its base offset and its epoch as
partitionLeaderEpoch; a control batch carries the LeaderChange control key. (The runtime will
send the log's own bytes instead; this path is for tests and the first wiring.)

kio is generated from a newer Kafka than the schemas the core's names follow: its Vote calls
the candidate ReplicaEpoch/ReplicaId (KIP-996 renamed them when v2 added PreVote); the bytes
on the wire are the same. Fields a version lacks are dropped on the way out (`codec.build`)
and take the core's defaults on the way in. Only the `__cluster_metadata` partition is read:
a request naming several partitions is answered for the first one, as KRaft has one.
"""

from __future__ import annotations

import uuid
from functools import cache
from types import ModuleType
from typing import Any

from odradek.metadata.raft.control import LEADER_CHANGE_KEY
from odradek.metadata.raft.messages import (
    METADATA_TOPIC,
    Batch,
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    DescribeQuorumRequest,
    DescribeQuorumResponse,
    Endpoint,
    EndQuorumEpochRequest,
    EndQuorumEpochResponse,
    EpochEndOffset,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    LeaderIdAndEpoch,
    OffsetAndEpoch,
    RaftError,
    ReplicaState,
    VoteRequest,
    VoteResponse,
)
from odradek.protocol.codec import build, millis
from odradek.protocol.records import ATTR_CONTROL, decode_records, encode_batch, iter_batches

FETCH = 1
VOTE = 52
BEGIN_QUORUM_EPOCH = 53
END_QUORUM_EPOCH = 54
DESCRIBE_QUORUM = 55
FETCH_SNAPSHOT = 59
METADATA_TOPIC_ID = uuid.UUID(int=1)  # Kafka's Uuid.METADATA_TOPIC_ID
VERSIONS = {
    FETCH: (12, 17),
    VOTE: (0, 1),
    BEGIN_QUORUM_EPOCH: (0, 1),
    END_QUORUM_EPOCH: (0, 1),
    DESCRIBE_QUORUM: (0, 2),
    FETCH_SNAPSHOT: (0, 1),
}

QuorumMessage = (
    FetchRequest
    | FetchResponse
    | VoteRequest
    | VoteResponse
    | BeginQuorumEpochRequest
    | BeginQuorumEpochResponse
    | EndQuorumEpochRequest
    | EndQuorumEpochResponse
    | DescribeQuorumRequest
    | DescribeQuorumResponse
    | FetchSnapshotRequest
    | FetchSnapshotResponse
)

_API_KEYS: dict[type[Any], int] = {
    FetchRequest: FETCH,
    FetchResponse: FETCH,
    VoteRequest: VOTE,
    VoteResponse: VOTE,
    BeginQuorumEpochRequest: BEGIN_QUORUM_EPOCH,
    BeginQuorumEpochResponse: BEGIN_QUORUM_EPOCH,
    EndQuorumEpochRequest: END_QUORUM_EPOCH,
    EndQuorumEpochResponse: END_QUORUM_EPOCH,
    DescribeQuorumRequest: DESCRIBE_QUORUM,
    DescribeQuorumResponse: DESCRIBE_QUORUM,
    FetchSnapshotRequest: FETCH_SNAPSHOT,
    FetchSnapshotResponse: FETCH_SNAPSHOT,
}
_REQUESTS = (
    FetchRequest,
    VoteRequest,
    BeginQuorumEpochRequest,
    EndQuorumEpochRequest,
    DescribeQuorumRequest,
    FetchSnapshotRequest,
)


@cache
def _module(api_key: int, version: int, request: bool) -> ModuleType:
    from kio.index import load_payload_module
    from kio.static.constants import EntityType

    if request:
        return load_payload_module(api_key, version, EntityType.request)
    return load_payload_module(api_key, version, EntityType.response)


class _Schema:
    def __init__(self, module: ModuleType) -> None:
        self._module = module

    def make(self, entity: str, /, **values: Any) -> Any:
        return build(getattr(self._module, entity), **values)

    def has(self, entity: str) -> bool:
        return hasattr(self._module, entity)


def api_key_of(message: QuorumMessage) -> int:
    return _API_KEYS[type(message)]


def _error(code: Any) -> RaftError:
    try:
        return RaftError(int(code))
    except ValueError:
        return RaftError.UNKNOWN_SERVER_ERROR


def _first_partition(entity: Any) -> tuple[str, Any]:
    topic = entity.topics[0]
    name = getattr(topic, "topic_name", None) or getattr(topic, "name", "")
    return str(name), topic.partitions[0]


def encode_records(batches: tuple[Batch, ...]) -> bytes:
    """The v2 record batches of `batches`, concatenated as a Fetch response carries them."""
    out = bytearray()
    for batch in batches:
        key = LEADER_CHANGE_KEY if batch.control else None
        out += encode_batch(
            [(key, record, []) for record in batch.records],
            base_offset=batch.base_offset,
            partition_leader_epoch=batch.epoch,
            attributes=ATTR_CONTROL if batch.control else 0,
        )
    return bytes(out)


def decode_batches(data: bytes | None) -> tuple[Batch, ...]:
    """The `Batch` values of concatenated v2 record batches (a partial last one is left)."""
    if not data:
        return ()
    out: list[Batch] = []
    for position, header in iter_batches(data):
        _, records = decode_records(data[position : position + header.size])
        values = tuple(r.value or b"" for r in records)
        out.append(
            Batch(header.base_offset, header.partition_leader_epoch, values, header.is_control)
        )
    return tuple(out)


def _topic_id(topic_name: str) -> uuid.UUID:
    return METADATA_TOPIC_ID if topic_name == METADATA_TOPIC else uuid.UUID(int=0)


def _topic_name(topic: Any) -> str:
    name = getattr(topic, "topic", None)
    if name is not None:
        return str(name)
    return METADATA_TOPIC if topic.topic_id == METADATA_TOPIC_ID else str(topic.topic_id)


# -- core -> kio --------------------------------------------------------------------------------


def to_kio(message: QuorumMessage, version: int) -> Any:
    """The kio entity of `message` at `version` of its API."""
    api_key = api_key_of(message)
    low, high = VERSIONS[api_key]
    if not low <= version <= high:
        raise ValueError(f"api {api_key} v{version} is not supported")
    s = _Schema(_module(api_key, version, isinstance(message, _REQUESTS)))

    def topics(partition: Any, topic_field: str = "topic_name") -> tuple[Any, ...]:
        topic_class = "TopicSnapshot" if api_key == FETCH_SNAPSHOT else "TopicData"
        return (
            s.make(topic_class, **{topic_field: message.topic_name, "partitions": (partition,)}),
        )

    def node_endpoints(endpoints: tuple[Endpoint, ...]) -> tuple[Any, ...]:
        if not s.has("NodeEndpoint"):  # before v1
            return ()
        return tuple(
            s.make("NodeEndpoint", node_id=e.node_id, host=e.host, port=e.port) for e in endpoints
        )

    def leader_endpoints(endpoints: tuple[Endpoint, ...]) -> tuple[Any, ...]:
        if not s.has("LeaderEndpoint"):  # before v1
            return ()
        return tuple(
            s.make("LeaderEndpoint", name=e.name, host=e.host, port=e.port) for e in endpoints
        )

    if isinstance(message, FetchRequest):
        fetch_partition = s.make(
            "FetchPartition",
            partition=message.partition_index,
            current_leader_epoch=message.current_leader_epoch,
            fetch_offset=message.fetch_offset,
            last_fetched_epoch=message.last_fetched_epoch,
            log_start_offset=message.log_start_offset,
            partition_max_bytes=message.partition_max_bytes,
            replica_directory_id=message.replica_directory_id,
        )
        fetch_topic = s.make(
            "FetchTopic",
            topic=message.topic_name,
            topic_id=_topic_id(message.topic_name),
            partitions=(fetch_partition,),
        )
        replica_state = None
        if s.has("ReplicaState"):  # v15+: the replica id moved into ReplicaState
            replica_state = s.make(
                "ReplicaState", replica_id=message.replica_id, replica_epoch=message.replica_epoch
            )
        return s.make(
            "FetchRequest",
            cluster_id=message.cluster_id,
            replica_id=message.replica_id,
            replica_state=replica_state,
            max_wait=message.max_wait_ms,
            min_bytes=message.min_bytes,
            max_bytes=message.max_bytes,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=(fetch_topic,),
            forgotten_topics_data=(),
            rack_id="",
        )
    if isinstance(message, FetchResponse):
        from kio.static.primitive import Records

        diverging = message.diverging_epoch
        snapshot_id = message.snapshot_id
        partition_data = s.make(
            "PartitionData",
            partition_index=message.partition_index,
            error_code=message.error_code,
            high_watermark=message.high_watermark,
            last_stable_offset=-1,
            log_start_offset=message.log_start_offset,
            diverging_epoch=s.make(
                "EpochEndOffset",
                epoch=diverging.epoch if diverging else -1,
                end_offset=diverging.end_offset if diverging else -1,
            ),
            current_leader=s.make(
                "LeaderIdAndEpoch",
                leader_id=message.current_leader.leader_id,
                leader_epoch=message.current_leader.leader_epoch,
            ),
            snapshot_id=s.make(
                "SnapshotId",
                end_offset=snapshot_id.offset if snapshot_id else -1,
                epoch=snapshot_id.epoch if snapshot_id else -1,
            ),
            aborted_transactions=(),
            preferred_read_replica=-1,
            records=Records(encode_records(message.records)),
        )
        topic_response = s.make(
            "FetchableTopicResponse",
            topic=message.topic_name,
            topic_id=_topic_id(message.topic_name),
            partitions=(partition_data,),
        )
        return s.make(
            "FetchResponse",
            throttle_time=0,
            error_code=message.top_level_error_code,
            session_id=0,
            responses=(topic_response,),
            node_endpoints=node_endpoints(message.node_endpoints),
        )
    if isinstance(message, VoteRequest):
        partition = s.make(
            "PartitionData",
            partition_index=message.partition_index,
            replica_epoch=message.candidate_epoch,
            replica_id=message.candidate_id,
            replica_directory_id=message.candidate_directory_id,
            voter_directory_id=message.voter_directory_id,
            last_offset_epoch=message.last_offset_epoch,
            last_offset=message.last_offset,
        )
        return s.make(
            "VoteRequest",
            cluster_id=message.cluster_id,
            voter_id=message.voter_id,
            topics=topics(partition),
        )
    if isinstance(message, VoteResponse):
        partition = s.make(
            "PartitionData",
            partition_index=message.partition_index,
            error_code=message.error_code,
            leader_id=message.leader_id,
            leader_epoch=message.leader_epoch,
            vote_granted=message.vote_granted,
        )
        return s.make(
            "VoteResponse",
            error_code=message.top_level_error_code,
            topics=topics(partition),
            node_endpoints=node_endpoints(message.node_endpoints),
        )
    if isinstance(message, BeginQuorumEpochRequest):
        partition = s.make(
            "PartitionData",
            partition_index=message.partition_index,
            voter_directory_id=message.voter_directory_id,
            leader_id=message.leader_id,
            leader_epoch=message.leader_epoch,
        )
        return s.make(
            "BeginQuorumEpochRequest",
            cluster_id=message.cluster_id,
            voter_id=message.voter_id,
            topics=topics(partition),
            leader_endpoints=leader_endpoints(message.leader_endpoints),
        )
    if isinstance(message, BeginQuorumEpochResponse | EndQuorumEpochResponse):
        partition = s.make(
            "PartitionData",
            partition_index=message.partition_index,
            error_code=message.error_code,
            leader_id=message.leader_id,
            leader_epoch=message.leader_epoch,
        )
        return s.make(
            type(message).__name__,
            error_code=message.top_level_error_code,
            topics=topics(partition),
            node_endpoints=node_endpoints(message.node_endpoints),
        )
    if isinstance(message, EndQuorumEpochRequest):
        directory_ids = message.preferred_candidate_directory_ids or (None,) * len(
            message.preferred_successors
        )
        candidates = tuple(
            s.make("ReplicaInfo", candidate_id=c, candidate_directory_id=d)
            for c, d in zip(message.preferred_successors, directory_ids, strict=True)
        ) if version >= 1 else ()  # fmt: skip
        partition = s.make(
            "PartitionData",
            partition_index=message.partition_index,
            leader_id=message.leader_id,
            leader_epoch=message.leader_epoch,
            preferred_successors=message.preferred_successors,
            preferred_candidates=candidates,
        )
        return s.make(
            "EndQuorumEpochRequest",
            cluster_id=message.cluster_id,
            topics=topics(partition),
            leader_endpoints=leader_endpoints(message.leader_endpoints),
        )
    if isinstance(message, DescribeQuorumRequest):
        partition = s.make("PartitionData", partition_index=message.partition_index)
        return s.make("DescribeQuorumRequest", topics=topics(partition))
    if isinstance(message, DescribeQuorumResponse):

        def replicas(states: tuple[ReplicaState, ...]) -> tuple[Any, ...]:
            return tuple(
                s.make(
                    "ReplicaState",
                    replica_id=r.replica_id,
                    replica_directory_id=r.replica_directory_id,
                    log_end_offset=r.log_end_offset,
                    last_fetch_timestamp=r.last_fetch_timestamp,
                    last_caught_up_timestamp=r.last_caught_up_timestamp,
                )
                for r in states
            )

        partition = s.make(
            "PartitionData",
            partition_index=message.partition_index,
            error_code=message.error_code,
            error_message=message.error_message,
            leader_id=message.leader_id,
            leader_epoch=message.leader_epoch,
            high_watermark=message.high_watermark,
            current_voters=replicas(message.current_voters),
            observers=replicas(message.observers),
        )
        nodes: dict[int, list[Any]] = {}
        if version >= 2:
            for e in message.nodes:
                listener = s.make("Listener", name=e.name, host=e.host, port=e.port)
                nodes.setdefault(e.node_id, []).append(listener)
        return s.make(
            "DescribeQuorumResponse",
            error_code=message.top_level_error_code,
            error_message=message.top_level_error_message,
            topics=topics(partition),
            nodes=tuple(s.make("Node", node_id=n, listeners=tuple(ls)) for n, ls in nodes.items()),
        )
    if isinstance(message, FetchSnapshotRequest):
        partition = s.make(
            "PartitionSnapshot",
            partition=message.partition_index,
            current_leader_epoch=message.current_leader_epoch,
            snapshot_id=s.make(
                "SnapshotId",
                end_offset=message.snapshot_id.offset,
                epoch=message.snapshot_id.epoch,
            ),
            position=message.position,
            replica_directory_id=message.replica_directory_id,
        )
        return s.make(
            "FetchSnapshotRequest",
            cluster_id=message.cluster_id,
            replica_id=message.replica_id,
            max_bytes=message.max_bytes,
            topics=topics(partition, "name"),
        )
    from kio.static.primitive import Records

    partition = s.make(
        "PartitionSnapshot",
        index=message.partition_index,
        error_code=message.error_code,
        snapshot_id=s.make(
            "SnapshotId", end_offset=message.snapshot_id.offset, epoch=message.snapshot_id.epoch
        ),
        current_leader=s.make(
            "LeaderIdAndEpoch",
            leader_id=message.current_leader.leader_id,
            leader_epoch=message.current_leader.leader_epoch,
        ),
        size=message.size,
        position=message.position,
        unaligned_records=Records(message.unaligned_records),
    )
    return s.make(
        "FetchSnapshotResponse",
        throttle_time=message.throttle_time_ms,
        error_code=message.top_level_error_code,
        topics=topics(partition, "name"),
        node_endpoints=node_endpoints(message.node_endpoints),
    )


# -- kio -> core --------------------------------------------------------------------------------


def _node_endpoints(entity: Any) -> tuple[Endpoint, ...]:
    return tuple(
        Endpoint(int(e.node_id), "", e.host, int(e.port))
        for e in getattr(entity, "node_endpoints", ())
    )


def _leader_endpoints(entity: Any, leader_id: int) -> tuple[Endpoint, ...]:
    return tuple(
        Endpoint(leader_id, e.name, e.host, int(e.port))
        for e in getattr(entity, "leader_endpoints", ())
    )


def from_kio(entity: Any) -> QuorumMessage:
    """The core message of a decoded kio request or response of a quorum API."""
    name = type(entity).__name__
    if name == "FetchRequest":
        fetch_topic = entity.topics[0]
        fp = fetch_topic.partitions[0]
        replica_state = getattr(entity, "replica_state", None)
        return FetchRequest(
            replica_id=int(replica_state.replica_id if replica_state else entity.replica_id),
            current_leader_epoch=int(fp.current_leader_epoch),
            fetch_offset=int(fp.fetch_offset),
            last_fetched_epoch=int(fp.last_fetched_epoch),
            log_start_offset=int(fp.log_start_offset),
            cluster_id=entity.cluster_id,
            replica_epoch=int(replica_state.replica_epoch) if replica_state else -1,
            max_wait_ms=millis(entity.max_wait),
            min_bytes=int(entity.min_bytes),
            max_bytes=int(entity.max_bytes),
            partition_max_bytes=int(fp.partition_max_bytes),
            replica_directory_id=getattr(fp, "replica_directory_id", None),
            topic_name=_topic_name(fetch_topic),
            partition_index=int(fp.partition),
        )
    if name == "FetchResponse":
        topic_response = entity.responses[0]
        pd = topic_response.partitions[0]
        diverging = pd.diverging_epoch
        snapshot = pd.snapshot_id
        return FetchResponse(
            error_code=_error(pd.error_code),
            high_watermark=int(pd.high_watermark),
            current_leader=LeaderIdAndEpoch(
                int(pd.current_leader.leader_id), int(pd.current_leader.leader_epoch)
            ),
            log_start_offset=int(pd.log_start_offset),
            diverging_epoch=(
                EpochEndOffset(int(diverging.epoch), int(diverging.end_offset))
                if diverging.epoch >= 0 or diverging.end_offset >= 0
                else None
            ),
            snapshot_id=(
                OffsetAndEpoch(int(snapshot.end_offset), int(snapshot.epoch))
                if snapshot.end_offset >= 0 or snapshot.epoch >= 0
                else None
            ),
            records=decode_batches(pd.records),
            top_level_error_code=_error(entity.error_code),
            node_endpoints=_node_endpoints(entity),
            topic_name=_topic_name(topic_response),
            partition_index=int(pd.partition_index),
        )
    topic, p = _first_partition(entity)
    if name == "VoteRequest":
        return VoteRequest(
            candidate_epoch=int(p.replica_epoch),
            candidate_id=int(p.replica_id),
            last_offset_epoch=int(p.last_offset_epoch),
            last_offset=int(p.last_offset),
            cluster_id=entity.cluster_id,
            voter_id=int(getattr(entity, "voter_id", -1)),
            candidate_directory_id=getattr(p, "replica_directory_id", None),
            voter_directory_id=getattr(p, "voter_directory_id", None),
            topic_name=topic,
            partition_index=int(p.partition_index),
        )
    if name == "VoteResponse":
        return VoteResponse(
            leader_id=int(p.leader_id),
            leader_epoch=int(p.leader_epoch),
            vote_granted=bool(p.vote_granted),
            error_code=_error(p.error_code),
            top_level_error_code=_error(entity.error_code),
            node_endpoints=_node_endpoints(entity),
            topic_name=topic,
            partition_index=int(p.partition_index),
        )
    if name == "BeginQuorumEpochRequest":
        leader_id = int(p.leader_id)
        return BeginQuorumEpochRequest(
            leader_id=leader_id,
            leader_epoch=int(p.leader_epoch),
            cluster_id=entity.cluster_id,
            voter_id=int(getattr(entity, "voter_id", -1)),
            voter_directory_id=getattr(p, "voter_directory_id", None),
            leader_endpoints=_leader_endpoints(entity, leader_id),
            topic_name=topic,
            partition_index=int(p.partition_index),
        )
    if name in ("BeginQuorumEpochResponse", "EndQuorumEpochResponse"):
        cls = BeginQuorumEpochResponse if name.startswith("Begin") else EndQuorumEpochResponse
        return cls(
            leader_id=int(p.leader_id),
            leader_epoch=int(p.leader_epoch),
            error_code=_error(p.error_code),
            top_level_error_code=_error(entity.error_code),
            node_endpoints=_node_endpoints(entity),
            topic_name=topic,
            partition_index=int(p.partition_index),
        )
    if name == "EndQuorumEpochRequest":
        leader_id = int(p.leader_id)
        candidates = getattr(p, "preferred_candidates", None)
        if candidates is None:
            successors = tuple(int(c) for c in p.preferred_successors)
            directory_ids: tuple[Any, ...] = ()
        else:
            successors = tuple(int(c.candidate_id) for c in candidates)
            directory_ids = tuple(c.candidate_directory_id for c in candidates)
            if all(d is None for d in directory_ids):
                directory_ids = ()
        return EndQuorumEpochRequest(
            leader_id=leader_id,
            leader_epoch=int(p.leader_epoch),
            preferred_successors=successors,
            cluster_id=entity.cluster_id,
            preferred_candidate_directory_ids=directory_ids,
            leader_endpoints=_leader_endpoints(entity, leader_id),
            topic_name=topic,
            partition_index=int(p.partition_index),
        )
    if name == "DescribeQuorumRequest":
        return DescribeQuorumRequest(topic_name=topic, partition_index=int(p.partition_index))
    if name == "DescribeQuorumResponse":

        def replicas(states: Any) -> tuple[ReplicaState, ...]:
            return tuple(
                ReplicaState(
                    replica_id=int(r.replica_id),
                    log_end_offset=int(r.log_end_offset),
                    last_fetch_timestamp=int(getattr(r, "last_fetch_timestamp", -1)),
                    last_caught_up_timestamp=int(getattr(r, "last_caught_up_timestamp", -1)),
                    replica_directory_id=getattr(r, "replica_directory_id", None),
                )
                for r in states
            )

        return DescribeQuorumResponse(
            error_code=_error(p.error_code),
            leader_id=int(p.leader_id),
            leader_epoch=int(p.leader_epoch),
            high_watermark=int(p.high_watermark),
            current_voters=replicas(p.current_voters),
            observers=replicas(p.observers),
            error_message=getattr(p, "error_message", None),
            top_level_error_code=_error(entity.error_code),
            top_level_error_message=getattr(entity, "error_message", None),
            nodes=tuple(
                Endpoint(int(n.node_id), lst.name, lst.host, int(lst.port))
                for n in getattr(entity, "nodes", ())
                for lst in n.listeners
            ),
            topic_name=topic,
            partition_index=int(p.partition_index),
        )
    if name == "FetchSnapshotRequest":
        return FetchSnapshotRequest(
            replica_id=int(entity.replica_id),
            current_leader_epoch=int(p.current_leader_epoch),
            snapshot_id=OffsetAndEpoch(int(p.snapshot_id.end_offset), int(p.snapshot_id.epoch)),
            position=int(p.position),
            max_bytes=int(entity.max_bytes),
            cluster_id=entity.cluster_id,
            replica_directory_id=getattr(p, "replica_directory_id", None),
            topic_name=topic,
            partition_index=int(p.partition),
        )
    if name == "FetchSnapshotResponse":
        return FetchSnapshotResponse(
            error_code=_error(p.error_code),
            current_leader=LeaderIdAndEpoch(
                int(p.current_leader.leader_id), int(p.current_leader.leader_epoch)
            ),
            snapshot_id=OffsetAndEpoch(int(p.snapshot_id.end_offset), int(p.snapshot_id.epoch)),
            size=int(p.size),
            position=int(p.position),
            unaligned_records=bytes(p.unaligned_records or b""),
            top_level_error_code=_error(entity.error_code),
            throttle_time_ms=millis(entity.throttle_time),
            node_endpoints=_node_endpoints(entity),
            topic_name=topic,
            partition_index=int(p.index),
        )
    raise ValueError(f"{name} is not a quorum API this adapter knows")
