"""The log cleaner's threads (Kafka's LogCleaner and its CleanerThreads).

`log.cleaner.threads` threads each loop: take the filthiest due log from the manager, clean it
(`cleaner.Cleaner`) while holding the log's `cleaning_lock`, record the new cleaner checkpoint;
when no log is due, wait `log.cleaner.backoff.ms`. The dedupe buffer is split over the threads,
as in Kafka. The threads never touch the event loop: produce and fetch go on while a log is
cleaned, and only the segment swap takes the log's lock, for a few renames.

`clean_once` does one round on the calling thread (tests, tools).
"""

from __future__ import annotations

import logging
import threading

from odradek.common.clock import Clock
from odradek.storage.cleaner import Cleaner, CleaningAbortedError, CleaningResult
from odradek.storage.cleaner_manager import CleanerConfig, LogCleanerManager
from odradek.storage.cleaner_offset_map import OffsetMap

logger = logging.getLogger(__name__)


class LogCleaner:
    def __init__(self, manager: LogCleanerManager, config: CleanerConfig, clock: Clock) -> None:
        self.manager = manager
        self.config = config
        self.clock = clock
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.cleanings = 0  # completed cleanings, for tests and metrics

    def new_cleaner(self) -> Cleaner:
        threads = max(self.config.threads, 1)
        offset_map = OffsetMap.for_buffer(
            self.config.dedupe_buffer_size // threads, self.config.io_buffer_load_factor
        )
        return Cleaner(offset_map, self.config.io_buffer_size, should_stop=self._stop.is_set)

    def start(self) -> None:
        if not self.config.enable or self._threads:
            return
        self._stop.clear()
        for number in range(self.config.threads):
            thread = threading.Thread(
                target=self._run,
                args=(self.new_cleaner(),),
                name=f"log-cleaner-{number}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the threads to stop (a cleaning in progress is abandoned between batches) and
        wait for them."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads = []

    def _run(self, cleaner: Cleaner) -> None:
        while not self._stop.is_set():
            try:
                cleaned = self.clean_once(cleaner) is not None
            except Exception:  # keep the thread alive; the log is tried again after a backoff
                logger.exception("log cleaning failed")
                cleaned = False
            if not cleaned:
                self._stop.wait(self.config.backoff_ms / 1000)

    def clean_once(self, cleaner: Cleaner | None = None) -> CleaningResult | None:
        """Clean the filthiest due log, if any; returns what the cleaning did."""
        cleaner = cleaner or self.new_cleaner()
        now_ms = self.clock.wall_ms()
        chosen = self.manager.grab_filthiest_log(now_ms)
        if chosen is None:
            return None
        log = chosen.log
        key = chosen.topic_partition
        try:
            with log.cleaning_lock:
                if log.cleaning_aborted:
                    return None
                result = cleaner.clean(
                    log, chosen.first_dirty_offset, chosen.first_uncleanable_offset, now_ms
                )
        except CleaningAbortedError as exc:
            logger.info("cleaning of %s-%d stopped: %s", *key, exc)
            self.manager.release(key)
            return None
        except Exception:
            logger.exception("cleaning %s-%d failed; it is not cleaned again until a restart", *key)
            self.manager.release(key, failed=True)
            return None
        except BaseException:
            self.manager.release(key)
            raise
        self.manager.done(key, result.end_offset)
        self.cleanings += 1
        stats = result.stats
        logger.info(
            "cleaned %s-%d up to offset %d: %d of %d records kept, %.1f MB read, %.1f MB"
            " written in %.2f s",
            *key,
            result.end_offset,
            stats.records_retained,
            stats.records_read,
            stats.bytes_read / 1e6,
            stats.bytes_written / 1e6,
            stats.elapsed_s,
        )
        return result
