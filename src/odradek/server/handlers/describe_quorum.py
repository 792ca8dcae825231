"""DescribeQuorum (key 55), v0-2: the leader's view of the `__cluster_metadata` quorum.

The leader answers with its epoch, high watermark and, for each voter and observer, the log
end offset it acknowledged and (v1+) when it last fetched and was last caught up, in wall-clock
milliseconds. Any other node answers NOT_LEADER_OR_FOLLOWER with the leader it knows, as
Kafka's. Not done: the v2 `Nodes` endpoints and directory ids stay empty.
"""

from __future__ import annotations

from typing import Any

from odradek.metadata.raft import wire
from odradek.protocol.api_keys import ApiKey
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.DESCRIBE_QUORUM, versions=(0, 2))
async def handle_describe_quorum(ctx: RequestContext, request: Any) -> Any:
    described = ctx.node.raft_quorum().describe_quorum()
    return wire.to_kio(described, ctx.api_version)
