"""The events a `RaftCore` is stepped with and the commands it returns.

The RPC messages carry the fields of Kafka's quorum APIs for the one `__cluster_metadata`
partition, flattened: Vote v0-1, BeginQuorumEpoch v0-1, EndQuorumEpoch v0-1, Fetch (the
fields a KRaft replica uses, v12+), FetchSnapshot v0-1 and DescribeQuorum v0-2. A later adapter
maps kio entities onto them one to one; the topic/partition nesting is fixed here
(`__cluster_metadata`, partition 0) and fields a version lacks keep their default. Record bytes
travel as `Batch` values; the adapter encodes them as v2 record batches.

Nothing here does I/O: a command is a request to the runtime ("send", "append", "flush", …),
executed in list order. The order is part of the contract: a `PersistQuorumState` comes before
any `Send` that depends on it (a vote is only sent once it is durable).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from odradek.common.errors import ErrorCode

METADATA_TOPIC = "__cluster_metadata"
METADATA_PARTITION = 0
NO_LEADER = -1  # Kafka's "leader unknown" in LeaderId fields
NO_VOTE = -1


# The error codes the quorum APIs answer with (94, 98, 99 and 104 are quorum-only).
RaftError = ErrorCode


class StateName(StrEnum):
    UNATTACHED = "Unattached"
    VOTED = "Voted"
    CANDIDATE = "Candidate"
    LEADER = "Leader"
    FOLLOWER = "Follower"
    RESIGNED = "Resigned"


# ---------------------------------------------------------------------------------------------
# Shared value types


@dataclass(frozen=True, slots=True)
class Batch:
    """A record batch of the metadata log: `len(records)` offsets from `base_offset`.

    A control batch (Kafka's LeaderChangeMessage) takes offsets but is not applied.
    """

    base_offset: int
    epoch: int
    records: tuple[bytes, ...]
    control: bool = False

    @property
    def end_offset(self) -> int:
        """The offset after the last record of the batch."""
        return self.base_offset + len(self.records)

    @property
    def size_bytes(self) -> int:
        return 61 + sum(len(r) + 8 for r in self.records)  # v2 header + a rough per-record cost


@dataclass(frozen=True, slots=True)
class OffsetAndEpoch:
    """A snapshot id (Kafka's SnapshotId: EndOffset, Epoch) or a log position."""

    offset: int
    epoch: int


@dataclass(frozen=True, slots=True)
class EpochEndOffset:
    """Fetch's DivergingEpoch: the follower's log diverges after `end_offset` of `epoch`."""

    epoch: int
    end_offset: int


@dataclass(frozen=True, slots=True)
class LeaderIdAndEpoch:
    """Fetch's and FetchSnapshot's CurrentLeader."""

    leader_id: int
    leader_epoch: int


@dataclass(frozen=True, slots=True)
class Endpoint:
    """LeaderEndpoints / NodeEndpoints entries (v1+). `name` is the listener name."""

    node_id: int
    name: str
    host: str
    port: int


# ---------------------------------------------------------------------------------------------
# Vote v0-1


@dataclass(frozen=True, slots=True)
class VoteRequest:
    candidate_epoch: int
    candidate_id: int
    last_offset_epoch: int
    last_offset: int
    cluster_id: str | None = None
    voter_id: int = -1  # v1+
    candidate_directory_id: UUID | None = None  # v1+
    voter_directory_id: UUID | None = None  # v1+
    topic_name: str = METADATA_TOPIC
    partition_index: int = METADATA_PARTITION


@dataclass(frozen=True, slots=True)
class VoteResponse:
    leader_id: int
    leader_epoch: int
    vote_granted: bool
    error_code: RaftError = RaftError.NONE  # partition level
    top_level_error_code: RaftError = RaftError.NONE
    node_endpoints: tuple[Endpoint, ...] = ()  # v1+
    topic_name: str = METADATA_TOPIC
    partition_index: int = METADATA_PARTITION


# ---------------------------------------------------------------------------------------------
# BeginQuorumEpoch v0-1


@dataclass(frozen=True, slots=True)
class BeginQuorumEpochRequest:
    leader_id: int
    leader_epoch: int
    cluster_id: str | None = None
    voter_id: int = -1  # v1+
    voter_directory_id: UUID | None = None  # v1+
    leader_endpoints: tuple[Endpoint, ...] = ()  # v1+
    topic_name: str = METADATA_TOPIC
    partition_index: int = METADATA_PARTITION


@dataclass(frozen=True, slots=True)
class BeginQuorumEpochResponse:
    leader_id: int
    leader_epoch: int
    error_code: RaftError = RaftError.NONE
    top_level_error_code: RaftError = RaftError.NONE
    node_endpoints: tuple[Endpoint, ...] = ()  # v1+
    topic_name: str = METADATA_TOPIC
    partition_index: int = METADATA_PARTITION


# ---------------------------------------------------------------------------------------------
# EndQuorumEpoch v0-1


@dataclass(frozen=True, slots=True)
class EndQuorumEpochRequest:
    leader_id: int
    leader_epoch: int
    preferred_successors: tuple[int, ...]  # v0 PreferredSuccessors; v1 PreferredCandidates ids
    cluster_id: str | None = None
    preferred_candidate_directory_ids: tuple[UUID | None, ...] = ()  # v1+, parallel to the ids
    leader_endpoints: tuple[Endpoint, ...] = ()  # v1+
    topic_name: str = METADATA_TOPIC
    partition_index: int = METADATA_PARTITION


@dataclass(frozen=True, slots=True)
class EndQuorumEpochResponse:
    leader_id: int
    leader_epoch: int
    error_code: RaftError = RaftError.NONE
    top_level_error_code: RaftError = RaftError.NONE
    node_endpoints: tuple[Endpoint, ...] = ()  # v1+
    topic_name: str = METADATA_TOPIC
    partition_index: int = METADATA_PARTITION


# ---------------------------------------------------------------------------------------------
# Fetch (the metadata partition, as a KRaft replica sends it)


@dataclass(frozen=True, slots=True)
class FetchRequest:
    replica_id: int  # ReplicaState.ReplicaId (v15+), top-level ReplicaId before
    current_leader_epoch: int
    fetch_offset: int
    last_fetched_epoch: int
    log_start_offset: int = -1
    cluster_id: str | None = None
    replica_epoch: int = -1
    max_wait_ms: int = 0
    min_bytes: int = 0
    max_bytes: int = 0x7FFFFFFF
    partition_max_bytes: int = 1 << 20
    replica_directory_id: UUID | None = None  # v17+
    topic_name: str = METADATA_TOPIC  # TopicId from v13; the adapter maps it
    partition_index: int = METADATA_PARTITION


@dataclass(frozen=True, slots=True)
class FetchResponse:
    error_code: RaftError
    high_watermark: int
    current_leader: LeaderIdAndEpoch
    log_start_offset: int = -1
    diverging_epoch: EpochEndOffset | None = None
    snapshot_id: OffsetAndEpoch | None = None
    records: tuple[Batch, ...] = ()
    top_level_error_code: RaftError = RaftError.NONE
    node_endpoints: tuple[Endpoint, ...] = ()  # v16+
    topic_name: str = METADATA_TOPIC
    partition_index: int = METADATA_PARTITION


# ---------------------------------------------------------------------------------------------
# FetchSnapshot v0-1


@dataclass(frozen=True, slots=True)
class FetchSnapshotRequest:
    replica_id: int
    current_leader_epoch: int
    snapshot_id: OffsetAndEpoch
    position: int
    max_bytes: int = 0x7FFFFFFF
    cluster_id: str | None = None
    replica_directory_id: UUID | None = None  # v1+
    topic_name: str = METADATA_TOPIC
    partition_index: int = METADATA_PARTITION


@dataclass(frozen=True, slots=True)
class FetchSnapshotResponse:
    error_code: RaftError
    current_leader: LeaderIdAndEpoch
    snapshot_id: OffsetAndEpoch = OffsetAndEpoch(-1, -1)
    size: int = 0
    position: int = 0
    unaligned_records: bytes = b""
    top_level_error_code: RaftError = RaftError.NONE
    throttle_time_ms: int = 0
    node_endpoints: tuple[Endpoint, ...] = ()  # v1+
    topic_name: str = METADATA_TOPIC
    partition_index: int = METADATA_PARTITION


# ---------------------------------------------------------------------------------------------
# DescribeQuorum v0-2


@dataclass(frozen=True, slots=True)
class DescribeQuorumRequest:
    topic_name: str = METADATA_TOPIC
    partition_index: int = METADATA_PARTITION


@dataclass(frozen=True, slots=True)
class ReplicaState:
    replica_id: int
    log_end_offset: int
    last_fetch_timestamp: int = -1  # v1+
    last_caught_up_timestamp: int = -1  # v1+
    replica_directory_id: UUID | None = None  # v2+


@dataclass(frozen=True, slots=True)
class DescribeQuorumResponse:
    error_code: RaftError
    leader_id: int
    leader_epoch: int
    high_watermark: int
    current_voters: tuple[ReplicaState, ...]
    observers: tuple[ReplicaState, ...]
    error_message: str | None = None  # v2+, partition level
    top_level_error_code: RaftError = RaftError.NONE
    top_level_error_message: str | None = None  # v2+
    nodes: tuple[Endpoint, ...] = ()  # v2+
    topic_name: str = METADATA_TOPIC
    partition_index: int = METADATA_PARTITION


Request = (
    VoteRequest
    | BeginQuorumEpochRequest
    | EndQuorumEpochRequest
    | FetchRequest
    | FetchSnapshotRequest
    | DescribeQuorumRequest
)
Response = (
    VoteResponse
    | BeginQuorumEpochResponse
    | EndQuorumEpochResponse
    | FetchResponse
    | FetchSnapshotResponse
    | DescribeQuorumResponse
)
Message = Request | Response


# ---------------------------------------------------------------------------------------------
# Events (inputs of RaftCore.step)


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: the runtime steps the core at `RaftCore.next_deadline_ms` (or later)."""


@dataclass(frozen=True, slots=True)
class Received:
    """A request or a response arrived from `source`.

    `correlation_id` is the request header's: a response carries the id of the request it
    answers, and the core drops responses to requests it no longer waits for.
    """

    source: int
    message: Message
    correlation_id: int


@dataclass(frozen=True, slots=True)
class AppendRecords:
    """The controller asks the leader to append one batch of records."""

    records: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class LogFlushed:
    """An fsync the core asked for finished: the log is durable below `end_offset`."""

    end_offset: int


@dataclass(frozen=True, slots=True)
class CreateSnapshot:
    """The state machine wrote its state as of `end_offset` (exclusive); `payload` is it."""

    end_offset: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Resign:
    """Graceful shutdown of a leader: hand over with EndQuorumEpoch."""


Event = Tick | Received | AppendRecords | LogFlushed | CreateSnapshot | Resign


# ---------------------------------------------------------------------------------------------
# Commands (outputs of RaftCore.step, executed in order)


@dataclass(frozen=True, slots=True)
class Send:
    destination: int
    message: Message
    correlation_id: int


@dataclass(frozen=True, slots=True)
class AppendToLog:
    batch: Batch


@dataclass(frozen=True, slots=True)
class TruncateLog:
    """Remove every record at or after `end_offset`; durable before the next command."""

    end_offset: int


@dataclass(frozen=True, slots=True)
class FlushLog:
    """Start an fsync of the log below `end_offset`; answer with `LogFlushed`."""

    end_offset: int


@dataclass(frozen=True, slots=True)
class PersistQuorumState:
    """Write the quorum-state file (atomically, fsync'd) before the next command runs."""

    leader_epoch: int
    leader_id: int
    voted_id: int
    voters: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ApplyCommitted:
    """The high watermark advanced: `batches` are newly committed, in offset order."""

    high_watermark: int
    batches: tuple[Batch, ...]


@dataclass(frozen=True, slots=True)
class WriteSnapshot:
    """Store a snapshot the local state machine produced (durably), then it may be served."""

    snapshot_id: OffsetAndEpoch
    payload: bytes


@dataclass(frozen=True, slots=True)
class LoadSnapshot:
    """A snapshot fetched from the leader: store it durably, empty the log so that it starts
    at `snapshot_id.offset`, and reload the state machine from `payload`."""

    snapshot_id: OffsetAndEpoch
    payload: bytes


@dataclass(frozen=True, slots=True)
class DeleteLogBefore:
    """The log start offset advanced past a snapshot; older records may be deleted."""

    log_start_offset: int


@dataclass(frozen=True, slots=True)
class StateChanged:
    """Notification: the quorum state of this node changed."""

    state: StateName
    epoch: int
    leader_id: int


@dataclass(frozen=True, slots=True)
class AppendAccepted:
    """Answer to `AppendRecords`: the batch got these offsets in `epoch`."""

    base_offset: int
    end_offset: int
    epoch: int


@dataclass(frozen=True, slots=True)
class AppendRejected:
    """Answer to `AppendRecords` on a node that is not the leader."""

    error_code: RaftError
    leader_id: int
    leader_epoch: int


Command = (
    Send
    | AppendToLog
    | TruncateLog
    | FlushLog
    | PersistQuorumState
    | ApplyCommitted
    | WriteSnapshot
    | LoadSnapshot
    | DeleteLogBefore
    | StateChanged
    | AppendAccepted
    | AppendRejected
)
