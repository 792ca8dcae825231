"""What transactions cost on a Kafka-compatible broker, measured with confluent-kafka.

Not a test: nothing asserts on timings. Method and results are in docs/benchmarks.md.

    python benchmarks/transactions.py --spawn                     # start `odradek serve`
    python benchmarks/transactions.py --bootstrap 127.0.0.1:9092  # any running broker
    python benchmarks/transactions.py --spawn --cluster 3         # and a 3-broker cluster

With --cluster N the same scenarios run next against N broker processes (odradek.testing's
KafkaCluster: replication factor 3, min.insync.replicas 2, `__transaction_state` of RF 3), on
topics of replication factor 3 whose partitions are led by different brokers, so a transaction's
coordinator writes markers to partitions led elsewhere (WriteTxnMarkers) and the leaders verify
with the coordinator's broker; each cluster figure is given as a ratio to the single broker's.

Scenarios, all in one run against the same broker, so the ratios compare like with like:

- produce: --records records of --size bytes to a 3-partition topic, acks=all, by an
  idempotent producer (the baseline) and by a transactional one committing every
  --per-txn records (each size in turn); records/s and the ratio to the baseline. Each
  producer first sends one record (one transaction) untimed, so connections, metadata and
  the producer id are in place when the clock starts.
- commit: --commits small transactions in a row (one record to each of 2 partitions, then
  commit_transaction), the time of each commit: begin-to-committed latency p50/p99 and
  transactions/s. Every commit is InitProducerId-free but writes PrepareCommit, two markers
  and CompleteCommit, each fsync'd.
- copy: consume-transform-produce of --records records from a 3-partition topic into another
  with send_offsets_to_transaction every --copy-batch records, read_committed: records/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

sys.path.insert(0, str(Path(__file__).parent))
from perf import spawn_broker

PARTITIONS = 3
REPLICATION = {"factor": 1}  # 3 while a cluster is measured


def create_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(name, PARTITIONS, REPLICATION["factor"])
    admin.create_topics([topic])[name].result(30)
    if REPLICATION["factor"] > 1:
        time.sleep(1)  # every broker has the topic, its followers fetching


def produce(bootstrap: str, records: int, size: int, per_txn: int | None) -> float:
    """Records/s of one producer: idempotent when `per_txn` is None, else transactional."""
    topic = f"txn-bench-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "linger.ms": 5,
        "delivery.report.only.error": True,
    }
    if per_txn is not None:
        config["transactional.id"] = f"bench-{uuid.uuid4().hex[:8]}"
    producer = Producer(config)
    if per_txn is not None:
        producer.init_transactions(30)
        producer.begin_transaction()
    value = b"x" * size
    # warm up (connections, metadata, producer id) outside the timed part
    producer.produce(topic, value=value)
    if per_txn is not None:
        producer.commit_transaction(30)
    producer.flush(30)
    started = time.perf_counter()
    sent = 0
    while sent < records:
        batch = min(per_txn or records, records - sent)
        if per_txn is not None:
            producer.begin_transaction()
        for i in range(batch):
            while True:
                try:
                    producer.produce(topic, value=value, key=b"%d" % ((sent + i) % 1000))
                    break
                except BufferError:
                    producer.poll(0.01)
        if per_txn is not None:
            producer.commit_transaction(60)
        sent += batch
    producer.flush(60)
    return records / (time.perf_counter() - started)


def commits(bootstrap: str, count: int) -> dict[str, float]:
    topic = f"txn-commit-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "transactional.id": f"commit-{uuid.uuid4().hex[:8]}"}
    )
    producer.init_transactions(30)
    times: list[float] = []
    started = time.perf_counter()
    for _ in range(count):
        begin = time.perf_counter()
        producer.begin_transaction()
        producer.produce(topic, value=b"a", partition=0)
        producer.produce(topic, value=b"b", partition=1)
        producer.commit_transaction(30)
        times.append((time.perf_counter() - begin) * 1000)
    elapsed = time.perf_counter() - started
    times.sort()
    return {
        "transactions_per_s": count / elapsed,
        "p50_ms": statistics.median(times),
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))],
    }


def copy(bootstrap: str, records: int, batch: int) -> float:
    source = f"txn-src-{uuid.uuid4().hex[:8]}"
    target = f"txn-dst-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, source)
    create_topic(bootstrap, target)
    loader = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(records):
        while True:
            try:
                loader.produce(source, key=b"%d" % (i % 1000), value=b"v%d" % i)
                break
            except BufferError:
                loader.poll(0.01)
    loader.flush(60)
    group = f"copier-{uuid.uuid4().hex[:8]}"
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([source])
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": group, "linger.ms": 5})
    producer.init_transactions(30)
    copied = 0
    started = time.perf_counter()
    deadline = started + 300
    while copied < records and time.perf_counter() < deadline:
        messages = consumer.consume(batch, 1.0)
        messages = [m for m in messages if m.error() is None]
        if not messages:
            continue
        producer.begin_transaction()
        for message in messages:
            producer.produce(target, key=message.key(), value=message.value())
        positions = consumer.position(consumer.assignment())
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(60)
        copied += len(messages)
    elapsed = time.perf_counter() - started
    consumer.close()
    return copied / elapsed


def scenarios(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"records": args.records, "size": args.size}
    baseline = produce(bootstrap, args.records, args.size, None)
    produce_rows = [{"producer": "idempotent", "records_per_s": baseline, "ratio": 1.0}]
    for per_txn in args.per_txn:
        rate = produce(bootstrap, args.records, args.size, per_txn)
        produce_rows.append(
            {
                "producer": f"transactional, {per_txn} records per transaction",
                "records_per_s": rate,
                "ratio": rate / baseline,
            }
        )
    results["produce"] = produce_rows
    results["commit"] = commits(bootstrap, args.commits)
    results["copy_records_per_s"] = copy(bootstrap, args.records, args.copy_batch)
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    if args.bootstrap or args.spawn:
        broker = spawn_broker([]) if args.spawn else None
        try:
            bootstrap = broker.bootstrap if broker is not None else args.bootstrap
            results["broker"] = scenarios(bootstrap, args)
        finally:
            if broker is not None:
                broker.stop()
    if args.cluster:
        results["cluster"] = on_cluster(args)
        if "broker" in results:
            results["cluster_vs_broker"] = ratios(results["cluster"], results["broker"])
    return results


def on_cluster(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    from odradek.testing.cluster import KafkaCluster

    REPLICATION["factor"] = min(3, args.cluster)
    with (
        tempfile.TemporaryDirectory(prefix="txn-bench-cluster-") as root,
        KafkaCluster(Path(root), args.cluster) as cluster,
    ):
        return scenarios(cluster.bootstrap_servers, args)


def ratios(cluster: dict[str, Any], broker: dict[str, Any]) -> dict[str, float]:
    out = {
        row["producer"]: row["records_per_s"] / base["records_per_s"]
        for row, base in zip(cluster["produce"], broker["produce"], strict=True)
    }
    out["commits per s"] = (
        cluster["commit"]["transactions_per_s"] / broker["commit"]["transactions_per_s"]
    )
    out["copy records per s"] = cluster["copy_records_per_s"] / broker["copy_records_per_s"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--bootstrap", metavar="HOST:PORT", help="a running broker")
    where.add_argument("--spawn", action="store_true", help="start `odradek serve` and measure it")
    parser.add_argument(
        "--cluster", type=int, metavar="N", help="then start N broker processes and measure them"
    )
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--per-txn", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--copy-batch", type=int, default=500)
    args = parser.parse_args(argv)
    if not (args.bootstrap or args.spawn or args.cluster):
        parser.error("say what to measure: --bootstrap, --spawn and/or --cluster N")
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
