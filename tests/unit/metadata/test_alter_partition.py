"""AlterPartition checks with Kafka's error codes; each test named after the rule it checks."""

from __future__ import annotations

import pytest
from cluster_helpers import TOPIC_ID, cluster, epoch_of, part, with_topic

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.alter_partition import (
    AlterPartitionItem,
    IsrMember,
    alter_partition,
)
from odradek.metadata.image import MetadataImage
from odradek.metadata.records import (
    LEADER_RECOVERED,
    LEADER_RECOVERING,
    BrokerRegistrationChangeRecord,
    PartitionChangeRecord,
    PartitionRecord,
)


def base(min_isr: str = "1") -> MetadataImage:
    image = with_topic(
        cluster((1, 2, 3, 4)),
        [((1, 2, 3), (1, 2, 3), 1)],
        configs={"min.insync.replicas": min_isr},
    )
    # leader epoch 5, partition epoch 9
    return image.apply([PartitionRecord(0, TOPIC_ID, (1, 2, 3), (1, 2, 3), 1, 5, 9)])


def item(
    isr: tuple[int, ...], leader_epoch: int = 5, partition_epoch: int = 9, **kw: int
) -> AlterPartitionItem:
    return AlterPartitionItem(
        TOPIC_ID,
        kw.pop("partition_id", 0),
        leader_epoch,
        partition_epoch,
        tuple(IsrMember(b) for b in isr),
        **kw,
    )


def run(image: MetadataImage, *items: AlterPartitionItem, sender: int = 1, version: int = 3):
    return alter_partition(image, sender, epoch_of(sender), items, request_version=version)


def test_isr_shrink_accepted_and_answered_with_new_state() -> None:
    image = base()
    records, [outcome] = run(image, item((1, 2)))
    assert records == [PartitionChangeRecord(0, TOPIC_ID, isr=(1, 2))]
    assert outcome.error == ErrorCode.NONE and outcome.partition is not None
    assert outcome.partition.isr == (1, 2) and outcome.partition.partition_epoch == 10
    assert part(image.apply(records)) == outcome.partition


def test_stale_broker_epoch_rejects_whole_request() -> None:
    with pytest.raises(KafkaError) as err:
        alter_partition(base(), 1, 7, [item((1, 2))])
    assert err.value.code == ErrorCode.STALE_BROKER_EPOCH


@pytest.mark.parametrize(
    ("rule", "change", "expected"),
    [
        ("leader epoch ahead: controller behind", {"leader_epoch": 6}, ErrorCode.NOT_CONTROLLER),
        (
            "partition epoch ahead: controller behind",
            {"partition_epoch": 10},
            ErrorCode.NOT_CONTROLLER,
        ),
        ("older leader epoch", {"leader_epoch": 4}, ErrorCode.FENCED_LEADER_EPOCH),
        ("older partition epoch", {"partition_epoch": 8}, ErrorCode.INVALID_UPDATE_VERSION),
    ],
)
def test_epoch_checks(rule: str, change: dict[str, int], expected: ErrorCode) -> None:
    records, [outcome] = run(base(), item((1, 2), **change))
    assert records == [] and outcome.error == expected, rule


def test_sender_not_leader_is_invalid_request() -> None:
    records, [outcome] = run(base(), item((1, 2)), sender=2)
    assert records == [] and outcome.error == ErrorCode.INVALID_REQUEST


def test_isr_outside_replicas_is_invalid_request() -> None:
    _, [outcome] = run(base(), item((1, 4)))
    assert outcome.error == ErrorCode.INVALID_REQUEST


def test_isr_without_leader_is_invalid_request() -> None:
    _, [outcome] = run(base(), item((2, 3)))
    assert outcome.error == ErrorCode.INVALID_REQUEST


def test_recovering_with_several_isr_members_is_invalid_request() -> None:
    _, [outcome] = run(base(), item((1, 2), leader_recovery_state=LEADER_RECOVERING))
    assert outcome.error == ErrorCode.INVALID_REQUEST


def test_fenced_replica_in_new_isr_is_ineligible_replica() -> None:
    image = base().apply([BrokerRegistrationChangeRecord(3, epoch_of(3), fenced=1)])
    _, [outcome] = run(image, item((1, 2, 3)))
    assert outcome.error == ErrorCode.INELIGIBLE_REPLICA
    _, [outcome] = run(image, item((1, 2, 3)), version=1)
    assert outcome.error == ErrorCode.OPERATION_NOT_ATTEMPTED


def test_shutting_down_replica_in_new_isr_is_ineligible_replica() -> None:
    image = base().apply([BrokerRegistrationChangeRecord(2, epoch_of(2), in_controlled_shutdown=1)])
    _, [outcome] = run(image, item((1, 2)))
    assert outcome.error == ErrorCode.INELIGIBLE_REPLICA


def test_isr_member_with_other_broker_epoch_is_ineligible_replica() -> None:
    bad = AlterPartitionItem(TOPIC_ID, 0, 5, 9, (IsrMember(1, epoch_of(1)), IsrMember(2, 3)))
    _, [outcome] = run(base(), bad)
    assert outcome.error == ErrorCode.INELIGIBLE_REPLICA


def test_unknown_topic_id_and_partition() -> None:
    missing = AlterPartitionItem(bytes(16), 0, 5, 9, (IsrMember(1),))
    _, [outcome] = run(base(), missing)
    assert outcome.error == ErrorCode.UNKNOWN_TOPIC_ID
    _, [outcome] = run(base(), missing, version=1)
    assert outcome.error == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    _, [outcome] = run(base(), item((1,), partition_id=3))
    assert outcome.error == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_strict_min_isr_keeps_live_replicas_up_to_min_isr() -> None:
    """min.insync.replicas=2: shrinking {1,2,3} to {1} keeps 2, which is alive."""
    records, [outcome] = run(base("2"), item((1,)))
    assert records == [PartitionChangeRecord(0, TOPIC_ID, isr=(1, 2))]
    assert outcome.partition is not None and outcome.partition.isr == (1, 2)


def test_strict_min_isr_negative_control_dead_replica_is_dropped() -> None:
    """A fenced replica is no reason to keep it: the ISR may go below min ISR then."""
    image = base("3").apply([BrokerRegistrationChangeRecord(3, epoch_of(3), fenced=1)])
    records, _ = run(image, item((1, 2)))
    assert records == [PartitionChangeRecord(0, TOPIC_ID, isr=(1, 2))]


def test_strict_min_isr_no_op_when_nothing_would_change() -> None:
    image = base("3")
    records, [outcome] = run(image, item((1,)))
    assert records == [] and outcome.error == ErrorCode.NONE
    assert outcome.partition == part(image)


def test_marking_recovered_after_unclean_election() -> None:
    image = base().apply(
        [PartitionRecord(0, TOPIC_ID, (1, 2, 3), (1,), 1, 5, 9, leader_recovery_state=1)]
    )
    records, [outcome] = run(image, item((1,), leader_recovery_state=LEADER_RECOVERED))
    assert records == [PartitionChangeRecord(0, TOPIC_ID, leader_recovery_state=0)]
    _, [outcome] = run(base(), item((1,), leader_recovery_state=LEADER_RECOVERING))
    assert outcome.error == ErrorCode.INVALID_REQUEST


def test_reassignment_completed_by_isr_change_moving_leader_is_new_leader_elected() -> None:
    image = base().apply(
        [
            PartitionChangeRecord(
                0, TOPIC_ID, replicas=(4, 2, 3, 1), removing_replicas=(1,), adding_replicas=(4,)
            )
        ]
    )
    records, [outcome] = run(image, item((1, 2, 3, 4), partition_epoch=10))
    assert outcome.error == ErrorCode.NEW_LEADER_ELECTED
    after = part(image.apply(records))
    assert after.replicas == (4, 2, 3) and after.leader == 4 and not after.reassigning
    _, [outcome] = run(image, item((1, 2, 3, 4), partition_epoch=10), version=1)
    assert outcome.error == ErrorCode.FENCED_LEADER_EPOCH


def test_second_item_for_same_partition_sees_first_change() -> None:
    records, outcomes = run(base(), item((1, 2)), item((1,)))
    assert [o.error for o in outcomes] == [ErrorCode.NONE, ErrorCode.INVALID_UPDATE_VERSION]
    assert len(records) == 1
