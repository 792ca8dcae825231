"""Replicated throughput and partition failover of a three-broker cluster, over real processes.

Not a test: pytest never collects it and nothing asserts on timings. Three `odradek serve`
processes (broker,controller voters, min.insync.replicas 2) on 127.0.0.1.

Throughput: confluent-kafka produces N records of S bytes with acks=all (linger.ms=5,
batch.size=1 MiB) to a one-partition topic of replication factor 1 and then to one of
replication factor 3 led by the same broker, side by side in the same run: the ratio is what
replication costs (two followers fetching, each fsyncing what it fetched before its next fetch,
the leader answering once the ISR has it).

Failover: an idempotent acks=all producer sends one record every 5 ms to a one-partition topic
of replication factor 3; each round SIGKILLs the partition's leader and times, from the kill,
until the first record sent after the kill is acknowledged; the killed broker then restarts and
rejoins the ISR before the next round. The broker session timeout decides how soon the
controller fences the dead broker and elects a new leader: it is set to 2 s here (Kafka's
default is 9 s; `--session-timeout-ms`).

    python benchmarks/replication.py                  # 100 B and 1 KiB, 20 kills
    python benchmarks/replication.py --kills 5 --records 100000
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from raft_election import Node, free_port  # the same processes, started the same way

TIMEOUT_S = 60.0


class Cluster:
    def __init__(self, session_timeout_ms: int) -> None:
        ports = {i: free_port() for i in (1, 2, 3)}
        voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in ports.items())
        self.base = tempfile.mkdtemp(prefix="replication-bench-")
        overrides = {
            "cluster.id": "replication-bench-000000",
            "controller.quorum.voters": voters,
            "controller.quorum.election.timeout.ms": 500,
            "controller.quorum.fetch.timeout.ms": 1000,
            "broker.session.timeout.ms": session_timeout_ms,
            "broker.heartbeat.interval.ms": min(500, session_timeout_ms // 4),
            "min.insync.replicas": 2,
            "auto.create.topics.enable": "false",
            "log.retention.check.interval.ms": 3_600_000,
        }
        args: list[str] = []
        for key, value in overrides.items():
            args += ["--override", f"{key}={value}"]
        self.nodes = {
            i: Node(i, p, os.path.join(self.base, str(i)), args) for i, p in ports.items()
        }
        self.bootstrap = ",".join(f"127.0.0.1:{p}" for p in ports.values())

    def __enter__(self) -> Cluster:
        for node in self.nodes.values():
            node.start()
        self.wait(lambda: len(self.metadata().brokers) == 3, "three brokers registered")
        return self

    def __exit__(self, *_: Any) -> None:
        for node in self.nodes.values():
            node.kill()
        shutil.rmtree(self.base, ignore_errors=True)

    def admin(self) -> AdminClient:
        return AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 3})

    def metadata(self) -> Any:
        return self.admin().list_topics(timeout=10)

    def wait(self, check: Any, what: str) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except Exception:  # a broker is restarting: ask again
                pass
            time.sleep(0.05)
        raise TimeoutError(what)

    def create(self, name: str, assignment: list[int]) -> None:
        admin = self.admin()  # kept until the answer: a destroyed client fails its futures
        # the cluster's min.insync.replicas is 2: one replica alone could never take acks=all
        config = {"min.insync.replicas": str(min(2, len(assignment)))}
        topic = NewTopic(name, num_partitions=1, replica_assignment=[assignment], config=config)
        future = admin.create_topics([topic])
        future[name].result(timeout=TIMEOUT_S)
        self.wait(lambda: self.in_sync(name, len(assignment)), f"{name} in sync")

    def partition(self, name: str) -> Any:
        """The partition as some broker sees it (a restarted one may not know the topic
        yet: then ask again)."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            topic = self.metadata().topics.get(name)
            if topic is not None and 0 in topic.partitions:
                return topic.partitions[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} unknown")
            time.sleep(0.05)

    def in_sync(self, name: str, size: int) -> bool:
        partition = self.partition(name)
        return bool(partition.leader >= 0 and len(partition.isrs) >= size)


def produce_throughput(bootstrap: str, topic: str, records: int, size: int) -> float:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "batch.size": 1_048_576,
            "socket.nagle.disable": True,
            "log_level": 3,
        }
    )
    value = b"x" * size
    started = time.monotonic()
    for _ in range(records):
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.001)
        producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("records left unsent")
    return records / (time.monotonic() - started)


def failover(cluster: Cluster, kills: int) -> list[float]:
    topic = "failover"
    cluster.create(topic, [1, 2, 3])
    acknowledged: list[tuple[float, float]] = []  # (sent at, acknowledged at)
    stop = threading.Event()

    def run() -> None:
        producer = Producer(
            {
                "bootstrap.servers": cluster.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 0,
                "message.timeout.ms": 120_000,
                "log_level": 3,
            }
        )
        while not stop.is_set():
            sent = time.monotonic()
            producer.produce(
                topic,
                b"x",
                on_delivery=lambda err, _msg, sent=sent: (
                    err is None and acknowledged.append((sent, time.monotonic()))
                ),
            )
            producer.poll(0.005)
        producer.flush(120)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    times: list[float] = []
    try:
        for _ in range(kills):
            cluster.wait(lambda: cluster.in_sync(topic, 3), "partition in sync")
            leader = cluster.partition(topic).leader
            killed_at = time.monotonic()
            cluster.nodes[leader].kill()
            cluster.wait(
                lambda killed_at=killed_at: any(s > killed_at for s, _ in acknowledged[-200:]),
                "a produce after the kill",
            )
            first = min(a for s, a in acknowledged[-200:] if s > killed_at)
            times.append((first - killed_at) * 1000)
            cluster.nodes[leader].start()
    finally:
        stop.set()
        thread.join(150)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="records of 100 B")
    parser.add_argument("--kills", type=int, default=20, help="leader kills (20)")
    parser.add_argument("--session-timeout-ms", type=int, default=2000)
    args = parser.parse_args()
    with Cluster(args.session_timeout_ms) as cluster:
        for size, records in ((100, args.records), (1024, max(args.records // 4, 1))):
            rates = {}
            for replicas in ([1], [1, 2, 3]):
                topic = f"throughput-{size}-rf{len(replicas)}"
                cluster.create(topic, replicas)
                rates[len(replicas)] = produce_throughput(cluster.bootstrap, topic, records, size)
            print(
                f"{records} x {size} B acks=all, leader on broker 1:"
                f" RF 1 {rates[1]:,.0f} records/s ({rates[1] * size / 1e6:.1f} MB/s),"
                f" RF 3 {rates[3]:,.0f} records/s ({rates[3] * size / 1e6:.1f} MB/s),"
                f" ratio RF3/RF1 {rates[3] / rates[1]:.2f}"
            )
        times = failover(cluster, args.kills)
        print(
            f"failover, kill to first acknowledged produce ({len(times)} kills,"
            f" broker.session.timeout.ms={args.session_timeout_ms}):"
            f" median {statistics.median(times):.0f} ms, worst {max(times):.0f} ms,"
            f" best {min(times):.0f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
