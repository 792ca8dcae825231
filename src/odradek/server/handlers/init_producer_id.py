"""InitProducerId (key 22), v0-v5: a producer id and epoch for an idempotent or transactional
producer.

A producer without a transactional id always gets a new producer id at epoch 0, whatever id
and epoch it sends (v3+, KIP-360), as Kafka's coordinator answers; the partitions then dedupe
its retries by sequence number (storage/producer_state.py). A transactional id goes to the
transaction coordinator, which bumps the epoch of the id's producer (fencing older instances
and aborting a transaction they left open) or gives a new id; `__transaction_state` is
created on first use. v3+ may carry the producer id and epoch the client had (KIP-360): both or
neither must be set, else INVALID_REQUEST. An empty transactional id is INVALID_REQUEST.
Before v4, PRODUCER_FENCED is answered as INVALID_PRODUCER_EPOCH.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import millis, response_schema
from odradek.server.context import RequestContext
from odradek.server.handlers.transaction_support import coordinator, for_old_clients
from odradek.server.registry import handler

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1


@handler(ApiKey.INIT_PRODUCER_ID, versions=(0, 5))
async def handle_init_producer_id(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.INIT_PRODUCER_ID, ctx.api_version)
    producer_id, epoch = NO_PRODUCER_ID, NO_PRODUCER_EPOCH
    transactional_id = request.transactional_id
    expected = _expected(request)
    if isinstance(expected, ErrorCode):
        error = expected
    elif transactional_id is None:
        try:
            producer_id, epoch = await ctx.node.producer_ids.next_id(), 0
            error = ErrorCode.NONE
        except KafkaError as exc:
            error = exc.code
    elif not transactional_id:
        error = ErrorCode.INVALID_REQUEST
    else:
        runtime = await coordinator(ctx)
        if isinstance(runtime, ErrorCode):
            error = runtime
        else:
            result = await runtime.init_producer_id(
                transactional_id, millis(request.transaction_timeout), expected
            )
            error = for_old_clients(result.error, ctx.api_version, 4)
            producer_id, epoch = result.producer_id, result.producer_epoch
    return schema.InitProducerIdResponse(
        throttle_time=0, error_code=error, producer_id=producer_id, producer_epoch=epoch
    )


def _expected(request: Any) -> tuple[int, int] | ErrorCode | None:
    producer_id = getattr(request, "producer_id", NO_PRODUCER_ID)
    epoch = getattr(request, "producer_epoch", NO_PRODUCER_EPOCH)
    if producer_id == NO_PRODUCER_ID and epoch == NO_PRODUCER_EPOCH:
        return None
    if producer_id == NO_PRODUCER_ID or epoch == NO_PRODUCER_EPOCH:
        return ErrorCode.INVALID_REQUEST
    return int(producer_id), int(epoch)
