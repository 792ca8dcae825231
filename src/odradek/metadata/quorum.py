"""The metadata log of a single-node cluster: a quorum of one over `__cluster_metadata-0`.

Records are appended as ordinary v2 batches (one metadata record per Kafka record value),
fsync'd, and only then replayed into the next `MetadataImage`: write-then-replay, so what a
client was told has been committed survives a crash. On start-up the whole log is replayed.
The multi-node Raft quorum replaces this class behind the same two calls: `load` and `commit`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
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


class SingleNodeQuorum:
    def __init__(self, log_dir: Path, *, fileio: FileIO, clock: Clock) -> None:
        self._log = Log.open(log_dir / METADATA_DIR, LogConfig(), fileio=fileio, clock=clock)
        self._clock = clock
        self.image = MetadataImage()
        self.lock = asyncio.Lock()  # serializes validate-then-commit of admin requests

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

    async def commit(self, records: Sequence[metadata_records.MetadataRecord]) -> MetadataImage:
        if not records:
            return self.image
        batch = bytearray(
            encode_batch(
                [(None, metadata_records.encode(r), []) for r in records],
                timestamp_ms=self._clock.wall_ms(),
            )
        )
        self._log.append_as_leader(batch, leader_epoch=0)
        await asyncio.get_running_loop().run_in_executor(None, self._log.flush)
        self.image = self.image.apply(records)
        return self.image

    def close(self) -> None:
        self._log.close()
