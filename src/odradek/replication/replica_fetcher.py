"""Followers fetch from their leaders: one fetch loop per source broker (Kafka's
ReplicaFetcherThread; num.replica.fetchers is accepted, one loop per source is used).

A loop sends Fetch v15 (topic ids, `replica_state.replica_id` = this node, no fetch session)
for every partition it follows from that broker, each at its log end offset with the epoch of
its last batch (`last_fetched_epoch`) and the leader epoch it knows (`current_leader_epoch`).
Per partition in the answer:

- `diverging_epoch` set: the log holds records the leader's does not; truncate to the offset
  `truncation.truncation_offset` gives (KIP-279 over Fetch v12+, no OffsetForLeaderEpoch
  round trip) and fetch again;
- records: append them as the leader wrote them (`Log.append_as_follower`); then the follower's
  high watermark is the leader's, capped by its own log end offset;
- NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, unknown topic: the image
  is behind or ahead of the leader's; that partition alone retries after
  replica.fetch.backoff.ms (`fetch_backoff.py`; a new image moves the partition to the right
  loop). A failed round trip (the leader unreachable) backs off the whole loop.

DURABILITY: what a round trip appended is fsync'd (one group commit per log, in a worker
thread) before the next fetch goes out, so the offset a follower reports in a fetch is durable
on it, and a high watermark the leader computes from those offsets covers only records on disk
on every in-sync replica.

This is the I/O edge: the decisions are in `truncation.py` (and the leader side in `isr.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from odradek.common.clock import Clock, SystemClock
from odradek.common.errors import ErrorCode, KafkaError
from odradek.replication.fetch_backoff import FetchBackoff
from odradek.replication.partition import Partition
from odradek.replication.truncation import truncation_offset
from odradek.transport.client import NodeClient, TransportError

logger = logging.getLogger(__name__)

FETCH_VERSION = 15  # replica_state instead of replica_id; topic ids; diverging_epoch
_Key = tuple[bytes, int]  # (topic id, partition)


@dataclass(frozen=True, slots=True)
class ReplicaFetcherConfig:
    node_id: int
    max_bytes: int = 1_048_576  # replica.fetch.max.bytes (per partition)
    response_max_bytes: int = 10_485_760  # replica.fetch.response.max.bytes
    wait_max_ms: int = 500  # replica.fetch.wait.max.ms
    min_bytes: int = 1  # replica.fetch.min.bytes
    backoff_ms: int = 1000  # replica.fetch.backoff.ms
    request_timeout_ms: int = 30_000


def _request_schema() -> Any:
    from kio.index import load_payload_module
    from kio.static.constants import EntityType

    from odradek.protocol.codec import Schema

    return Schema(load_payload_module(1, FETCH_VERSION, EntityType.request))


class SourceFetcher:
    """The fetch loop of the partitions this node follows from one leader broker."""

    def __init__(
        self,
        leader_id: int,
        endpoint: tuple[str, int],
        config: ReplicaFetcherConfig,
        clock: Clock | None = None,
    ) -> None:
        self.leader_id = leader_id
        self.endpoint = endpoint
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.partitions: dict[_Key, Partition] = {}
        self._backoff: FetchBackoff[_Key] = FetchBackoff(config.backoff_ms)
        self._changed = asyncio.Event()
        self._client = NodeClient(
            endpoint[0],
            endpoint[1],
            client_id=f"replica-fetcher-{config.node_id}-{leader_id}",
            request_timeout_ms=config.request_timeout_ms,
        )
        self._task: asyncio.Task[None] | None = None
        self._prefix = f"[ReplicaFetcher {config.node_id}<-{leader_id}]"

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"replica-fetcher-{self.leader_id}"
        )

    def set_partitions(self, partitions: Mapping[_Key, Partition]) -> None:
        self.partitions = dict(partitions)
        self._changed.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._client.close()

    async def _run(self) -> None:
        schema = _request_schema()
        backoff_s = self.config.backoff_ms / 1000
        while True:
            ready = self._ready()
            if not ready:
                self._changed.clear()
                ready = self._ready()  # a change just before the clear is not lost
            if not ready:
                await self._wait_for_change()
                continue
            try:
                failed = await self._fetch_once(schema, ready)
            except Exception:  # a bug or a failing disk must not end the loop
                logger.exception("%s fetch round failed", self._prefix)
                failed = True
            if failed:
                await asyncio.sleep(backoff_s)

    def _ready(self) -> dict[_Key, Partition]:
        """The partitions to fetch now: those not sitting out a backoff."""
        partitions = self.partitions
        epochs = {key: p.leader_epoch for key, p in partitions.items()}
        return {key: partitions[key] for key in self._backoff.ready(epochs, self._now_ms())}

    async def _wait_for_change(self) -> None:
        """Until the partitions change or the earliest backoff is over."""
        until_ms = self._backoff.next_ready_ms()
        if until_ms is None:
            await self._changed.wait()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(until_ms - self._now_ms(), 0) / 1000):
                await self._changed.wait()

    def _now_ms(self) -> int:
        return self.clock.monotonic_ms()

    async def _fetch_once(self, schema: Any, ready: Mapping[_Key, Partition]) -> bool:
        """One fetch of `ready` and what it brought; True when the whole loop should wait a
        backoff (the round trip failed); a partition that failed waits its own."""
        sent = dict(ready)
        epochs = {key: p.leader_epoch for key, p in sent.items()}
        request = self._build(schema, sent)
        try:
            response = await self._client.send(
                request,
                timeout_ms=self.config.request_timeout_ms + self.config.wait_max_ms,
            )
        except TransportError as exc:
            logger.info("%s fetch failed: %s", self._prefix, exc)
            return True
        if int(response.error_code) != ErrorCode.NONE:
            logger.info("%s fetch error %d", self._prefix, int(response.error_code))
            return True
        appended: list[Partition] = []
        failed = False
        now_ms = self._now_ms()
        for topic in response.responses:
            topic_id = topic.topic_id.bytes
            for data in topic.partitions:
                key = (topic_id, int(data.partition_index))
                partition = self.partitions.get(key)
                if (
                    partition is None
                    or partition is not sent.get(key)
                    or partition.leader_epoch != epochs[key]
                    or partition.leader_id != self.leader_id
                ):
                    continue  # the image moved on while this fetch was out
                try:
                    if self._apply(partition, data):
                        appended.append(partition)
                except KafkaError as exc:
                    logger.warning("%s %s: %s", self._prefix, partition.log, exc)
                    self._backoff.delay(key, epochs[key], now_ms)
                except ReplicationError as exc:
                    logger.info("%s %s: %s", self._prefix, partition.log, exc)
                    self._backoff.delay(key, epochs[key], now_ms)
                except Exception:  # a failing disk: the others' appends still get fsync'd
                    logger.exception("%s %s: append failed", self._prefix, partition.log)
                    self._backoff.delay(key, epochs[key], now_ms)
        if appended:
            # what was appended is on disk before the next fetch reports it
            outcomes = await asyncio.gather(
                *(p.group_commit.wait_flushed(p.log.log_end_offset) for p in appended),
                return_exceptions=True,
            )
            for partition, outcome in zip(appended, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    # never report an offset that is not durable: stop fetching it until the
                    # next image (its log dir is offline now)
                    logger.error("%s %s: fsync failed: %s", self._prefix, partition.log, outcome)
                    self.partitions = {
                        k: p for k, p in self.partitions.items() if p is not partition
                    }
                    failed = True
        return failed

    def _build(self, schema: Any, partitions: Mapping[_Key, Partition]) -> Any:
        config = self.config
        by_topic: dict[bytes, list[Any]] = {}
        for (topic_id, partition_id), partition in partitions.items():
            log = partition.log
            by_topic.setdefault(topic_id, []).append(
                schema.FetchPartition(
                    partition=partition_id,
                    current_leader_epoch=partition.leader_epoch,
                    fetch_offset=log.log_end_offset,
                    last_fetched_epoch=log.latest_epoch,
                    log_start_offset=log.log_start_offset,
                    partition_max_bytes=config.max_bytes,
                )
            )
        return schema.FetchRequest(
            cluster_id=None,
            replica_state=schema.ReplicaState(replica_id=config.node_id, replica_epoch=-1),
            max_wait=datetime.timedelta(milliseconds=config.wait_max_ms),
            min_bytes=config.min_bytes,
            max_bytes=config.response_max_bytes,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=tuple(
                schema.FetchTopic(topic_id=uuid.UUID(bytes=topic_id), partitions=tuple(parts))
                for topic_id, parts in by_topic.items()
            ),
            forgotten_topics_data=(),
            rack_id="",
        )

    def _apply(self, partition: Partition, data: Any) -> bool:
        """One partition of the answer; True when records were appended."""
        error = int(data.error_code)
        log = partition.log
        if error == ErrorCode.OFFSET_OUT_OF_RANGE:
            leader_start = int(data.log_start_offset)
            if 0 <= log.log_end_offset < leader_start:
                # the leader no longer has what comes next (retention, DeleteRecords): start
                # over at its log start
                partition.truncate_fully_and_start_at(leader_start)
                return False
            if log.log_end_offset > int(data.high_watermark) >= 0 and (
                log.log_end_offset > leader_start
            ):
                # ahead of the leader without a known divergence: keep only what it commits
                partition.truncate_to(int(data.high_watermark))
                return False
            raise ReplicationError(
                f"fetch offset {log.log_end_offset} out of range (leader's log start"
                f" {leader_start})"
            )
        if error != ErrorCode.NONE:
            raise ReplicationError(f"error {error}")
        diverging = data.diverging_epoch
        if int(diverging.epoch) >= 0 or int(diverging.end_offset) >= 0:
            truncation = truncation_offset(
                int(diverging.epoch),
                int(diverging.end_offset),
                log.log_end_offset,
                partition.high_watermark,
                log.end_offset_for_epoch,
            )
            logger.info(
                "%s %s diverges at epoch %d end %d: truncating to %d",
                self._prefix,
                log,
                int(diverging.epoch),
                int(diverging.end_offset),
                truncation.offset,
            )
            partition.truncate_to(truncation.offset)
            return False
        records = data.records
        appended = False
        if records:
            partition.append_as_follower(memoryview(records))
            appended = True
        leader_start = int(data.log_start_offset)
        if log.log_start_offset < leader_start <= log.log_end_offset:
            log.delete_records_before(leader_start)
        partition.update_follower_high_watermark(int(data.high_watermark))
        return appended


class ReplicationError(Exception):
    """A partition's fetch failed in a way the next image or a retry resolves."""


class ReplicaFetcherManager:
    """The fetch loops, one per leader broker this node follows partitions from."""

    def __init__(self, config: ReplicaFetcherConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock
        self.fetchers: dict[int, SourceFetcher] = {}
        self._running = False

    def start(self) -> None:
        self._running = True
        for fetcher in self.fetchers.values():
            fetcher.start()

    def update(
        self,
        followed: Mapping[int, Mapping[_Key, Partition]],
        endpoints: Mapping[int, tuple[str, int]],
    ) -> list[SourceFetcher]:
        """Follow `followed` (leader id -> partitions); returns the loops to stop (their
        leader is gone or moved to another endpoint)."""
        stopped: list[SourceFetcher] = []
        for leader_id, fetcher in list(self.fetchers.items()):
            if leader_id not in followed or endpoints.get(leader_id) != fetcher.endpoint:
                del self.fetchers[leader_id]
                stopped.append(fetcher)
        for leader_id, partitions in followed.items():
            endpoint = endpoints.get(leader_id)
            if endpoint is None:
                continue  # the leader's endpoint is not known yet: wait for the next image
            found = self.fetchers.get(leader_id)
            if found is None:
                found = SourceFetcher(leader_id, endpoint, self.config, self.clock)
                self.fetchers[leader_id] = found
                if self._running:
                    found.start()
            found.set_partitions(partitions)
        return stopped

    async def stop(self) -> None:
        self._running = False
        fetchers, self.fetchers = list(self.fetchers.values()), {}
        for fetcher in fetchers:
            await fetcher.stop()
