"""Log compaction: how much a cleaning keeps, and how fast it goes next to a plain file copy.

Not a test: nothing asserts on timings. Method and results are in docs/benchmarks.md.

    python benchmarks/compaction.py                       # both scenarios
    python benchmarks/compaction.py --scenarios dedupe    # 1M records over 1k keys
    python benchmarks/compaction.py --scenarios throughput --log-mib 1024

Scenarios (each on a fresh log in a temporary directory on disk, through the storage layer, no
broker; the active segment is rolled first so everything is cleanable):

- dedupe: --records records (1,000,000) over --keys keys (1,000), --batch records per batch,
  --value-bytes per value; one cleaning; reports the records left and the time.
- throughput: a log of about --log-mib MiB (1,024) of --value-bytes (1,000) records over --keys
  keys; one cleaning, timed, in MB/s of log read (10^6 bytes); side by side in the same run,
  the baseline: a sequential read of every segment and write of a copy in
  log.cleaner.io.buffer.size chunks with an fsync per file (what a cleaning that keeps
  everything would cost at least), and a read-only pass over the same files (what a cleaning
  that keeps almost nothing, as here, cannot beat). The ratios cleaner / copy and cleaner /
  read are the figures to watch. The page cache is warm for all three (the log was just
  written); the copy and the read run before the cleaning.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from odradek.common.clock import SystemClock
from odradek.protocol import records
from odradek.storage.cleaner import Cleaner
from odradek.storage.cleaner_manager import CleanerConfig, log_to_clean
from odradek.storage.cleaner_offset_map import OffsetMap
from odradek.storage.fileio import OsFileIO
from odradek.storage.log import Log, LogConfig


def build_log(
    directory: Path, records_count: int, keys: int, batch: int, value_bytes: int, deadline: float
) -> Log:
    """A compacted log holding `records_count` records cycling over `keys` keys."""
    config = LogConfig(
        segment_bytes=256 * 1024 * 1024,
        cleanup_policy=("compact",),
        file_delete_delay_ms=0,
        segment_index_bytes=10 * 1024 * 1024,
    )
    log = Log.open(directory, config, fileio=OsFileIO(), clock=SystemClock())
    value = (b"0123456789abcdef" * (value_bytes // 16 + 1))[:value_bytes]
    now = int(time.time() * 1000)
    templates = []
    # distinct batches: batch i holds keys (i*batch + j) % keys
    distinct = max(1, keys // batch) if keys % batch == 0 else keys
    for i in range(min(distinct, 1000)):
        pairs = [(b"key-%06d" % ((i * batch + j) % keys), value, []) for j in range(batch)]
        templates.append(records.encode_batch(pairs, timestamp_ms=now))  # type: ignore[arg-type]
    written = 0
    i = 0
    while written < records_count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"building the log took too long ({written} records written)")
        log.append_as_leader(bytearray(templates[i % len(templates)]), leader_epoch=0)
        written += batch
        i += 1
    log.roll()
    log.flush()
    return log


def clean(log: Log, config: CleanerConfig) -> tuple[float, int, int, int]:
    """One cleaning; (seconds, bytes read, records kept, bytes after)."""
    offset_map = OffsetMap.for_buffer(config.dedupe_buffer_size, config.io_buffer_load_factor)
    cleaner = Cleaner(offset_map, config.io_buffer_size)
    now_ms = int(time.time() * 1000)
    chosen = log_to_clean((log.topic, log.partition), log, None, now_ms, log.log_end_offset)
    started = time.perf_counter()
    with log.cleaning_lock:
        result = cleaner.clean(
            log, chosen.first_dirty_offset, chosen.first_uncleanable_offset, now_ms
        )
    elapsed = time.perf_counter() - started
    log.delete_retired_files(now_ms + 1)
    return elapsed, result.stats.bytes_read, result.stats.records_retained, log.size_bytes


def copy_segments(directory: Path, target: Path, chunk: int) -> tuple[float, int]:
    """The baseline: read every .log file sequentially and write a copy; (seconds, bytes)."""
    target.mkdir(exist_ok=True)
    started = time.perf_counter()
    total = 0
    for source in sorted(directory.glob("*.log")):
        with source.open("rb") as reader, (target / source.name).open("wb") as writer:
            while block := reader.read(chunk):
                writer.write(block)
                total += len(block)
            writer.flush()
            os.fsync(writer.fileno())
    elapsed = time.perf_counter() - started
    shutil.rmtree(target)
    return elapsed, total


def read_segments(directory: Path, chunk: int) -> tuple[float, int]:
    """The second baseline: only read every .log file sequentially; (seconds, bytes)."""
    started = time.perf_counter()
    total = 0
    for source in sorted(directory.glob("*.log")):
        with source.open("rb") as reader:
            while block := reader.read(chunk):
                total += len(block)
    return time.perf_counter() - started, total


def count_records(log: Log) -> int:
    total = 0
    for segment in log.segments:
        for header, _ in segment.iter_batches():
            total += header.records_count
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="dedupe,throughput")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--log-mib", type=int, default=1024)
    parser.add_argument("--throughput-value-bytes", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None, help="where the logs go (tmp)")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="bound per scenario")
    parser.add_argument("--output", choices=("text", "json"), default="text")
    args = parser.parse_args()
    config = CleanerConfig()
    results: dict[str, dict[str, float | int]] = {}
    base = Path(tempfile.mkdtemp(prefix="odradek-compaction-", dir=args.dir))
    try:
        scenarios = args.scenarios.split(",")
        if "dedupe" in scenarios:
            directory = base / "dedupe-0"
            deadline = time.monotonic() + args.max_seconds
            log = build_log(
                directory, args.records, args.keys, args.batch, args.value_bytes, deadline
            )
            before = count_records(log)
            size_before = log.size_bytes
            elapsed, _, _, size_after = clean(log, config)
            results["dedupe"] = {
                "records_before": before,
                "records_after": count_records(log),
                "keys": args.keys,
                "bytes_before": size_before,
                "bytes_after": size_after,
                "seconds": round(elapsed, 2),
                "records_per_s": round(before / elapsed),
            }
            log.close()
        if "throughput" in scenarios:
            directory = base / "throughput-0"
            value_bytes = args.throughput_value_bytes
            per_record = value_bytes + 20  # key and record framing
            count = args.log_mib * 1024 * 1024 // per_record
            count -= count % args.batch
            deadline = time.monotonic() + args.max_seconds
            log = build_log(directory, count, args.keys, args.batch, value_bytes, deadline)
            size = log.size_bytes
            copy_s, copied = copy_segments(directory, base / "copy", config.io_buffer_size)
            read_s, _ = read_segments(directory, config.io_buffer_size)
            elapsed, read, _, _ = clean(log, config)
            results["throughput"] = {
                "log_bytes": size,
                "records": count,
                "records_after": count_records(log),
                "clean_seconds": round(elapsed, 2),
                "clean_mb_per_s": round(read / elapsed / 1e6, 1),
                "copy_seconds": round(copy_s, 2),
                "copy_mb_per_s": round(copied / copy_s / 1e6, 1),
                "ratio_clean_to_copy": round((read / elapsed) / (copied / copy_s), 3),
                "read_seconds": round(read_s, 2),
                "read_mb_per_s": round(copied / read_s / 1e6, 1),
                "ratio_clean_to_read": round((read / elapsed) / (copied / read_s), 3),
            }
            log.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if args.output == "json":
        print(json.dumps(results, indent=2))
    else:
        for name, values in results.items():
            print(f"{name}:")
            for key, value in values.items():
                print(f"  {key}: {value:,}" if isinstance(value, int) else f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
