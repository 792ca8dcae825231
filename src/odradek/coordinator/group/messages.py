"""What goes in and out of the classic group coordinator core: requests, results, writes.

Plain values, so handlers, the runtime and tests build and read them without the core. The
two `write_error_*` functions map a failed `__consumer_offsets` write to the error Kafka gives
the client, which differs for group metadata and for offsets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from odradek.common.config import INT_MAX
from odradek.common.errors import ErrorCode
from odradek.coordinator.write_errors import coordinator_write_error

Record = tuple[bytes, bytes | None]
TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class GroupConfig:
    min_session_timeout_ms: int = 6000
    max_session_timeout_ms: int = 1_800_000
    initial_rebalance_delay_ms: int = 3000
    max_size: int = INT_MAX
    offset_metadata_max_bytes: int = 4096
    offsets_retention_ms: int = 7 * 24 * 3600 * 1000
    offsets_partitions: int = 50
    # Kafka's fixed classicGroupNewMemberJoinTimeoutMs: how long a new member's parked JoinGroup
    # may wait for the rebalance before the member is dropped (its client may be long gone).
    new_member_join_timeout_ms: int = 300_000


@dataclass(frozen=True, slots=True)
class Write:
    """Records to append to partition `partition` of `__consumer_offsets`.

    A transactional offset commit's records go in a transactional batch of the producer
    (`producer_id`, `producer_epoch`). `on_appended(offset)` is told the log offset of the
    first record as soon as the batch is appended; `on_done` once it is durable (or failed).
    """

    partition: int
    records: tuple[Record, ...]
    on_done: Callable[[ErrorCode], None]
    producer_id: int = -1
    producer_epoch: int = -1
    on_appended: Callable[[int], None] | None = None


@dataclass(frozen=True, slots=True)
class JoinRequest:
    group_id: str
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: tuple[tuple[str, bytes], ...]
    require_known_member_id: bool = True
    version: int = 9


@dataclass(frozen=True, slots=True)
class JoinResult:
    error: ErrorCode
    member_id: str = ""
    generation: int = -1
    protocol_type: str | None = None
    protocol: str | None = None
    leader: str = ""
    members: tuple[tuple[str, str | None, bytes], ...] = ()
    skip_assignment: bool = False


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: ErrorCode
    protocol_type: str | None = None
    protocol: str | None = None
    assignment: bytes = b""


@dataclass(frozen=True, slots=True)
class OffsetCommit:
    topic: str
    partition: int
    offset: int
    leader_epoch: int
    metadata: str


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    topic: str
    partition: int
    offset: int  # -1 when nothing is committed
    leader_epoch: int
    metadata: str
    error: ErrorCode = ErrorCode.NONE


TimerKey = tuple[str, str, str]  # (kind, group id, member id or "")


write_error_for_group = coordinator_write_error  # the same mapping for every coordinator


def write_error_for_offsets(code: ErrorCode) -> ErrorCode:
    if code in (ErrorCode.MESSAGE_TOO_LARGE, ErrorCode.RECORD_LIST_TOO_LARGE):
        return ErrorCode.INVALID_COMMIT_OFFSET_SIZE
    return write_error_for_group(code)
