"""`kafka_cluster`: three real broker processes forming one replicated cluster, as a user's test
gets them.

- The fixture's nodes list each other on every node; a topic created without a replication
  factor gets three replicas, and so does `__consumer_offsets`; `leader_of` / `isr_of` /
  `replicas_of` say what a client's Metadata says; a record produced with acks=all is read
  back.
- `kafka_cluster_factory` makes other shapes: two nodes of which one is a controller get a
  replication factor of 2 and node 1 as the only possible active controller.
- A killed leader's partitions get another leader from the ISR; restarted, the broker rejoins
  and the cluster is healthy again (`wait_healthy`: every replica back in sync).
- A broker paused (SIGSTOP) for longer than its session is fenced: it drops out of Metadata
  and its leaderships move; resumed, it is listed again and back in every ISR. Negative
  control: with a session longer than the pause, the paused broker stays listed, so the
  check sees fencing.
- Teardown kills every process the cluster started, restarted and paused ones included.
- The plan (no process): voters, roles, one cluster id, shared and per-node settings, the
  replication defaults; bad shapes are refused. A port taken by another process between the
  plan and the start: the cluster is planned again on other ports.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

import odradek.testing.forkserver  # noqa: F401  # one fork server, shared with pytester runs
from odradek.testing import KafkaCluster, wait_until

pytestmark = pytest.mark.timeout(120)

NODES = {1, 2, 3}


def produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for i in range(count):
        producer.produce(topic, key=b"k%d" % i, value=b"v%d" % i)
    assert producer.flush(30) == 0


def read(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(values) < count and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                values.append(message.value())
    finally:
        consumer.close()
    return values


def test_three_nodes_list_each_other_and_replicate_by_default(kafka_cluster: KafkaCluster) -> None:
    cluster = kafka_cluster
    assert set(cluster.brokers) == NODES
    for node_id in NODES:
        assert cluster.metadata(node_id).brokers == NODES
    assert cluster.active_controller() in NODES
    assert len(cluster.bootstrap_servers.split(",")) == 3

    # created by a client that names no replication factor: the cluster's default, 3
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_servers})
    admin.create_topics([NewTopic("orders", 3)])["orders"].result(15)
    cluster.wait_for_isr("orders", 3)

    def client_view() -> dict[int, tuple[int, set[int], list[int]]]:
        topic = admin.list_topics("orders", timeout=10).topics["orders"]
        return {i: (p.leader, set(p.isrs), list(p.replicas)) for i, p in topic.partitions.items()}

    ours = {
        p: (
            cluster.leader_of("orders", p),
            cluster.isr_of("orders", p),
            cluster.replicas_of("orders", p),
        )
        for p in range(3)
    }
    assert all(len(replicas) == 3 and isr == NODES for _, isr, replicas in ours.values())
    assert {leader for leader, _, _ in ours.values()} == NODES  # striped over the three
    wait_until(lambda: client_view() == ours, timeout=10)

    produce(cluster.bootstrap_servers, "orders", 30)
    assert sorted(read(cluster.bootstrap_servers, "orders", 30)) == sorted(
        b"v%d" % i for i in range(30)
    )
    # the consumer's group created the offsets topic: three replicas as well
    assert len(cluster.replicas_of("__consumer_offsets", 0)) == 3


def test_the_factory_makes_other_shapes(
    kafka_cluster_factory: Callable[..., KafkaCluster],
) -> None:
    cluster = kafka_cluster_factory(2, controllers=1)
    assert [b.roles for b in cluster.brokers.values()] == ["broker,controller", "broker"]
    assert cluster.active_controller() == 1
    cluster.create_topic("pairs", partitions=2)
    assert all(len(cluster.replicas_of("pairs", p)) == 2 for p in range(2))
    assert cluster.metadata(2).brokers == {1, 2}


def test_a_killed_broker_is_replaced_then_rejoins(kafka_cluster: KafkaCluster) -> None:
    cluster = kafka_cluster
    cluster.create_topic("orders", partitions=3)
    victim = cluster.leader_of("orders", 0)
    before = cluster.partition("orders", 0)

    cluster.brokers[victim].kill()
    survivors = NODES - {victim}
    cluster.wait_for_brokers(survivors)
    after = cluster.partition("orders", 0)
    assert after.leader in survivors
    assert after.leader_epoch > before.leader_epoch
    assert victim not in after.isr

    cluster.brokers[victim].restart()
    cluster.wait_healthy()
    assert cluster.isr_of("orders", 0) == NODES


@pytest.mark.parametrize(
    ("session_timeout_ms", "fenced"),
    [(2000, True), (60_000, False)],
    ids=["fenced", "negative-control-long-session"],
)
def test_a_paused_broker_is_fenced_then_comes_back(
    kafka_cluster_factory: Callable[..., KafkaCluster], session_timeout_ms: int, fenced: bool
) -> None:
    cluster = kafka_cluster_factory(overrides={"broker.session.timeout.ms": session_timeout_ms})
    cluster.create_topic("orders", partitions=3)
    controller = cluster.active_controller()
    victim = next(i for i in sorted(NODES) if i != controller)
    led = [p for p in range(3) if cluster.leader_of("orders", p) == victim]
    assert led

    cluster.brokers[victim].pause()
    if fenced:
        cluster.wait_for_brokers(NODES - {victim})
        assert all(cluster.leader_of("orders", p) != victim for p in led)
    else:
        time.sleep(3 * 2000 / 1000)  # three times the fencing case's session: it would be gone
        assert cluster.metadata(controller).brokers == NODES
    cluster.brokers[victim].resume()
    cluster.wait_for_brokers(NODES)
    cluster.wait_healthy()  # back in every ISR


def test_teardown_leaves_no_process(pytester: pytest.Pytester) -> None:
    pids_file = pytester.path / "pids"
    pytester.makepyfile(
        f"""
        def test_uses_a_cluster(kafka_cluster):
            kafka_cluster.brokers[1].kill()
            kafka_cluster.brokers[1].start()  # a second process for node 1
            kafka_cluster.brokers[2].pause()  # left paused
            with open({str(pids_file)!r}, "w") as out:
                out.write(" ".join(map(str, kafka_cluster.pids)))
        """
    )
    result = pytester.runpytest_inprocess("-p", "odradek.testing.plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    pids = [int(p) for p in pids_file.read_text().split()]
    assert len(pids) == 4
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_the_plan_of_a_cluster(tmp_path: Path) -> None:
    cluster = KafkaCluster(
        tmp_path,
        5,
        controllers=3,
        overrides={"num.partitions": 6},
        node_overrides={2: {"broker.rack": "b", "num.partitions": 2}},
    )
    assert [b.roles for b in cluster.brokers.values()] == ["broker,controller"] * 3 + ["broker"] * 2
    voters = cluster.controller_quorum_voters.split(",")
    assert voters == [f"{i}@127.0.0.1:{cluster.brokers[i].port}" for i in (1, 2, 3)]
    assert len({b.port for b in cluster.brokers.values()}) == 5
    settings = {i: b.overrides for i, b in cluster.brokers.items()}
    assert {s["cluster.id"] for s in settings.values()} == {cluster.cluster_id}
    assert [s["node.id"] for s in settings.values()] == ["1", "2", "3", "4", "5"]
    assert {s["controller.quorum.voters"] for s in settings.values()} == {
        cluster.controller_quorum_voters
    }
    assert settings[1]["num.partitions"] == "6" and settings[2]["num.partitions"] == "2"
    assert settings[2]["broker.rack"] == "b" and "broker.rack" not in settings[1]
    for key in ("default.replication.factor", "offsets.topic.replication.factor"):
        assert settings[4][key] == "3"
    assert settings[4]["min.insync.replicas"] == "2"
    single = KafkaCluster(tmp_path / "one", 1).brokers[1].overrides
    assert single["default.replication.factor"] == "1" and single["min.insync.replicas"] == "1"

    for bad in (
        {"nodes": 0},
        {"controllers": [4]},
        {"replication_factor": 4},
        {"min_insync_replicas": 4},
        {"node_overrides": {7: {}}},
    ):
        with pytest.raises(ValueError):
            KafkaCluster(tmp_path / "bad", **bad)  # type: ignore[arg-type]


def test_a_port_taken_before_the_start_is_replaced(tmp_path: Path) -> None:
    cluster = KafkaCluster(tmp_path)
    taken = cluster.brokers[2].port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        with cluster:
            assert taken not in {b.port for b in cluster.brokers.values()}
            assert cluster.metadata(2).brokers == NODES
        assert len(cluster.pids) == 6  # the first three were given up
    assert not any(b.running for b in cluster.brokers.values())
