"""AddOffsetsToTxn (key 25), v0-v4: a group's `__consumer_offsets` partition joins the
producer's transaction, so that offsets it commits with TxnOffsetCommit are committed or
dropped with the transaction. An empty group id is INVALID_GROUP_ID; before v2,
PRODUCER_FENCED is answered as INVALID_PRODUCER_EPOCH.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.handlers.transaction_support import coordinator, for_old_clients
from odradek.server.registry import handler


@handler(ApiKey.ADD_OFFSETS_TO_TXN, versions=(0, 4))
async def handle_add_offsets_to_txn(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.ADD_OFFSETS_TO_TXN, ctx.api_version)
    error = await _add_offsets(ctx, request)
    return schema.AddOffsetsToTxnResponse(throttle_time=0, error_code=error)


async def _add_offsets(ctx: RequestContext, request: Any) -> ErrorCode:
    if not request.group_id:
        return ErrorCode.INVALID_GROUP_ID
    try:
        await ctx.node.groups()  # the group's partition must exist to join the transaction
    except KafkaError as exc:
        return exc.code
    runtime = await coordinator(ctx)
    if isinstance(runtime, ErrorCode):
        return runtime
    error = await runtime.add_offsets(
        request.transactional_id, request.producer_id, request.producer_epoch, request.group_id
    )
    return for_old_clients(error, ctx.api_version, 2)
