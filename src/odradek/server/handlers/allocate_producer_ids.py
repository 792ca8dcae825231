"""AllocateProducerIds (key 67), v0: a broker asks the active controller for a block of
producer ids (KIP-730); the block is committed to the metadata log before it is granted, so no
id is ever given out twice. NOT_CONTROLLER elsewhere; STALE_BROKER_EPOCH for a registered broker
asking with another epoch.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.handlers.quorum_support import quorum_of
from odradek.server.registry import handler


@handler(ApiKey.ALLOCATE_PRODUCER_IDS, versions=(0, 0))
async def handle_allocate_producer_ids(ctx: RequestContext, request: Any) -> Any:
    quorum_of(ctx)
    schema = response_schema(ApiKey.ALLOCATE_PRODUCER_IDS, ctx.api_version)
    try:
        first, length = await ctx.node.cluster_control.allocate_producer_ids(
            int(request.broker_id), int(request.broker_epoch)
        )
    except KafkaError as exc:
        return schema.AllocateProducerIdsResponse(
            throttle_time=0, error_code=exc.code, producer_id_start=-1, producer_id_len=0
        )
    return schema.AllocateProducerIdsResponse(
        throttle_time=0, error_code=ErrorCode.NONE, producer_id_start=first, producer_id_len=length
    )
