"""This broker's block of producer ids (see metadata/producer_ids.py): ids are given out one
at a time, and a new block is committed to the metadata log when the current one runs out (by
the active controller, asked with AllocateProducerIds, when the node runs a quorum)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.producer_ids import allocate_block

if TYPE_CHECKING:
    from odradek.server.node import Node


class ProducerIdGenerator:
    def __init__(self, node: Node) -> None:
        self.node = node
        self._next = 0
        self._end = 0  # the block is [_next, _end)
        self._lock = asyncio.Lock()

    async def next_id(self) -> int:
        await self.ensure_ready()
        return self.take()

    async def ensure_ready(self) -> None:
        """Commit a new block to the metadata log if the current one is used up."""
        while self._next >= self._end:
            async with self._lock:
                if self._next >= self._end:
                    self._next, self._end = await self._new_block()

    async def _new_block(self) -> tuple[int, int]:
        """[first, end) of a block committed for this broker: by the active controller when
        the node runs a quorum (AllocateProducerIds), else written here."""
        channel = self.node.controller_channel
        if channel is not None:
            first, length = await channel.allocate_producer_ids()
            return first, first + length
        first = self.node.image.next_producer_id
        record = allocate_block(self.node.image, self.node.node_id, 0)
        await self.node.commit([record])
        return first, record.next_producer_id

    def take(self) -> int:
        """The next id of the current block; COORDINATOR_LOAD_IN_PROGRESS (retriable, as
        Kafka answers while it fetches a block) when it is used up."""
        if self._next >= self._end:
            raise KafkaError(
                "no producer id block is ready", ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
            )
        producer_id = self._next
        self._next += 1
        return producer_id
