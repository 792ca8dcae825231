"""What a handler sees of the request it serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from odradek.protocol.codec import RequestHeader

if TYPE_CHECKING:
    from odradek.server.node import Node


@dataclass(frozen=True, slots=True)
class RequestContext:
    node: Node
    header: RequestHeader
    frame: bytearray
    body_position: int
    peer: str

    @property
    def api_version(self) -> int:
        return self.header.api_version

    @property
    def client_host(self) -> str:
        """The client's address as Kafka reports it in groups: `/127.0.0.1`."""
        return "/" + self.peer.rsplit(":", 1)[0]
