"""ElectLeaders and the reassignment requests on a single `odradek serve` (no Raft quorum: the
node decides under its own metadata lock), over real sockets: the answers are Kafka's and the
broker keeps serving."""

from __future__ import annotations

from typing import Any

from election_requests import UNCLEAN, elect, ongoing, reassign

from cluster_processes import create_topic_raw, metadata

UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_REPLICA_ASSIGNMENT = 39
ELECTION_NOT_NEEDED = 84
NO_REASSIGNMENT_IN_PROGRESS = 85


def test_elections_and_reassignment_on_a_node_alone(broker: Any) -> None:
    node_id = int(metadata(broker.port).brokers[0].node_id)
    assert create_topic_raw(broker.port, "alone", partitions=2, replication=1) == 0
    assert elect(broker.port, {"alone": [0, 1, 5]}) == (
        0,
        {
            ("alone", 0): ELECTION_NOT_NEEDED,
            ("alone", 1): ELECTION_NOT_NEEDED,
            ("alone", 5): UNKNOWN_TOPIC_OR_PARTITION,
        },
    )
    assert elect(broker.port, {"alone": [0]}, UNCLEAN) == (0, {("alone", 0): ELECTION_NOT_NEEDED})
    top, answers = reassign(
        broker.port,
        {("alone", 0): [node_id], ("alone", 1): [node_id + 1], ("nope", 0): [node_id]},
    )
    assert top == 0
    assert answers[("alone", 0)] == (0, None)
    assert answers[("alone", 1)][0] == INVALID_REPLICA_ASSIGNMENT
    assert answers[("nope", 0)][0] == UNKNOWN_TOPIC_OR_PARTITION
    assert reassign(broker.port, {("alone", 0): None})[1][("alone", 0)][0] == (
        NO_REASSIGNMENT_IN_PROGRESS
    )
    assert ongoing(broker.port) == {}
    assert {t.name for t in metadata(broker.port).topics} >= {"alone"}
