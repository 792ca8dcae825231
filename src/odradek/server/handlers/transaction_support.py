"""What the transaction APIs' handlers share: reaching the coordinator, old clients' errors."""

from __future__ import annotations

from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.transaction_runtime import TransactionCoordinatorRuntime
from odradek.server.context import RequestContext


async def coordinator(ctx: RequestContext) -> TransactionCoordinatorRuntime | ErrorCode:
    """The transaction coordinator (`__transaction_state` is created on first use), or the
    error to answer when it cannot be had."""
    try:
        return await ctx.node.transactions()
    except KafkaError as exc:
        return exc.code


def for_old_clients(error: ErrorCode, version: int, first_fenced_version: int) -> ErrorCode:
    """Clients before the version that introduced PRODUCER_FENCED know it as
    INVALID_PRODUCER_EPOCH (Kafka answers them so)."""
    if error == ErrorCode.PRODUCER_FENCED and version < first_fenced_version:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    return error
