"""Requests from this broker to another broker of the cluster, addressed by broker id.

The transaction coordinator sends WriteTxnMarkers to the leaders of a transaction's
partitions, and a partition leader asks a transaction coordinator elsewhere whether a
partition is in a transaction (AddPartitionsToTxn, KIP-890). Both reach the other broker at
the address it registered for brokers (`BrokerRegistration.inter_broker_address`, as replica
fetchers do), read from the current metadata image when the request is sent: a broker that
restarted on another port is found there. One connection per broker, reused; several requests
may be in flight on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.transport.client import NodeClient, TransportError

if TYPE_CHECKING:
    from odradek.server.node import Node


class BrokerChannel:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._clients: dict[int, NodeClient] = {}

    def _endpoint(self, broker_id: int) -> tuple[str, int]:
        registration = self.node.image.broker(broker_id)
        if registration is None or registration.fenced:
            address = None
        else:
            address = registration.inter_broker_address
        if address is None:
            raise KafkaError(f"broker {broker_id} is not available", ErrorCode.BROKER_NOT_AVAILABLE)
        return address

    async def send(self, broker_id: int, request: Any, timeout_ms: int) -> Any:
        """The response of `broker_id` to a kio request entity. A broker that cannot be
        reached or does not answer in time is NETWORK_EXCEPTION; one that is not a live
        registered broker is BROKER_NOT_AVAILABLE."""
        host, port = self._endpoint(broker_id)
        client = self._clients.get(broker_id)
        if client is None or (client.host, client.port) != (host, port):
            if client is not None:
                await client.close()
            client = NodeClient(
                host,
                port,
                client_id=f"broker-{self.node.node_id}",
                request_timeout_ms=timeout_ms,
            )
            self._clients[broker_id] = client
        try:
            return await client.send(request, timeout_ms=timeout_ms)
        except TransportError as exc:
            raise KafkaError(
                f"broker {broker_id} did not answer: {exc}", ErrorCode.NETWORK_EXCEPTION
            ) from exc

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()
