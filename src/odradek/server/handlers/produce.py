"""Produce (key 0), v0-v12 (v12: transaction version 2 clients, see below).

v0-v2 (old producers, magic 0/1 message sets) are served by `produce_legacy.py`, which
up-converts to v2 batches as Kafka 3.x does; this module routes them there first thing.

v3+: the request is decoded by our own hot-path decoder so record sets stay memoryviews into
the received frame; the log validates each batch and rewrites offsets in place. A
transactional batch that would open its producer's transaction on a partition is first
verified with the transaction coordinator (server/transaction_verification.py). Clients may
not write to the internal topics (server/write_policy.py). acks=0 gets no
response (an error closes the connection so the client notices, as Kafka does); acks=1 is
answered after the append; acks=-1 after a group-commit fsync covers the records here and the
high watermark reaches them (every in-sync replica has them, fsync'd: Kafka's DelayedProduce),
up to the request's timeout (REQUEST_TIMED_OUT). acks=-1 is refused before the append with
NOT_ENOUGH_REPLICAS while the ISR is smaller than min.insync.replicas, and answered
NOT_ENOUGH_REPLICAS_AFTER_APPEND when the records were replicated but the ISR has meanwhile
shrunk below it. Only the leader accepts records (NOT_LEADER_OR_FOLLOWER elsewhere).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.protocol.produce import decode_produce_request
from odradek.replication.partition import Partition
from odradek.server.context import RequestContext
from odradek.server.registry import NO_RESPONSE, CloseConnection, handler
from odradek.server.transaction_verification import (
    ask_coordinator,
    produce_error,
    transactional_producer,
    verification_enabled,
    verification_failure,
)
from odradek.server.write_policy import check_client_may_write
from odradek.storage.log import AppendResult
from odradek.storage.producer_state import NO_PRODUCER_ID

_Outcome = tuple[ErrorCode, AppendResult | None, str | None]


@handler(ApiKey.PRODUCE, versions=(0, 12), raw=True)
async def handle_produce(ctx: RequestContext, _: Any) -> Any:
    version = ctx.api_version
    if version < 3:  # old message formats: converted off this path (produce_legacy.py)
        from odradek.server.handlers.produce_legacy import handle_legacy_produce

        return await handle_legacy_produce(ctx)
    data = decode_produce_request(ctx.frame, ctx.body_position, version)
    replica_manager = ctx.node.replica_manager
    outcomes: dict[tuple[str, int], _Outcome] = {}
    durable: dict[tuple[str, int], asyncio.Future[None] | Any] = {}
    leaders: dict[tuple[str, int], Partition] = {}
    unverified: dict[tuple[str, int], _Unverified] = {}
    acks = data.acks
    add = version >= 12 and data.transactional_id is not None

    def append(key: tuple[str, int], partition: Partition, records: Any, verified: int) -> None:
        result = partition.append(records, verified_producer=verified)
        outcomes[key] = (ErrorCode.NONE, result, None)
        if acks == -1:
            durable[key] = partition.group_commit.wait_durable(result.last_offset + 1)
            leaders[key] = partition

    for topic in data.topics:
        for item in topic.partitions:
            key = (topic.name, item.partition)
            if acks not in (0, 1, -1):
                outcomes[key] = (ErrorCode.INVALID_REQUIRED_ACKS, None, None)
                continue
            try:
                check_client_may_write(ctx.header.client_id, topic.name)
                partition = replica_manager.leader(topic.name, item.partition)
                if item.records is None:
                    raise KafkaError("null record set", ErrorCode.INVALID_RECORD)
                if acks == -1:
                    partition.check_min_isr()
                producer = transactional_producer(item.records)
                if producer is None:
                    append(key, partition, item.records, NO_PRODUCER_ID)
                    continue
                state = partition.log.producer_state
                if state.has_open_transaction(producer[0]) or not verification_enabled(
                    ctx.node, add
                ):
                    append(key, partition, item.records, producer[0])
                    continue
                guard = state.start_verification(producer[0])
                unverified[key] = _Unverified(partition, item.records, producer, guard)
            except KafkaError as exc:
                outcomes[key] = (exc.code, None, str(exc) or None)
    if unverified:
        for key, waiting, error in await _verify(ctx, data.transactional_id, unverified, add):
            try:
                if error != ErrorCode.NONE:
                    raise verification_failure(error)
                append(key, waiting.partition, waiting.records, waiting.producer[0])
            except KafkaError as exc:
                outcomes[key] = (exc.code, None, str(exc) or None)
    if acks == 0:
        if any(code != ErrorCode.NONE for code, _, _ in outcomes.values()):
            raise CloseConnection("acks=0 produce failed")
        return NO_RESPONSE
    if durable:
        await _await_durable(durable, outcomes, data.timeout_ms, leaders)
    return _response(version, data, outcomes)


@dataclass(frozen=True, slots=True)
class _Unverified:
    """A transactional batch that would open its producer's transaction on its partition."""

    partition: Partition
    records: Any
    producer: tuple[int, int]
    guard: object


async def _verify(
    ctx: RequestContext,
    transactional_id: str | None,
    unverified: dict[tuple[str, int], _Unverified],
    add: bool,
) -> list[tuple[tuple[str, int], _Unverified, ErrorCode]]:
    """Ask the coordinator about every such partition of the request at once (per producer:
    a request has one), then say, right before the appends, which may go on: a marker that
    came meanwhile has dropped the guard of its partition."""
    by_producer: dict[tuple[int, int], list[tuple[str, int]]] = {}
    for key, item in unverified.items():
        by_producer.setdefault(item.producer, []).append(key)
    answers: dict[tuple[str, int], ErrorCode] = {}
    for producer, keys in by_producer.items():
        answers.update(await ask_coordinator(ctx.node, transactional_id, producer, keys, add))
    verdicts = []
    for key, item in unverified.items():
        producer_id = item.producer[0]
        state = item.partition.log.producer_state
        error = produce_error(answers[key], ctx.api_version)
        if error == ErrorCode.NONE and not state.may_append_verified(producer_id, item.guard):
            error = ErrorCode.INVALID_TXN_STATE
        if error != ErrorCode.NONE:
            state.end_verification(producer_id, item.guard)
        verdicts.append((key, item, error))
    return verdicts


async def _await_durable(
    durable: dict[tuple[str, int], Any],
    outcomes: dict[tuple[str, int], _Outcome],
    timeout_ms: int,
    leaders: dict[tuple[str, int], Partition],
) -> None:
    tasks = {key: asyncio.ensure_future(waiter) for key, waiter in durable.items()}
    _, pending = await asyncio.wait(tasks.values(), timeout=max(timeout_ms, 0) / 1000)
    for key, task in tasks.items():
        if task in pending:
            task.cancel()
            outcomes[key] = (
                ErrorCode.REQUEST_TIMED_OUT,
                None,
                "timed out waiting for the in-sync replicas",
            )
            continue
        error = task.exception()
        if isinstance(error, KafkaError):
            outcomes[key] = (error.code, None, str(error))
        elif error is not None:
            outcomes[key] = (ErrorCode.KAFKA_STORAGE_ERROR, None, str(error))
        elif leaders[key].under_min_isr():
            outcomes[key] = (
                ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
                None,
                "the ISR shrank below min.insync.replicas after the append",
            )


def _response(version: int, data: Any, outcomes: dict[tuple[str, int], _Outcome]) -> Any:
    schema = response_schema(ApiKey.PRODUCE, version)
    topics = []
    for topic in data.topics:
        partitions = []
        for item in topic.partitions:
            code, result, message = outcomes[(topic.name, item.partition)]
            partitions.append(
                schema.PartitionProduceResponse(
                    index=item.partition,
                    error_code=code,
                    base_offset=result.first_offset if result else -1,
                    log_append_time=result.log_append_time_ms if result else -1,
                    log_start_offset=result.log_start_offset if result else -1,
                    record_errors=(),
                    error_message=message if code != ErrorCode.NONE else None,
                )
            )
        topics.append(
            schema.TopicProduceResponse(name=topic.name, partition_responses=tuple(partitions))
        )
    return schema.ProduceResponse(responses=tuple(topics), throttle_time=0)
