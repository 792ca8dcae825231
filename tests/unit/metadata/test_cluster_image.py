"""MetadataImage replay of broker registrations and partition changes."""

from __future__ import annotations

from odradek.metadata.image import MetadataImage
from odradek.metadata.records import (
    FENCE,
    UNFENCE,
    BrokerEndpoint,
    BrokerRegistrationChangeRecord,
    FenceBrokerRecord,
    PartitionChangeRecord,
    PartitionRecord,
    RegisterBrokerRecord,
    TopicRecord,
    UnfenceBrokerRecord,
    UnregisterBrokerRecord,
)

TOPIC = bytes(range(16))
INC_A = b"a" * 16
INC_B = b"b" * 16


def registered() -> MetadataImage:
    return MetadataImage().apply(
        [
            RegisterBrokerRecord(1, INC_A, 10, (BrokerEndpoint("PLAINTEXT", "h", 9092, 0),)),
            TopicRecord("t", TOPIC),
            PartitionRecord(0, TOPIC, (1, 2, 3), (1, 2, 3), 1, 4, 7),
        ]
    )


def test_registration_starts_fenced_with_its_epoch_and_endpoints() -> None:
    broker = registered().broker(1)
    assert broker is not None
    assert broker.fenced and broker.epoch == 10 and broker.endpoints[0].port == 9092
    assert not registered().is_active(1)


def test_unfence_and_fence_change_only_the_flag() -> None:
    image = registered().apply([BrokerRegistrationChangeRecord(1, 10, fenced=UNFENCE)])
    assert image.is_active(1)
    image = image.apply([BrokerRegistrationChangeRecord(1, 10, fenced=FENCE)])
    assert not image.is_active(1)
    image = image.apply([UnfenceBrokerRecord(1, 10)])
    assert image.is_active(1)
    assert not image.apply([FenceBrokerRecord(1, 10)]).is_active(1)


def test_controlled_shutdown_makes_a_broker_inactive() -> None:
    image = registered().apply([BrokerRegistrationChangeRecord(1, 10, fenced=UNFENCE)])
    image = image.apply([BrokerRegistrationChangeRecord(1, 10, in_controlled_shutdown=1)])
    broker = image.broker(1)
    assert broker is not None and broker.in_controlled_shutdown and not broker.fenced
    assert not image.is_active(1)


def test_change_for_a_replaced_incarnation_is_ignored() -> None:
    """A change carrying an old broker epoch must not touch the new incarnation."""
    image = registered().apply([RegisterBrokerRecord(1, INC_B, 20, fenced=False)])
    image = image.apply([BrokerRegistrationChangeRecord(1, 10, fenced=FENCE)])
    assert image.is_active(1)
    image = image.apply([UnregisterBrokerRecord(1, 10)])
    assert image.broker(1) is not None
    assert image.apply([UnregisterBrokerRecord(1, 20)]).broker(1) is None


def test_partition_change_merge_bumps_epochs_as_kafka() -> None:
    """leader_epoch bumps when the record names a leader; partition_epoch on every change."""
    image = registered().apply([PartitionChangeRecord(0, TOPIC, isr=(1, 2))])
    part = image.topics["t"].partitions[0]
    assert (part.isr, part.leader, part.leader_epoch, part.partition_epoch) == ((1, 2), 1, 4, 8)
    image = image.apply([PartitionChangeRecord(0, TOPIC, leader=2)])
    part = image.topics["t"].partitions[0]
    assert (part.leader, part.leader_epoch, part.partition_epoch) == (2, 5, 9)
    image = image.apply(
        [
            PartitionChangeRecord(
                0,
                TOPIC,
                replicas=(1, 2, 3, 4),
                adding_replicas=(4,),
                leader_recovery_state=1,
            )
        ]
    )
    part = image.topics["t"].partitions[0]
    assert part.replicas == (1, 2, 3, 4) and part.adding_replicas == (4,)
    assert part.reassigning and part.leader_recovery_state == 1 and part.leader_epoch == 5


def test_partition_change_for_unknown_partition_is_ignored() -> None:
    image = registered()
    after = image.apply([PartitionChangeRecord(9, TOPIC, leader=2)])
    assert after.topics["t"].partitions.keys() == {0}
