"""DescribeQuorum (key 55), v0-2: the leader's view of the `__cluster_metadata` quorum.

The leader answers with its epoch, high watermark and, for each voter and observer, the log
end offset it acknowledged and (v1+) when it last fetched and was last caught up, in wall-clock
milliseconds. Any other node answers NOT_LEADER_OR_FOLLOWER with the leader it knows, as
Kafka's. A node that runs no Raft quorum (no `controller.quorum.voters`) is described as the
leader, in epoch 0, of a quorum of itself. v2 lists the voters' endpoints (`Nodes`): the
addresses `controller.quorum.voters` gives, on this node's listener, or this node's own
advertised address when it is alone. Directory ids stay empty (log directories are not
tracked).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from odradek.metadata.quorum import parse_quorum_voters
from odradek.protocol.api_keys import ApiKey
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.DESCRIBE_QUORUM, versions=(0, 2))
async def handle_describe_quorum(ctx: RequestContext, request: Any) -> Any:
    from odradek.metadata.raft import wire
    from odradek.metadata.raft.messages import (
        DescribeQuorumResponse,
        Endpoint,
        RaftError,
        ReplicaState,
    )

    node = ctx.node
    listener_name = node.listener_name
    voters = parse_quorum_voters(node.config["controller.quorum.voters"])
    if not voters:
        voters = {node.node_id: node.advertised_endpoint}
    nodes = tuple(
        Endpoint(node_id, listener_name, address[0], address[1])
        for node_id, address in sorted(voters.items())
        if address is not None
    )
    quorum = node.raft_quorum()
    if quorum is not None:
        return wire.to_kio(replace(quorum.describe_quorum(), nodes=nodes), ctx.api_version)
    end_offset = node.metadata_end_offset()
    now_ms = node.clock.wall_ms()
    alone = DescribeQuorumResponse(
        error_code=RaftError.NONE,
        leader_id=node.node_id,
        leader_epoch=0,
        high_watermark=end_offset,
        current_voters=(ReplicaState(node.node_id, end_offset, now_ms, now_ms),),
        observers=(),
        nodes=nodes,
    )
    return wire.to_kio(alone, ctx.api_version)
