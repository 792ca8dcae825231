"""The group coordinator on this node: `__consumer_offsets`, its loading, its creation.

`__consumer_offsets` is created the first time a client looks for a group coordinator (as
Kafka does): `offsets.topic.num.partitions` partitions, compacted, with
`offsets.topic.segment.bytes` segments, and a replication factor capped at the number of
brokers so that a single node works with Kafka's default of 3. Once the topic exists its
partition count is fixed, and groups are placed by it whatever the config says later.

This node coordinates the groups of the partitions of the topic it leads. When it becomes the
leader of one (at start-up, or when leadership moves), the partition is read from its log start
and replayed into the core; members found there get a full session timeout to heartbeat. When it
stops leading one, its groups are forgotten here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING

from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.group.consumer_group_manager import ConsumerGroupConfig
from odradek.coordinator.group.consumer_group_records import TopicMetadata
from odradek.coordinator.group.coordinator import GroupCoordinator
from odradek.coordinator.group.loading import replay_batches
from odradek.coordinator.group.messages import GroupConfig
from odradek.coordinator.group.records import OFFSETS_TOPIC
from odradek.coordinator.runtime import GroupCoordinatorRuntime
from odradek.metadata.controller import NewTopic
from odradek.metadata.image import TopicImage

if TYPE_CHECKING:
    from odradek.server.node import Node

logger = logging.getLogger(__name__)


def group_config(node: Node) -> GroupConfig:
    config = node.config
    return GroupConfig(
        min_session_timeout_ms=config["group.min.session.timeout.ms"],
        max_session_timeout_ms=config["group.max.session.timeout.ms"],
        initial_rebalance_delay_ms=config["group.initial.rebalance.delay.ms"],
        max_size=config["group.max.size"],
        offset_metadata_max_bytes=config["offset.metadata.max.bytes"],
        offsets_retention_ms=config["offsets.retention.minutes"] * 60_000,
        offsets_partitions=config["offsets.topic.num.partitions"],
    )


def consumer_group_config(node: Node) -> ConsumerGroupConfig:
    config = node.config
    return ConsumerGroupConfig(
        session_timeout_ms=config["group.consumer.session.timeout.ms"],
        heartbeat_interval_ms=config["group.consumer.heartbeat.interval.ms"],
        max_size=config["group.consumer.max.size"],
        assignors=tuple(config["group.consumer.assignors"]),
    )


class ImageTopics:
    """The topics of the node's metadata image as consumer groups see them, rebuilt only when
    the image changes."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self._epoch = -1
        self._topics: Mapping[str, TopicMetadata] = {}

    def __call__(self) -> Mapping[str, TopicMetadata]:
        image = self.node.image
        if image.epoch != self._epoch:
            self._topics = {
                name: TopicMetadata(topic.topic_id, name, len(topic.partitions))
                for name, topic in image.topics.items()
            }
            self._epoch = image.epoch
        return self._topics


def new_coordinator(node: Node) -> GroupCoordinator:
    return GroupCoordinator(group_config(node), consumer_group_config(node), ImageTopics(node))


class OffsetsTopicLog:
    """`GroupLog` over the partitions of `__consumer_offsets` this node leads."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def append(
        self,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        producer_id: int = -1,
        producer_epoch: int = -1,
    ) -> tuple[int, Awaitable[None]]:
        leader = self.node.replica_manager.leader(OFFSETS_TOPIC, partition)
        result, durable = leader.append_coordinator_records(
            records, self.node.clock.wall_ms(), producer_id, producer_epoch
        )
        return result.first_offset, durable


def _place_groups_by(core: GroupCoordinator, topic: TopicImage) -> None:
    """Groups go to partitions by the topic's real partition count, whatever the config says."""
    core.config = dataclasses.replace(core.config, offsets_partitions=len(topic.partitions))


def led_partitions(node: Node, topic_name: str) -> frozenset[int]:
    """The partitions of an internal topic this node leads (and hosts): the ones whose
    coordinator it is."""
    topic = node.image.topic(topic_name)
    if topic is None:
        return frozenset()
    hosted = node.replica_manager.partitions
    return frozenset(
        partition_id
        for partition_id, partition in topic.partitions.items()
        if partition.leader == node.node_id and (topic_name, partition_id) in hosted
    )


def follow_leadership(node: Node, runtime: GroupCoordinatorRuntime) -> None:
    """Coordinate the groups of the `__consumer_offsets` partitions this node leads now: load
    those it gained (replayed from the log start to the log end: a new leader's log is what
    will be committed), forget those it lost. Called with every new metadata image."""
    topic = node.image.topic(OFFSETS_TOPIC)
    if topic is not None:
        _place_groups_by(runtime.core, topic)
    led = led_partitions(node, OFFSETS_TOPIC)
    if led == runtime.owned:
        return

    def load(partition_id: int) -> None:
        partition = node.replica_manager.partitions[(OFFSETS_TOPIC, partition_id)]
        count = replay_batches(runtime.core, partition.log.replay_batches())
        logger.info(
            "[GroupCoordinator] loaded %s-%d: %d records", OFFSETS_TOPIC, partition_id, count
        )

    runtime.set_owned(led, load)


async def ensure_offsets_topic(node: Node, runtime: GroupCoordinatorRuntime) -> None:
    """Create `__consumer_offsets` if it does not exist yet."""
    if node.image.topic(OFFSETS_TOPIC) is not None:
        return
    config = node.config
    replication = min(config["offsets.topic.replication.factor"], node.broker_count())
    outcome = await node.create_topics(
        [
            NewTopic(
                OFFSETS_TOPIC,
                config["offsets.topic.num.partitions"],
                replication,
                {},
                {
                    "cleanup.policy": "compact",
                    "segment.bytes": str(config["offsets.topic.segment.bytes"]),
                    "compression.type": "producer",
                },
            )
        ],
        ignore_existing=True,
    )
    created = outcome.get(OFFSETS_TOPIC)
    if isinstance(created, KafkaError):
        raise KafkaError(
            f"cannot create {OFFSETS_TOPIC}: {created}", ErrorCode.COORDINATOR_NOT_AVAILABLE
        )
    topic = node.image.topic(OFFSETS_TOPIC)
    assert topic is not None
    _place_groups_by(runtime.core, topic)
