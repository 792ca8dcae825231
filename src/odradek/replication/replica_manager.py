"""The replica manager: the partitions this broker hosts, made to follow the metadata image.

Produce and fetch go through here. `apply_image` opens a log for every partition the image
places on this broker and deletes the logs of topics that are gone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from odradek.common.config import BrokerConfig
from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.image import MetadataImage, TopicImage
from odradek.replication.partition import Partition
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


class ReplicaManager:
    def __init__(self, node_id: int, config: BrokerConfig, log_manager: LogManager) -> None:
        self.node_id = node_id
        self.config = config
        self.log_manager = log_manager
        self.partitions: dict[tuple[str, int], Partition] = {}
        self._parked: set[asyncio.Future[None]] = set()  # waits of wait_for_append

    def apply_image(self, image: MetadataImage) -> None:
        wanted: set[tuple[str, int]] = set()
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
                if existing is not None and existing.topic_id == topic.topic_id:
                    existing.leader_epoch = partition.leader_epoch
                    existing.flush_messages = flush_messages
                    existing.flush_ms = flush_ms
                    existing.min_insync_replicas = min_isr
                    existing.isr = partition.isr
                    continue
                if existing is not None:  # same name, new topic id: the old one was deleted
                    self._remove(key)
                log = self.log_manager.get_or_create(
                    topic.name, partition.partition_id, log_config, topic.topic_id
                )
                self.partitions[key] = Partition(
                    topic.name,
                    partition.partition_id,
                    topic.topic_id,
                    log,
                    partition.leader_epoch,
                    flush_messages,
                    min_isr,
                    partition.isr,
                    flush_ms,
                )
        for key in [k for k in self.partitions if k not in wanted]:
            self._remove(key)

    def _remove(self, key: tuple[str, int]) -> None:
        self.partitions.pop(key, None)
        logger.info("[ReplicaManager] deleting log of %s-%d", *key)
        self.log_manager.delete(*key)

    def leader(self, topic: str, partition_id: int) -> Partition:
        partition = self.partitions.get((topic, partition_id))
        if partition is None:
            raise KafkaError(
                "This server does not host this topic-partition.",
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
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
