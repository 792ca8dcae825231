"""Leader elections on a cluster of three `odradek serve` processes (broker,controller), over
real sockets: ElectLeaders answered by the active controller, and its periodic leader
rebalance.

A partition's leader is made not its preferred replica by reordering its replicas with
AlterPartitionReassignments (the preferred replica, now first, is in the ISR and the leader
stays where it was), as an operator does before a preferred election.

- ElectLeaders PREFERRED, sent to a broker that is not the controller (forwarded), moves the
  leadership to the preferred replica; a second time it is ELECTION_NOT_NEEDED; an unknown topic
  or partition is UNKNOWN_TOPIC_OR_PARTITION; all partitions (null) leaves out those already
  led by their preferred replica; v0 (no election type) elects the preferred replica too.
- UNCLEAN for a partition that has a leader is ELECTION_NOT_NEEDED; an unknown election type is
  INVALID_REQUEST, and the cluster goes on.
- `odradek partitions elect-leaders` does the same, with kafka-leader-election.sh's messages and
  exit codes.
- The preferred leader stopped with SIGTERM and restarted gets its
  leadership back from a preferred election once it is in the ISR again.
- Leaderless partitions (their last ISR member dead, another replica alive): the periodic
  unclean election elects a leader once the topic allows it, and not before (negative
  control); ElectLeaders UNCLEAN does whatever the topic says.
- auto.leader.rebalance.enable with a 1-second check interval moves the leadership back on its
  own; the negative control, auto.leader.rebalance.enable=false, leaves it where it is for
  several intervals.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

import pytest
from election_requests import UNCLEAN, elect, partitions_cli, reassign

from cluster_processes import (
    CLUSTER_ID,
    SESSION_TIMEOUT_MS,
    VOTERS,
    active_controller,
    create_topic_raw,
    listed_brokers,
    partitions_of,
    raw,
    start_cluster,
    wait_until,
)

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REQUEST = 42
ELECTION_NOT_NEEDED = 84


def leader_of(port: int, topic: str, partition: int = 0) -> int:
    return int(partitions_of(port, topic)[partition].leader_id)


def make_leader_not_preferred(port: int, topic: str, partition: int = 0) -> tuple[int, int]:
    """Reorder the partition's replicas so its preferred replica is not its leader; the
    (leader, new preferred replica)."""
    state = partitions_of(port, topic)[partition]
    leader = int(state.leader_id)
    replicas = [int(r) for r in state.replica_nodes]
    preferred = next(r for r in replicas if r != leader and r in state.isr_nodes)
    target = [preferred] + [r for r in replicas if r != preferred]
    assert reassign(port, {(topic, partition): target}) == (0, {(topic, partition): (0, None)})
    wait_until(
        lambda: [int(r) for r in partitions_of(port, topic)[partition].replica_nodes] == target,
        "the replicas reordered",
    )
    return leader, preferred


def test_preferred_election_moves_the_leadership_back(
    unstarted_broker: Callable[..., Any],
) -> None:
    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS)
    controller = active_controller(nodes)
    other = next(i for i in VOTERS if i != controller)
    port = nodes[other].port  # not the controller: every request here is forwarded
    assert create_topic_raw(port, "elect", partitions=2, replication=3) == 0
    old_leader, preferred = make_leader_not_preferred(port, "elect")
    assert leader_of(port, "elect") == old_leader != preferred

    # all partitions (null): the one not led by its preferred replica is the one listed
    # would be elected; name it instead, with an unknown topic and partition alongside
    assert elect(port, {"elect": [0, 7], "no-such-topic": [0]}) == (
        NONE,
        {
            ("elect", 0): NONE,
            ("elect", 7): UNKNOWN_TOPIC_OR_PARTITION,
            ("no-such-topic", 0): UNKNOWN_TOPIC_OR_PARTITION,
        },
    )
    wait_until(lambda: leader_of(port, "elect") == preferred, "the preferred replica leading")
    assert elect(port, {"elect": [0]}) == (NONE, {("elect", 0): ELECTION_NOT_NEEDED})
    # UNCLEAN for a partition that has a leader: nothing to do
    assert elect(port, {"elect": [0, 1]}, UNCLEAN) == (
        NONE,
        {("elect", 0): ELECTION_NOT_NEEDED, ("elect", 1): ELECTION_NOT_NEEDED},
    )
    # every partition led by its preferred replica: nothing listed
    assert elect(port, None) == (NONE, {})

    # null with one partition to move, v0 (preferred, no type, no top-level error)
    _, preferred_1 = make_leader_not_preferred(port, "elect", 1)
    assert elect(port, None, version=0) == (NONE, {("elect", 1): NONE})
    wait_until(lambda: leader_of(port, "elect", 1) == preferred_1, "partition 1 moved back")

    # an unknown election type: INVALID_REQUEST, per partition and for the request
    assert elect(port, {"elect": [0]}, election_type=5) == (
        INVALID_REQUEST,
        {("elect", 0): INVALID_REQUEST},
    )
    assert leader_of(port, "elect") == preferred  # and nothing changed

    # the CLI, as kafka-leader-election.sh
    old_leader, preferred = make_leader_not_preferred(port, "elect")
    done = partitions_cli(
        port,
        "elect-leaders",
        "--election-type",
        "preferred",
        "--topic",
        "elect",
        "--partition",
        "0",
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout == "Successfully completed leader election (PREFERRED) for partitions elect-0\n"
    )
    wait_until(lambda: leader_of(port, "elect") == preferred, "moved back by the CLI")
    again = partitions_cli(
        port, "elect-leaders", "--election-type", "PREFERRED", "--all-topic-partitions"
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""
    noop = partitions_cli(port, "elect-leaders", "--election-type", "preferred", "--topic", "elect")
    assert noop.returncode == 0, noop.stderr
    assert noop.stdout == "Valid replica already elected for partitions elect-0, elect-1\n"
    unknown = partitions_cli(
        port,
        "elect-leaders",
        "--election-type",
        "preferred",
        "--topic",
        "elect",
        "--partition",
        "9",
    )
    assert unknown.returncode == 1
    assert unknown.stdout.startswith(
        "Error completing leader election (PREFERRED) for partition:"
        " elect-9: UNKNOWN_TOPIC_OR_PARTITION"
    )
    assert unknown.stderr == "odradek partitions: error: 1 replica(s) could not be elected\n"
    usage = partitions_cli(
        port, "elect-leaders", "--election-type", "preferred", "--partition", "0"
    )
    assert usage.returncode == 2
    assert "--partition needs --topic" in usage.stderr


@pytest.mark.parametrize("enabled", [True, False], ids=["rebalance", "negative-control"])
def test_auto_leader_rebalance(unstarted_broker: Callable[..., Any], enabled: bool) -> None:
    nodes = start_cluster(
        unstarted_broker,
        SESSION_TIMEOUT_MS,
        {
            "auto.leader.rebalance.enable": str(enabled).lower(),
            "leader.imbalance.check.interval.seconds": 1,
        },
    )
    port = nodes[active_controller(nodes)].port
    assert create_topic_raw(port, "rebalanced", partitions=1, replication=3) == 0
    old_leader, preferred = make_leader_not_preferred(port, "rebalanced")
    if enabled:
        wait_until(lambda: leader_of(port, "rebalanced") == preferred, "the rebalance")
    else:
        time.sleep(4)  # four check intervals
        assert leader_of(port, "rebalanced") == old_leader


def create_on(port: int, name: str, replicas: list[int]) -> None:
    """A one-partition topic placed on `replicas` by hand."""
    from kio.schema.create_topics.v7 import request as kio

    answer = raw(
        port,
        kio.CreateTopicsRequest(
            topics=(
                kio.CreatableTopic(
                    name=name,  # type: ignore[arg-type]
                    num_partitions=-1,  # type: ignore[arg-type]
                    replication_factor=-1,  # type: ignore[arg-type]
                    assignments=(
                        kio.CreatableReplicaAssignment(
                            partition_index=0,  # type: ignore[arg-type]
                            broker_ids=tuple(replicas),  # type: ignore[arg-type]
                        ),
                    ),
                    configs=(),
                ),
            ),
            timeout=datetime.timedelta(seconds=15),
        ),
    )
    assert answer.topics[0].error_code == 0, answer


def allow_unclean(port: int, topic: str) -> None:
    from confluent_kafka.admin import (
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry(
                "unclean.leader.election.enable",
                "true",
                incremental_operation=AlterConfigOpType.SET,
            )
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(timeout=20)


def test_unclean_elections_of_leaderless_partitions(
    unstarted_broker: Callable[..., Any],
) -> None:
    """Two partitions on brokers 4 and 5 (broker-only nodes, so the quorum never suffers) lose
    their leader: 4 shuts down (the ISR shrinks to 5), then 5 dies; 4 comes back, alive but out
    of the ISR, and nothing can add it back without a leader. With unclean elections off, they
    stay leaderless (the negative control). Turned on for one topic after the fact, the
    controller's periodic unclean election gives it 4 as leader; the other gets one only when
    an admin asks (ElectLeaders UNCLEAN), whatever its topic says."""

    nodes = start_cluster(
        unstarted_broker, SESSION_TIMEOUT_MS, {"unclean.leader.election.interval.ms": 500}
    )
    voters = ",".join(f"{i}@127.0.0.1:{nodes[i].port}" for i in VOTERS)
    for node_id in (4, 5):
        nodes[node_id] = unstarted_broker(
            {
                "cluster.id": CLUSTER_ID,
                "node.id": node_id,
                "process.roles": "broker",
                "controller.quorum.voters": voters,
                "controller.quorum.fetch.timeout.ms": 1000,
                "broker.session.timeout.ms": SESSION_TIMEOUT_MS,
                "broker.heartbeat.interval.ms": 200,
            }
        )
        nodes[node_id].start()
    port = nodes[active_controller(nodes)].port
    wait_until(lambda: listed_brokers(port) == {1, 2, 3, 4, 5}, "brokers 4 and 5 registered")
    for name in ("lenient", "strict"):
        create_on(port, name, [4, 5])
    assert nodes[4].stop() == 0  # controlled shutdown: 5 leads, the ISR is [5]
    wait_until(lambda: leader_of(port, "strict") == leader_of(port, "lenient") == 5, "5 leads")
    nodes[5].kill()
    wait_until(
        lambda: leader_of(port, "strict") == leader_of(port, "lenient") == -1, "no leader left"
    )
    nodes[4].start()
    wait_until(lambda: 4 in listed_brokers(port), "broker 4 back")
    time.sleep(2)  # four check intervals: nothing allows an unclean election yet
    assert leader_of(port, "strict") == leader_of(port, "lenient") == -1

    allow_unclean(port, "lenient")
    wait_until(lambda: leader_of(port, "lenient") == 4, "the periodic unclean election")
    assert leader_of(port, "strict") == -1
    assert elect(port, {"strict": [0]}, UNCLEAN) == (NONE, {("strict", 0): NONE})
    wait_until(lambda: leader_of(port, "strict") == 4, "the unclean election asked for")


def test_preferred_leader_restarted_gets_its_leadership_back(
    unstarted_broker: Callable[..., Any],
) -> None:
    """The preferred leader stops (SIGTERM: its leadership moves away) and comes back; once it
    has caught up and rejoined the ISR, a preferred election through the CLI gives it the
    leadership back."""
    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS)
    port = nodes[active_controller(nodes)].port
    assert create_topic_raw(port, "restarted", partitions=1, replication=3) == 0
    state = partitions_of(port, "restarted")[0]
    preferred = int(state.replica_nodes[0])
    assert state.leader_id == preferred
    assert nodes[preferred].stop() == 0
    survivor = nodes[next(i for i in VOTERS if i != preferred)].port
    wait_until(
        lambda: leader_of(survivor, "restarted") not in (preferred, -1), "the leadership moved"
    )
    nodes[preferred].start()
    wait_until(
        lambda: preferred in partitions_of(survivor, "restarted")[0].isr_nodes,
        "the restarted broker back in the ISR",
    )
    assert leader_of(survivor, "restarted") != preferred
    done = partitions_cli(
        survivor, "elect-leaders", "--election-type", "preferred", "--topic", "restarted"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "Successfully completed leader election (PREFERRED) for partitions restarted-0\n"
    )
    wait_until(lambda: leader_of(survivor, "restarted") == preferred, "the leadership back")
