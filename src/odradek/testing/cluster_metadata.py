"""What one node of a test cluster says about the cluster: its Metadata answer, and the leader of
the metadata quorum (DescribeQuorum), asked over a plain socket of one node.

A client library (librdkafka) sends a Metadata request to whichever broker it likes; a cluster
that is being killed and restarted needs the answer of a node it names, so these requests go
through the CLI's blocking `BrokerConnection`, to one address, with a short timeout (a paused
node accepts the connection and never answers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

CLIENT_ID = "odradek-testing-cluster"
REQUEST_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class PartitionState:
    """One partition as a node's Metadata answer shows it (`leader` -1: none)."""

    topic: str
    partition: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...]

    @property
    def fully_replicated(self) -> bool:
        return self.leader >= 0 and set(self.isr) == set(self.replicas)


@dataclass(frozen=True, slots=True)
class MetadataView:
    """One node's Metadata answer for every topic: the live brokers it lists, the controller
    it names, and every partition by (topic, partition)."""

    node_id: int
    brokers: frozenset[int]
    controller_id: int
    partitions: Mapping[tuple[str, int], PartitionState]

    def topic(self, name: str) -> list[PartitionState]:
        """The partitions of `name`, by index (empty: the node does not know the topic)."""
        return sorted(
            (p for (topic, _), p in self.partitions.items() if topic == name),
            key=lambda p: p.partition,
        )


class NodeUnreachable(Exception):
    """The node did not answer (stopped, paused, or not listening yet)."""


def metadata_of(node_id: int, host: str, port: int) -> MetadataView:
    """The Metadata answer of the node at host:port for every topic."""
    from odradek.cli.broker_requests import BrokerConnection, metadata
    from odradek.cli.client_options import ClientError

    try:
        with BrokerConnection(host, port, REQUEST_TIMEOUT_S, CLIENT_ID) as connection:
            answer = metadata(connection)
    except ClientError as exc:
        raise NodeUnreachable(f"node {node_id}: {exc.message}") from None
    partitions: dict[tuple[str, int], PartitionState] = {}
    for topic in answer.topics:
        if topic.error_code != 0 or topic.name is None:
            continue
        for p in topic.partitions:
            state = PartitionState(
                topic=str(topic.name),
                partition=int(p.partition_index),
                leader=int(p.leader_id),
                leader_epoch=int(getattr(p, "leader_epoch", -1)),
                replicas=tuple(int(r) for r in p.replica_nodes),
                isr=tuple(int(r) for r in p.isr_nodes),
                offline_replicas=tuple(int(r) for r in getattr(p, "offline_replicas", ())),
            )
            partitions[(state.topic, state.partition)] = state
    return MetadataView(
        node_id=node_id,
        brokers=frozenset(int(b.node_id) for b in answer.brokers),
        controller_id=int(getattr(answer, "controller_id", -1)),
        partitions=partitions,
    )


def quorum_leader(voters: str) -> int:
    """The leader of the metadata quorum, as the first of `voters` (host:port,...) that leads
    it says; NodeUnreachable when none does (an election is under way, or none answers)."""
    from odradek.cli.client_options import ClientError
    from odradek.cli.metadata_quorum import describe_at_leader

    try:
        partition = describe_at_leader(voters, REQUEST_TIMEOUT_S)
    except ClientError as exc:
        raise NodeUnreachable(exc.message) from None
    return int(partition.leader_id)
