"""ElectLeaders and the leader-imbalance rebalance; each test named after the rule it checks."""

from __future__ import annotations

import pytest
from cluster_helpers import TOPIC_ID, cluster, epoch_of, part, with_topic

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.elections import (
    elect_leaders,
    elect_unclean_leaders,
    leader_imbalance,
    rebalance_leaders,
)
from odradek.metadata.records import (
    LEADER_RECOVERING,
    BrokerRegistrationChangeRecord,
    PartitionChangeRecord,
)

PREFERRED, UNCLEAN = 0, 1


def test_preferred_election_moves_leader_back() -> None:
    image = with_topic(cluster(), [((1, 2, 3), (1, 2, 3), 2)])
    records, [outcome] = elect_leaders(image, PREFERRED, {"t": [0]})
    assert outcome.error == ErrorCode.NONE
    assert records == [PartitionChangeRecord(0, TOPIC_ID, leader=1)]


def test_preferred_election_not_needed_when_preferred_leads() -> None:
    image = with_topic(cluster(), [((1, 2, 3), (1, 2, 3), 1)])
    records, [outcome] = elect_leaders(image, PREFERRED, {"t": [0]})
    assert records == [] and outcome.error == ErrorCode.ELECTION_NOT_NEEDED


def test_preferred_leader_not_available_when_out_of_isr_or_fenced() -> None:
    image = with_topic(cluster(), [((1, 2, 3), (2, 3), 2), ((3, 1, 2), (3, 1, 2), 1)])
    image = image.apply([BrokerRegistrationChangeRecord(3, epoch_of(3), fenced=1)])
    records, outcomes = elect_leaders(image, PREFERRED, {"t": [0, 1]})
    assert records == []
    assert [o.error for o in outcomes] == [ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE] * 2


def test_unclean_election_via_admin_ignores_topic_config() -> None:
    image = with_topic(cluster(fenced=(1,)), [((1, 2, 3), (1,), -1)])
    records, [outcome] = elect_leaders(image, UNCLEAN, {"t": [0]})
    assert outcome.error == ErrorCode.NONE
    assert records == [
        PartitionChangeRecord(
            0, TOPIC_ID, isr=(2,), leader=2, leader_recovery_state=LEADER_RECOVERING
        )
    ]


def test_unclean_election_not_needed_when_partition_has_leader() -> None:
    image = with_topic(cluster(), [((1, 2, 3), (1,), 1)])
    _, [outcome] = elect_leaders(image, UNCLEAN, {"t": [0]})
    assert outcome.error == ErrorCode.ELECTION_NOT_NEEDED


def test_unclean_election_with_no_live_replica_is_eligible_leaders_not_available() -> None:
    image = with_topic(cluster((1, 2, 3), fenced=(1, 2, 3)), [((1, 2), (1,), -1)])
    _, [outcome] = elect_leaders(image, UNCLEAN, {"t": [0]})
    assert outcome.error == ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE


def test_unknown_topic_and_partition() -> None:
    image = with_topic(cluster(), [((1, 2, 3), (1, 2, 3), 2)])
    _, outcomes = elect_leaders(image, PREFERRED, {"nope": [0], "t": [5]})
    assert [(o.error, o.message) for o in outcomes] == [
        (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "No such topic as nope"),
        (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, "No such partition as t-5"),
    ]


def test_unknown_election_type_is_invalid_request() -> None:
    with pytest.raises(KafkaError) as err:
        elect_leaders(cluster(), 7, None)
    assert err.value.code == ErrorCode.INVALID_REQUEST


def test_all_partitions_leaves_out_election_not_needed() -> None:
    image = with_topic(cluster(), [((1, 2, 3), (1, 2, 3), 1), ((2, 1, 3), (2, 1, 3), 1)])
    records, outcomes = elect_leaders(image, PREFERRED, None)
    assert [(o.partition_id, o.error) for o in outcomes] == [(1, ErrorCode.NONE)]
    assert part(image.apply(records), 1).leader == 2


def test_imbalance_ratio_per_preferred_broker() -> None:
    image = with_topic(
        cluster(),
        [((1, 2), (1, 2), 1), ((1, 2), (1, 2), 2), ((1, 3), (1, 3), 3), ((2, 1), (2, 1), 2)],
    )
    assert leader_imbalance(image) == {1: pytest.approx(2 / 3), 2: 0.0}


def test_rebalance_only_above_percentage_and_only_to_live_in_sync_preferred() -> None:
    partitions = [((1, 2), (1, 2), 1)] * 9 + [((1, 2), (1, 2), 2), ((1, 3), (3,), 3)]
    image = with_topic(cluster(), partitions)
    # broker 1 is preferred for 11 partitions and leads 9: 18% imbalance
    assert rebalance_leaders(image, imbalance_percentage=20) == []
    records = rebalance_leaders(image, imbalance_percentage=10)
    assert records == [PartitionChangeRecord(9, TOPIC_ID, leader=1)]


def test_rebalance_respects_max_elections() -> None:
    image = with_topic(cluster(), [((1, 2), (1, 2), 2)] * 5)
    assert len(rebalance_leaders(image, 0, max_elections=2)) == 2


def test_periodic_unclean_election_only_for_topics_that_allow_it() -> None:
    image = with_topic(cluster(fenced=(1,)), [((1, 2), (1,), -1)])
    assert elect_unclean_leaders(image) == []
    image = with_topic(
        cluster(fenced=(1,)),
        [((1, 2), (1,), -1)],
        configs={"unclean.leader.election.enable": "true"},
    )
    assert elect_unclean_leaders(image) == [
        PartitionChangeRecord(
            0, TOPIC_ID, isr=(2,), leader=2, leader_recovery_state=LEADER_RECOVERING
        )
    ]
    assert elect_unclean_leaders(cluster(fenced=(1,)), unclean_default=True) == []
