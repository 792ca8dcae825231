"""InitProducerId (key 22), v0-v5: a producer id and epoch for an idempotent producer.

A producer without a transactional id always gets a new producer id at epoch 0, whatever id
and epoch it sends (v3+, KIP-360), as Kafka's coordinator answers; the partitions then dedupe
its retries by sequence number (storage/producer_state.py). An empty transactional id is
INVALID_REQUEST. Transactional ids belong to the transaction coordinator, which this broker
does not run yet: they get COORDINATOR_NOT_AVAILABLE, as FindCoordinator answers for them.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.INIT_PRODUCER_ID, versions=(0, 5))
async def handle_init_producer_id(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.INIT_PRODUCER_ID, ctx.api_version)
    producer_id, epoch = -1, -1
    if request.transactional_id is None:
        try:
            producer_id, epoch = await ctx.node.producer_ids.next_id(), 0
            error = ErrorCode.NONE
        except KafkaError as exc:
            error = exc.code
    elif not request.transactional_id:
        error = ErrorCode.INVALID_REQUEST
    else:
        error = ErrorCode.COORDINATOR_NOT_AVAILABLE
    return schema.InitProducerIdResponse(
        throttle_time=0, error_code=error, producer_id=producer_id, producer_epoch=epoch
    )
