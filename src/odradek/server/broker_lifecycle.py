"""The broker's side of its registration with the controller (Kafka's BrokerLifecycleManager).

Once the node listens, it registers (a fresh incarnation id per process, its advertised
endpoint, `broker.rack`) and then heartbeats with the offset of the last metadata record it
has applied: every `broker.heartbeat.interval.ms` while unfenced, more often while it waits to
be unfenced, so a starting broker takes partitions as soon as it has caught up. A heartbeat
answered STALE_BROKER_EPOCH (the controller lost or replaced the registration) registers again.

Catching up: the first heartbeat the controller answers is_caught_up (the broker has applied
the metadata log up to its registration) admits the node's client requests
(`Node.clients_admitted`, `admission.py`), as Kafka's initial catch-up future does. Should the
controller not say so within `CATCH_UP_TIMEOUT_MS` of the start, they are admitted anyway,
with a warning: a broker answering from an old image beats one that never answers.

Controlled shutdown: `shut_down` heartbeats with want_shut_down until the controller says
should_shut_down, which it does once every leadership of this broker has moved and the other
brokers have seen it, or until the deadline; the node then stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.broker_control import BrokerHeartbeat, BrokerRegistrationRequest
from odradek.metadata.records import BrokerEndpoint

if TYPE_CHECKING:
    from odradek.server.controller_channel import ControllerChannel
    from odradek.server.node import Node

logger = logging.getLogger(__name__)

SECURITY_PROTOCOLS = {"PLAINTEXT": 0, "SSL": 1, "SASL_PLAINTEXT": 2, "SASL_SSL": 3}
FENCED_HEARTBEAT_MS = 100
SHUTDOWN_HEARTBEAT_MS = 100
CATCH_UP_TIMEOUT_MS = 60_000  # Kafka's initial.broker.registration.timeout.ms default


class BrokerLifecycle:
    def __init__(self, node: Node, channel: ControllerChannel) -> None:
        self.node = node
        self.channel = channel
        self.incarnation_id = os.urandom(16)
        self.broker_epoch = -1
        self.fenced = True
        self.unfenced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._catch_up_deadline: asyncio.TimerHandle | None = None
        self._shutting_down = False

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run())
        self._catch_up_deadline = loop.call_later(
            CATCH_UP_TIMEOUT_MS / 1000, self._admit_clients, False
        )

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._catch_up_deadline is not None:
            self._catch_up_deadline.cancel()
            self._catch_up_deadline = None

    def _admit_clients(self, caught_up: bool) -> None:
        """Let client requests in (once): caught up, or out of time to wait for it."""
        admitted = self.node.clients_admitted
        if admitted.is_set():
            return
        if caught_up:
            logger.info(
                "[BrokerLifecycle] caught up with the metadata log at offset %d; serving clients",
                self.node.metadata_applied_offset(),
            )
        else:
            logger.warning(
                "[BrokerLifecycle] not caught up with the metadata log after %d ms;"
                " serving clients from offset %d",
                CATCH_UP_TIMEOUT_MS,
                self.node.metadata_applied_offset(),
            )
        admitted.set()
        if self._catch_up_deadline is not None:
            self._catch_up_deadline.cancel()
            self._catch_up_deadline = None

    def _request(self) -> BrokerRegistrationRequest:
        host, port = self.node.advertised_endpoint
        name = self.node.listener_name
        return BrokerRegistrationRequest(
            self.node.node_id,
            self.incarnation_id,
            (BrokerEndpoint(name, host, port, SECURITY_PROTOCOLS.get(name, 0)),),
            self.node.config["broker.rack"],
        )

    async def _register(self) -> None:
        backoff_s = self.node.config["controller.quorum.retry.backoff.ms"] / 1000
        while True:
            try:
                epoch = await self.channel.register(self._request(), self.node.cluster_id)
            except KafkaError as exc:
                logger.info("[BrokerLifecycle] registration not done yet: %s", exc)
                await asyncio.sleep(backoff_s)
                continue
            self.broker_epoch = self.channel.broker_epoch = epoch
            logger.info("[BrokerLifecycle] registered at broker epoch %d", epoch)
            return

    def _heartbeat(self) -> BrokerHeartbeat:
        return BrokerHeartbeat(
            self.node.node_id,
            self.broker_epoch,
            self.node.metadata_applied_offset(),
            want_shutdown=self._shutting_down,
        )

    async def _run(self) -> None:
        await self._register()
        interval_s = self.node.config["broker.heartbeat.interval.ms"] / 1000
        while True:
            try:
                reply = await self.channel.heartbeat(self._heartbeat())
            except KafkaError as exc:
                if exc.code == ErrorCode.STALE_BROKER_EPOCH:
                    logger.warning("[BrokerLifecycle] registration lost; registering again")
                    await self._register()
                    continue
                logger.info("[BrokerLifecycle] heartbeat failed: %s", exc)
            else:
                if reply.is_fenced != self.fenced:
                    logger.info(
                        "[BrokerLifecycle] broker %d is %s",
                        self.node.node_id,
                        "fenced" if reply.is_fenced else "unfenced",
                    )
                self.fenced = reply.is_fenced
                if reply.is_caught_up or not reply.is_fenced:
                    self._admit_clients(True)
                if self.fenced:
                    self.unfenced.clear()
                else:
                    self.unfenced.set()
            await asyncio.sleep(FENCED_HEARTBEAT_MS / 1000 if self.fenced else interval_s)

    async def shut_down(self, timeout_s: float) -> bool:
        """Controlled shutdown: True once the controller agreed the broker may stop."""
        self.stop()
        if self.broker_epoch < 0:
            return True  # never registered: nothing leads here
        self._shutting_down = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.01)):
                    reply = await self.channel.heartbeat(self._heartbeat())
            except (KafkaError, TimeoutError) as exc:
                logger.info("[BrokerLifecycle] controlled shutdown heartbeat failed: %s", exc)
            else:
                if reply.should_shut_down:
                    logger.info("[BrokerLifecycle] controlled shutdown complete")
                    return True
            await asyncio.sleep(SHUTDOWN_HEARTBEAT_MS / 1000)
        logger.warning("[BrokerLifecycle] controlled shutdown timed out")
        return False
