"""The active controller's cluster duties at run time: broker registrations and heartbeats,
fencing brokers whose session expired, AlterPartition, and producer-id blocks.

The cores decide (`metadata/broker_control.py`, `metadata/alter_partition.py`,
`metadata/producer_ids.py`); this runs them against the image under the quorum's lock, one
validate-then-commit at a time, so each decision sees every record written before it, and
commits what they return before answering. Only a node that is the active controller, and has
applied everything committed before its leadership, serves these; any other node answers
NOT_CONTROLLER and the sender finds the new one.

Heartbeat sessions are soft state, as in Kafka's BrokerHeartbeatManager: when this node becomes
the active controller every registered broker starts a fresh session (a failover does not fence
the cluster), and a timer fences the brokers whose sessions expire, moving their leaderships in
the same batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.alter_partition import (
    AlterPartitionItem,
    AlterPartitionOutcome,
    alter_partition,
)
from odradek.metadata.broker_control import (
    BrokerControl,
    BrokerHeartbeat,
    BrokerRegistrationRequest,
    HeartbeatReply,
    HeartbeatTracker,
    check_broker_epoch,
)
from odradek.metadata.producer_ids import BLOCK_SIZE, allocate_block

if TYPE_CHECKING:
    from odradek.metadata.raft_quorum import RaftQuorum
    from odradek.server.node import Node

logger = logging.getLogger(__name__)

FENCE_CHECK_MAX_MS = 1000


class ClusterControl:
    def __init__(self, node: Node) -> None:
        self.node = node
        config = node.config
        self.brokers = BrokerControl(
            HeartbeatTracker(config["broker.session.timeout.ms"]),
            unclean_default=config["unclean.leader.election.enable"],
        )
        self._fencer: asyncio.Task[None] | None = None

    # -- leadership ---------------------------------------------------------------------------

    def on_leadership(self, active: bool) -> None:
        """The quorum's leadership listener: start or stop the controller's soft state."""
        if self._fencer is not None:
            self._fencer.cancel()
            self._fencer = None
        if not active:
            return
        self.brokers.tracker.start(self.node.image, self.node.clock.monotonic_ms())
        self._fencer = asyncio.get_running_loop().create_task(self._fence_expired_sessions())
        logger.info("[Controller %d] active", self.node.node_id)

    def stop(self) -> None:
        if self._fencer is not None:
            self._fencer.cancel()
            self._fencer = None

    def _active(self) -> RaftQuorum:
        quorum = self.node.raft_quorum()
        if quorum is None or not quorum.controller_ready:
            raise KafkaError(
                f"node {self.node.node_id} is not the active controller", ErrorCode.NOT_CONTROLLER
            )
        return quorum

    async def _fence_expired_sessions(self) -> None:
        timeout_ms = self.brokers.tracker.session_timeout_ms
        interval_s = min(max(timeout_ms // 4, 50), FENCE_CHECK_MAX_MS) / 1000
        while True:
            await asyncio.sleep(interval_s)
            try:
                quorum = self._active()
                async with quorum.lock:
                    records = self.brokers.fence_expired(
                        self.node.image, self.node.clock.monotonic_ms()
                    )
                    if records:
                        logger.info(
                            "[Controller %d] fencing brokers %s: session expired",
                            self.node.node_id,
                            self.brokers.tracker.expired(
                                self.node.image, self.node.clock.monotonic_ms()
                            ),
                        )
                        await self.node.commit(records)
            except KafkaError as exc:  # lost the leadership meanwhile: the next one fences
                logger.info("[Controller %d] fencing skipped: %s", self.node.node_id, exc)

    # -- requests -------------------------------------------------------------------------------

    async def register(self, request: BrokerRegistrationRequest) -> int:
        """The broker epoch granted, once the registration is committed."""
        quorum = self._active()
        async with quorum.lock:
            quorum = self._active()
            epoch, records = self.brokers.register(
                self.node.image, request, quorum.next_offset, self.node.clock.monotonic_ms()
            )
            await self.node.commit(records)
        logger.info(
            "[Controller %d] registered broker %d at epoch %d",
            self.node.node_id,
            request.broker_id,
            epoch,
        )
        return epoch

    async def heartbeat(self, request: BrokerHeartbeat) -> HeartbeatReply:
        quorum = self._active()
        image = self.node.image
        registration = image.broker(request.broker_id)
        if (
            registration is not None
            and registration.epoch == request.broker_epoch
            and not request.want_fence
            and not request.want_shutdown
            and not registration.fenced
            and not registration.in_controlled_shutdown
        ):
            # The common case changes nothing: no lock, no commit.
            reply, records = self.brokers.heartbeat(
                image, request, self.node.clock.monotonic_ms(), quorum.next_offset
            )
            if not records:
                return reply
        async with quorum.lock:
            quorum = self._active()
            reply, records = self.brokers.heartbeat(
                self.node.image, request, self.node.clock.monotonic_ms(), quorum.next_offset
            )
            await self.node.commit(records)
        return reply

    async def alter_partition(
        self,
        broker_id: int,
        broker_epoch: int,
        items: Sequence[AlterPartitionItem],
        request_version: int,
    ) -> list[AlterPartitionOutcome]:
        quorum = self._active()
        async with quorum.lock:
            self._active()
            records, outcomes = alter_partition(
                self.node.image,
                broker_id,
                broker_epoch,
                items,
                request_version=request_version,
                unclean_default=self.node.config["unclean.leader.election.enable"],
                min_isr_default=self.node.config["min.insync.replicas"],
            )
            await self.node.commit(records)
        image = self.node.image
        settled: list[AlterPartitionOutcome] = []
        for outcome in outcomes:
            if outcome.error == ErrorCode.NONE:
                topic = image.topic_by_id(outcome.topic_id)
                partition = None if topic is None else topic.partitions.get(outcome.partition_id)
                outcome = AlterPartitionOutcome(
                    outcome.topic_id, outcome.partition_id, outcome.error, partition
                )
            settled.append(outcome)
        return settled

    async def allocate_producer_ids(self, broker_id: int, broker_epoch: int) -> tuple[int, int]:
        """A new block (first id, length) for `broker_id`, committed before it is granted. A
        broker that has not registered (a single node running a quorum of one before its
        registration) asks with epoch -1 and is not checked."""
        quorum = self._active()
        async with quorum.lock:
            self._active()
            image = self.node.image
            if broker_epoch >= 0 or image.broker(broker_id) is not None:
                check_broker_epoch(image, broker_id, broker_epoch)
            first = image.next_producer_id
            await self.node.commit([allocate_block(image, broker_id, broker_epoch)])
        return first, BLOCK_SIZE
