"""Random sequences of registrations, heartbeats, session expiry, ISR changes, elections and
reassignments against the controller cores, with the cluster's invariants checked after every
step and for every record:

- a partition's leader is in its ISR and active (unfenced, not shutting down), or there is none;
- an inactive broker stays in an ISR only as its last member of a leaderless partition;
- the ISR is a non-empty subset of the replicas, with no duplicates;
- the leader epoch bumps by one when the leader changes, and otherwise only when replicas were
  removed; the partition epoch bumps by one on every change record;
- a new leader comes from the ISR, unless the election was unclean (ISR = just the leader,
  RECOVERING) and unclean election was allowed for that step;
- AlterPartition never leaves the ISR below min.insync.replicas by dropping an active replica;
- the records, encoded and decoded, replay to exactly the image the cores reasoned about, and
  AlterPartition's answers match the replayed partitions.

The negative controls at the end break one rule on purpose and show the checks catch it.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata import partition_change
from odradek.metadata.alter_partition import AlterPartitionItem, IsrMember, alter_partition
from odradek.metadata.broker_control import (
    BrokerControl,
    BrokerHeartbeat,
    BrokerRegistrationRequest,
    HeartbeatTracker,
    has_leaderships,
)
from odradek.metadata.controller import NewTopic, TopicController
from odradek.metadata.elections import elect_leaders, elect_unclean_leaders, rebalance_leaders
from odradek.metadata.image import MetadataImage, PartitionImage
from odradek.metadata.partition_change import min_insync_replicas, unclean_election_enabled
from odradek.metadata.reassignment import ReassignmentTarget, alter_partition_reassignments
from odradek.metadata.records import (
    LEADER_RECOVERING,
    NO_LEADER,
    BrokerRegistrationChangeRecord,
    MetadataRecord,
    PartitionChangeRecord,
    PartitionRecord,
    decode,
    encode,
)

BROKERS = (1, 2, 3, 4, 5)


def check_image(image: MetadataImage) -> None:
    for topic, partition in image.all_partitions():
        where = f"{topic.name}-{partition.partition_id} {partition}"
        assert partition.isr, where
        assert len(set(partition.isr)) == len(partition.isr), where
        assert len(set(partition.replicas)) == len(partition.replicas), where
        assert set(partition.isr) <= set(partition.replicas), where
        assert set(partition.adding_replicas) <= set(partition.replicas), where
        assert set(partition.removing_replicas) <= set(partition.replicas), where
        if partition.leader != NO_LEADER:
            assert partition.leader in partition.isr, where
            assert image.is_active(partition.leader), where
        for member in partition.isr:
            if not image.is_active(member):
                assert partition.isr == (member,) and partition.leader == NO_LEADER, where


def check_records(
    before: MetadataImage,
    records: list[MetadataRecord],
    unclean_allowed: bool | None = None,
    isr_grows: bool = False,
) -> MetadataImage:
    """Replay `records` one by one, checking each partition change against the partition it
    changes; returns the image after all of them. `unclean_allowed` None means: as the
    topic's unclean.leader.election.enable says."""
    image = before
    for record in records:
        after = image.apply([record])
        if isinstance(record, PartitionChangeRecord):
            topic = image.topic_by_id(record.topic_id)
            assert topic is not None
            old = topic.partitions[record.partition_id]
            new = after.topics[topic.name].partitions[record.partition_id]
            assert new.partition_epoch == old.partition_epoch + 1
            if new.leader != old.leader:
                assert new.leader_epoch == old.leader_epoch + 1
            elif new.leader_epoch != old.leader_epoch:
                assert new.leader_epoch == old.leader_epoch + 1
                assert not set(old.replicas) <= set(new.replicas), "bump without removal"
            if new.leader not in (old.leader, NO_LEADER) and new.leader not in old.isr:
                unclean = (
                    new.isr == (new.leader,) and new.leader_recovery_state == LEADER_RECOVERING
                )
                allowed = (
                    unclean_election_enabled(image, topic)
                    if unclean_allowed is None
                    else unclean_allowed
                )
                assert (unclean and allowed) or isr_grows, (old, new)
        image = after
    replayed = before.apply([decode(encode(r)) for r in records])  # type: ignore[misc]
    assert replayed.topics == image.topics and replayed.brokers == image.brokers
    return image


class ClusterMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.image = MetadataImage()
        self.control = BrokerControl(HeartbeatTracker(session_timeout_ms=9000))
        self.topics = TopicController([1], 1, 1, random.Random(0))
        self.now_ms = 0
        self.offset = 1
        self.generation: dict[int, int] = {}

    def commit(
        self,
        records: list[MetadataRecord],
        unclean_allowed: bool | None = None,
        isr_grows: bool = False,
    ) -> None:
        self.image = check_records(self.image, records, unclean_allowed, isr_grows)
        self.offset += max(len(records), 1)

    @invariant()
    def cluster_is_consistent(self) -> None:
        check_image(self.image)

    @rule(broker=st.sampled_from(BROKERS), restart=st.booleans())
    def register(self, broker: int, restart: bool) -> None:
        if restart or broker not in self.generation:
            self.generation[broker] = self.generation.get(broker, -1) + 1
        incarnation = bytes([broker, self.generation[broker]]) * 8
        request = BrokerRegistrationRequest(broker, incarnation, rack=f"r{broker % 2}")
        try:
            _, records = self.control.register(self.image, request, self.offset, self.now_ms)
        except KafkaError as exc:
            assert exc.code == ErrorCode.DUPLICATE_BROKER_REGISTRATION
            return
        self.commit(records)

    @initialize(brokers=st.integers(2, 5), min_isr=st.integers(1, 3))
    def bootstrap(self, brokers: int, min_isr: int) -> None:
        """A running cluster: brokers registered and unfenced, a clean and an unclean topic."""
        for broker in BROKERS[:brokers]:
            self.register(broker, False)
            self.heartbeat(broker, True, False, False, False)
        self.create_topic(3, min(3, brokers), False, min_isr)
        self.create_topic(3, min(2, brokers), True, min_isr)

    @rule()
    def every_broker_heartbeats(self) -> None:
        for broker, registration in sorted(self.image.brokers.items()):
            if not registration.in_controlled_shutdown:
                self.heartbeat(broker, True, False, False, False)

    @rule(
        broker=st.sampled_from(BROKERS),
        caught_up=st.booleans(),
        want_fence=st.booleans(),
        want_shutdown=st.booleans(),
        stale=st.booleans(),
    )
    def heartbeat(
        self, broker: int, caught_up: bool, want_fence: bool, want_shutdown: bool, stale: bool
    ) -> None:
        registration = self.image.broker(broker)
        epoch = -5 if registration is None or stale else registration.epoch
        offset = self.offset if caught_up else epoch - 1
        request = BrokerHeartbeat(broker, epoch, offset, want_fence, want_shutdown)
        try:
            reply, records = self.control.heartbeat(self.image, request, self.now_ms, self.offset)
        except KafkaError as exc:
            assert exc.code == ErrorCode.STALE_BROKER_EPOCH
            assert registration is None or stale
            return
        self.commit(records)
        after = self.image.broker(broker)
        assert after is not None and after.fenced == reply.is_fenced
        if reply.should_shut_down:
            assert not has_leaderships(self.image, broker)

    @precondition(lambda self: bool(self.image.brokers))
    @rule(data=st.data())
    def unregister(self, data: st.DataObject) -> None:
        broker = data.draw(st.sampled_from(sorted(self.image.brokers)))
        self.commit(self.control.unregister(self.image, broker))
        assert self.image.broker(broker) is None
        assert not has_leaderships(self.image, broker)

    @rule(elapsed_ms=st.integers(0, 4_000) | st.just(20_000))
    def time_passes(self, elapsed_ms: int) -> None:
        self.now_ms += elapsed_ms
        expired = self.control.tracker.expired(self.image, self.now_ms)
        self.commit(self.control.fence_expired(self.image, self.now_ms))
        for broker in expired:
            registration = self.image.broker(broker)
            assert registration is not None and registration.fenced

    @precondition(lambda self: bool(self.image.brokers))
    @rule(
        partitions=st.integers(1, 3),
        replication=st.integers(1, 3),
        unclean=st.booleans(),
        min_isr=st.integers(1, 3),
    )
    def create_topic(self, partitions: int, replication: int, unclean: bool, min_isr: int) -> None:
        name = f"t{len(self.image.topics)}"
        configs: dict[str, str | None] = {
            "unclean.leader.election.enable": str(unclean).lower(),
            "min.insync.replicas": str(min_isr),
        }
        try:
            _, records = self.topics.create_topic(
                self.image, NewTopic(name, partitions, replication, {}, configs), set()
            )
        except KafkaError as exc:
            assert exc.code == ErrorCode.INVALID_REPLICATION_FACTOR
            return
        for record in records:
            if isinstance(record, PartitionRecord):
                assert self.image.is_active(record.leader)
        self.commit(records)

    @precondition(lambda self: any(p.leader != NO_LEADER for _, p in self.image.all_partitions()))
    @rule(data=st.data(), stale=st.booleans())
    def leader_alters_isr(self, data: st.DataObject, stale: bool) -> None:
        led = [(t, p) for t, p in self.image.all_partitions() if p.leader != NO_LEADER]
        topic, partition = data.draw(st.sampled_from(led))
        others = [r for r in partition.replicas if r != partition.leader]
        chosen = data.draw(st.lists(st.sampled_from(others), unique=True)) if others else []
        new_isr = (partition.leader, *chosen)
        leader_epoch = partition.leader_epoch - (1 if stale else 0)
        item = AlterPartitionItem(
            topic.topic_id,
            partition.partition_id,
            leader_epoch,
            partition.partition_epoch,
            tuple(IsrMember(b) for b in new_isr),
        )
        registration = self.image.brokers[partition.leader]
        records, [outcome] = alter_partition(
            self.image, partition.leader, registration.epoch, [item]
        )
        if stale:
            assert outcome.error == ErrorCode.FENCED_LEADER_EPOCH and not records
        if any(not self.image.is_active(b) for b in new_isr) and not stale:
            assert outcome.error == ErrorCode.INELIGIBLE_REPLICA and not records
        min_isr = min_insync_replicas(self.image, topic)
        before = self.image
        self.commit(records, isr_grows=True)
        if outcome.error == ErrorCode.NONE:
            now = self.image.topics[topic.name].partitions[partition.partition_id]
            assert outcome.partition == now
            dropped_live = [r for r in partition.isr if r not in now.isr and before.is_active(r)]
            if dropped_live and not now.adding_replicas and now.replicas == partition.replicas:
                assert len(now.isr) >= min_isr

    @rule(unclean=st.booleans())
    def admin_elects_leaders(self, unclean: bool) -> None:
        records, outcomes = elect_leaders(self.image, 1 if unclean else 0, None)
        for outcome in outcomes:
            assert outcome.error != ErrorCode.ELECTION_NOT_NEEDED
        self.commit(records, unclean_allowed=unclean)

    @rule(percentage=st.sampled_from([0, 10, 50]))
    def rebalance(self, percentage: int) -> None:
        records = rebalance_leaders(self.image, percentage)
        self.commit(records)
        for record in records:
            assert isinstance(record, PartitionChangeRecord)
            topic = self.image.topic_by_id(record.topic_id)
            assert topic is not None
            partition = topic.partitions[record.partition_id]
            assert partition.leader == partition.replicas[0]

    @precondition(lambda self: bool(self.image.topics) and bool(self.image.brokers))
    @rule(data=st.data())
    def reassign(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.image.topics)))
        topic = self.image.topics[name]
        partition_id = data.draw(st.sampled_from(sorted(topic.partitions)))
        cancel = data.draw(st.booleans())
        target = None
        if not cancel:
            target = tuple(
                data.draw(
                    st.lists(st.sampled_from(sorted(self.image.brokers)), min_size=1, unique=True)
                )
            )
        records, [outcome] = alter_partition_reassignments(
            self.image, [ReassignmentTarget(name, partition_id, target)]
        )
        self.commit(records)
        if outcome.error != ErrorCode.NONE:
            assert not records

    @rule()
    def offline_partitions_get_unclean_leaders(self) -> None:
        # a record here may also complete a reassignment without electing anyone, as in Kafka
        self.commit(elect_unclean_leaders(self.image))


ClusterMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestClusterControl = ClusterMachine.TestCase


def two_broker_cluster() -> ClusterMachine:
    machine = ClusterMachine()
    machine.bootstrap(2, 1)
    return machine


def test_negative_control_leader_left_on_fenced_broker_is_caught() -> None:
    """Fencing without moving leaderships, as a core that forgot them would, is caught."""
    image = two_broker_cluster().image
    leader = image.topics["t0"].partitions[0].leader
    epoch = image.brokers[leader].epoch
    broken = image.apply([BrokerRegistrationChangeRecord(leader, epoch, fenced=1)])
    with pytest.raises(AssertionError):
        check_image(broken)


def test_negative_control_clean_election_outside_isr_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A builder that always allowed unclean elections is caught by the record checks."""
    machine = two_broker_cluster()
    topic = machine.image.topics["t0"]
    partition = topic.partitions[0]
    follower = next(r for r in partition.replicas if r != partition.leader)
    # the follower drops out of the ISR, then the leader goes away
    machine.commit([PartitionChangeRecord(0, topic.topic_id, isr=(partition.leader,))])
    original = partition_change.build_partition_change

    def always_unclean(*args: Any, **kwargs: Any) -> PartitionChangeRecord | None:
        kwargs["election"] = partition_change.Election.UNCLEAN
        return original(*args, **kwargs)

    monkeypatch.setattr(partition_change, "build_partition_change", always_unclean)
    records = machine.control.unregister(machine.image, partition.leader)
    assert any(isinstance(r, PartitionChangeRecord) and r.leader == follower for r in records)
    with pytest.raises(AssertionError):
        check_records(machine.image, records)


def test_negative_control_leader_change_without_epoch_bump_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replay that forgot to bump the leader epoch on a leader change is caught."""
    machine = two_broker_cluster()
    leader = machine.image.topics["t0"].partitions[0].leader
    original = PartitionImage.merge

    def lazy_merge(self: PartitionImage, change: PartitionChangeRecord) -> PartitionImage:
        return replace(original(self, change), leader_epoch=self.leader_epoch)

    monkeypatch.setattr(PartitionImage, "merge", lazy_merge)
    records = machine.control.unregister(machine.image, leader)
    with pytest.raises(AssertionError):
        check_records(machine.image, records)
