"""Which log the cleaner cleans next, and how far each log is clean (Kafka's LogCleanerManager).

The cleaner checkpoint, one per log dir (`cleaner-offset-checkpoint`, the offset checkpoint
format of `checkpoints.py`), holds for each compacted log the first dirty offset: everything
below it has been cleaned. A missing entry, or one outside [log start, log end], means the log
start offset.

For each log with cleanup.policy `compact` (alone or with `delete`):

- the first uncleanable offset is the lowest of the active segment's base offset, the last
  stable offset (open transactions are never cleaned, nor anything above the high watermark),
  and the base offset of the first dirty segment holding a record newer than
  min.compaction.lag.ms;
- the dirty ratio is dirty bytes / (clean + dirty bytes), the dirty bytes being those of the
  segments in [first dirty, first uncleanable);
- a log is due when its ratio exceeds min.cleanable.dirty.ratio, or when its first dirty
  segment's first batch is older than max.compaction.lag.ms and there is something to clean
  (KIP-354). The filthiest due log is cleaned first.

A log being cleaned is not handed out again until `done` or `release`; a log whose cleaning
failed (not merely aborted) is not handed out again until the broker restarts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from odradek.common.errors import StorageError
from odradek.storage.checkpoints import (
    CLEANER_OFFSET_CHECKPOINT,
    read_offsets_checkpoint,
    write_offsets_checkpoint,
)
from odradek.storage.log import Log
from odradek.storage.log_manager import LogManager, TopicPartition

logger = logging.getLogger(__name__)

NO_MAX_COMPACTION_LAG = 2**63 - 1


@dataclass(frozen=True, slots=True)
class CleanerConfig:
    """The broker's log.cleaner.* settings (attribute = key without the prefix)."""

    enable: bool = True
    threads: int = 1
    backoff_ms: int = 15000
    dedupe_buffer_size: int = 134217728
    io_buffer_size: int = 524288
    io_buffer_load_factor: float = 0.9


@dataclass(frozen=True, slots=True)
class LogToClean:
    topic_partition: TopicPartition
    log: Log
    first_dirty_offset: int
    first_uncleanable_offset: int
    clean_bytes: int
    cleanable_bytes: int
    needs_compaction_now: bool

    @property
    def cleanable_ratio(self) -> float:
        total = self.clean_bytes + self.cleanable_bytes
        return self.cleanable_bytes / total if total else 0.0


def log_to_clean(
    topic_partition: TopicPartition,
    log: Log,
    checkpoint: int | None,
    now_ms: int,
    high_watermark: int,
) -> LogToClean:
    """Where the log's dirty section starts and ends, and how dirty it is."""
    config = log.config
    log_start = log.log_start_offset
    first_dirty = checkpoint if checkpoint is not None else log_start
    first_dirty = min(first_dirty, log.truncated_to)  # what a truncation cut is dirty again
    if first_dirty < log_start or first_dirty > log.log_end_offset:
        first_dirty = log_start
    segments = log.segments
    active = segments[-1]
    first_uncleanable = min(active.base_offset, log.stable_offset_for_cleaning(high_watermark))
    dirty_segments = [
        s
        for s in segments[:-1]
        if s.next_offset > first_dirty and s.base_offset < first_uncleanable
    ]
    if config.min_compaction_lag_ms > 0:
        for segment in dirty_segments:
            if segment.max_timestamp > now_ms - config.min_compaction_lag_ms:
                first_uncleanable = min(first_uncleanable, segment.base_offset)
                break
    first_uncleanable = max(first_uncleanable, first_dirty)
    needs_now = False
    if config.max_compaction_lag_ms < NO_MAX_COMPACTION_LAG and dirty_segments:
        first_batch = dirty_segments[0].rolling_base_timestamp
        if first_batch is not None and first_batch >= 0:
            needs_now = now_ms - first_batch > config.max_compaction_lag_ms
    clean_bytes = sum(s.size for s in segments if s.next_offset <= first_dirty)
    cleanable_bytes = sum(
        s.size
        for s in segments[:-1]
        if s.next_offset > first_dirty and s.base_offset < first_uncleanable
    )
    return LogToClean(
        topic_partition,
        log,
        first_dirty,
        first_uncleanable,
        clean_bytes,
        cleanable_bytes,
        needs_now,
    )


class LogCleanerManager:
    def __init__(
        self,
        log_manager: LogManager,
        high_watermark: Callable[[TopicPartition, Log], int] | None = None,
    ) -> None:
        """`high_watermark` gives a log's high watermark (default: its log end offset, as on
        a partition without followers)."""
        self.log_manager = log_manager
        self._high_watermark = high_watermark or (lambda _, log: log.log_end_offset)
        self._checkpoints: dict[TopicPartition, int] = {}
        self._loaded: set[Path] = set()
        self._in_progress: set[TopicPartition] = set()
        # Logs whose cleaning failed on something other than an abort (a corrupt batch): left
        # alone until the broker restarts, as Kafka's uncleanable partitions are.
        self.uncleanable: set[TopicPartition] = set()
        self._lock = threading.Lock()

    def _checkpoint_path(self, log_dir: Path) -> Path:
        return log_dir / CLEANER_OFFSET_CHECKPOINT

    def _load(self, log_dir: Path) -> None:
        if log_dir in self._loaded:
            return
        self._loaded.add(log_dir)
        fileio = self.log_manager.fileio_of(log_dir)
        try:
            self._checkpoints.update(
                read_offsets_checkpoint(fileio, self._checkpoint_path(log_dir))
            )
        except StorageError:
            logger.exception(
                "the cleaner checkpoint of %s is unreadable; cleaning from scratch", log_dir
            )

    def checkpoint_of(self, topic_partition: TopicPartition) -> int | None:
        with self._lock:
            log_dir = self.log_manager.log_dir_of(*topic_partition)
            if log_dir is not None:
                self._load(log_dir)
            return self._checkpoints.get(topic_partition)

    def candidates(self, now_ms: int) -> list[LogToClean]:
        """Every compacted log that is not being cleaned, with how dirty it is."""
        found = []
        for key, log in self.log_manager.logs().items():
            if not log.config.compact or log.cleaning_aborted:
                continue
            log_dir = self.log_manager.log_dir_of(*key)
            if log_dir is None or not self.log_manager.is_online(log_dir):
                continue
            with self._lock:
                if key in self._in_progress or key in self.uncleanable:
                    continue
            checkpoint = self.checkpoint_of(key)
            if checkpoint is not None and log.truncated_to < checkpoint:
                with self._lock:
                    self._checkpoints[key] = checkpoint = log.truncated_to
            log.truncated_to = 2**63 - 1
            found.append(log_to_clean(key, log, checkpoint, now_ms, self._high_watermark(key, log)))
        return found

    def grab_filthiest_log(self, now_ms: int) -> LogToClean | None:
        """The log to clean next (marked in progress), or None when none is due."""
        due = [
            candidate
            for candidate in self.candidates(now_ms)
            if candidate.cleanable_bytes > 0
            and (
                candidate.needs_compaction_now
                or candidate.cleanable_ratio > candidate.log.config.min_cleanable_dirty_ratio
            )
        ]
        if not due:
            return None
        chosen = max(due, key=lambda c: (c.needs_compaction_now, c.cleanable_ratio))
        with self._lock:
            if chosen.topic_partition in self._in_progress:
                return None
            self._in_progress.add(chosen.topic_partition)
        return chosen

    def release(self, topic_partition: TopicPartition, *, failed: bool = False) -> None:
        """The log is no longer being cleaned; with `failed`, it is not cleaned again."""
        with self._lock:
            self._in_progress.discard(topic_partition)
            if failed:
                self.uncleanable.add(topic_partition)

    def done(self, topic_partition: TopicPartition, end_offset: int) -> None:
        """Record that the log is clean below `end_offset` and write its dir's checkpoint."""
        with self._lock:
            self._in_progress.discard(topic_partition)
            self._checkpoints[topic_partition] = end_offset
            log_dir = self.log_manager.log_dir_of(*topic_partition)
            if log_dir is None or not self.log_manager.is_online(log_dir):
                return
            live = {
                key
                for key in self.log_manager.logs()
                if self.log_manager.log_dir_of(*key) == log_dir
            }
            entries = {key: offset for key, offset in self._checkpoints.items() if key in live}
            write_offsets_checkpoint(
                self.log_manager.fileio_of(log_dir), self._checkpoint_path(log_dir), entries
            )
