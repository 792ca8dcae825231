"""What the quorum API handlers share: a decoded request goes to the node's Raft quorum, its
answer comes back as the kio response of the request's version.

The request is mapped by `metadata.raft.wire` (the same adapter the quorum's own client uses),
stepped into the core as `Received(source, ...)` and answered when the core sends the
response, which for a Fetch with nothing new is up to its max wait later.

A node without a Raft quorum (it names no `controller.quorum.voters`) does not list Vote,
BeginQuorumEpoch, EndQuorumEpoch and FetchSnapshot in ApiVersions and closes the connection on
them, as a Kafka broker does for an API its listener does not serve; DescribeQuorum describes it
as the leader of a quorum of one.
The quorum modules are imported on first use only, off the broker's cold start.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, TypeVar

from odradek.server.context import RequestContext
from odradek.server.registry import CloseConnection

if TYPE_CHECKING:
    from odradek.metadata.raft.messages import Request
    from odradek.metadata.raft_quorum import RaftQuorum

    _R = TypeVar("_R", bound=Request)
else:
    _R = TypeVar("_R")

METADATA_TOPIC = "__cluster_metadata"
METADATA_TOPIC_ID = uuid.UUID(int=1)  # Kafka's Uuid.METADATA_TOPIC_ID
# A held Fetch answers within its max wait; this only bounds a request the core dropped.
ANSWER_TIMEOUT_MARGIN_MS = 1000


def quorum_of(ctx: RequestContext) -> RaftQuorum:
    quorum = ctx.node.raft_quorum()
    if quorum is None:
        raise CloseConnection(f"api {ctx.header.api_key}: this node runs no metadata quorum")
    return quorum


async def answer(ctx: RequestContext, message: Request, source: int) -> Any:
    from odradek.metadata.raft import wire
    from odradek.metadata.raft.messages import FetchResponse, LeaderIdAndEpoch, RaftError

    quorum = quorum_of(ctx)
    timeout_ms = quorum.config.request_timeout_ms + ANSWER_TIMEOUT_MARGIN_MS
    try:
        response = await quorum.handle_request(source, message, timeout_ms)
    except TimeoutError:
        # The core answers every request it is given except a held fetch that the same
        # replica replaced with a newer one; that replica no longer waits for this answer.
        response = FetchResponse(
            error_code=RaftError.REQUEST_TIMED_OUT,
            high_watermark=-1,
            current_leader=LeaderIdAndEpoch(quorum.leader_id, quorum.leader_epoch),
        )
    return wire.to_kio(response, ctx.api_version)


def decode(request: Any, expected: type[_R]) -> _R | None:
    """The core message of a kio request (`wire.from_kio`), or None when it does not name
    partition 0 of `__cluster_metadata` (Kafka answers INVALID_REQUEST then)."""
    from odradek.metadata.raft import wire
    from odradek.metadata.raft.messages import METADATA_PARTITION

    try:
        message = wire.from_kio(request)
    except (IndexError, AttributeError, ValueError):  # no topic or no partition in it
        return None
    if not isinstance(message, expected):
        return None
    if message.topic_name != METADATA_TOPIC or message.partition_index != METADATA_PARTITION:
        return None
    return message


async def serve(ctx: RequestContext, request: Any, expected: str, source_field: str) -> Any:
    """A Vote, BeginQuorumEpoch, EndQuorumEpoch or FetchSnapshot request: decoded to the
    core's `expected` message and answered by the quorum (`source_field` names the sender)."""
    from odradek.metadata.raft import messages

    quorum_of(ctx)
    message = decode(request, getattr(messages, expected))
    if message is None:
        return invalid_request(ctx)
    return await answer(ctx, message, int(getattr(message, source_field)))


def invalid_request(ctx: RequestContext) -> Any:
    """The response of the request's API with the top-level error INVALID_REQUEST."""
    from odradek.metadata.raft import wire
    from odradek.metadata.raft.messages import (
        NO_LEADER,
        BeginQuorumEpochResponse,
        EndQuorumEpochResponse,
        FetchResponse,
        FetchSnapshotResponse,
        LeaderIdAndEpoch,
        RaftError,
        Response,
        VoteResponse,
    )

    nobody = LeaderIdAndEpoch(NO_LEADER, -1)
    error = RaftError.INVALID_REQUEST
    response: Response
    api_key = ctx.header.api_key
    if api_key == wire.VOTE:
        response = VoteResponse(NO_LEADER, -1, False, top_level_error_code=error)
    elif api_key == wire.BEGIN_QUORUM_EPOCH:
        response = BeginQuorumEpochResponse(NO_LEADER, -1, top_level_error_code=error)
    elif api_key == wire.END_QUORUM_EPOCH:
        response = EndQuorumEpochResponse(NO_LEADER, -1, top_level_error_code=error)
    elif api_key == wire.FETCH_SNAPSHOT:
        response = FetchSnapshotResponse(RaftError.NONE, nobody, top_level_error_code=error)
    else:
        response = FetchResponse(RaftError.NONE, -1, nobody, top_level_error_code=error)
    return wire.to_kio(response, ctx.api_version)


def is_quorum_fetch(ctx: RequestContext, request: Any) -> bool:
    """A replica's Fetch of `__cluster_metadata` (v12+; by topic id from v13, Kafka's
    `Uuid.METADATA_TOPIC_ID`) on a node that runs the quorum: served by it, not by the
    partitions."""
    topics = request.topics
    if len(topics) != 1 or ctx.node.raft_quorum() is None:
        return False
    topic = topics[0]
    name = getattr(topic, "topic", None)
    if name != METADATA_TOPIC and getattr(topic, "topic_id", None) != METADATA_TOPIC_ID:
        return False
    replica_state = getattr(request, "replica_state", None)
    replica_id = replica_state.replica_id if replica_state is not None else request.replica_id
    return int(replica_id) >= 0


async def answer_fetch(ctx: RequestContext, request: Any) -> Any:
    from odradek.metadata.raft.messages import FetchRequest

    message = decode(request, FetchRequest)
    if message is None:
        return invalid_request(ctx)
    return await answer(ctx, message, message.replica_id)
