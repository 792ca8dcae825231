"""A node: broker and controller in one process, a quorum of one.

Start-up: log dirs and meta.properties, load and recover the logs, replay the metadata log into
the image, open the partitions it places here, then listen. Shutdown, in this order: stop
accepting, close connections (in-flight requests are cancelled; nothing is acknowledged that
was not written), flush and checkpoint every log, close files.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from odradek.common.clock import Clock, SystemClock
from odradek.common.config import BrokerConfig
from odradek.common.errors import KafkaError
from odradek.coordinator.group.coordinator import GroupCoordinator
from odradek.coordinator.runtime import GroupCoordinatorRuntime
from odradek.metadata.controller import CreatedTopic, NewTopic, TopicController
from odradek.metadata.image import MetadataImage
from odradek.metadata.quorum import SingleNodeQuorum
from odradek.metadata.records import MetadataRecord
from odradek.replication.fetch_session import FetchSessionCache
from odradek.replication.replica_manager import ReplicaManager, log_config_for
from odradek.server import group_coordinator
from odradek.server import handlers as _handlers  # noqa: F401  (registers every handler)
from odradek.server.network import KafkaConnection
from odradek.storage.checkpoints import random_uuid, read_meta_properties, uuid_to_string
from odradek.storage.fileio import FileIO, OsFileIO
from odradek.storage.log_manager import LogManager

if TYPE_CHECKING:
    from odradek.server.faults import FaultEngine

logger = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_MS = 60_000


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
        self.log_manager = LogManager(
            self.log_dirs, log_config_for(config, None), fileio=self.fileio, clock=self.clock
        )
        self.replica_manager = ReplicaManager(self.node_id, config, self.log_manager)
        self.quorum: SingleNodeQuorum | None = None
        self.group_coordinator = GroupCoordinatorRuntime(
            GroupCoordinator(group_coordinator.group_config(self)),
            self.clock,
            group_coordinator.OffsetsTopicLog(self),
            config["offsets.retention.check.interval.ms"],
        )
        self._server: asyncio.Server | None = None
        self._checkpointer: asyncio.Task[None] | None = None
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
        self.quorum = SingleNodeQuorum(self.log_dirs[0], fileio=self.fileio, clock=self.clock)
        self.quorum.load()
        self.replica_manager.apply_image(self.image)
        group_coordinator.load(self, self.group_coordinator.core)
        self.group_coordinator.start()
        _, host, port = parse_listener(self.config["listeners"][0])
        self.listener_host = host
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: KafkaConnection(self), host or None, port, reuse_address=True, backlog=1024
        )
        self.bound_port = self._server.sockets[0].getsockname()[1]
        self._checkpointer = loop.create_task(self._checkpoint_periodically())

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

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()
        if self._server is not None:
            await self._server.wait_closed()
        if self._checkpointer is not None:
            self._checkpointer.cancel()
        self.group_coordinator.stop()
        await asyncio.sleep(0)  # let cancelled request tasks unwind
        self.log_manager.close()
        if self.quorum is not None:
            self.quorum.close()

    async def groups(self) -> GroupCoordinatorRuntime:
        """The group coordinator, once `__consumer_offsets` exists (created on first use)."""
        await group_coordinator.ensure_offsets_topic(self, self.group_coordinator)
        return self.group_coordinator

    # --- metadata changes ----------------------------------------------------------------------

    async def commit(self, records: list[MetadataRecord]) -> None:
        """Commit records to the metadata log, then make the partitions follow the new image."""
        assert self.quorum is not None
        if not records:
            return
        image = await self.quorum.commit(records)
        self.replica_manager.apply_image(image)

    async def create_topics(
        self,
        topics: list[NewTopic],
        *,
        validate_only: bool = False,
        ignore_existing: bool = False,
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
                except KafkaError as exc:
                    outcomes[topic.name] = exc
                    continue
                pending.add(topic.name)
                outcomes[topic.name] = created
                records.extend(topic_records)
            if not validate_only:
                await self.commit(records)
        return outcomes
