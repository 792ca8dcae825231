"""DescribeCluster (key 60), v0-v2: cluster id, controller, brokers (v2: fenced ones too
when asked, flagged), as `server/cluster_view.py` lists them."""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.cluster_view import controller_id, live_brokers
from odradek.server.context import RequestContext
from odradek.server.handlers.metadata import CLUSTER_OPERATIONS, NOT_REQUESTED
from odradek.server.registry import handler

ENDPOINT_BROKERS = 1


@handler(ApiKey.DESCRIBE_CLUSTER, versions=(0, 2))
async def handle_describe_cluster(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.DESCRIBE_CLUSTER, ctx.api_version)
    node = ctx.node
    endpoint_type = getattr(request, "endpoint_type", ENDPOINT_BROKERS)
    if endpoint_type != ENDPOINT_BROKERS:
        return schema.DescribeClusterResponse(
            throttle_time=0,
            error_code=ErrorCode.UNSUPPORTED_ENDPOINT_TYPE,
            error_message="Only broker endpoints can be described",
            endpoint_type=endpoint_type,
            cluster_id=node.cluster_id,
            controller_id=-1,
            brokers=(),
            cluster_authorized_operations=NOT_REQUESTED,
        )
    include_ops = request.include_cluster_authorized_operations
    # v2 may ask for the fenced brokers too (shown with is_fenced)
    brokers = live_brokers(node, include_fenced=getattr(request, "include_fenced_brokers", False))
    return schema.DescribeClusterResponse(
        throttle_time=0,
        error_code=ErrorCode.NONE,
        error_message=None,
        endpoint_type=endpoint_type,
        cluster_id=node.cluster_id,
        controller_id=controller_id(node, brokers),
        brokers=tuple(
            schema.DescribeClusterBroker(
                broker_id=b.broker_id, host=b.host, port=b.port, rack=b.rack, is_fenced=b.fenced
            )
            for b in brokers
        ),
        cluster_authorized_operations=CLUSTER_OPERATIONS if include_ops else NOT_REQUESTED,
    )
