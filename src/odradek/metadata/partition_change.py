"""Kafka's PartitionChangeBuilder rules as a pure function: one partition, targets in, at most
one PartitionChangeRecord out.

The caller states what it wants (a new ISR, new replicas, a reassignment's adding/removing
sets, an election kind) and says which brokers may lead (`is_acceptable_leader`: unfenced and
not shutting down, minus a broker being fenced). The rules, in Kafka's order:

1. A reassignment completes when every target replica outside `removing` is in the ISR: the
   removing replicas leave the replicas and the ISR, adding/removing are cleared (never when
   that would empty the ISR or the replicas).
2. Election. The current leader stays when it is still in the target ISR and acceptable
   (PREFERRED tries the first replica first). Otherwise the first acceptable replica, in
   replica order, that is in the target ISR leads. With UNCLEAN and no such replica, the first
   acceptable replica leads even outside the ISR: the ISR becomes just that leader and the
   leader recovery state RECOVERING. Else nobody leads (-1).
3. If the new replica list drops any current replica and the leader is unchanged, the record
   names the leader again so its epoch bumps (removed replicas must stop fetching).
4. The ISR is written when it changed, unless it would be empty: without ELR (KIP-966) the
   last ISR member is kept, so the ISR never forgets who had the committed data.
5. Replicas, adding, removing and the recovery state are written when they changed.

A record that changes nothing is not produced (None). Not done: ELR and last-known ELR
(KIP-966), directories (KIP-858), and the pre-3.6 leader epoch bump on ISR shrink.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any

from odradek.common.config import BROKER_CONFIG_DEFS, TOPIC_CONFIGS
from odradek.metadata.image import MetadataImage, PartitionImage, TopicImage
from odradek.metadata.records import (
    LEADER_RECOVERING,
    NO_LEADER,
    NO_LEADER_CHANGE,
    PartitionChangeRecord,
)


class Election(IntEnum):
    PREFERRED = 0
    ONLINE = 1
    UNCLEAN = 2


def topic_setting(image: MetadataImage, topic: TopicImage, name: str, static: Any = None) -> Any:
    """A topic config as the controller resolves it: the topic's own value, else the
    cluster-wide dynamic default, else `static` (the controller's own config), else Kafka's
    default. Values in the image were checked when they were set."""
    synonym, definition = TOPIC_CONFIGS[name]
    raw = topic.configs.get(name)
    if raw is None:
        raw = image.broker_config("").get(synonym)
    if raw is not None:
        return definition.parse(raw)
    return BROKER_CONFIG_DEFS[synonym].default if static is None else static


def unclean_election_enabled(
    image: MetadataImage, topic: TopicImage, static: bool | None = None
) -> bool:
    return bool(topic_setting(image, topic, "unclean.leader.election.enable", static))


def min_insync_replicas(image: MetadataImage, topic: TopicImage, static: int | None = None) -> int:
    return int(topic_setting(image, topic, "min.insync.replicas", static))


def _complete_reassignment(
    isr: list[int], replicas: list[int], removing: list[int], adding: list[int]
) -> tuple[list[int], list[int]] | None:
    if not removing and not adding:
        return None
    new_isr, new_replicas = isr, replicas
    if removing:
        new_isr = [r for r in isr if r not in removing]
        new_replicas = [r for r in replicas if r not in removing]
        if not new_isr or not new_replicas:
            return None
    if not set(new_replicas) <= set(new_isr):
        return None
    return new_isr, new_replicas


def build_partition_change(
    topic_id: bytes,
    partition: PartitionImage,
    is_acceptable_leader: Callable[[int], bool],
    *,
    isr: Sequence[int] | None = None,
    replicas: Sequence[int] | None = None,
    removing: Sequence[int] | None = None,
    adding: Sequence[int] | None = None,
    leader_recovery_state: int | None = None,
    election: Election = Election.ONLINE,
) -> PartitionChangeRecord | None:
    target_isr = list(partition.isr if isr is None else isr)
    target_replicas = list(partition.replicas if replicas is None else replicas)
    target_removing = list(partition.removing_replicas if removing is None else removing)
    target_adding = list(partition.adding_replicas if adding is None else adding)
    target_recovery = (
        partition.leader_recovery_state if leader_recovery_state is None else leader_recovery_state
    )

    completed = _complete_reassignment(target_isr, target_replicas, target_removing, target_adding)
    if completed is not None:
        target_isr, target_replicas = completed
        target_removing, target_adding = [], []

    def valid(replica: int) -> bool:
        return replica in target_isr and is_acceptable_leader(replica)

    unclean = False
    if election == Election.PREFERRED and target_replicas and valid(target_replicas[0]):
        new_leader = target_replicas[0]
    elif valid(partition.leader):
        new_leader = partition.leader
    else:
        new_leader = next((r for r in target_replicas if valid(r)), NO_LEADER)
        if new_leader == NO_LEADER and election == Election.UNCLEAN:
            new_leader = next((r for r in target_replicas if is_acceptable_leader(r)), NO_LEADER)
            unclean = new_leader != NO_LEADER

    record_leader = NO_LEADER_CHANGE
    record_isr: tuple[int, ...] | None = None
    record_recovery = -1
    if new_leader != partition.leader:
        record_leader = new_leader
        if unclean:
            record_isr = (new_leader,)
            if partition.leader_recovery_state != LEADER_RECOVERING:
                record_recovery = LEADER_RECOVERING
    if record_leader == NO_LEADER_CHANGE and not set(partition.replicas) <= set(target_replicas):
        record_leader = partition.leader
    if record_isr is None and target_isr and tuple(target_isr) != partition.isr:
        record_isr = tuple(target_isr)
    record_replicas = None
    if target_replicas and tuple(target_replicas) != partition.replicas:
        record_replicas = tuple(target_replicas)
    record_removing = None
    if tuple(target_removing) != partition.removing_replicas:
        record_removing = tuple(target_removing)
    record_adding = None
    if tuple(target_adding) != partition.adding_replicas:
        record_adding = tuple(target_adding)
    if target_recovery != partition.leader_recovery_state and record_recovery == -1:
        record_recovery = target_recovery

    record = PartitionChangeRecord(
        partition.partition_id,
        topic_id,
        isr=record_isr,
        leader=record_leader,
        replicas=record_replicas,
        removing_replicas=record_removing,
        adding_replicas=record_adding,
        leader_recovery_state=record_recovery,
    )
    if record == PartitionChangeRecord(partition.partition_id, topic_id):
        return None
    return record


def leader_and_isr_updates(
    image: MetadataImage,
    *,
    broker_to_remove: int = NO_LEADER,
    broker_to_add: int = NO_LEADER,
    unclean_default: bool | None = None,
) -> list[PartitionChangeRecord]:
    """Kafka's generateLeaderAndIsrUpdates over the whole image.

    With `broker_to_remove`: every partition whose ISR holds that broker loses it from the ISR
    and, if it led, gets a new leader; the broker is never acceptable as leader (it is being
    fenced or shut down, though the image may not show it yet). With `broker_to_add`: every
    partition without a leader tries an election in which that broker counts as acceptable
    (it is being unfenced). Unclean elections follow each topic's
    unclean.leader.election.enable."""
    records: list[PartitionChangeRecord] = []

    def acceptable(replica: int) -> bool:
        if replica == broker_to_remove:
            return False
        return replica == broker_to_add or image.is_active(replica)

    for topic, partition in image.all_partitions():
        if broker_to_remove != NO_LEADER:
            if broker_to_remove not in partition.isr:
                continue
        elif partition.leader != NO_LEADER:
            continue
        election = (
            Election.UNCLEAN
            if unclean_election_enabled(image, topic, unclean_default)
            else Election.ONLINE
        )
        record = build_partition_change(
            topic.topic_id,
            partition,
            acceptable,
            isr=[r for r in partition.isr if r != broker_to_remove],
            election=election,
        )
        if record is not None:
            records.append(record)
    return records
