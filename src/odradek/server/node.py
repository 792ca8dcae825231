"""A node: a broker, a controller (a voter of the metadata quorum) or both in one process.

The metadata log `__cluster_metadata-0` is a `RaftQuorum` of the nodes that
`controller.quorum.voters` names (a node with `process.roles=broker` follows it as an observer);
a node that names none keeps it alone, as a `SingleNodeQuorum`. Start-up: log dirs and
meta.properties, load and recover the logs, start the quorum (a single voter elects itself and
commits its log before going on), open the partitions the image places here, then listen;
committed metadata keeps flowing into the image afterwards.
With a Raft quorum, a broker registers with the active controller once it listens and
heartbeats from then on (`broker_lifecycle.py`); client requests wait until the controller
says it has caught up with the metadata log (`admission.py`). The node serves the
controller's duties whenever it is the active controller (`cluster_control.py`). Every newly
applied image moves the partitions (leader or follower), the configs and the coordinators
along with it.
Shutdown, in this order: a controlled shutdown (when another broker can take over this one's
leaderships), stop accepting, close connections (in-flight requests are cancelled; nothing is
acknowledged that was not written), stop fetching, stop the quorum (a leader resigns), flush
and checkpoint every log, close files.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from odradek.common.clock import Clock, SystemClock
from odradek.common.config import BrokerConfig
from odradek.common.errors import KafkaError, StorageError
from odradek.coordinator.runtime import GroupCoordinatorRuntime
from odradek.coordinator.transaction_runtime import TransactionCoordinatorRuntime
from odradek.metadata.config_control import ConfigController
from odradek.metadata.controller import CreatedTopic, NewTopic, TopicController
from odradek.metadata.image import MetadataImage, TopicImage
from odradek.metadata.quorum import SingleNodeQuorum, parse_quorum_voters
from odradek.metadata.records import ConfigRecord, MetadataRecord
from odradek.replication.fetch_session import FetchSessionCache
from odradek.replication.replica_manager import ReplicaManager, log_config_for
from odradek.server import group_coordinator, transaction_coordinator
from odradek.server import handlers as _handlers  # noqa: F401  (registers every handler)
from odradek.server.broker_channel import BrokerChannel
from odradek.server.cluster_control import ClusterControl
from odradek.server.network import KafkaConnection
from odradek.server.producer_ids import ProducerIdGenerator
from odradek.storage.checkpoints import random_uuid, read_meta_properties, uuid_to_string
from odradek.storage.cleaner_manager import CleanerConfig, LogCleanerManager
from odradek.storage.cleaner_thread import LogCleaner
from odradek.storage.fileio import FileIO, OsFileIO
from odradek.storage.log import Log
from odradek.storage.log_manager import LogManager

if TYPE_CHECKING:
    from odradek.metadata.raft_quorum import RaftQuorum
    from odradek.server.broker_lifecycle import BrokerLifecycle
    from odradek.server.controller_channel import ControllerChannel
    from odradek.server.faults import FaultEngine
    from odradek.transport.client import TransportClient

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_MS = 60_000
CONTROLLED_SHUTDOWN_TIMEOUT_S = 10.0
FLUSHER_NEVER_MS = 86_400_000  # a scheduler interval of a day or more: no time-based flush


def parse_listener(listener: str) -> tuple[str, str, int]:
    """`PLAINTEXT://host:port` -> (security protocol, host, port)."""
    parts = urlsplit(listener)
    if not parts.scheme or parts.port is None:
        raise ValueError(f"listener {listener!r} is not of the form NAME://host:port")
    return parts.scheme.upper(), parts.hostname or "", parts.port


class Node:
    def __init__(
        self, config: BrokerConfig, *, clock: Clock | None = None, fileio: FileIO | None = None
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.fileio: FileIO = fileio or OsFileIO()
        self.node_id: int = config["node.id"]
        self.log_dirs = config.log_dirs()
        self.cluster_id = ""
        self.connections: set[KafkaConnection] = set()
        self.fetch_sessions = FetchSessionCache(config["max.incremental.fetch.session.cache.slots"])
        self.controller = TopicController(
            [self.node_id], config["num.partitions"], config["default.replication.factor"]
        )
        self.config_controller = ConfigController(self.node_id, self._check_topic_configs)
        self.log_manager = LogManager(
            self.log_dirs, log_config_for(config, None), fileio=self.fileio, clock=self.clock
        )
        self.replica_manager = ReplicaManager(self.node_id, config, self.log_manager)
        self.log_cleaner = LogCleaner(
            LogCleanerManager(self.log_manager, self._high_watermark),
            CleanerConfig(
                enable=config["log.cleaner.enable"],
                threads=config["log.cleaner.threads"],
                backoff_ms=config["log.cleaner.backoff.ms"],
                dedupe_buffer_size=config["log.cleaner.dedupe.buffer.size"],
                io_buffer_size=config["log.cleaner.io.buffer.size"],
                io_buffer_load_factor=config["log.cleaner.io.buffer.load.factor"],
            ),
            self.clock,
        )
        self.quorum: SingleNodeQuorum | RaftQuorum | None = None
        self._quorum_network: TransportClient | None = None
        # With a Raft quorum: the line to the active controller, the controller duties this
        # node takes on when it is that controller, and (a broker) its registration.
        self.cluster_control = ClusterControl(self)
        self.controller_channel: ControllerChannel | None = None
        self.lifecycle: BrokerLifecycle | None = None
        # Set once client requests may be served: at once without a broker lifecycle, else
        # when the broker has caught up with the metadata log (server/admission.py).
        self.clients_admitted = asyncio.Event()
        self._image_changed: asyncio.Event | None = None
        self._followed_image: MetadataImage | None = None  # the last image applied below
        self.group_coordinator = GroupCoordinatorRuntime(
            group_coordinator.new_coordinator(self),
            self.clock,
            group_coordinator.OffsetsTopicLog(self),
            config["offsets.retention.check.interval.ms"],
        )
        self.producer_ids = ProducerIdGenerator(self)
        # Requests to other brokers: transaction markers and verifications.
        self.broker_channel = BrokerChannel(self)
        self.transaction_coordinator = transaction_coordinator.new_runtime(self)
        self._server: asyncio.Server | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._producer_expiry: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self.bound_port = 0
        self.listener_host = "127.0.0.1"
        # Fault injection (odradek.testing, server/fault_hook.py): set only while rules exist.
        self.faults: FaultEngine | None = None

    @property
    def image(self) -> MetadataImage:
        assert self.quorum is not None
        return self.quorum.image

    @property
    def metadata_lock(self) -> asyncio.Lock:
        assert self.quorum is not None
        return self.quorum.lock

    @property
    def listener_name(self) -> str:
        """The name of the listener clients reach (PLAINTEXT for `PLAINTEXT://host:port`)."""
        return parse_listener(self.config["listeners"][0])[0]

    @property
    def advertised_endpoint(self) -> tuple[str, int]:
        advertised = self.config["advertised.listeners"]
        if advertised:
            _, host, port = parse_listener(advertised[0])
            return host or "127.0.0.1", port
        host = self.listener_host if self.listener_host not in ("", "0.0.0.0") else "127.0.0.1"
        return host, self.bound_port

    async def start(self) -> None:
        self.cluster_id = self._cluster_id()
        self.log_manager.ensure_meta_properties(self.node_id, self.cluster_id)
        self.log_manager.load()
        self.quorum = self._new_quorum()
        self.replica_manager.controller_channel = self.controller_channel  # replication: ISR
        self._image_changed = asyncio.Event()
        self.quorum.load()
        raft = self.raft_quorum()
        if raft is not None:
            raft.leadership_listener = self.cluster_control.on_leadership
        await self.quorum.start()
        self.quorum.listener = self._follow_image
        self._install_dynamic_configs(self.image)
        self.replica_manager.apply_image(self.image)
        self.group_coordinator.start()
        self._follow_coordinators()
        _, host, port = parse_listener(self.config["listeners"][0])
        self.listener_host = host
        if self.lifecycle is None:
            self.clients_admitted.set()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: KafkaConnection(self), host or None, port, reuse_address=True, backlog=1024
        )
        self.bound_port = self._server.sockets[0].getsockname()[1]
        self._checkpointer = loop.create_task(self._checkpoint_periodically())
        self._producer_expiry = loop.create_task(self._expire_producers_periodically())
        self._retention = loop.create_task(self._apply_retention_periodically())
        if self.config["log.flush.scheduler.interval.ms"] < FLUSHER_NEVER_MS:
            self._flusher = loop.create_task(self._flush_periodically())
        self.log_cleaner.start()
        self.replica_manager.start()  # replication: follower fetch loops, ISR shrink checks
        if self.lifecycle is not None:
            self.lifecycle.start()

    def raft_quorum(self) -> RaftQuorum | None:
        """The Raft quorum, when this node runs one (it names `controller.quorum.voters`)."""
        if self.quorum is None or isinstance(self.quorum, SingleNodeQuorum):
            return None
        return self.quorum

    def metadata_end_offset(self) -> int:
        """The end of the metadata log (of the committed part, for a Raft quorum)."""
        if isinstance(self.quorum, SingleNodeQuorum):
            return self.quorum.end_offset
        quorum = self.raft_quorum()
        return quorum.high_watermark if quorum is not None else 0

    def metadata_applied_offset(self) -> int:
        """The offset of the last metadata record the image holds (-1: none)."""
        if isinstance(self.quorum, SingleNodeQuorum):
            return self.quorum.end_offset - 1
        quorum = self.raft_quorum()
        return quorum.applied_offset - 1 if quorum is not None else -1

    def is_controller_here(self) -> bool:
        """Metadata changes may be decided here: this node keeps the metadata log alone, or
        is the active controller of its quorum and has applied everything before it."""
        quorum = self.raft_quorum()
        return quorum is None or quorum.controller_ready

    async def wait_for_image(self, done: Callable[[MetadataImage], bool], timeout_s: float) -> bool:
        """Wait (at most `timeout_s`) until the image satisfies `done`; whether it did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not done(self.image):
            remaining = deadline - loop.time()
            if remaining <= 0 or self._image_changed is None:
                return False
            self._image_changed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._image_changed.wait()
            except TimeoutError:
                return done(self.image)
        return True

    def _new_quorum(self) -> SingleNodeQuorum | RaftQuorum:
        config = self.config
        voters = parse_quorum_voters(config["controller.quorum.voters"])
        roles = set(config["process.roles"])
        if not voters:
            if "controller" not in roles:
                raise ValueError("process.roles=broker needs controller.quorum.voters")
            # No quorum named: the metadata log of a node alone, without the Raft machinery
            # on the cold-start path (its imports, LeaderChange and quorum-state writes).
            return SingleNodeQuorum(self.log_dirs[0], fileio=self.fileio, clock=self.clock)
        # Imported here: a node that names no voters never loads the quorum.
        from odradek.metadata.raft.core import RaftConfig
        from odradek.metadata.raft.driver import NoNetwork, RaftNetwork
        from odradek.metadata.raft_quorum import RaftQuorum
        from odradek.transport.client import TransportClient

        if ("controller" in roles) != (self.node_id in voters):
            raise ValueError(
                f"node {self.node_id} with process.roles={','.join(sorted(roles))} must"
                f" {'' if 'controller' in roles else 'not '}be in controller.quorum.voters"
            )
        raft_config = RaftConfig(
            node_id=self.node_id,
            voters=tuple(sorted(voters)),
            cluster_id=config["cluster.id"] or None,
            election_timeout_ms=config["controller.quorum.election.timeout.ms"],
            fetch_timeout_ms=config["controller.quorum.fetch.timeout.ms"],
            retry_backoff_ms=config["controller.quorum.retry.backoff.ms"],
            request_timeout_ms=config["controller.quorum.request.timeout.ms"],
        )
        endpoints = {
            node_id: endpoint
            for node_id, endpoint in voters.items()
            if endpoint is not None and node_id != self.node_id
        }
        from odradek.server.broker_lifecycle import BrokerLifecycle
        from odradek.server.controller_channel import ControllerChannel

        self.controller_channel = ControllerChannel(self, endpoints)
        if "broker" in roles:
            self.lifecycle = BrokerLifecycle(self, self.controller_channel)
        network: RaftNetwork = NoNetwork()
        if endpoints:
            self._quorum_network = TransportClient(
                endpoints,
                client_id=f"raft-{self.node_id}",
                request_timeout_ms=raft_config.request_timeout_ms,
            )
            network = self._quorum_network
        return RaftQuorum(
            self.log_dirs[0],
            raft_config,
            fileio=self.fileio,
            clock=self.clock,
            network=network,
            snapshot_bytes=config["metadata.log.max.record.bytes.between.snapshots"],
        )

    def _follow_image(self, image: MetadataImage, records: Sequence[MetadataRecord] | None) -> None:
        """Make the partitions and configs follow a newly committed image, in the same step
        that made it visible: no request may see a topic in `image` that its partitions do
        not serve yet. `records` are the ones just applied (None: a whole snapshot)."""
        configs_changed = records is None or any(isinstance(r, ConfigRecord) for r in records)
        if configs_changed:
            self._install_dynamic_configs(image)
        self.replica_manager.apply_image(image)
        if configs_changed:
            self._refresh_log_configs(image)
        self._followed_image = image
        self._follow_coordinators()
        if self._image_changed is not None:
            self._image_changed.set()

    def _follow_coordinators(self) -> None:
        """The coordinators take on the internal partitions this node leads now, and let go
        of the others."""
        group_coordinator.follow_leadership(self, self.group_coordinator)
        transaction_coordinator.follow_leadership(self, self.transaction_coordinator)

    def _high_watermark(self, topic_partition: tuple[str, int], log: Log) -> int:
        """For the log cleaner (on its thread): what it may clean stays below this."""
        partition = self.replica_manager.partitions.get(topic_partition)
        if partition is None or partition.log is not log:
            return log.log_start_offset  # not a partition served here (yet): clean nothing
        return partition.high_watermark

    def _cluster_id(self) -> str:
        for log_dir in self.log_dirs:
            if self.fileio.exists(log_dir):
                meta = read_meta_properties(self.fileio, log_dir)
                if meta is not None:
                    return meta.cluster_id
        configured: str | None = self.config["cluster.id"]
        return configured or uuid_to_string(random_uuid())

    async def _checkpoint_periodically(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL_MS / 1000)
            await loop.run_in_executor(None, self.log_manager.checkpoint)

    async def _expire_producers_periodically(self) -> None:
        """Partitions forget idempotent producers idle past producer.id.expiration.ms."""
        interval_ms = self.config["producer.id.expiration.check.interval.ms"]
        expiration_ms = self.config["producer.id.expiration.ms"]
        while True:
            await asyncio.sleep(interval_ms / 1000)
            now_ms = self.clock.wall_ms()
            for log in self.log_manager.logs().values():
                log.producer_state.remove_expired(now_ms, expiration_ms)

    def apply_retention(self) -> None:
        """Delete the segments that retention.ms and retention.bytes no longer keep."""
        now_ms = self.clock.wall_ms()
        for (topic, partition), log in self.log_manager.logs().items():
            log_dir = self.log_manager.log_dir_of(topic, partition)
            if log_dir is None or not self.log_manager.is_online(log_dir):
                continue
            try:
                log.apply_retention(now_ms)
                log.delete_retired_files(now_ms)
            except StorageError:
                logger.exception("retention of %s-%d failed", topic, partition)

    async def _apply_retention_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.config["log.retention.check.interval.ms"] / 1000)
            self.apply_retention()

    async def _flush_periodically(self) -> None:
        """flush.ms: fsync logs whose oldest unflushed append is that old."""
        while True:
            await asyncio.sleep(self.config["log.flush.scheduler.interval.ms"] / 1000)
            now_ms = self.clock.monotonic_ms()
            for partition in list(self.replica_manager.partitions.values()):
                partition.maybe_flush(now_ms)

    async def stop(self) -> None:
        if self.lifecycle is not None:
            if self._others_can_lead():
                await self.lifecycle.shut_down(CONTROLLED_SHUTDOWN_TIMEOUT_S)
            self.lifecycle.stop()
        self.cluster_control.stop()
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
        for task in (self._checkpointer, self._producer_expiry, self._retention, self._flusher):
            if task is not None:
                task.cancel()
        self.group_coordinator.stop()
        self.transaction_coordinator.stop()
        await self.broker_channel.close()
        await self.replica_manager.stop()  # replication: no more fetching or ISR proposals
        await asyncio.sleep(0)  # let cancelled request tasks unwind
        # A cleaning in progress stops at its next batch (a moment's wait, not a whole
        # cleaning); its cleaned files are dropped.
        self.log_cleaner.stop()
        if self.quorum is not None:
            try:
                await self.quorum.stop()
            except StorageError:  # a failing disk: the shutdown is over anyway
                logger.exception("closing the metadata log failed")
        if self._quorum_network is not None:
            await self._quorum_network.close()
        if self.controller_channel is not None:
            await self.controller_channel.close()
        self.log_manager.close()

    def broker_count(self) -> int:
        """How many brokers the cluster has: the registered ones (fenced included), or this
        node before any has registered. Internal topics get at most this replication factor."""
        return len(self.image.brokers) or len(self.controller.broker_ids)

    def _others_can_lead(self) -> bool:
        """Another active broker is registered: a controlled shutdown can move leaderships."""
        if self.quorum is None:
            return False
        image = self.image
        return any(b != self.node_id and image.is_active(b) for b in image.brokers)

    async def groups(self) -> GroupCoordinatorRuntime:
        """The group coordinator, once `__consumer_offsets` exists (created on first use)."""
        await group_coordinator.ensure_offsets_topic(self, self.group_coordinator)
        return self.group_coordinator

    async def transactions(self) -> TransactionCoordinatorRuntime:
        """The transaction coordinator, once `__transaction_state` exists (created on first
        use)."""
        await transaction_coordinator.ensure_transaction_topic(self, self.transaction_coordinator)
        return self.transaction_coordinator

    # --- metadata changes ----------------------------------------------------------------------

    async def commit(self, records: list[MetadataRecord]) -> None:
        """Commit records to the metadata log; the partitions follow the new image (as soon as
        it is applied, or here when that failed: the error reaches the caller).

        Once appended, the records commit whether or not the request that decided them is
        still there. A caller cancelled meanwhile (its client closed the connection) still
        waits here until they are applied, so the lock it decided them under (`quorum.lock`)
        is released only once the image holds them: otherwise the next decision, made on the
        image without them, could create the same topic again under a new id."""
        assert self.quorum is not None
        if not records:
            return
        committing = asyncio.ensure_future(self._commit_and_follow(records))
        try:
            await asyncio.shield(committing)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):  # its outcome is the caller's no more
                await asyncio.shield(committing)
            raise

    async def _commit_and_follow(self, records: list[MetadataRecord]) -> None:
        assert self.quorum is not None
        image = await self.quorum.commit(records)
        if image is not self._followed_image:
            self._follow_image(image, records)

    def _install_dynamic_configs(self, image: MetadataImage) -> None:
        self.config.set_dynamic(image.broker_config(""), image.broker_config(str(self.node_id)))

    def _refresh_log_configs(self, image: MetadataImage) -> None:
        """Give every hosted log its topic's current configs (a topic's own or a dynamic
        broker default changed); they apply from the next append or roll."""
        for (name, _), partition in self.replica_manager.partitions.items():
            topic = image.topic(name)
            if topic is None:
                continue
            config = log_config_for(self.config, topic)
            if config != partition.log.config:
                partition.log.update_config(config)

    def _check_topic_configs(self, configs: Mapping[str, str]) -> None:
        """Raise InvalidConfigError when the log would refuse these topic configs."""
        log_config_for(
            self.config,
            TopicImage("", bytes(16), MappingProxyType({}), MappingProxyType(dict(configs))),
        )

    async def alter_configs(
        self,
        alterations: Sequence[Callable[[MetadataImage], list[ConfigRecord]]],
        *,
        validate_only: bool = False,
    ) -> list[KafkaError | None]:
        """Run each resource's alteration against the same image; commit the records of those
        that passed, together (nothing with validate_only). One outcome per alteration."""
        assert self.quorum is not None
        outcomes: list[KafkaError | None] = []
        async with self.quorum.lock:
            image = self.image
            records: list[MetadataRecord] = []
            for alter in alterations:
                try:
                    records.extend(alter(image))
                except KafkaError as exc:
                    outcomes.append(exc)
                    continue
                outcomes.append(None)
            if not validate_only:
                try:
                    await self.commit(records)
                except KafkaError as exc:  # NOT_CONTROLLER: this node does not lead the quorum
                    outcomes = [exc if outcome is None else outcome for outcome in outcomes]
        return outcomes

    async def create_topics(
        self,
        topics: list[NewTopic],
        *,
        validate_only: bool = False,
        ignore_existing: bool = False,
    ) -> dict[str, CreatedTopic | KafkaError]:
        if not self.is_controller_here():
            from odradek.server.forwarding import create_topics_at_controller

            return await create_topics_at_controller(
                self,
                topics,
                validate_only=validate_only,
                ignore_existing=ignore_existing,
                local=lambda: self._create_topics_here(topics, validate_only, ignore_existing),
            )
        return await self._create_topics_here(topics, validate_only, ignore_existing)

    async def _create_topics_here(
        self, topics: list[NewTopic], validate_only: bool, ignore_existing: bool
    ) -> dict[str, CreatedTopic | KafkaError]:
        assert self.quorum is not None
        outcomes: dict[str, CreatedTopic | KafkaError] = {}
        async with self.quorum.lock:
            image = self.image
            records: list[MetadataRecord] = []
            pending: set[str] = set()
            for topic in topics:
                if ignore_existing and image.topic(topic.name) is not None:
                    continue
                try:
                    created, topic_records = self.controller.create_topic(image, topic, pending)
                    # InvalidConfigError (INVALID_CONFIG) when the log would refuse them
                    self._check_topic_configs(
                        {k: v for k, v in topic.configs.items() if v is not None}
                    )
                except KafkaError as exc:
                    outcomes[topic.name] = exc
                    continue
                pending.add(topic.name)
                outcomes[topic.name] = created
                records.extend(topic_records)
            if not validate_only:
                try:
                    await self.commit(records)
                except KafkaError as exc:  # NOT_CONTROLLER: this node does not lead the quorum
                    for name in pending:
                        outcomes[name] = exc
        return outcomes
