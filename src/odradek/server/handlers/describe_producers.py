"""DescribeProducers (key 61), v0: the idempotent and transactional producers a partition
remembers, for operators (Kafka's kafka-transactions.sh describe-producers).

Per partition, each producer the partition's producer state holds: its id and epoch, the last
sequence and timestamp it wrote, the epoch of the transaction coordinator that last ended one of
its transactions, and the first offset of its open transaction (-1 without one). A partition
this broker does not host is UNKNOWN_TOPIC_OR_PARTITION.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.DESCRIBE_PRODUCERS, versions=(0, 0))
async def handle_describe_producers(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.DESCRIBE_PRODUCERS, ctx.api_version)
    replica_manager = ctx.node.replica_manager

    def partition_response(topic: str, index: int) -> Any:
        try:
            producers = replica_manager.leader(topic, index).log.producer_state.producers
        except KafkaError as exc:
            return schema.PartitionResponse(
                partition_index=index,
                error_code=exc.code,
                error_message=str(exc) or None,
                active_producers=(),
            )
        return schema.PartitionResponse(
            partition_index=index,
            error_code=ErrorCode.NONE,
            error_message=None,
            active_producers=tuple(
                schema.ProducerState(
                    producer_id=entry.producer_id,
                    producer_epoch=entry.epoch,
                    last_sequence=entry.last_seq,
                    last_timestamp=entry.last_timestamp,
                    coordinator_epoch=entry.coordinator_epoch,
                    current_txn_start_offset=entry.txn_first_offset,
                )
                for _, entry in sorted(producers.items())
            ),
        )

    return schema.DescribeProducersResponse(
        throttle_time=0,
        topics=tuple(
            schema.TopicResponse(
                name=topic.name,
                partitions=tuple(
                    partition_response(topic.name, index) for index in topic.partition_indexes
                ),
            )
            for topic in request.topics
        ),
    )
