"""Connections: frames in, handlers run, responses out in request order.

A connection is an asyncio BufferedProtocol fed by the sans-io `FrameDecoder`. Each request
becomes a task at once (requests are pipelined, so acks=all produce requests share fsyncs),
tasks start in arrival order (a produce appends before its first await, so appends keep the
order of the requests), and a writer sends the responses strictly in request order. Reading
pauses while too many requests are in flight or the socket's write buffer is full.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import (
    ProtocolError,
    decode_request,
    encode_response,
    parse_header,
    peek_header,
    request_is_flexible,
    response_is_flexible,
)
from odradek.protocol.framing import FrameDecoder, FramingError
from odradek.server.admission import held_until_caught_up
from odradek.server.context import RequestContext
from odradek.server.forwarding import FORWARDED, forward
from odradek.server.registry import HANDLERS, NO_RESPONSE, CloseConnection, HandlerSpec

if TYPE_CHECKING:
    from odradek.server.node import Node

logger = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256


class KafkaConnection(asyncio.BufferedProtocol):
    def __init__(self, node: Node) -> None:
        self.node = node
        self.decoder = FrameDecoder(node.config["socket.request.max.bytes"])
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self._pending: deque[asyncio.Task[bytes | list[bytes] | None]] = deque()
        self._wakeup = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._writer: asyncio.Task[None] | None = None
        self._reading_paused = False
        self._closed = False

    # -- asyncio protocol callbacks --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.node.connections.add(self)
        self._writer = asyncio.get_running_loop().create_task(self._write_responses())

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.decoder.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        try:
            self.decoder.buffer_updated(nbytes)
        except FramingError as exc:
            logger.info("[Connection %s] closing: %s", self.peer, exc)
            self.close()
            return
        while (frame := self.decoder.next_frame()) is not None:
            self._pending.append(asyncio.get_running_loop().create_task(self._process(frame)))
        self._wakeup.set()
        if len(self._pending) >= MAX_IN_FLIGHT and self.transport and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool | None:
        return None  # close once the peer is done sending

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.node.connections.discard(self)
        for task in self._pending:
            task.cancel()
        if self._writer is not None:
            self._writer.cancel()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def close(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.close()

    # -- requests --
    async def _process(self, frame: bytearray) -> bytes | list[bytes] | None:
        try:
            return await self._dispatch(frame)
        except (ProtocolError, CloseConnection) as exc:
            logger.info("[Connection %s] closing: %s", self.peer, exc)
        except Exception:
            logger.exception("[Connection %s] handler failed; closing", self.peer)
        self.close()
        return None

    async def _dispatch(self, frame: bytearray) -> bytes | list[bytes] | None:
        api_key, api_version, correlation_id = peek_header(frame)
        spec = HANDLERS.get(api_key)
        if spec is None:
            raise ProtocolError(f"unknown API key {api_key}")
        if not spec.min_version <= api_version <= spec.max_version:
            if api_key == ApiKey.API_VERSIONS:
                from odradek.server.handlers.api_versions import unsupported_version_response

                quorum = self.node.raft_quorum() is not None
                return unsupported_version_response(correlation_id, quorum)
            raise ProtocolError(
                f"unsupported version {api_version} of {spec.api_key.name}"
                f" (supported {spec.min_version}-{spec.max_version})"
            )
        header, position = parse_header(frame, request_is_flexible(api_key, api_version))
        request: Any = None
        if not spec.raw and api_version >= spec.raw_below:
            request = decode_request(api_key, api_version, frame, position)
        context = RequestContext(self.node, header, frame, position, self.peer)
        if not self.node.clients_admitted.is_set() and held_until_caught_up(context, request):
            await self.node.clients_admitted.wait()  # a starting broker (admission.py)
        # Fault injection (odradek.testing): Node.faults is None unless a test installed rules.
        if self.node.faults is not None:
            from odradek.server.fault_hook import intercept

            async def respond() -> bytes | list[bytes] | None:
                return _encode(context, await self._handle(spec, context, request))

            return await intercept(self.node.faults, context, request, respond)
        return _encode(context, await self._handle(spec, context, request))

    async def _handle(self, spec: HandlerSpec, context: RequestContext, request: Any) -> Any:
        if spec.api_key in FORWARDED and not self.node.is_controller_here():
            return await forward(
                self.node, spec.api_key, request, lambda: spec.func(context, request)
            )
        return await spec.func(context, request)

    async def _write_responses(self) -> None:
        while not self._closed:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            task = self._pending[0]
            try:
                data = await task
            except asyncio.CancelledError:
                if self._closed:
                    return
                data = None
            self._pending.popleft()
            if self._closed or self.transport is None:
                return
            if data:
                if isinstance(data, list):
                    self.transport.writelines(data)
                else:
                    self.transport.write(data)
                if not self._can_write.is_set():
                    await self._can_write.wait()
            if self._reading_paused and len(self._pending) < MAX_IN_FLIGHT // 2:
                self._reading_paused = False
                self.transport.resume_reading()


def _encode(context: RequestContext, response: Any) -> bytes | list[bytes] | None:
    if response is NO_RESPONSE:
        return None
    if isinstance(response, (bytes, list)):
        return response  # already a whole encoded frame (hot paths)
    header = context.header
    flexible = response_is_flexible(header.api_key, header.api_version)
    return encode_response(header.correlation_id, flexible, response)
