"""EndTxn (key 26), v0-v4: commit or abort the producer's transaction.

The coordinator writes PrepareCommit/PrepareAbort, answers, then writes a marker to every
partition of the transaction and completes it; a producer's next transaction waits
(CONCURRENT_TRANSACTIONS) until then. A retried EndTxn of a transaction that already
completed the same way succeeds. Before v2, PRODUCER_FENCED is answered as
INVALID_PRODUCER_EPOCH. v5 (KIP-890 part 2, whose clients also use Produce v12) is not
offered, so clients keep their epoch across transactions.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.handlers.transaction_support import coordinator, for_old_clients
from odradek.server.registry import handler


@handler(ApiKey.END_TXN, versions=(0, 4))
async def handle_end_txn(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.END_TXN, ctx.api_version)
    runtime = await coordinator(ctx)
    if isinstance(runtime, ErrorCode):
        error = runtime
    else:
        result = await runtime.end_txn(
            request.transactional_id,
            request.producer_id,
            request.producer_epoch,
            request.committed,
        )
        error = for_old_clients(result.error, ctx.api_version, 2)
    return schema.EndTxnResponse(throttle_time=0, error_code=error)
