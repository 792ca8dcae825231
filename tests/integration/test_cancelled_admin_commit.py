"""A topic creation whose request goes away mid-commit is still applied before the next one.

A client may close its connection while the broker commits what the request decided (librdkafka
drops a bootstrap connection once it knows the brokers, with a FindCoordinator that creates
`__consumer_offsets` still in flight). The request's task is cancelled, but the records are in
the metadata log and commit anyway. The next creation of the same topic must see them and be
TOPIC_ALREADY_EXISTS, not create the topic again under a new id (the replicas would then delete
the first one's logs). Negative control (by hand): `Node.commit` awaiting `quorum.commit`
without the shield fails both assertions.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from odradek.common.config import BrokerConfig
from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.controller import NewTopic
from odradek.server.node import Node


def test_a_cancelled_creation_is_applied_before_the_next_is_decided(tmp_path: Path) -> None:
    async def main() -> None:
        node = Node(
            BrokerConfig({"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(tmp_path)})
        )
        await node.start()
        try:
            topic = NewTopic("orders", 3, 1, {}, {})
            first = asyncio.create_task(node.create_topics([topic], ignore_existing=True))
            await asyncio.sleep(0)  # decided and appended; its flush is under way
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
            created = node.image.topic("orders")
            assert created is not None
            again = await node.create_topics([topic])
            outcome = again["orders"]
            assert isinstance(outcome, KafkaError)
            assert outcome.code == ErrorCode.TOPIC_ALREADY_EXISTS
            assert node.image.topic("orders") == created
        finally:
            await node.stop()

    asyncio.run(asyncio.wait_for(main(), 30))
