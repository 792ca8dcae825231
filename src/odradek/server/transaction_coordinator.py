"""The transaction coordinator on this node: `__transaction_state`, its loading, markers.

`__transaction_state` is created the first time a client looks for a transaction coordinator
or asks for a transactional producer id (as Kafka does): `transaction.state.log.num.partitions`
partitions, compacted, with `transaction.state.log.segment.bytes` segments, and a replication
factor capped at the number of brokers. Once it exists, transactional ids are placed by its
real partition count.

Every partition of the topic this node leads is replayed into the core when it becomes its
leader, at start-up or when leadership moves (the last record of each transactional id is its
state); transactions found prepared get their markers written again. A partition it stops
leading is forgotten. Markers go to the leaders of the transaction's partitions
(`transaction_markers.py`): appended here with acks=all where this node leads, sent in
WriteTxnMarkers requests elsewhere.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.transaction.coordinator import TransactionCoordinator
from odradek.coordinator.transaction.messages import TransactionConfig
from odradek.coordinator.transaction_runtime import TransactionCoordinatorRuntime
from odradek.metadata.controller import NewTopic
from odradek.metadata.image import TopicImage
from odradek.server.transaction_markers import ClusterMarkerWriter

if TYPE_CHECKING:
    from odradek.server.node import Node

logger = logging.getLogger(__name__)

TRANSACTION_STATE_TOPIC = "__transaction_state"


def transaction_config(node: Node) -> TransactionConfig:
    config = node.config
    return TransactionConfig(
        max_timeout_ms=config["transaction.max.timeout.ms"],
        transactional_id_expiration_ms=config["transactional.id.expiration.ms"],
        state_partitions=config["transaction.state.log.num.partitions"],
        abort_timed_out_interval_ms=config[
            "transaction.abort.timed.out.transaction.cleanup.interval.ms"
        ],
        remove_expired_interval_ms=config[
            "transaction.remove.expired.transaction.cleanup.interval.ms"
        ],
    )


def new_runtime(node: Node) -> TransactionCoordinatorRuntime:
    core = TransactionCoordinator(
        transaction_config(node),
        node.producer_ids.take,
        lambda group_id: node.group_coordinator.core.partition_for(group_id),
    )
    return TransactionCoordinatorRuntime(
        core,
        node.clock,
        TransactionStateLog(node),
        ClusterMarkerWriter(node, node.broker_channel),
        node.producer_ids,
    )


class TransactionStateLog:
    """`TransactionLog` over the partitions of `__transaction_state` this node leads."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def append(
        self, partition: int, records: Sequence[tuple[bytes, bytes | None]]
    ) -> Awaitable[None]:
        leader = self.node.replica_manager.leader(TRANSACTION_STATE_TOPIC, partition)
        leader.check_min_isr()
        _, durable = leader.append_coordinator_records(records, self.node.clock.wall_ms())
        return durable


def _place_ids_by(core: TransactionCoordinator, topic: TopicImage) -> None:
    """Ids go to partitions by the topic's real partition count, whatever the config says."""
    core.config = dataclasses.replace(core.config, state_partitions=len(topic.partitions))


def follow_leadership(node: Node, runtime: TransactionCoordinatorRuntime) -> None:
    """Coordinate the transactional ids of the `__transaction_state` partitions this node leads
    now: forget the partitions it lost, load those it gained (the last record of each id, up to
    the log end, under a coordinator epoch that is the partition's leader epoch). Called with
    every new metadata image."""
    from odradek.server.group_coordinator import led_partitions

    core = runtime.core
    topic = node.image.topic(TRANSACTION_STATE_TOPIC)
    if topic is not None:
        _place_ids_by(core, topic)
    led = led_partitions(node, TRANSACTION_STATE_TOPIC)
    owned = set(core.coordinator_epochs)
    if led == owned:
        return
    for partition_id in sorted(owned - led):
        core.unload(partition_id)
    for partition_id in sorted(led - owned):
        partition = node.replica_manager.partitions[(TRANSACTION_STATE_TOPIC, partition_id)]
        core.begin_loading(partition_id, partition.leader_epoch)
        latest: dict[bytes, bytes | None] = {}
        for record in partition.log.replay_records():
            if record.key is not None:
                latest.pop(record.key, None)  # re-inserted last: replay in write order
                latest[record.key] = record.value
        for key, value in latest.items():
            try:
                core.replay(key, value)
            except ValueError as exc:
                logger.warning(
                    "[TransactionCoordinator] skipping a record of %s-%d: %s",
                    TRANSACTION_STATE_TOPIC,
                    partition_id,
                    exc,
                )
    core.finish_loading(node.clock.wall_ms())
    logger.info(
        "[TransactionCoordinator] coordinating %d transactional ids", len(core.transactions)
    )
    runtime.drive()


async def ensure_transaction_topic(node: Node, runtime: TransactionCoordinatorRuntime) -> None:
    """Create `__transaction_state` if it does not exist yet, and take its partitions."""
    if node.image.topic(TRANSACTION_STATE_TOPIC) is None:
        await _create_transaction_topic(node)
    follow_leadership(node, runtime)


async def _create_transaction_topic(node: Node) -> None:
    config = node.config
    replication = min(config["transaction.state.log.replication.factor"], node.broker_count())
    outcome = await node.create_topics(
        [
            NewTopic(
                TRANSACTION_STATE_TOPIC,
                config["transaction.state.log.num.partitions"],
                replication,
                {},
                {
                    "cleanup.policy": "compact",
                    "segment.bytes": str(config["transaction.state.log.segment.bytes"]),
                    "compression.type": "uncompressed",
                    "min.insync.replicas": str(
                        min(config["transaction.state.log.min.isr"], replication)
                    ),
                },
            )
        ],
        ignore_existing=True,
    )
    created = outcome.get(TRANSACTION_STATE_TOPIC)
    if isinstance(created, KafkaError):
        raise KafkaError(
            f"cannot create {TRANSACTION_STATE_TOPIC}: {created}",
            ErrorCode.COORDINATOR_NOT_AVAILABLE,
        )
