"""AddPartitionsToTxn (key 24), v0-v5: partitions join a producer's transaction.

v0-v3 come from producers: one transaction, one error for all its partitions. If any named
partition does not exist, nothing is added: those get UNKNOWN_TOPIC_OR_PARTITION and the others
OPERATION_NOT_ATTEMPTED, as Kafka answers. Before v2, PRODUCER_FENCED is answered as
INVALID_PRODUCER_EPOCH.

v4+ (KIP-890) batch several transactions, as brokers send them; with `verify_only` the
coordinator only says whether each partition is already in the transaction (NONE) or not
(TRANSACTION_ABORTABLE) and writes nothing. A v5 add (verify_only false) is a partition
leader adding the partition of a transaction version 2 client's first batch there (Produce
v12, TxnOffsetCommit v5), as the coordinator itself does when it leads that partition.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode
from odradek.coordinator.transaction.metadata import TopicPartition
from odradek.coordinator.transaction_runtime import TransactionCoordinatorRuntime
from odradek.metadata.image import TopicImage
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.handlers.transaction_support import coordinator, for_old_clients
from odradek.server.registry import handler


@handler(ApiKey.ADD_PARTITIONS_TO_TXN, versions=(0, 5))
async def handle_add_partitions_to_txn(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    schema = response_schema(ApiKey.ADD_PARTITIONS_TO_TXN, version)
    runtime = await coordinator(ctx)
    if version < 4:
        partitions = [
            (topic.name, index)
            for topic in request.v3_and_below_topics
            for index in topic.partitions
        ]
        errors = await _add(
            ctx,
            runtime,
            request.v3_and_below_transactional_id,
            request.v3_and_below_producer_id,
            request.v3_and_below_producer_epoch,
            False,
            partitions,
        )
        return schema.AddPartitionsToTxnResponse(
            throttle_time=0, results_by_topic_v3_and_below=_topic_results(schema, errors)
        )
    results = []
    for transaction in request.transactions:
        partitions = [
            (topic.name, index) for topic in transaction.topics for index in topic.partitions
        ]
        errors = await _add(
            ctx,
            runtime,
            transaction.transactional_id,
            transaction.producer_id,
            transaction.producer_epoch,
            transaction.verify_only,
            partitions,
        )
        results.append(
            schema.AddPartitionsToTxnResult(
                transactional_id=transaction.transactional_id,
                topic_results=_topic_results(schema, errors),
            )
        )
    return schema.AddPartitionsToTxnResponse(
        throttle_time=0, error_code=ErrorCode.NONE, results_by_transaction=tuple(results)
    )


async def _add(
    ctx: RequestContext,
    runtime: TransactionCoordinatorRuntime | ErrorCode,
    transactional_id: str,
    producer_id: int,
    producer_epoch: int,
    verify_only: bool,
    partitions: list[TopicPartition],
) -> dict[TopicPartition, ErrorCode]:
    if isinstance(runtime, ErrorCode):
        return dict.fromkeys(partitions, runtime)
    image = ctx.node.image
    unknown = [tp for tp in partitions if not _exists(image.topic(tp[0]), tp[1])]
    if unknown:
        errors = dict.fromkeys(partitions, ErrorCode.OPERATION_NOT_ATTEMPTED)
        errors.update(dict.fromkeys(unknown, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
        return errors
    if verify_only:
        return runtime.verify_partitions(transactional_id, producer_id, producer_epoch, partitions)
    # A broker's v5 add comes from a partition leader for a transaction version 2 client.
    transaction_version = 2 if ctx.api_version >= 5 else None
    error = await runtime.add_partitions(
        transactional_id, producer_id, producer_epoch, partitions, transaction_version
    )
    return dict.fromkeys(partitions, for_old_clients(error, ctx.api_version, 2))


def _exists(topic: TopicImage | None, index: int) -> bool:
    return topic is not None and index in topic.partitions


def _topic_results(schema: Any, errors: dict[TopicPartition, ErrorCode]) -> tuple[Any, ...]:
    by_topic: dict[str, list[tuple[int, ErrorCode]]] = {}
    for (topic, index), error in errors.items():
        by_topic.setdefault(topic, []).append((index, error))
    return tuple(
        schema.AddPartitionsToTxnTopicResult(
            name=topic,
            results_by_partition=tuple(
                schema.AddPartitionsToTxnPartitionResult(
                    partition_index=index, partition_error_code=error
                )
                for index, error in items
            ),
        )
        for topic, items in by_topic.items()
    )
