"""BeginQuorumEpoch (key 53), v0-1: a new leader announces its epoch to the voters.

Served by the node's Raft quorum (`metadata/raft`); only the `__cluster_metadata` partition
exists, and a request naming other topics or more partitions is answered for its first one,
as KRaft has one. Not done: the KIP-853 fields of v1 (directory ids, endpoints) are read but
the voter set stays the static `controller.quorum.voters`.
"""

from __future__ import annotations

from typing import Any

from odradek.protocol.api_keys import ApiKey
from odradek.server.context import RequestContext
from odradek.server.handlers import quorum_support
from odradek.server.registry import handler


@handler(ApiKey.BEGIN_QUORUM_EPOCH, versions=(0, 1))
async def handle_begin_quorum_epoch(ctx: RequestContext, request: Any) -> Any:
    return await quorum_support.serve(ctx, request, "BeginQuorumEpochRequest", "leader_id")
