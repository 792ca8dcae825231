"""DescribeTransactions (key 65), v0: the state of transactional ids (KIP-664): state,
timeout, start time, producer id and epoch, and the partitions of the open transaction. An id
this coordinator does not know is TRANSACTIONAL_ID_NOT_FOUND; one whose `__transaction_state`
partition it does not own, NOT_COORDINATOR (the admin client then looks the coordinator up).
"""

from __future__ import annotations

import datetime
from typing import Any

from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _start_time(start_ms: int) -> datetime.datetime:
    """kio's datetime for the start (Kafka sends -1 for no transaction; kio has no None)."""
    return _EPOCH + datetime.timedelta(milliseconds=start_ms)


@handler(ApiKey.DESCRIBE_TRANSACTIONS, versions=(0, 0))
async def handle_describe_transactions(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.DESCRIBE_TRANSACTIONS, ctx.api_version)
    runtime = ctx.node.transaction_coordinator
    states = []
    for transactional_id in request.transactional_ids:
        found = runtime.describe(transactional_id)
        states.append(
            schema.TransactionState(
                error_code=found.error,
                transactional_id=transactional_id,
                transaction_state=found.state,
                transaction_timeout=found.timeout_ms,
                transaction_start_time=_start_time(found.start_timestamp_ms),
                producer_id=found.producer_id,
                producer_epoch=found.producer_epoch,
                topics=tuple(
                    schema.TopicData(topic=topic, partitions=partitions)
                    for topic, partitions in found.topics
                ),
            )
        )
    return schema.DescribeTransactionsResponse(throttle_time=0, transaction_states=tuple(states))
