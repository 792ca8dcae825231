"""A node's line to the active controller: registration, heartbeats, AlterPartition, producer-id
blocks, and the admin requests a broker forwards.

The active controller is the leader of the metadata quorum; its address is its entry in
`controller.quorum.voters` (a voter's client listener is also its quorum endpoint). When this
node is the active controller the call runs here, without a socket. Otherwise the request goes
to the leader over the broker-to-broker client; a NOT_CONTROLLER answer, an unknown leader or a
broken connection is retried after `controller.quorum.retry.backoff.ms` until the caller's
deadline, as Kafka's NodeToControllerChannelManager does, so a controller failover costs a
caller time, not an error.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.alter_partition import AlterPartitionItem, IsrMember
from odradek.metadata.broker_control import (
    BrokerHeartbeat,
    BrokerRegistrationRequest,
    HeartbeatReply,
)
from odradek.transport.client import TransportClient, TransportError

if TYPE_CHECKING:
    from odradek.server.node import Node

T = TypeVar("T")

ALTER_PARTITION_VERSION = 3
BROKER_REGISTRATION_VERSION = 4
BROKER_HEARTBEAT_VERSION = 1
ALLOCATE_PRODUCER_IDS_VERSION = 0


class _Retry(Exception):
    """The destination was not the active controller (or could not be reached): ask again."""


@dataclass(frozen=True, slots=True)
class AlterPartitionAnswer:
    error_code: int
    leader_id: int
    leader_epoch: int
    partition_epoch: int
    isr: tuple[int, ...]


class ControllerChannel:
    def __init__(self, node: Node, endpoints: Mapping[int, tuple[str, int]]) -> None:
        self.node = node
        config = node.config
        self._timeout_ms: int = config["controller.quorum.request.timeout.ms"]
        self._backoff_s: float = config["controller.quorum.retry.backoff.ms"] / 1000
        self._client = TransportClient(
            {k: v for k, v in endpoints.items() if k != node.node_id},
            client_id=f"controller-channel-{node.node_id}",
            request_timeout_ms=self._timeout_ms,
        )
        self.broker_epoch = -1  # set by the broker's registration

    async def close(self) -> None:
        await self._client.close()

    def _leader_is_local(self) -> bool | None:
        """True: this node is the ready active controller; False: another node leads (known);
        None: not known yet, or this node leads but is not ready."""
        quorum = self.node.raft_quorum()
        if quorum is None:
            return None
        if quorum.controller_ready:
            return True
        leader = quorum.leader_id
        if leader < 0 or leader == self.node.node_id or not self._client.knows(leader):
            return None
        return False

    async def _route(
        self,
        local: Callable[[], Awaitable[T]],
        remote: Callable[[int, int], Awaitable[T]],
        timeout_ms: int | None = None,
    ) -> T:
        """Run at the active controller, retrying until `timeout_ms` has passed; the last
        error (NOT_CONTROLLER or a transport failure) is raised then."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout_ms or self._timeout_ms) / 1000
        last: BaseException = KafkaError("no active controller", ErrorCode.NOT_CONTROLLER)
        while True:
            where = self._leader_is_local()
            try:
                if where is True:
                    return await local()
                if where is False:
                    quorum = self.node.raft_quorum()
                    assert quorum is not None
                    remaining_ms = max(int((deadline - loop.time()) * 1000), 1)
                    return await remote(quorum.leader_id, remaining_ms)
            except KafkaError as exc:
                if exc.code != ErrorCode.NOT_CONTROLLER:
                    raise
                last = exc
            except (_Retry, TransportError) as exc:
                last = exc
            if loop.time() + self._backoff_s >= deadline:
                if isinstance(last, KafkaError):
                    raise last
                raise KafkaError(
                    f"the active controller could not be reached: {last}",
                    ErrorCode.REQUEST_TIMED_OUT,
                )
            await asyncio.sleep(self._backoff_s)

    async def _send(self, node_id: int, request: Any, timeout_ms: int) -> Any:
        return await self._client.send(node_id, request, timeout_ms=timeout_ms)

    # -- the broker's own calls -----------------------------------------------------------------

    async def register(self, request: BrokerRegistrationRequest, cluster_id: str) -> int:
        from kio.schema.broker_registration.v4.request import (
            BrokerRegistrationRequest as Request,
        )
        from kio.schema.broker_registration.v4.request import Feature, Listener

        async def remote(leader: int, timeout_ms: int) -> int:
            response = await self._send(
                leader,
                Request(
                    broker_id=_i32(request.broker_id),
                    cluster_id=cluster_id,
                    incarnation_id=uuid.UUID(bytes=request.incarnation_id),
                    listeners=tuple(
                        Listener(
                            name=e.name,
                            host=e.host,
                            port=_u16(e.port),
                            security_protocol=_i16(e.security_protocol),
                        )
                        for e in request.listeners
                    ),
                    features=tuple(
                        Feature(
                            name=f.name,
                            min_supported_version=_i16(f.min_supported_version),
                            max_supported_version=_i16(f.max_supported_version),
                        )
                        for f in request.features
                    ),
                    rack=request.rack,
                ),
                timeout_ms,
            )
            _raise_for(int(response.error_code))
            return int(response.broker_epoch)

        async def local() -> int:
            return await self.node.cluster_control.register(request)

        return await self._route(local, remote)

    async def heartbeat(self, request: BrokerHeartbeat) -> HeartbeatReply:
        from kio.schema.broker_heartbeat.v1.request import BrokerHeartbeatRequest

        async def remote(leader: int, timeout_ms: int) -> HeartbeatReply:
            response = await self._send(
                leader,
                BrokerHeartbeatRequest(
                    broker_id=_i32(request.broker_id),
                    broker_epoch=_i64(request.broker_epoch),
                    current_metadata_offset=_i64(request.current_metadata_offset),
                    want_fence=request.want_fence,
                    want_shut_down=request.want_shutdown,
                ),
                timeout_ms,
            )
            _raise_for(int(response.error_code))
            return HeartbeatReply(
                is_caught_up=response.is_caught_up,
                is_fenced=response.is_fenced,
                in_controlled_shutdown=False,
                should_shut_down=response.should_shut_down,
            )

        async def local() -> HeartbeatReply:
            return await self.node.cluster_control.heartbeat(request)

        return await self._route(local, remote)

    async def alter_partition(
        self,
        topic_id: bytes,
        partition: int,
        leader_epoch: int,
        partition_epoch: int,
        new_isr: tuple[int, ...],
    ) -> AlterPartitionAnswer:
        """Ask the controller to set a partition's ISR (this node leads it). Per-partition
        errors come back in the answer; a request-level one (STALE_BROKER_EPOCH, ...) too."""
        from kio.schema.alter_partition.v3 import request as kio_request

        image = self.node.image

        def epoch_of(broker_id: int) -> int:
            registration = image.broker(broker_id)
            return registration.epoch if registration is not None else -1

        async def remote(leader: int, timeout_ms: int) -> AlterPartitionAnswer:
            response = await self._send(
                leader,
                kio_request.AlterPartitionRequest(
                    broker_id=_i32(self.node.node_id),
                    broker_epoch=_i64(self.broker_epoch),
                    topics=(
                        kio_request.TopicData(
                            topic_id=uuid.UUID(bytes=topic_id),
                            partitions=(
                                kio_request.PartitionData(
                                    partition_index=_i32(partition),
                                    leader_epoch=_i32(leader_epoch),
                                    new_isr_with_epochs=tuple(
                                        kio_request.BrokerState(
                                            broker_id=_i32(b), broker_epoch=_i64(epoch_of(b))
                                        )
                                        for b in new_isr
                                    ),
                                    partition_epoch=_i32(partition_epoch),
                                ),
                            ),
                        ),
                    ),
                ),
                timeout_ms,
            )
            code = int(response.error_code)
            if code == ErrorCode.NOT_CONTROLLER:
                raise _Retry()
            if code != ErrorCode.NONE or not response.topics:
                return AlterPartitionAnswer(code or ErrorCode.UNKNOWN_SERVER_ERROR, -1, -1, -1, ())
            data = response.topics[0].partitions[0]
            if int(data.error_code) == ErrorCode.NOT_CONTROLLER:
                raise _Retry()
            return AlterPartitionAnswer(
                int(data.error_code),
                int(data.leader_id),
                int(data.leader_epoch),
                int(data.partition_epoch),
                tuple(int(b) for b in data.isr),
            )

        async def local() -> AlterPartitionAnswer:
            item = AlterPartitionItem(
                topic_id,
                partition,
                leader_epoch,
                partition_epoch,
                tuple(IsrMember(b, epoch_of(b)) for b in new_isr),
            )
            try:
                outcomes = await self.node.cluster_control.alter_partition(
                    self.node.node_id, self.broker_epoch, [item], ALTER_PARTITION_VERSION
                )
            except KafkaError as exc:
                if exc.code == ErrorCode.NOT_CONTROLLER:
                    raise
                return AlterPartitionAnswer(exc.code, -1, -1, -1, ())
            outcome = outcomes[0]
            state = outcome.partition
            if outcome.error != ErrorCode.NONE or state is None:
                return AlterPartitionAnswer(outcome.error, -1, -1, -1, ())
            return AlterPartitionAnswer(
                ErrorCode.NONE, state.leader, state.leader_epoch, state.partition_epoch, state.isr
            )

        return await self._route(local, remote)

    async def allocate_producer_ids(self) -> tuple[int, int]:
        """A new block of producer ids for this broker: (first id, how many)."""
        from kio.schema.allocate_producer_ids.v0.request import AllocateProducerIdsRequest

        async def remote(leader: int, timeout_ms: int) -> tuple[int, int]:
            response = await self._send(
                leader,
                AllocateProducerIdsRequest(
                    broker_id=_i32(self.node.node_id), broker_epoch=_i64(self.broker_epoch)
                ),
                timeout_ms,
            )
            _raise_for(int(response.error_code))
            return int(response.producer_id_start), int(response.producer_id_len)

        async def local() -> tuple[int, int]:
            return await self.node.cluster_control.allocate_producer_ids(
                self.node.node_id, self.broker_epoch
            )

        return await self._route(local, remote)

    # -- forwarding -----------------------------------------------------------------------------

    async def forward(
        self, request: Any, local: Callable[[], Awaitable[Any]], timeout_ms: int | None = None
    ) -> Any:
        """An admin request, answered by the active controller (`local` runs it here when this
        node is that controller). The answer is the controller's, of the same version."""

        async def remote(leader: int, remaining_ms: int) -> Any:
            return await self._send(leader, request, remaining_ms)

        return await self._route(local, remote, timeout_ms)


def _raise_for(code: int) -> None:
    if code == ErrorCode.NOT_CONTROLLER:
        raise _Retry()
    if code != ErrorCode.NONE:
        raise KafkaError(f"the controller answered {ErrorCode(code).name}", ErrorCode(code))


def _i16(value: int) -> Any:
    from kio.static.primitive import i16

    return i16(value)


def _u16(value: int) -> Any:
    from kio.static.primitive import u16

    return u16(value)


def _i32(value: int) -> Any:
    from kio.static.primitive import i32

    return i32(value)


def _i64(value: int) -> Any:
    from kio.static.primitive import i64

    return i64(value)
