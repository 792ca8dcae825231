"""The metadata log of a single-node cluster that names no quorum voters: `__cluster_metadata-0`
written directly, without the Raft quorum.

`odradek serve` without `controller.quorum.voters` runs this: it starts without the quorum's
imports, its LeaderChange batch and its quorum-state writes (all on the cold-start path), and
has the same surface as `RaftQuorum` (`load`, `start`, `commit`, `image`, `lock`, `stop`). A
node that names voters, itself alone included, runs `RaftQuorum`; both read the other's data
dir (this class skips control batches when it replays, and appends at the log's latest leader
epoch, so the epochs `RaftQuorum` reads back never decrease).

Records are appended as ordinary v2 batches (one metadata record per Kafka record value),
fsync'd, and only then replayed into the next `MetadataImage`: write-then-replay, so what a
client was told has been committed survives a crash. On start-up the whole log is replayed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from odradek.common.clock import Clock
from odradek.metadata import records as metadata_records
from odradek.metadata.image import MetadataImage
from odradek.protocol.records import encode_batch
from odradek.storage.fileio import FileIO
from odradek.storage.log import Log, LogConfig

logger = logging.getLogger(__name__)

METADATA_TOPIC = "__cluster_metadata"
METADATA_DIR = f"{METADATA_TOPIC}-0"


def parse_quorum_voters(voters: Sequence[str]) -> dict[int, tuple[str, int] | None]:
    """`controller.quorum.voters` entries `id@host:port` -> {id: (host, port)}."""
    parsed: dict[int, tuple[str, int] | None] = {}
    for entry in voters:
        entry = entry.strip()
        if not entry:
            continue
        node_id, at, address = entry.partition("@")
        host, colon, port = address.rpartition(":")
        if not (at and colon and host and node_id.strip().isdigit() and port.isdigit()):
            raise ValueError(f"controller.quorum.voters entry {entry!r} is not id@host:port")
        if int(node_id) in parsed:
            raise ValueError(f"controller.quorum.voters names node {node_id} twice")
        parsed[int(node_id)] = (host.strip("[]"), int(port))
    return parsed


class SingleNodeQuorum:
    def __init__(self, log_dir: Path, *, fileio: FileIO, clock: Clock) -> None:
        self._log = Log.open(log_dir / METADATA_DIR, LogConfig(), fileio=fileio, clock=clock)
        self._clock = clock
        self.image = MetadataImage()
        self.lock = asyncio.Lock()  # serializes validate-then-commit of admin requests
        # RaftQuorum's hook for images committed elsewhere; here every commit is the node's.
        self.listener: (
            Callable[[MetadataImage, Sequence[metadata_records.MetadataRecord] | None], None] | None
        ) = None

    def load(self) -> MetadataImage:
        replayed: list[metadata_records.MetadataRecord] = []
        for record in self._log.replay_records():
            if record.value is None:
                continue
            decoded = metadata_records.decode(record.value)
            if decoded is not None:
                replayed.append(decoded)
        self.image = self.image.apply(replayed)
        logger.info(
            "[MetadataLog] replayed %d records up to offset %d",
            len(replayed),
            self._log.log_end_offset,
        )
        return self.image

    @property
    def end_offset(self) -> int:
        return self._log.log_end_offset

    async def start(self) -> None:
        """Nothing to elect: the node is its own controller from `load` on."""

    async def commit(self, records: Sequence[metadata_records.MetadataRecord]) -> MetadataImage:
        if not records:
            return self.image
        batch = bytearray(
            encode_batch(
                [(None, metadata_records.encode(r), []) for r in records],
                timestamp_ms=self._clock.wall_ms(),
            )
        )
        epoch = max(self._log.leader_epochs.latest_epoch, 0)
        self._log.append_as_leader(batch, leader_epoch=epoch)
        await asyncio.get_running_loop().run_in_executor(None, self._log.flush)
        self.image = self.image.apply(records)
        return self.image

    async def stop(self) -> None:
        self._log.close()
