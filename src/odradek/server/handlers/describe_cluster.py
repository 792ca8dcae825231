"""DescribeCluster (key 60), v0-v2: cluster id, controller, brokers (v2: fenced flag)."""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
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
    host, port = node.advertised_endpoint
    include_ops = request.include_cluster_authorized_operations
    return schema.DescribeClusterResponse(
        throttle_time=0,
        error_code=ErrorCode.NONE,
        error_message=None,
        endpoint_type=endpoint_type,
        cluster_id=node.cluster_id,
        controller_id=node.node_id,
        brokers=(
            schema.DescribeClusterBroker(
                broker_id=node.node_id, host=host, port=port, rack=None, is_fenced=False
            ),
        ),
        cluster_authorized_operations=CLUSTER_OPERATIONS if include_ops else NOT_REQUESTED,
    )
