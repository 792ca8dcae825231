"""EndTxn (key 26), v0-v5: commit or abort the producer's transaction.

The coordinator writes PrepareCommit/PrepareAbort, answers, then writes a marker to every
partition of the transaction and completes it; a producer's next transaction waits
(CONCURRENT_TRANSACTIONS) until then. A retried EndTxn of a transaction that already
completed the same way succeeds. Before v2, PRODUCER_FENCED is answered as
INVALID_PRODUCER_EPOCH.

v5 (KIP-890 part 2, transaction.version 2) bumps the producer's epoch with every commit and
abort and answers with the producer id and epoch to use next, so an EndTxn delayed past the
start of the next transaction carries an old epoch and is fenced instead of ending it
(KAFKA-17754). Such clients add partitions implicitly with Produce v12 and TxnOffsetCommit v5.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.handlers.transaction_support import coordinator, for_old_clients
from odradek.server.registry import handler


@handler(ApiKey.END_TXN, versions=(0, 5))
async def handle_end_txn(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    schema = response_schema(ApiKey.END_TXN, version)
    producer_id, producer_epoch = -1, -1
    runtime = await coordinator(ctx)
    if isinstance(runtime, ErrorCode):
        error = runtime
    else:
        result = await runtime.end_txn(
            request.transactional_id,
            request.producer_id,
            request.producer_epoch,
            request.committed,
            transaction_version=2 if version >= 5 else 0,
        )
        error = for_old_clients(result.error, version, 2)
        producer_id, producer_epoch = result.producer_id, result.producer_epoch
    return schema.EndTxnResponse(
        throttle_time=0, error_code=error, producer_id=producer_id, producer_epoch=producer_epoch
    )
