"""ListTransactions (key 66), v0-v1: the transactional ids this coordinator owns (KIP-664),
filtered by state and producer id (an empty filter matches all); v1 adds a minimum duration
(KIP-994): transactions open longer than that many milliseconds. State names that name no
state are answered back in `unknown_state_filters`. Nothing is created by listing: with no
`__transaction_state` yet the list is empty.
"""

from __future__ import annotations

from typing import Any

from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.LIST_TRANSACTIONS, versions=(0, 1))
async def handle_list_transactions(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.LIST_TRANSACTIONS, ctx.api_version)
    listing = ctx.node.transaction_coordinator.list_transactions(
        request.state_filters,
        request.producer_id_filters,
        getattr(request, "duration_filter", -1),
    )
    return schema.ListTransactionsResponse(
        throttle_time=0,
        error_code=listing.error,
        unknown_state_filters=listing.unknown_state_filters,
        transaction_states=tuple(
            schema.TransactionState(
                transactional_id=t.transactional_id,
                producer_id=t.producer_id,
                transaction_state=t.state,
            )
            for t in listing.transactions
        ),
    )
