"""The active controller's cluster duties at run time: broker registrations and heartbeats,
fencing brokers whose session expired, AlterPartition, producer-id blocks, leader elections
(ElectLeaders, the periodic leader rebalance and unclean elections) and partition reassignment.

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

Two more timers run only on the active controller, as Kafka's QuorumController schedules them:
every `leader.imbalance.check.interval.seconds`, when `auto.leader.rebalance.enable`, preferred
elections for the brokers whose leader imbalance is above
`leader.imbalance.per.broker.percentage` (`elections.rebalance_leaders`); and every
`unclean.leader.election.interval.ms`, unclean elections for the leaderless partitions of
topics that allow them (`elections.elect_unclean_leaders`).

ElectLeaders and the reassignment requests are also served by a node alone (no Raft quorum):
it decides under its own metadata lock, as the one registered broker it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import MappingProxyType
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
from odradek.metadata.elections import (
    ElectionOutcome,
    elect_leaders,
    elect_unclean_leaders,
    rebalance_leaders,
)
from odradek.metadata.image import BrokerRegistration, MetadataImage
from odradek.metadata.producer_ids import BLOCK_SIZE, allocate_block
from odradek.metadata.reassignment import (
    OngoingReassignment,
    ReassignmentOutcome,
    ReassignmentTarget,
    alter_partition_reassignments,
    list_partition_reassignments,
)
from odradek.metadata.records import MetadataRecord

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
        self._periodic: list[asyncio.Task[None]] = []

    # -- leadership ---------------------------------------------------------------------------

    def on_leadership(self, active: bool) -> None:
        """The quorum's leadership listener: start or stop the controller's soft state."""
        self.stop()
        if not active:
            return
        self.brokers.tracker.start(self.node.image, self.node.clock.monotonic_ms())
        loop = asyncio.get_running_loop()
        self._fencer = loop.create_task(self._fence_expired_sessions())
        config = self.node.config
        if config["auto.leader.rebalance.enable"]:
            self._periodic.append(
                loop.create_task(
                    self._every(
                        config["leader.imbalance.check.interval.seconds"] * 1000,
                        "leader rebalance",
                        self._rebalance_records,
                    )
                )
            )
        self._periodic.append(
            loop.create_task(
                self._every(
                    config["unclean.leader.election.interval.ms"],
                    "unclean leader election",
                    self._unclean_election_records,
                )
            )
        )
        logger.info("[Controller %d] active", self.node.node_id)

    def stop(self) -> None:
        if self._fencer is not None:
            self._fencer.cancel()
            self._fencer = None
        for task in self._periodic:
            task.cancel()
        self._periodic = []

    def _active(self) -> RaftQuorum:
        quorum = self.node.raft_quorum()
        if quorum is None or not quorum.controller_ready:
            raise KafkaError(
                f"node {self.node.node_id} is not the active controller", ErrorCode.NOT_CONTROLLER
            )
        return quorum

    async def _fence_expired_sessions(self) -> None:
        """Fence each broker as soon as its session expires: sleep until the earliest expiry
        (at most FENCE_CHECK_MAX_MS: heartbeats move the deadlines meanwhile)."""
        tracker = self.brokers.tracker
        while True:
            now_ms = self.node.clock.monotonic_ms()
            expiry = tracker.next_expiry(self.node.image)
            wait_ms = FENCE_CHECK_MAX_MS if expiry is None else expiry - now_ms + 1
            await asyncio.sleep(min(max(wait_ms, 10), FENCE_CHECK_MAX_MS) / 1000)
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

    def _rebalance_records(self) -> list[MetadataRecord]:
        return rebalance_leaders(
            self.node.image, self.node.config["leader.imbalance.per.broker.percentage"]
        )

    def _unclean_election_records(self) -> list[MetadataRecord]:
        return elect_unclean_leaders(
            self.node.image, self.node.config["unclean.leader.election.enable"]
        )

    async def _every(
        self, interval_ms: int, duty: str, decide: Callable[[], list[MetadataRecord]]
    ) -> None:
        """Run `decide` against the image under the quorum's lock every `interval_ms` and
        commit what it returns; a pass that lost the leadership is skipped (the new active
        controller runs its own)."""
        while True:
            await asyncio.sleep(interval_ms / 1000)
            await self._run_periodic(duty, decide)

    async def _run_periodic(self, duty: str, decide: Callable[[], list[MetadataRecord]]) -> int:
        """One pass of a periodic duty; how many records it committed."""
        try:
            quorum = self._active()
            async with quorum.lock:
                self._active()
                records = decide()
                if records:
                    logger.info(
                        "[Controller %d] %s: %d partition change(s)",
                        self.node.node_id,
                        duty,
                        len(records),
                    )
                    await self.node.commit(records)
                return len(records)
        except KafkaError as exc:  # lost the leadership meanwhile: the next one runs it
            logger.info("[Controller %d] %s skipped: %s", self.node.node_id, duty, exc)
        except Exception:  # the timer must outlive a failed pass (a commit that failed)
            logger.exception("[Controller %d] %s failed", self.node.node_id, duty)
        return 0

    @contextlib.asynccontextmanager
    async def _deciding(self) -> AsyncIterator[None]:
        """Hold the lock metadata decisions are made under: the Raft quorum's, on its active
        controller only (NOT_CONTROLLER elsewhere); a node alone's own metadata lock."""
        if self.node.raft_quorum() is None:
            async with self.node.metadata_lock:
                yield
            return
        quorum = self._active()
        async with quorum.lock:
            self._active()
            yield

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

    def _decision_image(self) -> MetadataImage:
        """The image the request cores decide against. A node alone (no Raft quorum) has no
        broker registrations in its metadata; it decides as the one active broker it is."""
        image = self.node.image
        if self.node.raft_quorum() is not None or image.brokers:
            return image
        alone = BrokerRegistration(self.node.node_id, bytes(16), 0, fenced=False)
        return dataclasses.replace(image, brokers=MappingProxyType({self.node.node_id: alone}))

    async def elect_leaders(
        self, election_type: int, partitions: Mapping[str, Sequence[int]] | None
    ) -> list[ElectionOutcome]:
        """ElectLeaders: the outcome per partition, once the elections are committed."""
        async with self._deciding():
            records, outcomes = elect_leaders(self._decision_image(), election_type, partitions)
            await self.node.commit(records)
        if records:
            logger.info(
                "[Controller %d] elected %d leader(s) (election type %d)",
                self.node.node_id,
                len(records),
                election_type,
            )
        return outcomes

    async def alter_partition_reassignments(
        self, targets: Sequence[ReassignmentTarget], allow_replication_factor_change: bool = True
    ) -> list[ReassignmentOutcome]:
        """AlterPartitionReassignments: the outcome per partition (in the order of `targets`),
        once the changes are committed. Without `allow_replication_factor_change` (v1, KIP-860)
        a target of another size than the partition's replica set is INVALID_REPLICATION_FACTOR
        and the others go ahead."""
        async with self._deciding():
            image = self._decision_image()
            refused: dict[int, ReassignmentOutcome] = {}
            if not allow_replication_factor_change:
                for index, target in enumerate(targets):
                    message = _replication_factor_change(image, target)
                    if message is not None:
                        refused[index] = ReassignmentOutcome(
                            target.topic,
                            target.partition_id,
                            ErrorCode.INVALID_REPLICATION_FACTOR,
                            message,
                        )
            records, decided = alter_partition_reassignments(
                image,
                [t for i, t in enumerate(targets) if i not in refused],
                self.node.config["unclean.leader.election.enable"],
            )
            await self.node.commit(records)
        remaining = iter(decided)
        return [refused[i] if i in refused else next(remaining) for i in range(len(targets))]

    async def list_partition_reassignments(
        self, topics: Mapping[str, Sequence[int]] | None
    ) -> list[OngoingReassignment]:
        """ListPartitionReassignments, from the active controller's image (a broker's own image
        may lag it)."""
        async with self._deciding():
            return list_partition_reassignments(self.node.image, topics)


def _replication_factor_change(image: MetadataImage, target: ReassignmentTarget) -> str | None:
    """Kafka's message when `target` changes its partition's replication factor (the size of
    the target of a reassignment in progress), else None."""
    if target.replicas is None:
        return None
    topic = image.topic(target.topic)
    partition = None if topic is None else topic.partitions.get(target.partition_id)
    if partition is None:
        return None  # the core answers UNKNOWN_TOPIC_OR_PARTITION
    current = len(partition.replicas) - len(partition.removing_replicas)
    if current == len(target.replicas):
        return None
    return f"The replication factor is changed from {current} to {len(target.replicas)}"
