"""Kafka's PartitionChangeBuilder rules, each test named after the rule it checks."""

from __future__ import annotations

from cluster_helpers import TOPIC_ID, cluster, part, with_topic

from odradek.metadata.image import MetadataImage
from odradek.metadata.partition_change import (
    Election,
    build_partition_change,
    leader_and_isr_updates,
    min_insync_replicas,
    unclean_election_enabled,
)
from odradek.metadata.records import (
    LEADER_RECOVERING,
    NO_LEADER,
    NO_LEADER_CHANGE,
    RESOURCE_BROKER,
    ConfigRecord,
    PartitionChangeRecord,
)


def image_with(replicas: tuple[int, ...], isr: tuple[int, ...], leader: int) -> MetadataImage:
    return with_topic(cluster((1, 2, 3, 4)), [(replicas, isr, leader)])


def test_nothing_changes_no_record() -> None:
    image = image_with((1, 2, 3), (1, 2, 3), 1)
    assert build_partition_change(TOPIC_ID, part(image), image.is_active) is None


def test_isr_shrink_keeps_leader_and_epoch() -> None:
    image = image_with((1, 2, 3), (1, 2, 3), 1)
    record = build_partition_change(TOPIC_ID, part(image), image.is_active, isr=(1, 2))
    assert record == PartitionChangeRecord(0, TOPIC_ID, isr=(1, 2))


def test_current_leader_stays_when_still_in_isr_and_active() -> None:
    """Online election does not move a healthy leader to the preferred replica."""
    image = image_with((1, 2, 3), (1, 2, 3), 2)
    record = build_partition_change(TOPIC_ID, part(image), image.is_active, isr=(2, 3))
    assert record is not None and record.leader == NO_LEADER_CHANGE


def test_leader_elected_from_isr_in_replica_order() -> None:
    image = image_with((1, 2, 3), (1, 3, 2), 1)
    record = build_partition_change(TOPIC_ID, part(image), lambda r: r != 1, isr=(3, 2))
    assert record is not None and record.leader == 2 and record.isr == (3, 2)


def test_no_acceptable_isr_member_leaves_partition_leaderless_and_isr_not_empty() -> None:
    """Without ELR the last ISR member stays in the ISR when nobody can lead."""
    image = image_with((1, 2, 3), (1,), 1)
    record = build_partition_change(TOPIC_ID, part(image), lambda r: r != 1, isr=())
    assert record == PartitionChangeRecord(0, TOPIC_ID, leader=NO_LEADER)


def test_unclean_election_picks_live_replica_outside_isr_and_marks_recovering() -> None:
    image = image_with((1, 2, 3), (1,), 1)
    record = build_partition_change(
        TOPIC_ID, part(image), lambda r: r == 3, isr=(), election=Election.UNCLEAN
    )
    assert record == PartitionChangeRecord(
        0, TOPIC_ID, isr=(3,), leader=3, leader_recovery_state=LEADER_RECOVERING
    )


def test_unclean_election_never_picks_dead_replica() -> None:
    image = image_with((1, 2, 3), (1,), 1)
    record = build_partition_change(
        TOPIC_ID, part(image), lambda r: False, isr=(), election=Election.UNCLEAN
    )
    assert record == PartitionChangeRecord(0, TOPIC_ID, leader=NO_LEADER)


def test_preferred_election_moves_to_first_replica_when_in_isr() -> None:
    image = image_with((1, 2, 3), (1, 2, 3), 2)
    record = build_partition_change(
        TOPIC_ID, part(image), image.is_active, election=Election.PREFERRED
    )
    assert record == PartitionChangeRecord(0, TOPIC_ID, leader=1)


def test_preferred_election_keeps_leader_when_preferred_not_in_isr() -> None:
    image = image_with((1, 2, 3), (2, 3), 2)
    assert (
        build_partition_change(TOPIC_ID, part(image), image.is_active, election=Election.PREFERRED)
        is None
    )


def test_removing_a_replica_bumps_leader_epoch_without_leader_change() -> None:
    """Kafka names the same leader again so removed replicas stop fetching."""
    image = image_with((1, 2, 3), (1, 2, 3), 1)
    record = build_partition_change(
        TOPIC_ID, part(image), image.is_active, replicas=(1, 2), isr=(1, 2)
    )
    assert record is not None and record.leader == 1 and record.replicas == (1, 2)
    after = image.apply([record])
    assert part(after).leader_epoch == part(image).leader_epoch + 1


def test_reassignment_completes_when_adding_replicas_join_isr() -> None:
    image = image_with((1, 2, 3), (1, 2, 3), 1)
    start = build_partition_change(
        TOPIC_ID,
        part(image),
        image.is_active,
        replicas=(2, 3, 4, 1),
        removing=(1,),
        adding=(4,),
    )
    assert start is not None and start.adding_replicas == (4,) and start.removing_replicas == (1,)
    image = image.apply([start])
    record = build_partition_change(TOPIC_ID, part(image), image.is_active, isr=(1, 2, 3, 4))
    assert record is not None
    image = image.apply([record])
    final = part(image)
    assert final.replicas == (2, 3, 4) and final.isr == (2, 3, 4)
    assert final.leader == 2 and not final.reassigning


def test_topic_config_overrides_cluster_default_for_unclean_and_min_isr() -> None:
    image = with_topic(cluster(), [((1, 2, 3), (1, 2, 3), 1)], configs={"min.insync.replicas": "2"})
    topic = image.topics["t"]
    assert min_insync_replicas(image, topic) == 2
    assert not unclean_election_enabled(image, topic)
    image = image.apply(
        [ConfigRecord(RESOURCE_BROKER, "", "unclean.leader.election.enable", "true")]
    )
    assert unclean_election_enabled(image, image.topics["t"])
    assert unclean_election_enabled(cluster().apply([]), topic, True)


def test_fencing_updates_move_leadership_and_leave_isr() -> None:
    image = with_topic(cluster(), [((1, 2, 3), (1, 2, 3), 1), ((2, 3, 1), (2, 3), 2)])
    records = leader_and_isr_updates(image, broker_to_remove=1)
    assert records == [PartitionChangeRecord(0, TOPIC_ID, isr=(2, 3), leader=2)]


def test_unfencing_elects_leader_for_leaderless_partitions() -> None:
    image = with_topic(cluster(fenced=(1,)), [((1, 2), (1,), NO_LEADER)])
    records = leader_and_isr_updates(image, broker_to_add=1)
    assert records == [PartitionChangeRecord(0, TOPIC_ID, leader=1)]
