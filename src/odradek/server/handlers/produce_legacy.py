"""Produce v0-v2: old producers' magic 0/1 message sets, up-converted to v2 batches.

Routed here by `produce.py` so modern producers never pay for it. Each partition's message set
is checked and converted as Kafka 3.x's LogValidator does (`protocol/up_convert.py`): a bad
CRC32 or broken framing is CORRUPT_MESSAGE, nested compression, mixed magics or more than one
compressed wrapper INVALID_RECORD. The converted batch is appended like any produced batch, so
offsets, LogAppendTime and max.message.bytes apply to it. A set of v2 batches (Kafka 3.x takes
those over v0-v2 too) is appended as it is. Answers: base offset (v0+), throttle time (v1+),
log append time (v2+); acks=0 gets none and an error closes the connection, as for v3+.
"""

from __future__ import annotations

import asyncio
from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.legacy_records import MAGIC_OFFSET
from odradek.protocol.legacy_requests import (
    LegacyProducePartitionResult,
    encode_legacy_produce_response,
)
from odradek.protocol.produce import decode_legacy_produce_request
from odradek.protocol.up_convert import up_convert
from odradek.server.context import RequestContext
from odradek.server.registry import NO_RESPONSE, CloseConnection
from odradek.server.write_policy import check_client_may_write


def _as_v2(records: memoryview) -> memoryview:
    if len(records) > MAGIC_OFFSET and records[MAGIC_OFFSET] == 2:
        return records
    return memoryview(up_convert(records))


async def handle_legacy_produce(ctx: RequestContext) -> Any:
    data = decode_legacy_produce_request(ctx.frame, ctx.body_position)
    replica_manager = ctx.node.replica_manager
    acks = data.acks
    results: dict[tuple[str, int], LegacyProducePartitionResult] = {}
    durable: dict[tuple[str, int], Any] = {}
    for topic in data.topics:
        for item in topic.partitions:
            key = (topic.name, item.partition)
            try:
                if acks not in (0, 1, -1):
                    raise KafkaError("acks must be 0, 1 or -1", ErrorCode.INVALID_REQUIRED_ACKS)
                check_client_may_write(ctx.header.client_id, topic.name)
                partition = replica_manager.leader(topic.name, item.partition)
                if item.records is None or len(item.records) == 0:
                    raise KafkaError("empty message set", ErrorCode.INVALID_RECORD)
                records = _as_v2(item.records)
                if acks == -1:
                    partition.check_min_isr()
                appended = partition.append(records)
                results[key] = LegacyProducePartitionResult(
                    item.partition,
                    ErrorCode.NONE,
                    appended.first_offset,
                    appended.log_append_time_ms,
                )
                if acks == -1:
                    durable[key] = partition.group_commit.wait_durable(appended.last_offset + 1)
            except KafkaError as exc:
                results[key] = LegacyProducePartitionResult(item.partition, exc.code, -1, -1)
    if acks == 0:
        if any(r.error_code != ErrorCode.NONE for r in results.values()):
            raise CloseConnection("acks=0 produce failed")
        return NO_RESPONSE
    if durable:
        tasks = {key: asyncio.ensure_future(waiter) for key, waiter in durable.items()}
        _, pending = await asyncio.wait(tasks.values(), timeout=max(data.timeout_ms, 0) / 1000)
        for key, task in tasks.items():
            if task in pending:
                task.cancel()
                code = ErrorCode.REQUEST_TIMED_OUT
            elif task.exception() is not None:
                code = ErrorCode.KAFKA_STORAGE_ERROR
            else:
                continue
            results[key] = LegacyProducePartitionResult(key[1], code, -1, -1)
    return encode_legacy_produce_response(
        ctx.api_version,
        ctx.header.correlation_id,
        [
            (topic.name, [results[(topic.name, item.partition)] for item in topic.partitions])
            for topic in data.topics
        ],
    )
