"""`RaftQuorum`: the cluster metadata log replicated by the KRaft-style quorum.

It is the node's metadata quorum (`load`, `start`, `commit`, `image`, `lock`, `stop`) over a
`RaftDriver`:

- `commit(records)` appends one batch on the active controller (the Raft leader) and resolves
  once the high watermark passed it and it was applied to the image; elsewhere it raises
  `NotControllerError` (NOT_CONTROLLER); forwarding to the controller comes later. A commit
  whose leader loses its epoch before the batch is committed fails the same way (the records
  may still commit under the next leader, as in Kafka).
- Every node, voter or observer (`process.roles=broker`), applies committed batches to its
  `MetadataImage` and tells its listener (the node makes its partitions follow the image).
- A single voter elects itself at start-up without waiting for an election timeout, and
  `start()` returns once the records already in its log are committed and applied, so a
  quorum of one starts with its whole image, as the single-node quorum did.
- Snapshots: after `metadata.log.max.record.bytes.between.snapshots` bytes of committed
  records, the image is written as a snapshot (v2 batches of the records that rebuild it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from odradek.common.clock import Clock
from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata import records as metadata_records
from odradek.metadata.image import MetadataImage
from odradek.metadata.raft.core import RaftConfig
from odradek.metadata.raft.driver import RaftDriver, RaftNetwork
from odradek.metadata.raft.log import Snapshot
from odradek.metadata.raft.messages import (
    AppendAccepted,
    AppendRecords,
    AppendRejected,
    ApplyCommitted,
    CreateSnapshot,
    DescribeQuorumResponse,
    Message,
    Resign,
    StateChanged,
    StateName,
)
from odradek.metadata.raft.state import LeaderState
from odradek.metadata.records import (
    RESOURCE_BROKER,
    RESOURCE_TOPIC,
    ConfigRecord,
    MetadataRecord,
    PartitionRecord,
    ProducerIdsRecord,
    TopicRecord,
)
from odradek.protocol.records import decode_records, encode_batch, iter_batches
from odradek.storage.fileio import FileIO

logger = logging.getLogger(__name__)

METADATA_DIR = "__cluster_metadata-0"
SNAPSHOT_BATCH_RECORDS = 1000
RESIGN_GRACE_S = 0.2  # how long a stopping leader lets its EndQuorumEpoch requests go out


class NotControllerError(KafkaError):
    code = ErrorCode.NOT_CONTROLLER


def image_records(image: MetadataImage) -> list[MetadataRecord]:
    """Records that rebuild `image` from an empty one (a snapshot's content)."""
    out: list[MetadataRecord] = []
    for topic in image.topics.values():
        out.append(TopicRecord(topic.name, topic.topic_id))
        for p in topic.partitions.values():
            out.append(
                PartitionRecord(
                    p.partition_id,
                    topic.topic_id,
                    p.replicas,
                    p.isr,
                    p.leader,
                    p.leader_epoch,
                    p.partition_epoch,
                )
            )
        for name, value in topic.configs.items():
            out.append(ConfigRecord(RESOURCE_TOPIC, topic.name, name, value))
    for resource, configs in image.broker_configs.items():
        for name, value in configs.items():
            out.append(ConfigRecord(RESOURCE_BROKER, resource, name, value))
    if image.next_producer_id:
        out.append(ProducerIdsRecord(-1, -1, image.next_producer_id))
    return out


def encode_snapshot(image: MetadataImage) -> bytes:
    records = [metadata_records.encode(r) for r in image_records(image)]
    out = bytearray()
    for i in range(0, len(records), SNAPSHOT_BATCH_RECORDS):
        chunk = records[i : i + SNAPSHOT_BATCH_RECORDS]
        out += encode_batch([(None, r, []) for r in chunk], base_offset=i)
    return bytes(out)


def decode_snapshot(payload: bytes) -> MetadataImage:
    return MetadataImage().apply(_decode_values(payload))


def _decode_values(data: bytes) -> list[MetadataRecord]:
    out: list[MetadataRecord] = []
    for position, header in iter_batches(data):
        if header.is_control:
            continue
        for record in decode_records(data[position : position + header.size])[1]:
            if record.value is not None:
                decoded = metadata_records.decode(record.value)
                if decoded is not None:
                    out.append(decoded)
    return out


class RaftQuorum:
    def __init__(
        self,
        log_dir: Path,
        config: RaftConfig,
        *,
        fileio: FileIO,
        clock: Clock,
        network: RaftNetwork,
        snapshot_bytes: int = 20 * 1024 * 1024,
    ) -> None:
        self.config = config
        self.image = MetadataImage()
        self.lock = asyncio.Lock()  # serializes validate-then-commit of admin requests
        # Called in the step that applied records (None: a snapshot) to the image.
        self.listener: Callable[[MetadataImage, Sequence[MetadataRecord] | None], None] | None = (
            None
        )
        # Called with True when this node becomes the active controller and has applied every
        # record of the epochs before its own, with False when it stops being it.
        self.leadership_listener: Callable[[bool], None] | None = None
        self._controller_ready = False
        self._snapshot_bytes = snapshot_bytes
        self._bytes_since_snapshot = 0
        self._applied_offset = 0
        self._state = StateChanged(StateName.UNATTACHED, 0, -1)
        self._pending: dict[int, tuple[int, asyncio.Future[None]]] = {}  # end offset -> epoch
        self._ready_offset = 0
        self._ready: asyncio.Event | None = None
        self.driver = RaftDriver(
            config,
            log_dir / METADATA_DIR,
            fileio=fileio,
            clock=clock,
            network=network,
            on_commit=self._on_commit,
            on_snapshot=self._on_snapshot,
            on_state=self._on_state,
            on_flush_error=self._on_flush_error,
        )

    # -- the MetadataQuorum surface --------------------------------------------------------------

    @property
    def is_active_controller(self) -> bool:
        return self._state.state == StateName.LEADER

    @property
    def controller_ready(self) -> bool:
        """Active, and the image holds everything committed before this leadership (its
        LeaderChange batch has been committed): what the controller decides on is current."""
        return self._controller_ready

    @property
    def applied_offset(self) -> int:
        """The end of what the image holds: records below this offset have been applied."""
        return self._applied_offset

    @property
    def next_offset(self) -> int:
        """The offset the next appended record gets (the leader's log end)."""
        core = self.driver.core
        return core.log.end_offset if core is not None else 0

    @property
    def leader_id(self) -> int:
        return self._state.leader_id

    @property
    def leader_epoch(self) -> int:
        return self._state.epoch

    @property
    def high_watermark(self) -> int:
        core = self.driver.core
        return core.high_watermark if core is not None else 0

    def load(self) -> MetadataImage:
        snapshot = self.driver.open()
        if snapshot is not None:
            self.image = decode_snapshot(snapshot.payload)
            self._applied_offset = snapshot.snapshot_id.offset
        assert self.driver.core is not None
        self._ready_offset = self.driver.core.log.end_offset
        return self.image

    async def start(self) -> None:
        """Run the quorum; a single voter returns once its log is committed and applied."""
        self._ready = asyncio.Event()
        self.driver.start()
        if self.config.voters == (self.config.node_id,):
            await self._ready.wait()

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait until what the log held at start-up is committed and applied."""
        if self._ready is None:
            return False
        try:
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    async def commit(self, records: Sequence[MetadataRecord]) -> MetadataImage:
        if not records:
            return self.image
        encoded = tuple(metadata_records.encode(r) for r in records)
        commands = self.driver.step(AppendRecords(encoded))
        for command in commands:
            if isinstance(command, AppendRejected):
                raise NotControllerError(
                    f"node {self.config.node_id} is not the active controller"
                    f" (leader {command.leader_id}, epoch {command.leader_epoch})"
                )
            if isinstance(command, AppendAccepted):
                if self._applied_offset < command.end_offset:
                    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                    self._pending[command.end_offset] = (command.epoch, future)
                    await future
                return self.image
        raise NotControllerError(f"node {self.config.node_id} did not accept the records")

    async def handle_request(self, source: int, message: Message, timeout_ms: int) -> Message:
        return await self.driver.handle_request(source, message, timeout_ms)

    def describe_quorum(self) -> DescribeQuorumResponse:
        return self.driver.describe_quorum()

    async def stop(self) -> None:
        if self.is_active_controller and len(self.config.voters) > 1:
            self.driver.step(Resign())
            await asyncio.sleep(RESIGN_GRACE_S)
        self._fail_pending(f"node {self.config.node_id} is shutting down")
        await self.driver.close()

    # -- driver callbacks ----------------------------------------------------------------------

    def _on_commit(self, command: ApplyCommitted) -> None:
        applied: list[MetadataRecord] = []
        for batch in command.batches:
            if batch.control:
                continue
            for value in batch.records:
                self._bytes_since_snapshot += len(value)
                decoded = metadata_records.decode(value)
                if decoded is not None:
                    applied.append(decoded)
        if command.batches:
            self._applied_offset = command.batches[-1].end_offset
        if applied:
            self.image = self.image.apply(applied)
        for end_offset in [e for e in self._pending if e <= self._applied_offset]:
            _, future = self._pending.pop(end_offset)
            if not future.done():
                future.set_result(None)
        if self._ready is not None and self._applied_offset >= self._ready_offset:
            self._ready.set()
        if applied:
            self._notify_listener(applied)
        self._check_controller_ready()
        if self._bytes_since_snapshot >= self._snapshot_bytes:
            self._bytes_since_snapshot = 0
            payload = encode_snapshot(self.image)
            loop = asyncio.get_running_loop()
            # Not inside this step: the core takes CreateSnapshot as an event of its own.
            loop.call_soon(self._snapshot, self._applied_offset, payload)

    def _snapshot(self, end_offset: int, payload: bytes) -> None:
        core = self.driver.core
        if core is None or end_offset <= core.log.log_start_offset:
            return
        try:
            self.driver.step(CreateSnapshot(end_offset, payload))
        except ValueError:  # the log moved under it (a fetched snapshot): the next one will do
            logger.warning("snapshot at %d skipped", end_offset, exc_info=True)

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        self.image = decode_snapshot(snapshot.payload)
        self._applied_offset = snapshot.snapshot_id.offset
        self._bytes_since_snapshot = 0
        if self._ready is not None and self._applied_offset >= self._ready_offset:
            self._ready.set()
        self._notify_listener(None)

    def _notify_listener(self, records: Sequence[MetadataRecord] | None) -> None:
        if self.listener is None:
            return
        try:
            self.listener(self.image, records)
        except Exception:  # the image is committed either way; the node logs what failed
            logger.exception("following metadata image %d failed", self.image.epoch)

    def _on_state(self, state: StateChanged) -> None:
        previous, self._state = self._state, state
        if previous.state == StateName.LEADER and (
            state.state != StateName.LEADER or state.epoch != previous.epoch
        ):
            self._fail_pending(f"node {self.config.node_id} lost the leadership")
        self._check_controller_ready()

    def _check_controller_ready(self) -> None:
        core = self.driver.core
        ready = (
            core is not None
            and isinstance(core.state, LeaderState)
            and core.state.epoch == self._state.epoch
            and self._state.state == StateName.LEADER
            and self._applied_offset > core.state.epoch_start_offset
        )
        if ready == self._controller_ready:
            return
        self._controller_ready = ready
        if self.leadership_listener is not None:
            try:
                self.leadership_listener(ready)
            except Exception:
                logger.exception("the controller's leadership listener failed")

    def _on_flush_error(self, error: Exception) -> None:
        # The records of pending commits may never become durable here: their callers hear
        # of the failure (a StorageError is KAFKA_STORAGE_ERROR), as with the single-node log.
        pending, self._pending = self._pending, {}
        for _, future in pending.values():
            if not future.done():
                future.set_exception(error)

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for _, future in pending.values():
            if not future.done():
                future.set_exception(NotControllerError(reason))
