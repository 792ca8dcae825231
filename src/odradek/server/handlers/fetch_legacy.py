"""Fetch v0-v3: stored v2 batches down-converted for old consumers.

Routed here by `fetch.py` so modern fetches keep sending the stored bytes untouched. As Kafka
3.x serves these versions: v0-v1 read magic 0 messages, v2-v3 magic 1 (timestamps); every
partition gets the batches below the high watermark from its fetch offset, converted by
`protocol/down_convert.py` and cut at partition_max_bytes and, v3+, at the request's max_bytes.
v3 returns the first message whole even when it is larger (KIP-74); v0-v2 have hard limits, so
an oversized first message arrives partial, which old clients report as too large. No fetch
sessions, no isolation level (read_uncommitted), no leader epochs. Long poll: the response
waits up to max_wait_ms until min_bytes of converted data are ready, woken by appends.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.down_convert import down_convert
from odradek.protocol.legacy_requests import (
    LegacyFetchPartitionResult,
    LegacyFetchRequest,
    decode_legacy_fetch_request,
    encode_legacy_fetch_response,
)
from odradek.replication.partition import Partition
from odradek.server.context import RequestContext

_Results = list[tuple[str, list[LegacyFetchPartitionResult]]]


def _read_all(
    ctx: RequestContext, request: LegacyFetchRequest
) -> tuple[_Results, int, list[Partition], bool]:
    """Converted results, their total size, partitions to wait on, and whether any failed."""
    version = ctx.api_version
    to_magic = 0 if version < 2 else 1
    replica_manager = ctx.node.replica_manager
    results: _Results = []
    total = 0
    waitable: list[Partition] = []
    failed = False
    for name, partitions in request.topics:
        topic_results: list[LegacyFetchPartitionResult] = []
        for item in partitions:
            high_watermark = -1
            try:
                partition = replica_manager.leader(name, item.partition)
                high_watermark = partition.high_watermark
                if item.partition_max_bytes < 0:
                    raise KafkaError("negative partition_max_bytes", ErrorCode.INVALID_REQUEST)
                limit = min(item.partition_max_bytes, max(request.max_bytes - total, 0))
                min_one = version >= 3 and total == 0
                # Whole batches are read even past the limit: the limit applies to what
                # conversion produces (messages are larger or smaller than records).
                read = partition.read(item.fetch_offset, max(limit, 1), min_one_message=True)
                records = down_convert(
                    read.records, to_magic, item.fetch_offset, limit, min_one_message=min_one
                )
            except KafkaError as exc:
                failed = True
                code = exc.code
                if code == ErrorCode.KAFKA_STORAGE_ERROR:
                    # Old clients do not know it and would give up; this one makes them
                    # refresh metadata and retry (Kafka: maybeDownConvertStorageError).
                    code = ErrorCode.NOT_LEADER_OR_FOLLOWER
                topic_results.append(
                    LegacyFetchPartitionResult(item.partition, code, high_watermark, b"")
                )
                continue
            total += len(records)
            waitable.append(partition)
            topic_results.append(
                LegacyFetchPartitionResult(
                    item.partition, ErrorCode.NONE, partition.high_watermark, records
                )
            )
        results.append((name, topic_results))
    return results, total, waitable, failed


async def handle_legacy_fetch(ctx: RequestContext) -> Any:
    request = decode_legacy_fetch_request(ctx.frame, ctx.body_position, ctx.api_version)
    node = ctx.node
    deadline = node.clock.monotonic_ms() + max(request.max_wait_ms, 0)
    while True:
        results, total, waitable, failed = _read_all(ctx, request)
        remaining = deadline - node.clock.monotonic_ms()
        if total >= request.min_bytes or remaining <= 0 or failed or not waitable:
            break
        await node.replica_manager.wait_for_append(waitable, remaining)
    return encode_legacy_fetch_response(ctx.api_version, ctx.header.correlation_id, results)
