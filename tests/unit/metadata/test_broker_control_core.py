"""Broker registration, heartbeats and fencing; each test named after the rule it checks."""

from __future__ import annotations

import pytest
from cluster_helpers import TOPIC_ID, cluster, epoch_of, incarnation, part, with_topic

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.broker_control import (
    BrokerControl,
    BrokerHeartbeat,
    BrokerRegistrationRequest,
    HeartbeatTracker,
)
from odradek.metadata.image import MetadataImage
from odradek.metadata.records import (
    FENCE,
    UNFENCE,
    BrokerEndpoint,
    BrokerRegistrationChangeRecord,
    PartitionChangeRecord,
    RegisterBrokerRecord,
    UnregisterBrokerRecord,
)

LISTENER = (BrokerEndpoint("PLAINTEXT", "127.0.0.1", 9092, 0),)


def register(
    control: BrokerControl, image: MetadataImage, broker_id: int, offset: int
) -> MetadataImage:
    request = BrokerRegistrationRequest(broker_id, incarnation(broker_id), LISTENER, "r1")
    epoch, records = control.register(image, request, offset, now_ms=0)
    assert epoch == offset
    return image.apply(records)


def test_registration_is_fenced_with_epoch_of_its_record_offset() -> None:
    control = BrokerControl()
    image = register(control, MetadataImage(), 1, offset=42)
    broker = image.broker(1)
    assert broker is not None and broker.epoch == 42 and broker.fenced
    assert broker.rack == "r1" and broker.endpoints == LISTENER


def test_heartbeat_unfences_once_caught_up_with_registration() -> None:
    control = BrokerControl()
    image = register(control, MetadataImage(), 1, offset=42)
    reply, records = control.heartbeat(image, BrokerHeartbeat(1, 42, 41), 10, 50)
    assert reply.is_fenced and not reply.is_caught_up and records == []
    reply, records = control.heartbeat(image, BrokerHeartbeat(1, 42, 42), 20, 50)
    assert not reply.is_fenced and reply.is_caught_up
    assert records == [BrokerRegistrationChangeRecord(1, 42, fenced=UNFENCE)]


def test_heartbeat_with_want_fence_stays_fenced() -> None:
    control = BrokerControl()
    image = register(control, MetadataImage(), 1, offset=42)
    reply, records = control.heartbeat(image, BrokerHeartbeat(1, 42, 99, want_fence=True), 1, 50)
    assert reply.is_fenced and records == []


def test_heartbeat_stale_broker_epoch() -> None:
    control = BrokerControl()
    image = register(control, MetadataImage(), 1, offset=42)
    with pytest.raises(KafkaError) as err:
        control.heartbeat(image, BrokerHeartbeat(1, 41, 99), 1, 50)
    assert err.value.code == ErrorCode.STALE_BROKER_EPOCH


def test_heartbeat_from_unregistered_broker_is_stale_broker_epoch() -> None:
    with pytest.raises(KafkaError) as err:
        BrokerControl().heartbeat(MetadataImage(), BrokerHeartbeat(7, 1, 1), 1, 1)
    assert err.value.code == ErrorCode.STALE_BROKER_EPOCH


def test_same_incarnation_retry_keeps_epoch_and_state() -> None:
    image = cluster((1,))
    control = BrokerControl()
    request = BrokerRegistrationRequest(1, incarnation(1), LISTENER)
    epoch, records = control.register(image, request, 500, now_ms=0)
    assert epoch == epoch_of(1)
    assert records == [
        RegisterBrokerRecord(1, incarnation(1), epoch_of(1), LISTENER, (), None, False)
    ]


def test_new_incarnation_with_live_session_is_duplicate_broker_registration() -> None:
    image = cluster((1,))
    control = BrokerControl()
    control.tracker.touch(1, 1000, 5)
    request = BrokerRegistrationRequest(1, incarnation(1, 1), LISTENER)
    with pytest.raises(KafkaError) as err:
        control.register(image, request, 500, now_ms=1000 + 9000)
    assert err.value.code == ErrorCode.DUPLICATE_BROKER_REGISTRATION


def test_new_incarnation_after_session_expiry_fences_old_one_first() -> None:
    image = with_topic(cluster((1, 2)), [((1, 2), (1, 2), 1)])
    control = BrokerControl()
    control.tracker.touch(1, 1000, 5)
    request = BrokerRegistrationRequest(1, incarnation(1, 1), LISTENER)
    epoch, records = control.register(image, request, 500, now_ms=1000 + 9001)
    assert epoch == 500
    assert records[0] == PartitionChangeRecord(0, TOPIC_ID, isr=(2,), leader=2)
    assert records[1] == BrokerRegistrationChangeRecord(1, epoch_of(1), fenced=FENCE)
    image = image.apply(records)
    broker = image.broker(1)
    assert broker is not None and broker.epoch == 500 and broker.fenced
    assert part(image).leader == 2


def test_session_expiry_fences_and_moves_leaderships_in_one_batch() -> None:
    image = with_topic(
        cluster((1, 2, 3)), [((1, 2, 3), (1, 2, 3), 1), ((2, 1, 3), (2, 1), 2), ((3, 2), (3, 2), 3)]
    )
    control = BrokerControl(HeartbeatTracker(session_timeout_ms=9000))
    for broker_id in (1, 2, 3):
        control.tracker.touch(broker_id, 0, 10)
    control.tracker.touch(2, 5000, 10)
    control.tracker.touch(3, 5000, 10)
    assert control.fence_expired(image, 9000) == []
    records = control.fence_expired(image, 9001)
    assert records == [
        PartitionChangeRecord(0, TOPIC_ID, isr=(2, 3), leader=2),
        PartitionChangeRecord(1, TOPIC_ID, isr=(2,)),
        BrokerRegistrationChangeRecord(1, epoch_of(1), fenced=FENCE),
    ]


def test_two_expired_brokers_never_elect_each_other() -> None:
    image = with_topic(cluster((1, 2, 3)), [((1, 2, 3), (1, 2, 3), 1)])
    control = BrokerControl()
    control.tracker.touch(1, 0, 10)
    control.tracker.touch(2, 0, 10)
    image = image.apply(control.fence_expired(image, 10_000))
    assert part(image).leader == 3 and part(image).isr == (3,)
    assert not image.is_active(1) and not image.is_active(2)


def test_next_expiry_is_the_earliest_session_of_an_unfenced_broker() -> None:
    image = cluster((1, 2, 3), fenced=(3,))
    tracker = HeartbeatTracker(session_timeout_ms=9000)
    assert tracker.next_expiry(image) is None
    tracker.touch(1, 5000, 10)
    tracker.touch(2, 2000, 10)
    tracker.touch(3, 0, 10)  # fenced already: its session does not count
    assert tracker.next_expiry(image) == 11_000
    control = BrokerControl(tracker)
    assert control.fence_expired(image, 11_000) == []
    assert control.fence_expired(image, 11_001) != []


def test_fenced_brokers_are_not_fenced_again() -> None:
    image = cluster((1,), fenced=(1,))
    control = BrokerControl()
    control.tracker.touch(1, 0, 0)
    assert control.fence_expired(image, 100_000) == []


def test_tracker_start_gives_every_broker_a_fresh_session() -> None:
    image = cluster((1, 2))
    control = BrokerControl()
    control.tracker.start(image, 50_000)
    assert control.fence_expired(image, 59_000) == []
    assert len(control.fence_expired(image, 59_001)) == 2


def test_want_fence_from_unfenced_broker_moves_leaderships() -> None:
    image = with_topic(cluster((1, 2)), [((1, 2), (1, 2), 1)])
    control = BrokerControl()
    reply, records = control.heartbeat(
        image, BrokerHeartbeat(1, epoch_of(1), 200, want_fence=True), 0, 300
    )
    assert reply.is_fenced
    assert records == [
        PartitionChangeRecord(0, TOPIC_ID, isr=(2,), leader=2),
        BrokerRegistrationChangeRecord(1, epoch_of(1), fenced=FENCE),
    ]


def test_controlled_shutdown_moves_leaderships_then_shuts_down_when_others_caught_up() -> None:
    image = with_topic(cluster((1, 2)), [((1, 2), (1, 2), 1)])
    control = BrokerControl()
    control.tracker.touch(2, 0, 250)
    shutdown = BrokerHeartbeat(1, epoch_of(1), 250, want_shutdown=True)
    reply, records = control.heartbeat(image, shutdown, 0, next_offset=300)
    assert reply.in_controlled_shutdown and not reply.should_shut_down and not reply.is_fenced
    assert records == [
        BrokerRegistrationChangeRecord(1, epoch_of(1), in_controlled_shutdown=1),
        PartitionChangeRecord(0, TOPIC_ID, isr=(2,), leader=2),
    ]
    image = image.apply(records)
    assert not image.is_active(1)
    # broker 2 has not yet replayed the shutdown's records: wait
    reply, records = control.heartbeat(image, shutdown, 1, next_offset=302)
    assert not reply.should_shut_down and records == []
    control.tracker.touch(2, 2, 301)
    reply, records = control.heartbeat(image, shutdown, 3, next_offset=302)
    assert reply.should_shut_down and reply.is_fenced
    assert records == [BrokerRegistrationChangeRecord(1, epoch_of(1), fenced=FENCE)]


def test_shutdown_without_leaderships_is_immediate() -> None:
    image = with_topic(cluster((1, 2)), [((2, 1), (2,), 2)])
    control = BrokerControl()
    reply, records = control.heartbeat(
        image, BrokerHeartbeat(1, epoch_of(1), 200, want_shutdown=True), 0, 300
    )
    assert reply.should_shut_down
    assert records == [BrokerRegistrationChangeRecord(1, epoch_of(1), fenced=FENCE)]


def test_only_isr_member_shutting_down_leaves_partition_leaderless() -> None:
    """Kafka's rule: the partition goes offline rather than electing an out-of-sync replica."""
    image = with_topic(cluster((1, 2)), [((1, 2), (1,), 1)])
    control = BrokerControl()
    _, records = control.heartbeat(
        image, BrokerHeartbeat(1, epoch_of(1), 200, want_shutdown=True), 0, 300
    )
    image = image.apply(records)
    assert part(image).leader == -1 and part(image).isr == (1,)


def test_unfencing_restores_leader_of_offline_partition() -> None:
    image = with_topic(cluster((1, 2), fenced=(1,)), [((1, 2), (1,), -1)])
    control = BrokerControl()
    _, records = control.heartbeat(image, BrokerHeartbeat(1, epoch_of(1), 500), 0, 600)
    image = image.apply(records)
    assert image.is_active(1) and part(image).leader == 1


def test_unregister_unknown_broker_is_broker_id_not_registered() -> None:
    with pytest.raises(KafkaError) as err:
        BrokerControl().unregister(cluster((1,)), 9)
    assert err.value.code == ErrorCode.BROKER_ID_NOT_REGISTERED


def test_unregister_leaves_isrs_then_removes_registration() -> None:
    image = with_topic(cluster((1, 2)), [((1, 2), (1, 2), 1)])
    records = BrokerControl().unregister(image, 1)
    assert records[-1] == UnregisterBrokerRecord(1, epoch_of(1))
    image = image.apply(records)
    assert image.broker(1) is None and part(image).leader == 2
