"""AlterPartitionReassignments and ListPartitionReassignments; tests named after their rule."""

from __future__ import annotations

from cluster_helpers import TOPIC_ID, cluster, epoch_of, part, with_topic

from odradek.common.errors import ErrorCode
from odradek.metadata.alter_partition import AlterPartitionItem, IsrMember, alter_partition
from odradek.metadata.image import MetadataImage
from odradek.metadata.reassignment import (
    OngoingReassignment,
    ReassignmentTarget,
    alter_partition_reassignments,
    list_partition_reassignments,
)
from odradek.metadata.records import PartitionChangeRecord


def base() -> MetadataImage:
    return with_topic(cluster((1, 2, 3, 4)), [((1, 2, 3), (1, 2, 3), 1), ((2, 3), (2, 3), 2)])


def reassign(image: MetadataImage, *targets: ReassignmentTarget) -> tuple[MetadataImage, list]:
    records, outcomes = alter_partition_reassignments(image, targets)
    return image.apply(records), outcomes


def test_reassignment_to_new_broker_adds_then_completes_when_in_isr() -> None:
    image, [outcome] = reassign(base(), ReassignmentTarget("t", 0, (4, 2, 3)))
    assert outcome.error == ErrorCode.NONE
    p = part(image)
    assert p.replicas == (4, 2, 3, 1) and p.adding_replicas == (4,) and p.removing_replicas == (1,)
    assert p.leader == 1
    assert list_partition_reassignments(image) == [
        OngoingReassignment("t", 0, (4, 2, 3, 1), (4,), (1,))
    ]
    # the leader reports broker 4 caught up
    item = AlterPartitionItem(
        TOPIC_ID, 0, p.leader_epoch, p.partition_epoch, tuple(IsrMember(b) for b in (1, 2, 3, 4))
    )
    records, [done] = alter_partition(image, 1, epoch_of(1), [item])
    assert done.error == ErrorCode.NEW_LEADER_ELECTED
    image = image.apply(records)
    p = part(image)
    assert (p.replicas, p.isr, p.leader) == ((4, 2, 3), (2, 3, 4), 4)
    assert list_partition_reassignments(image) == []


def test_reordering_existing_replicas_completes_at_once() -> None:
    image, _ = reassign(base(), ReassignmentTarget("t", 0, (3, 2, 1)))
    p = part(image)
    assert p.replicas == (3, 2, 1) and not p.reassigning and p.leader == 1


def test_shrinking_replicas_completes_at_once_and_bumps_leader_epoch() -> None:
    before = part(base())
    image, _ = reassign(base(), ReassignmentTarget("t", 0, (1, 2)))
    p = part(image)
    assert p.replicas == (1, 2) and p.isr == (1, 2) and not p.reassigning
    assert p.leader_epoch == before.leader_epoch + 1


def test_cancel_reverts_to_original_replicas() -> None:
    """As Kafka: the adding replicas leave; the order is the reassignment's (the original
    order is not kept in the metadata), so the leader stays but the preferred one may not."""
    image, _ = reassign(base(), ReassignmentTarget("t", 0, (4, 2, 3)))
    image, [outcome] = reassign(image, ReassignmentTarget("t", 0, None))
    assert outcome.error == ErrorCode.NONE
    p = part(image)
    assert p.replicas == (2, 3, 1) and p.isr == (1, 2, 3) and not p.reassigning
    assert p.leader == 1


def test_cancel_without_reassignment_is_no_reassignment_in_progress() -> None:
    _, [outcome] = reassign(base(), ReassignmentTarget("t", 0, None))
    assert outcome.error == ErrorCode.NO_REASSIGNMENT_IN_PROGRESS


def test_cancel_that_needs_unclean_election_is_refused() -> None:
    image = base().apply(
        [
            PartitionChangeRecord(
                0,
                TOPIC_ID,
                replicas=(4, 1),
                isr=(4,),
                leader=4,
                adding_replicas=(4,),
                removing_replicas=(1,),
            )
        ]
    )
    _, [outcome] = reassign(image, ReassignmentTarget("t", 0, None))
    assert outcome.error == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    assert "would require an unclean leader election" in (outcome.message or "")


def test_invalid_targets_are_invalid_replica_assignment() -> None:
    _, outcomes = alter_partition_reassignments(
        base(),
        [
            ReassignmentTarget("t", 0, ()),
            ReassignmentTarget("t", 0, (1, 1)),
            ReassignmentTarget("t", 0, (1, 9)),
        ],
    )
    assert [o.error for o in outcomes] == [ErrorCode.INVALID_REPLICA_ASSIGNMENT] * 3
    assert "broker 9, but no such broker is registered" in (outcomes[2].message or "")


def test_unknown_topic_or_partition() -> None:
    _, outcomes = alter_partition_reassignments(
        base(), [ReassignmentTarget("x", 0, (1,)), ReassignmentTarget("t", 7, (1,))]
    )
    assert [o.error for o in outcomes] == [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION] * 2


def test_list_named_partitions_only_in_progress_ones() -> None:
    image, _ = reassign(base(), ReassignmentTarget("t", 1, (3, 4)))
    assert list_partition_reassignments(image, {"t": [0, 1], "x": [0]}) == [
        OngoingReassignment("t", 1, (3, 4, 2), (4,), (2,))
    ]
