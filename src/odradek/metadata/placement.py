"""Replica placement as Kafka's StripedReplicaPlacer does it.

Brokers are grouped by rack (brokers without a rack share one unnamed rack); racks are sorted,
and within each rack the unfenced and fenced brokers are two sorted lists. Each partition takes
its replicas round robin across racks, starting one rack further than the previous partition
(the "stripes"), and round robin within a rack, unfenced brokers before fenced ones. The leader
(first replica) is always unfenced. When as many partitions as there are unfenced brokers have
been placed, racks and brokers are shuffled so the next round differs. Start offsets and
shuffles come from the `random.Random` passed in; give a seeded one for reproducible placement.

Constraints (INVALID_REPLICATION_FACTOR): the replication factor is positive, no larger than
the number of usable brokers, and at least one broker is unfenced. Brokers in controlled
shutdown are not usable.

Manual assignments (CreateTopics, CreatePartitions, AlterPartitionReassignments) are checked by
`validate_manual_assignment` with Kafka's messages (INVALID_REPLICA_ASSIGNMENT).
"""

from __future__ import annotations

import random
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.image import MetadataImage


@dataclass(frozen=True, slots=True)
class UsableBroker:
    broker_id: int
    rack: str | None
    fenced: bool


def validate_manual_assignment(
    known_brokers: Container[int], replicas: Sequence[int], replication_factor: int | None = None
) -> None:
    """Kafka's validateManualPartitionAssignment: non-empty, registered, no broker twice, and
    as many replicas as the partitions before it when `replication_factor` is given."""

    def invalid(message: str) -> KafkaError:
        return KafkaError(message, ErrorCode.INVALID_REPLICA_ASSIGNMENT)

    if not replicas:
        raise invalid("The manual partition assignment includes an empty replica list.")
    previous = None
    for broker in sorted(replicas):
        if broker not in known_brokers:
            raise invalid(
                f"The manual partition assignment includes broker {broker}, but no such"
                " broker is registered."
            )
        if broker == previous:
            raise invalid(
                f"The manual partition assignment includes the broker {broker} more than once."
            )
        previous = broker
    if replication_factor is not None and len(replicas) != replication_factor:
        raise invalid(
            f"The manual partition assignment includes a partition with {len(replicas)}"
            " replica(s), but this is not consistent with previous partitions, which have"
            f" {replication_factor} replica(s)."
        )


def usable_brokers(image: MetadataImage) -> list[UsableBroker]:
    return [
        UsableBroker(b.broker_id, b.rack, b.fenced)
        for b in image.brokers.values()
        if not b.in_controlled_shutdown
    ]


class _BrokerList:
    def __init__(self) -> None:
        self.brokers: list[int] = []
        self.index = 0
        self.offset = 0
        self.epoch = 0

    def initialize(self, rng: random.Random) -> None:
        if self.brokers:
            self.brokers.sort()
            self.offset = rng.randrange(len(self.brokers))

    def next(self, epoch: int) -> int:
        if not self.brokers:
            return -1
        if self.epoch != epoch:
            self.epoch = epoch
            self.index = 0
            self.offset = (self.offset + 1) % len(self.brokers)
        if self.index >= len(self.brokers):
            return -1
        broker = self.brokers[(self.index + self.offset) % len(self.brokers)]
        self.index += 1
        return broker


class _Rack:
    def __init__(self) -> None:
        self.fenced = _BrokerList()
        self.unfenced = _BrokerList()

    def next(self, epoch: int) -> int:
        broker = self.unfenced.next(epoch)
        return broker if broker >= 0 else self.fenced.next(epoch)


def _invalid(message: str) -> KafkaError:
    return KafkaError(message, ErrorCode.INVALID_REPLICATION_FACTOR)


class StripedReplicaPlacer:
    def __init__(self, brokers: Iterable[UsableBroker], rng: random.Random) -> None:
        self.rng = rng
        self.racks: dict[str | None, _Rack] = {}
        self.total = 0
        self.unfenced = 0
        for broker in brokers:
            rack = self.racks.setdefault(broker.rack, _Rack())
            (rack.fenced if broker.fenced else rack.unfenced).brokers.append(broker.broker_id)
            self.total += 1
            self.unfenced += 0 if broker.fenced else 1
        for rack in self.racks.values():
            rack.unfenced.initialize(rng)
            rack.fenced.initialize(rng)
        # Kafka sorts racks with the unnamed one first
        self.rack_names = sorted(self.racks, key=lambda name: (name is not None, name or ""))
        self.offset = rng.randrange(len(self.rack_names)) if self.rack_names else 0
        self.epoch = 0

    def check(self, replication_factor: int) -> None:
        if replication_factor <= 0:
            raise _invalid(
                f"Invalid replication factor {replication_factor}: the replication factor must"
                " be positive."
            )
        if self.unfenced == 0:
            raise _invalid("All brokers are currently fenced.")
        if replication_factor > self.total:
            raise _invalid(
                f"The target replication factor of {replication_factor} cannot be reached"
                f" because only {self.total} broker(s) are registered."
            )

    def _shuffle(self) -> None:
        self.rng.shuffle(self.rack_names)
        for rack in self.racks.values():
            self.rng.shuffle(rack.unfenced.brokers)
            self.rng.shuffle(rack.fenced.brokers)

    def place_one(self, replication_factor: int) -> tuple[int, ...]:
        self.check(replication_factor)
        if self.epoch == self.unfenced and self.unfenced > 1:
            self._shuffle()
            self.epoch = 0
        if self.offset == len(self.rack_names):
            self.offset = 0
        count = len(self.rack_names)
        first_rack = self.offset
        while True:
            leader = self.racks[self.rack_names[first_rack]].unfenced.next(self.epoch)
            if leader >= 0:
                break
            first_rack = (first_rack + 1) % count
        replicas = [leader]
        rack_index = self.offset
        for _ in range(1, replication_factor):
            broker = -1
            while broker < 0:
                if rack_index == first_rack:
                    first_rack = -1  # the leader's rack already gave its replica this round
                else:
                    broker = self.racks[self.rack_names[rack_index]].next(self.epoch)
                rack_index = (rack_index + 1) % count
            replicas.append(broker)
        self.epoch += 1
        self.offset += 1
        return tuple(replicas)

    def place(self, partitions: int, replication_factor: int) -> list[tuple[int, ...]]:
        self.check(replication_factor)
        return [self.place_one(replication_factor) for _ in range(partitions)]
