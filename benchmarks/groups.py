"""Consumer-group costs of a Kafka-compatible broker, measured with confluent-kafka.

Not a test: nothing asserts on timings. Method and results are in docs/benchmarks.md.

    python benchmarks/groups.py --spawn                     # start `odradek serve` and measure
    python benchmarks/groups.py --bootstrap 127.0.0.1:9092  # any running broker, Kafka included

Scenarios:

- join-1 / join-3: a fresh group of 1 or 3 consumers subscribes to a 6-partition topic; the
  time from subscribe() until every consumer has its assignment and the 6 partitions are
  covered. The broker's group.initial.rebalance.delay.ms counts here: --spawn sets it to 0
  (Kafka's default of 3 s would dominate), and a broker given with --bootstrap should too.
- rebalance: a stable group of 3 gets a 4th member; the time from its subscribe() until all 4
  hold a share again (range assignor, eager: everybody rejoins).
- join and rebalance run once per group protocol: `classic` (JoinGroup/SyncGroup, the client's
  range assignor) and `consumer` (KIP-848's ConsumerGroupHeartbeat, the broker's uniform
  assignor, incremental). Both heartbeat every 500 ms: the client's heartbeat.interval.ms for
  classic, the broker's group.consumer.heartbeat.interval.ms (set by --spawn) for consumer.
- commit-sync: one consumer commits one offset synchronously, --commits times in a row;
  commits/s and latency p50/p99 (every commit waits for its fsync on Odradek).
- load (--spawn only): --load-offsets offsets are committed for 100-partition batches of
  groups, the broker is stopped and started again, and the time from launch to the first
  answered OffsetFetch is measured (the coordinator replays __consumer_offsets at start-up).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

sys.path.insert(0, str(Path(__file__).parent))
from perf import spawn_broker

PARTITIONS = 6


PROTOCOLS = ("classic", "consumer")


def _consumer(bootstrap: str, group: str, protocol: str = "classic") -> Consumer:
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
    }
    if protocol == "classic":
        config.update(
            {
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 500,
                "partition.assignment.strategy": "range",
            }
        )
    else:  # timeouts and the assignor are the broker's under KIP-848
        config["group.protocol"] = "consumer"
    return Consumer(config)


def _create_topic(admin: AdminClient, name: str, partitions: int) -> None:
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)


def _wait_covered(consumers: list[Consumer], partitions: int, deadline: float) -> bool:
    """Poll every consumer until each holds a share and together they cover `partitions`."""
    while time.perf_counter() < deadline:
        for consumer in consumers:
            consumer.poll(0.005)
        shares = [consumer.assignment() for consumer in consumers]
        owned = [tp.partition for share in shares for tp in share]
        if all(shares) and sorted(owned) == list(range(partitions)):
            return True
    return False


def join(
    bootstrap: str, admin: AdminClient, members: int, runs: int, protocol: str
) -> dict[str, Any]:
    samples = []
    for _ in range(runs):
        topic = f"groups-join-{uuid.uuid4().hex[:8]}"
        _create_topic(admin, topic, PARTITIONS)
        group = f"g-{uuid.uuid4().hex[:8]}"
        consumers = [_consumer(bootstrap, group, protocol) for _ in range(members)]
        started = time.perf_counter()
        for consumer in consumers:
            consumer.subscribe([topic])
        done = _wait_covered(consumers, PARTITIONS, started + 60)
        elapsed = time.perf_counter() - started
        for consumer in consumers:
            consumer.close()
        if done:
            samples.append(elapsed * 1000)
    return _summary(f"join-{members}-{protocol}", samples, runs)


def rebalance(bootstrap: str, admin: AdminClient, runs: int, protocol: str) -> dict[str, Any]:
    samples = []
    for _ in range(runs):
        topic = f"groups-rebalance-{uuid.uuid4().hex[:8]}"
        _create_topic(admin, topic, PARTITIONS)
        group = f"g-{uuid.uuid4().hex[:8]}"
        consumers = [_consumer(bootstrap, group, protocol) for _ in range(3)]
        for consumer in consumers:
            consumer.subscribe([topic])
        if not _wait_covered(consumers, PARTITIONS, time.perf_counter() + 60):
            continue
        newcomer = _consumer(bootstrap, group, protocol)
        started = time.perf_counter()
        newcomer.subscribe([topic])
        done = _wait_covered([*consumers, newcomer], PARTITIONS, started + 60)
        elapsed = time.perf_counter() - started
        for consumer in [*consumers, newcomer]:
            consumer.close()
        if done:
            samples.append(elapsed * 1000)
    return _summary(f"rebalance-3-to-4-{protocol}", samples, runs)


def commit_sync(bootstrap: str, admin: AdminClient, commits: int) -> dict[str, Any]:
    topic = f"groups-commit-{uuid.uuid4().hex[:8]}"
    _create_topic(admin, topic, 1)
    consumer = _consumer(bootstrap, f"g-{uuid.uuid4().hex[:8]}")
    consumer.assign([TopicPartition(topic, 0, 0)])
    consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)  # warm-up
    latencies = []
    started = time.perf_counter()
    for offset in range(1, commits + 1):
        sent = time.perf_counter()
        consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
        latencies.append((time.perf_counter() - sent) * 1000)
    elapsed = time.perf_counter() - started
    consumer.close()
    latencies.sort()
    return {
        "scenario": "commit-sync",
        "commits": commits,
        "commits_per_s": round(commits / elapsed),
        "p50_ms": round(latencies[len(latencies) // 2], 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)], 3),
    }


def load(serve_args: list[str], offsets: int) -> dict[str, Any]:
    broker = spawn_broker(serve_args)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic = "groups-load"
    _create_topic(admin, topic, 100)
    groups = max(offsets // 100, 1)
    for index in range(groups):
        partitions = [TopicPartition(topic, p, index + p) for p in range(100)]
        futures = admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(f"load-{index}", partitions)]
        )
        for future in futures.values():
            future.result(timeout=30)
    data_dir = broker.data_dir
    del admin
    broker.process.terminate()
    broker.process.wait(timeout=30)
    launched = time.perf_counter()
    restarted = spawn_broker([*serve_args, "--data-dir", data_dir])  # the last --data-dir wins
    try:
        consumer = _consumer(restarted.bootstrap, f"load-{groups - 1}")
        committed = consumer.committed([TopicPartition(topic, 0)], timeout=60)
        answered = time.perf_counter()
        consumer.close()
    finally:
        restarted.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "scenario": "load",
        "offset_records": groups * 100,
        "groups": groups,
        "start_to_metadata_ms": round(restarted.cold_start_ms, 1),
        "start_to_offset_fetch_ms": round((answered - launched) * 1000, 1),
        "check": committed[0].offset == groups - 1,
    }


def _summary(name: str, samples: list[float], runs: int) -> dict[str, Any]:
    return {
        "scenario": name,
        "runs": runs,
        "completed": len(samples),
        "median_ms": round(statistics.median(samples), 1) if samples else None,
        "min_ms": round(min(samples), 1) if samples else None,
        "max_ms": round(max(samples), 1) if samples else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bootstrap", metavar="HOST:PORT", help="a running broker")
    where.add_argument("--spawn", action="store_true", help="start `odradek serve` and measure it")
    parser.add_argument("--runs", type=int, default=5, help="runs of each group scenario (5)")
    parser.add_argument("--commits", type=int, default=2000, help="synchronous commits (2000)")
    parser.add_argument("--load-offsets", type=int, default=100_000, help="offsets for load")
    parser.add_argument(
        "--protocols",
        nargs="+",
        choices=PROTOCOLS,
        default=list(PROTOCOLS),
        help="group protocols for join and rebalance (both)",
    )
    parser.add_argument("--output", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    serve_args = [
        "--override",
        "group.initial.rebalance.delay.ms=0",
        "--override",
        "group.consumer.heartbeat.interval.ms=500",
    ]
    broker = spawn_broker(serve_args) if args.spawn else None
    bootstrap = broker.bootstrap if broker is not None else args.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    results = []
    try:
        for protocol in args.protocols:
            results.append(join(bootstrap, admin, 1, args.runs, protocol))
            results.append(join(bootstrap, admin, 3, args.runs, protocol))
            results.append(rebalance(bootstrap, admin, args.runs, protocol))
        results.append(commit_sync(bootstrap, admin, args.commits))
    finally:
        del admin  # destroyed before its broker goes, or librdkafka logs the refused reconnects
        if broker is not None:
            broker.stop()
    if args.spawn:
        results.append(load(serve_args, args.load_offsets))
    if args.output == "json":
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            print("  ".join(f"{key}={value}" for key, value in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
