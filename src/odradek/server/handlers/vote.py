"""Vote (key 52), v0-1: a candidate asks this voter for its vote in a new epoch.

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


@handler(ApiKey.VOTE, versions=(0, 1))
async def handle_vote(ctx: RequestContext, request: Any) -> Any:
    return await quorum_support.serve(ctx, request, "VoteRequest", "candidate_id")
