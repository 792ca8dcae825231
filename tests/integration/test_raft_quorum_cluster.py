"""Three `odradek serve` processes forming a KRaft metadata quorum over real sockets and files.

Each node has its own port and data dir and names all three in `--controller-quorum-voters`;
a fourth node with `process.roles=broker` follows the quorum as an observer. Every node writes a
snapshot after each commit (`metadata.log.max.record.bytes.between.snapshots=1`) and the leader
deletes the log before it, so a node that was away catches up through FetchSnapshot.
What a user would check: DescribeQuorum (a raw kio request) shows one leader and every voter
caught up; a CreateTopics sent to the leader shows in every node's Metadata; after SIGKILL of
the leader a new one is elected and takes more topics; the old leader restarts and catches up
with nothing committed lost; killing one of three voters, or all of them at once, loses
nothing. Negative control: with two of three voters down the leader cannot commit, so
CreateTopics fails.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from cluster_processes import free_port, raw
from odradek.metadata.raft import wire
from odradek.metadata.raft.messages import DescribeQuorumRequest, DescribeQuorumResponse

VOTERS = (1, 2, 3)


TIMEOUT_S = 30.0
QUORUM_OVERRIDES = {
    "cluster.id": "raft-test-cluster-0000",
    "controller.quorum.election.timeout.ms": 500,
    "controller.quorum.fetch.timeout.ms": 1000,
    "auto.create.topics.enable": "false",
    "metadata.log.max.record.bytes.between.snapshots": 1,
}
OBSERVER = 4


def describe_quorum(port: int) -> DescribeQuorumResponse | None:
    """DescribeQuorum v1 over a plain socket; None when the node does not answer."""
    try:
        response = raw(port, wire.to_kio(DescribeQuorumRequest(), 1))
    except OSError:
        return None
    described = wire.from_kio(response)
    assert isinstance(described, DescribeQuorumResponse)
    return described


def topics_of(node: Any) -> set[str]:
    metadata = AdminClient({"bootstrap.servers": node.bootstrap}).list_topics(timeout=10)
    return {name for name in metadata.topics if not name.startswith("__")}


class Cluster:
    def __init__(self, make: Callable[..., Any]) -> None:
        ports = {node_id: free_port() for node_id in VOTERS}
        voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in ports.items())
        self.nodes = {
            node_id: make(
                {**QUORUM_OVERRIDES, "node.id": node_id, "controller.quorum.voters": voters},
                port=port,
            )
            for node_id, port in ports.items()
        }
        self.nodes[OBSERVER] = make(
            {
                **QUORUM_OVERRIDES,
                "node.id": OBSERVER,
                "process.roles": "broker",
                "controller.quorum.voters": voters,
            }
        )

    def running(self) -> dict[int, Any]:
        return {i: b for i, b in self.nodes.items() if b.running}

    def leader(self, *, newer_than: int = -1) -> tuple[int, DescribeQuorumResponse]:
        """The one node that answers DescribeQuorum as leader, in an epoch above
        `newer_than`, with every running voter and observer caught up to its high watermark
        and every other running node naming it."""
        deadline = time.monotonic() + TIMEOUT_S
        last: Any = None
        while time.monotonic() < deadline:
            answers = {i: describe_quorum(b.port) for i, b in self.running().items()}
            leaders = {i: a for i, a in answers.items() if a is not None and a.error_code == 0}
            if len(leaders) == 1:
                ((leader_id, described),) = leaders.items()
                caught_up = {
                    v.replica_id
                    for v in described.current_voters + described.observers
                    if v.log_end_offset >= described.high_watermark > 0
                }
                others_agree = all(
                    a is not None and a.leader_id == leader_id
                    for i, a in answers.items()
                    if i != leader_id
                )
                if (
                    described.leader_epoch > newer_than
                    and caught_up >= set(self.running())
                    and others_agree
                ):
                    assert described.leader_id == leader_id
                    assert {v.replica_id for v in described.current_voters} == set(VOTERS)
                    return leader_id, described
            last = answers
            time.sleep(0.1)
        raise AssertionError(f"no caught-up leader: {last}")

    def wait_topics(self, expected: set[str]) -> None:
        deadline = time.monotonic() + TIMEOUT_S
        seen: dict[int, set[str]] = {}
        while time.monotonic() < deadline:
            seen = {i: topics_of(b) for i, b in self.running().items()}
            if all(names >= expected for names in seen.values()):
                return
            time.sleep(0.1)
        raise AssertionError(f"expected {expected} on every node, saw {seen}")


def create_topics(node: Any, *names: str) -> None:
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=1, replication_factor=1) for n in names], request_timeout=15
    )
    for future in futures.values():
        future.result(timeout=20)


@pytest.fixture
def cluster(unstarted_broker: Callable[..., Any]) -> Cluster:
    c = Cluster(unstarted_broker)
    for node in c.nodes.values():
        node.start()
    return c


def test_three_voters_replicate_metadata_and_survive_the_leader_s_death(cluster: Cluster) -> None:
    leader_id, described = cluster.leader()
    for node_id, node in cluster.nodes.items():
        if node_id != leader_id:
            answer = describe_quorum(node.port)
            assert answer is not None and answer.error_code != 0  # NOT_LEADER_OR_FOLLOWER

    # `odradek metadata-quorum describe` finds the leader among all the nodes given to it
    bootstrap = ",".join(f"127.0.0.1:{node.port}" for node in cluster.nodes.values())
    command = ["metadata-quorum", "describe", "--replication", "--output", "json"]
    proc = subprocess.run(
        [sys.executable, "-m", "odradek", *command, "--bootstrap-server", bootstrap],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {row["node_id"]: row["status"] for row in json.loads(proc.stdout)["replication"]}
    assert rows[leader_id] == "Leader"
    assert sorted(rows.values()).count("Follower") == len(VOTERS) - 1
    assert "Observer" in rows.values()

    first = {"orders", "payments", "audit"}
    create_topics(cluster.nodes[leader_id], *sorted(first))
    cluster.wait_topics(first)

    old_leader = cluster.nodes[leader_id]
    old_leader.kill()  # SIGKILL: no resignation, no flush beyond what was fsync'd
    new_leader_id, after = cluster.leader(newer_than=described.leader_epoch)
    assert new_leader_id != leader_id
    second = {"invoices", "shipments"}
    create_topics(cluster.nodes[new_leader_id], *sorted(second))
    cluster.wait_topics(first | second)

    old_leader.restart()
    cluster.leader(newer_than=after.leader_epoch - 1)  # all three caught up again
    cluster.wait_topics(first | second)

    # Any one voter down: the other two still commit, and it catches up on return.
    follower_id = next(i for i in VOTERS if i != new_leader_id)
    follower = cluster.nodes[follower_id]
    follower.kill()
    current_id, _ = cluster.leader()
    create_topics(cluster.nodes[current_id], "returns")
    follower.restart()
    cluster.wait_topics(first | second | {"returns"})

    # Every node SIGKILLed at once: what was committed was fsync'd by a majority first.
    for node in cluster.nodes.values():
        node.kill()
    for node in cluster.nodes.values():
        node.restart()
    cluster.leader()
    cluster.wait_topics(first | second | {"returns"})


def test_a_leader_without_a_majority_cannot_commit(cluster: Cluster) -> None:
    leader_id, _ = cluster.leader()
    for node_id, node in cluster.nodes.items():
        if node_id != leader_id:
            node.kill()
    with pytest.raises(KafkaException):
        create_topics(cluster.nodes[leader_id], "never-committed")
    assert "never-committed" not in topics_of(cluster.nodes[leader_id])
