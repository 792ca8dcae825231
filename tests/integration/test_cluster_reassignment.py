"""Partition reassignment on a cluster of three `odradek serve` processes (broker,controller)
and a fourth that is only a broker (process.roles=broker, node id 4, naming the three voters),
over real sockets.

- The broker-only node forwards the reassignment requests to the active controller.
- With broker 4 stopped (still registered, fenced: the reassignment cannot complete),
  AlterPartitionReassignments moves a partition of replicas R to [4] + R[:2]:
  ListPartitionReassignments on any node shows it in progress with replicas [4] + R, adding
  [4], removing [R[2]]; so do `odradek partitions reassign --list` and `--verify`. A second
  `--execute` is refused while it is in progress. `--cancel` puts the replicas back to R and
  the listing is empty; cancelling again is NO_REASSIGNMENT_IN_PROGRESS (raw) and "None of the
  specified partition reassignments are active." (CLI).
- Bad input: duplicate brokers, unregistered brokers and an empty replica list are
  INVALID_REPLICA_ASSIGNMENT, an unknown topic or partition UNKNOWN_TOPIC_OR_PARTITION, a
  replica-count change with allow_replication_factor_change=false INVALID_REPLICATION_FACTOR,
  each for its own partition while a valid one in the same request goes ahead. The CLI refuses
  bad plans before sending them (exit 2, kafka-reassign-partitions.sh's messages), reports the
  controller's refusals (exit 1), and runs a good plan (printing the rollback plan first).
  `--generate` proposes a plan over the brokers listed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from election_requests import elect, ongoing, partitions_cli, reassign

from cluster_processes import (
    SESSION_TIMEOUT_MS,
    VOTERS,
    active_controller,
    create_topic_raw,
    listed_brokers,
    partitions_of,
    start_cluster,
    wait_until,
)

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REPLICATION_FACTOR = 38
INVALID_REPLICA_ASSIGNMENT = 39
ELECTION_NOT_NEEDED = 84
NO_REASSIGNMENT_IN_PROGRESS = 85


def replicas_of(port: int, topic: str, partition: int = 0) -> list[int]:
    return [int(r) for r in partitions_of(port, topic)[partition].replica_nodes]


def plan_file(directory: Path, name: str, partitions: list[dict[str, Any]]) -> str:
    path = directory / name
    path.write_text(json.dumps({"version": 1, "partitions": partitions}), encoding="utf-8")
    return str(path)


def start_broker_four(unstarted_broker: Callable[..., Any], nodes: dict[int, Any]) -> None:
    voters = ",".join(f"{i}@127.0.0.1:{nodes[i].port}" for i in VOTERS)
    nodes[4] = unstarted_broker(
        {
            "cluster.id": "controller-test-cluster-000",
            "node.id": 4,
            "process.roles": "broker",
            "controller.quorum.voters": voters,
            "controller.quorum.fetch.timeout.ms": 1000,
            "broker.session.timeout.ms": SESSION_TIMEOUT_MS,
            "broker.heartbeat.interval.ms": 200,
            "auto.create.topics.enable": "false",
        }
    )
    nodes[4].start()
    wait_until(
        lambda: all(listed_brokers(n.port) == {1, 2, 3, 4} for n in nodes.values()),
        "broker 4 registered and listed everywhere",
    )


def test_reassignment_in_progress_listed_and_cancelled(
    unstarted_broker: Callable[..., Any], tmp_path: Path
) -> None:
    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS)
    controller = active_controller(nodes)
    # created before broker 4 joins, so that it holds no replica of it
    assert create_topic_raw(nodes[controller].port, "moving", partitions=1, replication=3) == 0
    start_broker_four(unstarted_broker, nodes)
    broker_only = nodes[4].port
    wait_until(lambda: len(replicas_of(broker_only, "moving")) == 3, "broker 4 sees the topic")
    before = replicas_of(broker_only, "moving")
    assert 4 not in before
    target = [4, *before[:2]]
    # the broker-only node forwards the reassignment requests to the active controller
    assert ongoing(broker_only) == {}
    assert reassign(broker_only, {("moving", 0): [4, 4, 1]})[1][("moving", 0)][0] == (
        INVALID_REPLICA_ASSIGNMENT
    )
    # Broker 4 stops (controlled shutdown: still registered, fenced), so a reassignment
    # adding it stays in progress however fast replicas catch up.
    assert nodes[4].stop() == 0
    del nodes[4]
    port = nodes[next(i for i in VOTERS if i != controller)].port

    assert reassign(port, {("moving", 0): target}) == (0, {("moving", 0): (NONE, None)})
    expected = (tuple([4, *before]), (4,), (before[2],))
    for node in nodes.values():
        assert ongoing(node.port) == {("moving", 0): expected}
        assert ongoing(node.port, {"moving": [0, 3], "no-such-topic": [0]}) == {
            ("moving", 0): expected
        }
    wait_until(lambda: replicas_of(port, "moving") == [4, *before], "Metadata shows all replicas")

    listed = partitions_cli(port, "reassign", "--list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == (
        "Current partition reassignments:\n"
        f"moving-0: replicas: {','.join(map(str, [4, *before]))}. adding: 4."
        f" removing: {before[2]}.\n"
    )
    as_json = partitions_cli(port, "reassign", "--list", "--output", "json")
    assert json.loads(as_json.stdout) == {
        "reassignments": [
            {
                "topic": "moving",
                "partition": 0,
                "replicas": [4, *before],
                "adding_replicas": [4],
                "removing_replicas": [before[2]],
            }
        ]
    }
    plan = plan_file(
        tmp_path, "plan.json", [{"topic": "moving", "partition": 0, "replicas": target}]
    )
    verified = partitions_cli(port, "reassign", "--verify", "--plan", plan)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout == (
        "Status of partition reassignment:\n"
        "Reassignment of partition moving-0 is still in progress.\n"
    )
    again = partitions_cli(port, "reassign", "--execute", "--plan", plan)
    assert again.returncode == 1
    assert again.stderr.startswith(
        "odradek partitions: error: Cannot execute because there is an existing partition"
        " assignment."
    )

    cancelled = partitions_cli(port, "reassign", "--cancel", "--plan", plan)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == "Successfully cancelled partition reassignment for: moving-0\n"
    assert ongoing(nodes[controller].port) == {}
    wait_until(lambda: replicas_of(port, "moving") == before, "the replicas reverted")
    assert reassign(port, {("moving", 0): None})[1][("moving", 0)][0] == (
        NO_REASSIGNMENT_IN_PROGRESS
    )
    nothing = partitions_cli(port, "reassign", "--cancel", "--plan", plan)
    assert nothing.returncode == 0, nothing.stderr
    assert nothing.stdout == "None of the specified partition reassignments are active.\n"
    none_listed = partitions_cli(port, "reassign", "--list")
    assert none_listed.stdout == "No partition reassignments found.\n"

    # the CLI checks the brokers of a plan against Metadata, as kafka-reassign-partitions.sh
    # does: a fenced broker is not there
    fenced = partitions_cli(port, "reassign", "--execute", "--plan", plan)
    assert fenced.returncode == 2
    assert fenced.stderr == "odradek partitions: error: Unknown broker id 4\n"


def test_bad_reassignments_get_kafka_s_errors(
    unstarted_broker: Callable[..., Any], tmp_path: Path
) -> None:
    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS)
    controller = active_controller(nodes)
    port = nodes[next(i for i in VOTERS if i != controller)].port
    assert create_topic_raw(port, "bad", partitions=2, replication=2) == 0
    current = replicas_of(port, "bad", 1)
    reordered = list(reversed(current))

    top, answers = reassign(
        port,
        {
            ("bad", 0): [1, 1, 2],
            ("bad", 1): reordered,  # valid: goes ahead beside the refused ones
            ("bad", 7): [1, 2],
            ("no-such-topic", 0): [1, 2],
        },
    )
    assert top == NONE
    assert answers[("bad", 0)] == (
        INVALID_REPLICA_ASSIGNMENT,
        "The manual partition assignment includes the broker 1 more than once.",
    )
    assert answers[("bad", 1)] == (NONE, None)
    assert answers[("bad", 7)][0] == UNKNOWN_TOPIC_OR_PARTITION
    assert answers[("no-such-topic", 0)][0] == UNKNOWN_TOPIC_OR_PARTITION
    wait_until(lambda: replicas_of(port, "bad", 1) == reordered, "the valid one applied")

    assert reassign(port, {("bad", 0): [1, 9]})[1][("bad", 0)] == (
        INVALID_REPLICA_ASSIGNMENT,
        "The manual partition assignment includes broker 9, but no such broker is registered.",
    )
    assert reassign(port, {("bad", 0): []})[1][("bad", 0)] == (
        INVALID_REPLICA_ASSIGNMENT,
        "The manual partition assignment includes an empty replica list.",
    )
    assert reassign(port, {("bad", 0): [1, 2, 3]}, allow_replication_factor_change=False)[1][
        ("bad", 0)
    ] == (INVALID_REPLICATION_FACTOR, "The replication factor is changed from 2 to 3")
    assert reassign(port, {("bad", 0): None})[1][("bad", 0)][0] == NO_REASSIGNMENT_IN_PROGRESS
    assert ongoing(port) == {}  # nothing was started by any of them

    def refused(partitions: list[dict[str, Any]], code: int, *extra: str) -> str:
        plan = plan_file(tmp_path, "bad.json", partitions)
        done = partitions_cli(port, "reassign", "--execute", "--plan", plan, *extra)
        assert done.returncode == code, (done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        return done.stderr.removeprefix("odradek partitions: error: ").strip()

    assert refused([{"topic": "bad", "partition": 0, "replicas": [1, 1]}], 2) == (
        "Partition replica lists may not contain duplicate entries:"
        " bad-0 contains multiple entries for 1"
    )
    assert refused([{"topic": "bad", "partition": 0, "replicas": []}], 2) == (
        "Partition replica list cannot be empty"
    )
    assert refused([], 2) == "Partition reassignment list cannot be empty"
    assert refused([{"topic": "bad", "partition": 0, "replicas": [1, 9]}], 2) == (
        "Unknown broker id 9"
    )
    assert refused(
        [
            {"topic": "bad", "partition": 0, "replicas": [1, 2]},
            {"topic": "bad", "partition": 0, "replicas": [2, 3]},
        ],
        2,
    ) == ("Partition reassignment contains duplicate topic partitions: bad-0")
    assert refused([{"topic": "nope", "partition": 0, "replicas": [1, 2]}], 1) == (
        "Error reassigning partition(s): nope-0: Unable to find a topic named nope."
        " (UNKNOWN_TOPIC_OR_PARTITION)"
    )
    assert refused(
        [{"topic": "bad", "partition": 0, "replicas": [1, 2, 3]}],
        1,
        "--disallow-replication-factor-change",
    ) == (
        "Error reassigning partition(s): bad-0: The replication factor is changed from 2 to 3"
        " (INVALID_REPLICATION_FACTOR)"
    )
    # a plan the controller takes: it prints the current assignment (to roll back) first
    swap = plan_file(tmp_path, "swap.json", [{"topic": "bad", "partition": 1, "replicas": current}])
    started = partitions_cli(port, "reassign", "--execute", "--plan", swap)
    assert started.returncode == 0, started.stderr
    rollback = started.stdout.split("\n\n")[1]
    assert json.loads(rollback) == {
        "version": 1,
        "partitions": [
            {"topic": "bad", "partition": 1, "replicas": reordered, "log_dirs": ["any"] * 2}
        ],
    }
    assert started.stdout.endswith("Successfully started partition reassignment for bad-1\n")
    wait_until(lambda: replicas_of(port, "bad", 1) == current, "the plan applied")
    verified = partitions_cli(port, "reassign", "--verify", "--plan", swap)
    assert verified.stdout.endswith("Reassignment of partition bad-1 is completed.\n")
    not_json = tmp_path / "not.json"
    not_json.write_text("{version: 1", encoding="utf-8")
    garbled = partitions_cli(port, "reassign", "--execute", "--plan", str(not_json))
    assert garbled.returncode == 2 and "not valid JSON" in garbled.stderr
    no_plan = partitions_cli(port, "reassign", "--execute")
    assert no_plan.returncode == 2 and "--execute needs --plan FILE" in no_plan.stderr
    misplaced = partitions_cli(port, "reassign", "--list", "--topics", "bad")
    assert misplaced.returncode == 2
    assert 'Option "--topics" can\'t be used with action "--list"' in misplaced.stderr
    assert ongoing(port) == {}

    # --generate: a plan over the brokers listed, each partition on distinct brokers of it
    generated = partitions_cli(
        port, "reassign", "--generate", "--topics", "bad", "--broker-list", "2,3"
    )
    assert generated.returncode == 0, generated.stderr
    current_text, proposed_text = generated.stdout.split("\n\n")
    assert current_text.startswith("Current partition replica assignment\n")
    assert proposed_text.startswith("Proposed partition reassignment configuration\n")
    proposed = json.loads(proposed_text.splitlines()[1])
    assert proposed["version"] == 1
    assert [(p["topic"], p["partition"]) for p in proposed["partitions"]] == [
        ("bad", 0),
        ("bad", 1),
    ]
    for p in proposed["partitions"]:
        assert sorted(p["replicas"]) == [2, 3]
    for args, message in (
        (("--broker-list", "1,1,2"), "Broker list contains duplicate entries: 1"),
        (("--broker-list", "1,9"), "Unknown broker id 9"),
        (("--broker-list", "1"), "only 1 broker(s) are registered"),
    ):
        bad = partitions_cli(port, "reassign", "--generate", "--topics", "bad", *args)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
    unknown = partitions_cli(
        port, "reassign", "--generate", "--topics", "nope", "--broker-list", "1,2"
    )
    assert unknown.returncode == 2 and "Topic 'nope' does not exist." in unknown.stderr


RECORDS = 200


def produce(port: int, topic: str, first: int, count: int) -> None:
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": f"127.0.0.1:{port}", "acks": "all", "enable.idempotence": True}
    )
    failures: list[Any] = []
    for i in range(first, first + count):
        producer.produce(
            topic,
            value=f"record-{i}".encode(),
            partition=0,
            on_delivery=lambda err, _msg: failures.append(err) if err is not None else None,
        )
    assert producer.flush(30) == 0
    assert failures == []


def consume_all(port: int, topic: str, expected: int) -> list[str]:
    import time

    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": f"127.0.0.1:{port}",
            "group.id": f"reader-{topic}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while len(values) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                continue
            values.append(message.value().decode())
    finally:
        consumer.close()
    return values


def test_reassignment_completes_without_loss(
    unstarted_broker: Callable[..., Any], tmp_path: Path
) -> None:
    """Once broker 4 has copied the partition and joined the ISR the reassignment completes:
    the replica leaving is gone, every record produced before and after (acks=all) is read
    back, and a preferred election moves the leadership to broker 4, first in the new list."""
    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS)
    port = nodes[active_controller(nodes)].port
    assert create_topic_raw(port, "moving", partitions=1, replication=3) == 0
    produce(port, "moving", 0, RECORDS)
    start_broker_four(unstarted_broker, nodes)
    before = replicas_of(port, "moving")
    target = [4, *before[:2]]
    plan = plan_file(
        tmp_path, "plan.json", [{"topic": "moving", "partition": 0, "replicas": target}]
    )
    started = partitions_cli(port, "reassign", "--execute", "--plan", plan)
    assert started.returncode == 0, started.stderr

    wait_until(lambda: ongoing(port) == {}, "the reassignment completed")
    wait_until(lambda: replicas_of(port, "moving") == target, "Metadata shows the new replicas")
    verified = partitions_cli(port, "reassign", "--verify", "--plan", plan)
    assert verified.stdout.endswith("Reassignment of partition moving-0 is completed.\n")
    produce(port, "moving", RECORDS, RECORDS)

    assert elect(port, {"moving": [0]})[1][("moving", 0)] in (NONE, ELECTION_NOT_NEEDED)
    wait_until(lambda: partitions_of(port, "moving")[0].leader_id == 4, "broker 4 leads")
    state = partitions_of(port, "moving")[0]
    assert sorted(state.isr_nodes) == sorted(target)
    expected = [f"record-{i}" for i in range(2 * RECORDS)]
    assert consume_all(nodes[4].port, "moving", 2 * RECORDS) == expected
