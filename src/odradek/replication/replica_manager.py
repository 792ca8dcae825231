"""The replica manager: the partitions this broker hosts, made to follow the metadata image.

Produce and fetch go through here. `apply_image` opens a log for every partition the image
places on this broker, deletes the logs of topics that are gone, and gives each partition its
role: leader where the image's leader is this node, follower of the image's leader otherwise
(leader -1: no fetching), again on every leader epoch or partition epoch change (Kafka's
makeLeader / makeFollower). Followers are handed to the replica fetcher, one loop per leader.

Leaders propose ISR changes through the controller channel (`AlterPartitionChannel`: one
request in flight per partition, the answer goes back to the partition). Every
replica.lag.time.max.ms / 2 the leaders look for followers to drop from the ISR. High
watermarks go to `replication-offset-checkpoint` with the log manager's other checkpoints and
are where a partition's high watermark starts after a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from odradek.common.config import BrokerConfig
from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.image import MetadataImage, PartitionImage, TopicImage
from odradek.replication.partition import NO_LEADER, Partition
from odradek.replication.replica_fetcher import (
    ReplicaFetcherConfig,
    ReplicaFetcherManager,
    SourceFetcher,
)
from odradek.storage.log import LogConfig
from odradek.storage.log_manager import LogManager

logger = logging.getLogger(__name__)


def log_config_for(config: BrokerConfig, topic: TopicImage | None) -> LogConfig:
    """The storage config of a topic: its own settings over the broker's defaults."""
    overrides: dict[str, Any] = dict(topic.configs) if topic is not None else {}

    def value(name: str) -> Any:
        if name in overrides:
            return overrides[name]
        return config.topic_default(name)

    return LogConfig(
        segment_bytes=int(value("segment.bytes")),
        segment_ms=int(value("segment.ms")),
        index_interval_bytes=int(value("index.interval.bytes")),
        segment_index_bytes=int(value("segment.index.bytes")),
        max_message_bytes=int(value("max.message.bytes")),
        message_timestamp_type=str(value("message.timestamp.type")),
        cleanup_policy=_policy(value("cleanup.policy")),
        retention_ms=int(value("retention.ms")),
        retention_bytes=int(value("retention.bytes")),
        file_delete_delay_ms=int(value("file.delete.delay.ms")),
        delete_retention_ms=int(value("delete.retention.ms")),
        min_cleanable_dirty_ratio=float(value("min.cleanable.dirty.ratio")),
        min_compaction_lag_ms=int(value("min.compaction.lag.ms")),
        max_compaction_lag_ms=int(value("max.compaction.lag.ms")),
    )


def _policy(value: Any) -> tuple[str, ...]:
    """cleanup.policy as a tuple, from a parsed LIST or a topic override's "compact,delete"."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(value)


class AlterPartitionAnswer(Protocol):
    @property
    def error_code(self) -> int: ...
    @property
    def leader_id(self) -> int: ...
    @property
    def leader_epoch(self) -> int: ...
    @property
    def partition_epoch(self) -> int: ...
    @property
    def isr(self) -> tuple[int, ...]: ...


class AlterPartitionChannel(Protocol):
    """The node's way to the active controller (server/controller_channel.py)."""

    async def alter_partition(
        self,
        topic_id: bytes,
        partition: int,
        leader_epoch: int,
        partition_epoch: int,
        new_isr: tuple[int, ...],
    ) -> AlterPartitionAnswer: ...


ALTER_PARTITION_RETRY_BACKOFF_MS = 100


class ReplicaManager:
    def __init__(self, node_id: int, config: BrokerConfig, log_manager: LogManager) -> None:
        self.node_id = node_id
        self.config = config
        self.log_manager = log_manager
        self.partitions: dict[tuple[str, int], Partition] = {}
        self._parked: set[asyncio.Future[None]] = set()  # waits of wait_for_append
        self.controller_channel: AlterPartitionChannel | None = None
        self.replica_lag_time_max_ms = int(config["replica.lag.time.max.ms"])
        self.fetchers = ReplicaFetcherManager(
            ReplicaFetcherConfig(
                node_id=node_id,
                max_bytes=int(config["replica.fetch.max.bytes"]),
                response_max_bytes=int(config["replica.fetch.response.max.bytes"]),
                wait_max_ms=int(config["replica.fetch.wait.max.ms"]),
                min_bytes=int(config["replica.fetch.min.bytes"]),
                backoff_ms=int(config["replica.fetch.backoff.ms"]),
            ),
            log_manager.clock,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._isr_checker: asyncio.Task[None] | None = None
        self._image: MetadataImage | None = None
        log_manager.high_watermarks = self.high_watermarks

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the fetch loops and the ISR shrink check (the node calls this once it
        listens)."""
        loop = asyncio.get_running_loop()
        self.fetchers.start()
        self._isr_checker = loop.create_task(self._check_isr_periodically(), name="isr-check")

    async def stop(self) -> None:
        """Stop fetching and proposing (before the logs are flushed and closed)."""
        if self._isr_checker is not None:
            self._isr_checker.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.fetchers.stop()

    async def _check_isr_periodically(self) -> None:
        interval_s = self.replica_lag_time_max_ms / 2 / 1000
        while True:
            await asyncio.sleep(interval_s)
            for partition in list(self.partitions.values()):
                if partition.is_leader and not partition.alone:
                    partition.maybe_shrink_isr()

    def high_watermarks(self) -> Mapping[tuple[str, int], int]:
        return {key: p.checkpointed_high_watermark() for key, p in list(self.partitions.items())}

    def apply_image(self, image: MetadataImage) -> None:
        self._image = image
        wanted: set[tuple[str, int]] = set()
        followed: dict[int, dict[tuple[bytes, int], Partition]] = {}
        for topic in image.topics.values():
            log_config = log_config_for(self.config, topic)
            for partition in topic.partitions.values():
                if self.node_id not in partition.replicas:
                    continue
                key = (topic.name, partition.partition_id)
                wanted.add(key)
                existing = self.partitions.get(key)
                flush_messages = int(
                    topic.configs.get("flush.messages", self.config["log.flush.interval.messages"])
                )
                min_isr = int(
                    topic.configs.get("min.insync.replicas", self.config["min.insync.replicas"])
                )
                flush_ms = int(topic.configs.get("flush.ms", self.config.flush_ms()))
                if existing is not None and existing.topic_id != topic.topic_id:
                    self._remove(key)  # same name, new topic id: the old one was deleted
                    existing = None
                if existing is None:
                    log = self.log_manager.get_or_create(
                        topic.name, partition.partition_id, log_config, topic.topic_id
                    )
                    existing = Partition(
                        topic.name,
                        partition.partition_id,
                        topic.topic_id,
                        log,
                        partition.leader_epoch,
                        flush_messages,
                        min_isr,
                        partition.isr,
                        flush_ms,
                        node_id=self.node_id,
                        replicas=partition.replicas,
                        leader_id=NO_LEADER,
                        partition_epoch=partition.partition_epoch,
                        high_watermark=self.log_manager.checkpointed_high_watermarks.get(key, 0),
                        replica_lag_time_max_ms=self.replica_lag_time_max_ms,
                    )
                    self.partitions[key] = existing
                existing.flush_messages = flush_messages
                existing.flush_ms = flush_ms
                existing.min_insync_replicas = min_isr
                self._apply_role(existing, partition, image)
                if not existing.is_leader and existing.leader_id != NO_LEADER:
                    followed.setdefault(existing.leader_id, {})[
                        (topic.topic_id, partition.partition_id)
                    ] = existing
        for key in [k for k in self.partitions if k not in wanted]:
            self._remove(key)
        self._follow(followed, image)

    def _apply_role(
        self, target: Partition, partition: PartitionImage, image: MetadataImage
    ) -> None:
        if partition.leader == self.node_id:
            if (
                not target.is_leader
                or target.leader_epoch != partition.leader_epoch
                or target.partition_epoch != partition.partition_epoch
                or target.replicas != partition.replicas
            ):
                target.become_leader(
                    partition.leader_epoch,
                    partition.partition_epoch,
                    partition.replicas,
                    partition.isr,
                )
            if len(partition.replicas) > 1:
                target.eligible = self._eligible
                target.alter_isr = self._alter_isr if self.controller_channel else None
        else:
            target.become_follower(
                partition.leader,
                partition.leader_epoch,
                partition.partition_epoch,
                partition.replicas,
                partition.isr,
            )

    def _eligible(self, replica_id: int) -> bool:
        """A replica may join the ISR: registered, unfenced and not shutting down (any replica
        when no broker registers: a cluster without broker registration)."""
        image = self._image
        if image is None or not image.brokers:
            return True
        broker = image.brokers.get(replica_id)
        return broker is not None and not broker.fenced and not broker.in_controlled_shutdown

    def _follow(
        self, followed: dict[int, dict[tuple[bytes, int], Partition]], image: MetadataImage
    ) -> None:
        if not followed and not self.fetchers.fetchers:
            return
        endpoints: dict[int, tuple[str, int]] = {}
        for broker_id in followed:
            broker = image.brokers.get(broker_id)
            address = broker.inter_broker_address if broker is not None else None
            if address is not None:
                endpoints[broker_id] = address
        for fetcher in self.fetchers.update(followed, endpoints):
            self._spawn(self._stop_fetcher(fetcher))

    async def _stop_fetcher(self, fetcher: SourceFetcher) -> None:
        await fetcher.stop()

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- ISR changes -------------------------------------------------------------------------

    def _alter_isr(self, partition: Partition, proposed: tuple[int, ...]) -> None:
        self._spawn(self._send_alter_partition(partition, proposed))

    async def _send_alter_partition(self, partition: Partition, proposed: tuple[int, ...]) -> None:
        channel = self.controller_channel
        if channel is None:
            return
        try:
            answer = await channel.alter_partition(
                partition.topic_id,
                partition.partition_id,
                partition.leader_epoch,
                partition.partition_epoch,
                proposed,
            )
        except Exception as exc:  # the controller unreachable: propose again later
            logger.info(
                "[ReplicaManager] AlterPartition of %s-%d failed: %s",
                partition.topic,
                partition.partition_id,
                exc,
            )
            await asyncio.sleep(ALTER_PARTITION_RETRY_BACKOFF_MS / 1000)
            partition.on_alter_answer(proposed, ErrorCode.UNKNOWN_SERVER_ERROR, -1, -1, ())
            return
        partition.on_alter_answer(
            proposed,
            int(answer.error_code),
            int(answer.leader_epoch),
            int(answer.partition_epoch),
            tuple(answer.isr),
        )

    def _remove(self, key: tuple[str, int]) -> None:
        self.partitions.pop(key, None)
        logger.info("[ReplicaManager] deleting log of %s-%d", *key)
        self.log_manager.delete(*key)

    def hosted(self, topic: str, partition_id: int) -> Partition:
        """The partition, leader or follower (a replica's fetch)."""
        partition = self.partitions.get((topic, partition_id))
        if partition is None:
            raise KafkaError(
                "This server does not host this topic-partition.",
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            )
        return partition

    def leader(self, topic: str, partition_id: int) -> Partition:
        """The partition if this node leads it (NOT_LEADER_OR_FOLLOWER otherwise: the client
        re-reads metadata and goes to the leader)."""
        partition = self.hosted(topic, partition_id)
        if not partition.is_leader:
            raise KafkaError(
                f"This server is not the leader of {topic}-{partition_id}.",
                ErrorCode.NOT_LEADER_OR_FOLLOWER,
            )
        return partition

    async def wait_for_append(self, partitions: list[Partition], timeout_ms: int) -> None:
        """Park until any of `partitions` is appended to, the timeout passes, or
        `wake_waiters` is called (the clock jumped: the caller checks its deadline again)."""
        if timeout_ms <= 0:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for partition in partitions:
            partition.add_waiter(future)
        self._parked.add(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_ms / 1000)
        except TimeoutError:
            pass
        finally:
            self._parked.discard(future)
            if not future.done():
                future.cancel()

    def wake_waiters(self) -> None:
        """End every park of `wait_for_append` now (after a jump of a virtual clock)."""
        for future in list(self._parked):
            if not future.done():
                future.set_result(None)
