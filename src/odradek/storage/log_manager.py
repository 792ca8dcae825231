"""All the logs of a broker, across its log dirs (`log.dirs`).

Each log dir holds one directory per partition (`<topic>-<partition>/`, see `log.Log`), the
offset checkpoints (`recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
`replication-offset-checkpoint` with the high watermarks, see
`checkpoints`) and `meta.properties`. A partition dir being deleted is first renamed to
`<topic>-<partition>.<uuid hex>-delete`, so a crash midway leaves a name `load()` finishes off
instead of a half-deleted log.

A log dir whose I/O failed is offline: its logs stay in the map (callers answer
KAFKA_STORAGE_ERROR for them), no new log is placed there, and it is not checkpointed again.

This module must not import from the layers above storage.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from odradek.common.clock import Clock
from odradek.common.errors import StorageError
from odradek.storage.checkpoints import (
    LOG_START_OFFSET_CHECKPOINT,
    RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT,
    MetaProperties,
    random_uuid,
    read_meta_properties,
    read_offsets_checkpoint,
    read_partition_metadata,
    uuid_to_string,
    write_meta_properties,
    write_offsets_checkpoint,
    write_partition_metadata,
)
from odradek.storage.fileio import FileIO, GuardedFileIO
from odradek.storage.log import Log, LogConfig, parse_partition_dir

logger = logging.getLogger(__name__)

TopicPartition = tuple[str, int]

# The cluster metadata log is opened and owned by the metadata quorum (metadata/raft/driver.py),
# which reads and writes it itself; a second Log object on the same files would corrupt its indexes.
METADATA_PARTITION = ("__cluster_metadata", 0)

# Kafka's marker of a clean shutdown: written last by close(), removed by load(); while it is
# there, logs are opened without a recovery scan.
CLEAN_SHUTDOWN_FILE = ".kafka_cleanshutdown"
_CLEAN_SHUTDOWN_CONTENT = b'{"version":0,"brokerEpoch":-1}'

_DELETE_SUFFIX = "-delete"
_IGNORED_SUFFIXES = ("-future", "-stray")


class LogManager:
    def __init__(
        self,
        log_dirs: list[Path],
        default_config: LogConfig,
        *,
        fileio: FileIO,
        clock: Clock,
        excluded_partitions: Collection[TopicPartition] = (METADATA_PARTITION,),
    ) -> None:
        """`excluded_partitions` are partition dirs that other modules own: load() skips them."""
        if not log_dirs:
            raise ValueError("at least one log dir is needed")
        self.log_dirs = list(log_dirs)
        self.default_config = default_config
        self.clock = clock
        self.excluded_partitions = frozenset(excluded_partitions)
        self.offline_dirs: set[Path] = set()
        self._fileio: dict[Path, GuardedFileIO] = {
            log_dir: GuardedFileIO(fileio, self._failure_handler(log_dir)) for log_dir in log_dirs
        }
        self._logs: dict[TopicPartition, Log] = {}
        self._dir_of: dict[TopicPartition, Path] = {}
        self._lock = threading.Lock()
        # High watermarks as `replication-offset-checkpoint` last held them (read by load());
        # `high_watermarks`, set by the replica manager, gives the current ones to checkpoint.
        self.checkpointed_high_watermarks: dict[TopicPartition, int] = {}
        self.high_watermarks: Callable[[], Mapping[TopicPartition, int]] | None = None

    def _failure_handler(self, log_dir: Path) -> Callable[[OSError], None]:
        def on_error(err: OSError) -> None:
            if log_dir not in self.offline_dirs:
                logger.error("log dir %s is now offline after an I/O error: %s", log_dir, err)
                self.offline_dirs.add(log_dir)

        return on_error

    def is_online(self, log_dir: Path) -> bool:
        return log_dir not in self.offline_dirs

    # --- loading -----------------------------------------------------------------------------

    def load(self) -> dict[TopicPartition, Log]:
        """Open every partition dir of every log dir; returns the logs by (topic, partition)."""
        for log_dir in self.log_dirs:
            try:
                self._load_dir(log_dir)
            except StorageError as err:
                logger.error("log dir %s could not be loaded: %s", log_dir, err)
                self.offline_dirs.add(log_dir)
        return dict(self._logs)

    def _load_dir(self, log_dir: Path) -> None:
        fileio = self._fileio[log_dir]
        fileio.mkdir(log_dir)
        recovery_points = read_offsets_checkpoint(fileio, log_dir / RECOVERY_POINT_CHECKPOINT)
        log_start_offsets = read_offsets_checkpoint(fileio, log_dir / LOG_START_OFFSET_CHECKPOINT)
        self.checkpointed_high_watermarks.update(
            read_offsets_checkpoint(fileio, log_dir / REPLICATION_OFFSET_CHECKPOINT)
        )
        clean_shutdown = fileio.exists(log_dir / CLEAN_SHUTDOWN_FILE)
        for name in fileio.list_dir(log_dir):
            path = log_dir / name
            if not fileio.is_dir(path):
                continue
            if name.endswith(_DELETE_SUFFIX):
                self._remove_dir(fileio, path)
                continue
            if name.endswith(_IGNORED_SUFFIXES):
                continue
            try:
                key = parse_partition_dir(name)
            except ValueError:
                continue
            if key in self.excluded_partitions:
                continue
            if key in self._logs:
                raise StorageError(f"partition {name} is in both {self._dir_of[key]} and {log_dir}")
            log = Log.open(
                path,
                self.default_config,
                fileio=fileio,
                clock=self.clock,
                recovery_point=recovery_points.get(key, 0),
                log_start_offset=log_start_offsets.get(key, 0),
                clean_shutdown=clean_shutdown,
            )
            self._logs[key] = log
            self._dir_of[key] = log_dir
        if clean_shutdown:
            fileio.delete(log_dir / CLEAN_SHUTDOWN_FILE)
            fileio.fsync_dir(log_dir)

    def ensure_meta_properties(self, node_id: int, cluster_id: str) -> dict[Path, str]:
        """Write meta.properties where missing, refuse dirs of another node or cluster.

        Returns each online log dir's directory.id.
        """
        directory_ids: dict[Path, str] = {}
        for log_dir in self.log_dirs:
            if not self.is_online(log_dir):
                continue
            fileio = self._fileio[log_dir]
            fileio.mkdir(log_dir)
            meta = read_meta_properties(fileio, log_dir)
            if meta is None:
                meta = MetaProperties(node_id, cluster_id, uuid_to_string(random_uuid()))
                write_meta_properties(fileio, log_dir, meta)
            elif meta.node_id != node_id or meta.cluster_id != cluster_id:
                raise StorageError(
                    f"{log_dir} belongs to node {meta.node_id} of cluster {meta.cluster_id},"
                    f" not node {node_id} of cluster {cluster_id}"
                )
            directory_ids[log_dir] = meta.directory_id
        return directory_ids

    # --- the logs ------------------------------------------------------------------------------

    def get(self, topic: str, partition: int) -> Log | None:
        return self._logs.get((topic, partition))

    def logs(self) -> dict[TopicPartition, Log]:
        return dict(self._logs)

    def fileio_of(self, log_dir: Path) -> FileIO:
        """The FileIO of a log dir (its errors take the dir offline)."""
        return self._fileio[log_dir]

    def log_dir_of(self, topic: str, partition: int) -> Path | None:
        return self._dir_of.get((topic, partition))

    def get_or_create(
        self,
        topic: str,
        partition: int,
        config: LogConfig | None = None,
        topic_id: bytes | None = None,
    ) -> Log:
        """The log of the partition, created in the online log dir holding the fewest logs."""
        key = (topic, partition)
        with self._lock:
            log = self._logs.get(key)
            if log is not None:
                if config is not None and config != log.config:
                    log.update_config(config)
                return log
            online = [d for d in self.log_dirs if self.is_online(d)]
            if not online:
                raise StorageError("no log dir is online")
            counts = dict.fromkeys(online, 0)
            for log_dir in self._dir_of.values():
                if log_dir in counts:
                    counts[log_dir] += 1
            log_dir = min(online, key=lambda d: counts[d])
            fileio = self._fileio[log_dir]
            path = log_dir / f"{topic}-{partition}"
            fileio.mkdir(path)
            log = Log.open(path, config or self.default_config, fileio=fileio, clock=self.clock)
            if topic_id is not None and read_partition_metadata(fileio, path) != topic_id:
                write_partition_metadata(fileio, path, topic_id)
            fileio.fsync_dir(log_dir)
            self._logs[key] = log
            self._dir_of[key] = log_dir
            return log

    def topic_id(self, topic: str, partition: int) -> bytes | None:
        """The topic id in the partition's partition.metadata, if any."""
        key = (topic, partition)
        log_dir = self._dir_of.get(key)
        log = self._logs.get(key)
        if log_dir is None or log is None:
            return None
        return read_partition_metadata(self._fileio[log_dir], log.directory)

    def delete(self, topic: str, partition: int) -> None:
        """Delete the partition's log: rename its dir out of the way, then remove its files."""
        key = (topic, partition)
        with self._lock:
            log = self._logs.pop(key, None)
            log_dir = self._dir_of.pop(key, None)
        if log is None or log_dir is None:
            return
        fileio = self._fileio[log_dir]
        log.close(flush=False)
        doomed = log_dir / f"{topic}-{partition}.{uuid.uuid4().hex}{_DELETE_SUFFIX}"
        fileio.rename(log.directory, doomed)
        fileio.fsync_dir(log_dir)
        self._remove_dir(fileio, doomed)

    @staticmethod
    def _remove_dir(fileio: FileIO, path: Path) -> None:
        for name in fileio.list_dir(path):
            fileio.delete(path / name)
        fileio.rmdir(path)

    # --- durability ----------------------------------------------------------------------------

    def flush_all(self) -> None:
        for key, log in list(self._logs.items()):
            if self.is_online(self._dir_of[key]):
                try:
                    log.flush()
                except StorageError:
                    logger.exception("flushing %s-%d failed", *key)

    def checkpoint(self) -> None:
        """Write the recovery-point and log-start-offset checkpoints of every online dir, and
        replication-offset-checkpoint (high watermarks) when the replica manager gives them.

        A dir whose write fails goes offline (and is skipped); the others are still written.
        """
        by_dir: dict[Path, dict[TopicPartition, Log]] = {d: {} for d in self.log_dirs}
        for key, log in list(self._logs.items()):
            by_dir[self._dir_of[key]][key] = log
        current = self.high_watermarks() if self.high_watermarks is not None else None
        for log_dir, logs in by_dir.items():
            if not self.is_online(log_dir):
                continue
            fileio = self._fileio[log_dir]
            try:
                write_offsets_checkpoint(
                    fileio,
                    log_dir / RECOVERY_POINT_CHECKPOINT,
                    {key: log.recovery_point for key, log in logs.items()},
                )
                write_offsets_checkpoint(
                    fileio,
                    log_dir / LOG_START_OFFSET_CHECKPOINT,
                    {key: log.log_start_offset for key, log in logs.items()},
                )
                if current is not None:
                    high_watermarks: dict[TopicPartition, int] = {}
                    for key in logs:
                        value = current.get(key, self.checkpointed_high_watermarks.get(key))
                        if value is not None:
                            high_watermarks[key] = value
                    write_offsets_checkpoint(
                        fileio, log_dir / REPLICATION_OFFSET_CHECKPOINT, high_watermarks
                    )
            except StorageError:
                logger.exception("checkpointing %s failed", log_dir)

    def close(self) -> None:
        """Flush, checkpoint and close every log (online dirs only get flushed)."""
        for key, log in list(self._logs.items()):
            if self.is_online(self._dir_of[key]):
                try:
                    log.close()
                except StorageError:
                    logger.exception("closing %s-%d failed", *key)
        self.checkpoint()
        for log_dir in self.log_dirs:
            if self.is_online(log_dir):
                try:
                    self._fileio[log_dir].replace_file(
                        log_dir / CLEAN_SHUTDOWN_FILE, _CLEAN_SHUTDOWN_CONTENT
                    )
                except StorageError:
                    logger.exception("marking %s as cleanly shut down failed", log_dir)
        self._logs.clear()
        self._dir_of.clear()
