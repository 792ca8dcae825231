"""The brokers a client is told about (Metadata, DescribeCluster, FindCoordinator).

Once brokers have registered with the controller, the registered ones that are not fenced are
listed, each with its endpoint on the listener of this node (as Kafka's KRaftMetadataCache
does); before any has (a node keeping the metadata log alone), the node lists itself. Clients
cannot reach controllers, so the "controller" they are shown is a live broker: the active
controller when it is one, else the lowest live broker id, as any broker forwards admin
requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from odradek.metadata.image import BrokerRegistration

if TYPE_CHECKING:
    from odradek.server.node import Node


@dataclass(frozen=True, slots=True)
class BrokerView:
    broker_id: int
    host: str
    port: int
    rack: str | None
    fenced: bool = False


def _view(node: Node, registration: BrokerRegistration) -> BrokerView | None:
    endpoints = registration.endpoints
    chosen = next((e for e in endpoints if e.name == node.listener_name), None)
    if chosen is None:
        return None  # not reachable on the listener this client uses
    return BrokerView(
        registration.broker_id, chosen.host, chosen.port, registration.rack, registration.fenced
    )


def _this_node(node: Node) -> BrokerView:
    """The node itself, before any broker has registered."""
    host, port = node.advertised_endpoint
    return BrokerView(node.node_id, host, port, node.config["broker.rack"])


def live_brokers(node: Node, *, include_fenced: bool = False) -> list[BrokerView]:
    image = node.image
    if not image.brokers:
        return [_this_node(node)]
    views: list[BrokerView] = []
    for broker_id in sorted(image.brokers):
        registration = image.brokers[broker_id]
        if registration.fenced and not include_fenced:
            continue
        view = _view(node, registration)
        if view is not None:
            views.append(view)
    return views


def broker_endpoint(node: Node, broker_id: int) -> BrokerView | None:
    """Where a client reaches `broker_id` (None: not a live registered broker)."""
    image = node.image
    if not image.brokers:
        return _this_node(node) if broker_id == node.node_id else None
    registration = image.broker(broker_id)
    if registration is None or registration.fenced:
        return None
    return _view(node, registration)


def controller_id(node: Node, brokers: list[BrokerView]) -> int:
    quorum = node.raft_quorum()
    ids = [b.broker_id for b in brokers if not b.fenced]
    if quorum is not None and quorum.leader_id in ids:
        return quorum.leader_id
    if node.node_id in ids or not ids:
        return node.node_id
    return ids[0]
