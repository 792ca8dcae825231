"""Fetch (key 1), v0-v16; v0-v3 (old message formats) are served by `fetch_legacy.py`.

Consumers read whole stored batches, unchanged, up to the high watermark. Long poll: the
response waits up to max_wait_ms until min_bytes are available, woken by appends. Limits:
max_bytes for the response and partition_max_bytes per partition, but the first batch found
is always returned whole even when larger (KIP-74). Fetch sessions (KIP-227, v7+) let a client
send and receive only what changed. v9+ check current_leader_epoch (KIP-320); v13+ name topics
by id. isolation_level 1 (read_committed) reads only below the last stable offset and gets, per
partition, the (producer id, first offset) of every aborted transaction overlapping the batches
returned, which the client uses to drop their records; read_uncommitted gets no list (null).
Every version carries the real last stable offset. A transaction marker is an append, so it
wakes long-polling fetchers: a read_committed one that was waiting for the last stable offset
to move re-reads then. A replica's Fetch of `__cluster_metadata` (v12+) goes to the metadata
quorum instead (`quorum_support.py`).

A replica's fetch (replica_id >= 0 before v15, replica_state.replica_id from v15) of any other
partition is a follower's: the leader reads up to its log end offset instead of the high
watermark, records the follower's position (which moves the ISR and the high watermark), and
for v12+ answers `diverging_epoch` instead of records when the follower's last fetched epoch
ends before its fetch offset (Partition.read_for_replica). Only the leader serves fetches: a
consumer fetching from a follower gets NOT_LEADER_OR_FOLLOWER (no fetch from followers).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import millis
from odradek.protocol.fetch_response import (
    FetchPartitionData,
    FetchTopicData,
    encode_fetch_response,
)
from odradek.replication.fetch_session import (
    FINAL_EPOCH,
    INITIAL_EPOCH,
    FetchSession,
    FetchSessionError,
    SessionPartition,
)
from odradek.replication.partition import Partition
from odradek.server.context import RequestContext
from odradek.server.handlers import quorum_support
from odradek.server.registry import handler

_Key = tuple[str, int]


@dataclass(slots=True)
class _Result:
    key: _Key
    topic_id: bytes
    error: ErrorCode
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    records: bytes = b""
    aborted_transactions: tuple[tuple[int, int], ...] = ()
    diverging_epoch: tuple[int, int] | None = None


def _requested(
    ctx: RequestContext, request: Any
) -> tuple[OrderedDict[_Key, SessionPartition], dict[_Key, bytes], list[_Result], set[_Key]]:
    """Partitions the request names (by name, or by id for v13+), unknown ids as results."""
    image = ctx.node.image
    use_ids = ctx.api_version >= 13
    wanted: OrderedDict[_Key, SessionPartition] = OrderedDict()
    topic_ids: dict[_Key, bytes] = {}
    unknown: list[_Result] = []
    for topic in request.topics:
        if use_ids:
            raw_id = topic.topic_id.bytes
            found = image.topic_by_id(raw_id)
            name = found.name if found else None
        else:
            name = topic.topic
            found = image.topic(name)
            raw_id = found.topic_id if found else bytes(16)
        for item in topic.partitions:
            if name is None:
                unknown.append(_Result(("", item.partition), raw_id, ErrorCode.UNKNOWN_TOPIC_ID))
                continue
            key = (name, item.partition)
            wanted[key] = SessionPartition(
                item.fetch_offset,
                item.partition_max_bytes,
                getattr(item, "current_leader_epoch", -1),
                getattr(item, "last_fetched_epoch", -1),
                getattr(item, "log_start_offset", -1),
            )
            topic_ids[key] = raw_id
    forgotten: set[_Key] = set()
    for topic in getattr(request, "forgotten_topics_data", ()):
        if use_ids:
            found = image.topic_by_id(topic.topic_id.bytes)
            if found is None:
                continue
            name = found.name
        else:
            name = topic.topic
        forgotten.update((name, p) for p in topic.partitions)
    return wanted, topic_ids, unknown, forgotten


def _replica_id(ctx: RequestContext, request: Any) -> int:
    """The fetching replica's id, or -1 for a consumer."""
    if ctx.api_version >= 15:
        return int(request.replica_state.replica_id)
    return int(getattr(request, "replica_id", -1))


def _read_all(
    ctx: RequestContext,
    partitions: OrderedDict[_Key, SessionPartition],
    topic_ids: dict[_Key, bytes],
    max_bytes: int,
    read_committed: bool,
    replica_id: int = -1,
) -> tuple[list[_Result], int, list[Partition]]:
    replica_manager = ctx.node.replica_manager
    results: list[_Result] = []
    total = 0
    waitable: list[Partition] = []
    for key, state in partitions.items():
        topic_id = topic_ids.get(key, bytes(16))
        try:
            if replica_id >= 0:
                partition = replica_manager.hosted(*key)
                if state.partition_max_bytes < 0:
                    raise KafkaError("negative partition_max_bytes", ErrorCode.INVALID_REQUEST)
                limit = min(state.partition_max_bytes, max(max_bytes - total, 0))
                replica_read = partition.read_for_replica(
                    replica_id,
                    state.fetch_offset,
                    state.last_fetched_epoch,
                    state.current_leader_epoch,
                    state.replica_log_start_offset,
                    limit,
                    total == 0,
                )
                total += len(replica_read.records)
                waitable.append(partition)
                results.append(
                    _Result(
                        key,
                        topic_id,
                        ErrorCode.NONE,
                        replica_read.high_watermark,
                        partition.last_stable_offset,
                        replica_read.log_start_offset,
                        replica_read.records,
                        diverging_epoch=replica_read.diverging_epoch,
                    )
                )
                continue
            partition = replica_manager.leader(*key)
            partition.check_leader_epoch(state.current_leader_epoch)
            if state.partition_max_bytes < 0:
                raise KafkaError("negative partition_max_bytes", ErrorCode.INVALID_REQUEST)
            limit = min(state.partition_max_bytes, max(max_bytes - total, 0))
            read = partition.read(
                state.fetch_offset, limit, min_one_message=total == 0, read_committed=read_committed
            )
        except KafkaError as exc:
            code = exc.code
            if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION and ctx.api_version >= 13:
                code = ErrorCode.UNKNOWN_TOPIC_ID if key[0] not in ctx.node.image.topics else code
            result = _Result(key, topic_id, code)
            if code == ErrorCode.OFFSET_OUT_OF_RANGE:
                leader = replica_manager.hosted(*key)
                result.high_watermark = leader.high_watermark
                result.last_stable_offset = leader.last_stable_offset
                result.log_start_offset = leader.log.log_start_offset
            results.append(result)
            continue
        total += len(read.records)
        waitable.append(partition)
        aborted = read.aborted_transactions
        results.append(
            _Result(
                key,
                topic_id,
                ErrorCode.NONE,
                partition.high_watermark,
                partition.last_stable_offset,
                read.log_start_offset,
                read.records,
                tuple((txn.producer_id, txn.first_offset) for txn in aborted) if aborted else (),
            )
        )
    return results, total, waitable


def _changed(result: _Result, state: SessionPartition) -> bool:
    return bool(
        result.records
        or result.error != ErrorCode.NONE
        or result.diverging_epoch is not None
        or result.high_watermark != state.high_watermark
        or result.last_stable_offset != state.last_stable_offset
        or result.log_start_offset != state.log_start_offset
    )


@handler(ApiKey.FETCH, versions=(0, 16), raw_below=4)
async def handle_fetch(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    if version < 4:  # old message formats: down-converted off this path (fetch_legacy.py)
        from odradek.server.handlers.fetch_legacy import handle_legacy_fetch

        return await handle_legacy_fetch(ctx)
    if version >= 12 and quorum_support.is_quorum_fetch(ctx, request):
        return await quorum_support.answer_fetch(ctx, request)  # KRaft's own replication
    node = ctx.node
    now_ms = node.clock.monotonic_ms()
    session_id = getattr(request, "session_id", 0)
    epoch = getattr(request, "session_epoch", FINAL_EPOCH)
    wanted, topic_ids, unknown, forgotten = _requested(ctx, request)

    session: FetchSession | None = None
    incremental = False
    cache = node.fetch_sessions
    if session_id != 0 and epoch in (INITIAL_EPOCH, FINAL_EPOCH):
        cache.remove(session_id)
    if epoch == INITIAL_EPOCH:
        session = cache.create(now_ms)
        if session is not None:
            session.partitions = OrderedDict(wanted)
    elif epoch != FINAL_EPOCH:
        try:
            session = cache.get(session_id, epoch, now_ms)
        except FetchSessionError as exc:
            return encode_fetch_response(version, ctx.header.correlation_id, exc.code, 0, [])
        incremental = True
        for key in forgotten:
            session.partitions.pop(key, None)
        for key, state in wanted.items():
            previous = session.partitions.get(key)
            if previous is not None:
                state.high_watermark = previous.high_watermark
                state.last_stable_offset = previous.last_stable_offset
                state.log_start_offset = previous.log_start_offset
            session.partitions[key] = state

    to_read = session.partitions if session is not None else wanted
    if session is not None:
        for key in to_read:
            if key not in topic_ids:
                topic = node.image.topic(key[0])
                topic_ids[key] = topic.topic_id if topic else bytes(16)
    max_bytes = getattr(request, "max_bytes", 2**31 - 1)
    read_committed = getattr(request, "isolation_level", 0) == 1
    max_wait_ms = millis(request.max_wait)
    deadline = node.clock.monotonic_ms() + max_wait_ms
    replica_id = _replica_id(ctx, request)
    while True:
        results, total, waitable = _read_all(
            ctx, to_read, topic_ids, max_bytes, read_committed, replica_id
        )
        remaining = deadline - node.clock.monotonic_ms()
        has_error = any(r.error != ErrorCode.NONE for r in results) or unknown
        if total >= request.min_bytes or remaining <= 0 or has_error or not waitable:
            if remaining > 0 and not waitable and not has_error and request.min_bytes > 0:
                await node.replica_manager.wait_for_append([], remaining)
            break
        await node.replica_manager.wait_for_append(waitable, remaining)
        if node.clock.monotonic_ms() >= deadline:
            results, total, waitable = _read_all(
                ctx, to_read, topic_ids, max_bytes, read_committed, replica_id
            )
            break

    if incremental and session is not None:
        results = [r for r in results if _changed(r, session.partitions[r.key])]
    if session is not None:
        for r in results:
            told = session.partitions.get(r.key)
            if told is not None:
                told.high_watermark = r.high_watermark
                told.last_stable_offset = r.last_stable_offset
                told.log_start_offset = r.log_start_offset
    results.extend(unknown)
    return _response(ctx, results, session.session_id if session else 0, request)


def _response(
    ctx: RequestContext, results: list[_Result], session_id: int, request: Any
) -> list[bytes]:
    read_committed = getattr(request, "isolation_level", 0) == 1
    by_topic: OrderedDict[tuple[str, bytes], list[FetchPartitionData]] = OrderedDict()
    for r in results:
        by_topic.setdefault((r.key[0], r.topic_id), []).append(
            FetchPartitionData(
                r.key[1],
                r.error,
                r.high_watermark,
                r.last_stable_offset,
                r.log_start_offset,
                r.aborted_transactions if read_committed else None,
                r.records,
                r.diverging_epoch,
            )
        )
    topics = [FetchTopicData(name, topic_id, parts) for (name, topic_id), parts in by_topic.items()]
    return encode_fetch_response(
        ctx.api_version, ctx.header.correlation_id, ErrorCode.NONE, session_id, topics
    )
