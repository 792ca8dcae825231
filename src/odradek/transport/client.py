"""The internal broker-to-broker client: typed Kafka requests over asyncio streams.

`NodeClient` holds one connection to one node; `TransportClient` keeps one `NodeClient` per
destination node id. A request is a kio request entity (its class names the API key and
version, so no ApiVersions negotiation: callers pick versions both ends speak); the answer is
the kio response entity of the same API and version, matched by correlation id, so several
requests may be in flight on one connection and answers may come in any order.

Failures: a request that gets no answer within its timeout raises `TransportTimeout` (its late
answer is dropped); a connection that breaks fails every request in flight on it with
`TransportError`, and the next request reconnects, no sooner than an exponential backoff
(`reconnect.backoff.ms` doubling up to `reconnect.backoff.max.ms`, as Kafka's clients) after
the last failed attempt. `close()` fails what is in flight and closes the socket.

This module speaks kio directly (not `protocol/`, a sibling layer) and does no logging of
record data; it never retries a request on its own: the caller decides (Raft resends on its
timers).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import struct
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)

_SIZE = struct.Struct(">i")
MAX_RESPONSE_BYTES = 100 * 1024 * 1024  # as socket.request.max.bytes: a cap before allocating


class TransportError(ConnectionError):
    """The destination could not be reached, or the connection broke mid-request."""


class TransportTimeout(TransportError, TimeoutError):
    """No answer within the request timeout."""


def encode_request(request: Any, correlation_id: int, client_id: str) -> bytes:
    """The whole frame of a kio request entity: size, header (v1 or v2), body."""
    from kio.serial import entity_writer
    from kio.static.primitive import i32

    header_cls = request.__header_schema__
    header = header_cls(
        request_api_key=request.__api_key__,
        request_api_version=request.__version__,
        correlation_id=i32(correlation_id),
        client_id=client_id,
    )
    buffer = io.BytesIO()
    buffer.write(b"\x00\x00\x00\x00")
    entity_writer(header_cls)(buffer, header)
    entity_writer(type(request))(buffer, request)
    size = buffer.tell() - 4
    buffer.seek(0)
    buffer.write(_SIZE.pack(size))
    return buffer.getvalue()


def decode_response(api_key: int, version: int, frame: bytes) -> tuple[int, Any]:
    """(correlation id, kio response entity) of one response frame without its size."""
    from kio.index import load_response_schema
    from kio.serial import entity_reader

    response_cls = load_response_schema(api_key, version)
    view = memoryview(frame).toreadonly()
    header, position = entity_reader(response_cls.__header_schema__)(view, 0)
    response, _ = entity_reader(response_cls)(view[position:], 0)
    return int(header.correlation_id), response


def peek_correlation_id(frame: bytes) -> int:
    if len(frame) < 4:
        raise TransportError("a response shorter than its header")
    (correlation_id,) = _SIZE.unpack_from(frame, 0)
    return int(correlation_id)


class NodeClient:
    """One connection to one node, opened on the first request and reopened after a failure."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str = "odradek",
        request_timeout_ms: int = 30_000,
        reconnect_backoff_ms: int = 50,
        reconnect_backoff_max_ms: int = 1000,
        connect_timeout_ms: int = 10_000,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self._backoff_initial_ms = reconnect_backoff_ms
        self._backoff_max_ms = reconnect_backoff_max_ms
        self._connect_timeout_ms = connect_timeout_ms
        self._backoff_ms = 0
        self._next_attempt = 0.0  # loop time before which no new connection is tried
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._connecting: asyncio.Lock | None = None
        self._pending: dict[int, tuple[int, int, asyncio.Future[Any]]] = {}
        self._next_correlation_id = 0
        self._closed = False
        self._prefix = f"[NodeClient {host}:{port}]"

    @property
    def connected(self) -> bool:
        return self._writer is not None

    async def send(self, request: Any, *, timeout_ms: int | None = None) -> Any:
        """Send a kio request entity and wait for its response entity."""
        if self._closed:
            raise TransportError(f"{self._prefix} closed")
        timeout = (self.request_timeout_ms if timeout_ms is None else timeout_ms) / 1000
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                writer = await self._connection()
                self._next_correlation_id = (self._next_correlation_id + 1) & 0x7FFFFFFF
                correlation_id = self._next_correlation_id
                future: asyncio.Future[Any] = loop.create_future()
                self._pending[correlation_id] = (request.__api_key__, request.__version__, future)
                try:
                    writer.write(encode_request(request, correlation_id, self.client_id))
                    await writer.drain()
                    return await future
                finally:
                    self._pending.pop(correlation_id, None)
        except TimeoutError:
            raise TransportTimeout(f"{self._prefix} no answer within {timeout:.3f} s") from None
        except OSError as exc:
            if isinstance(exc, TransportError):
                raise
            self._disconnect(exc)
            raise TransportError(f"{self._prefix} {exc}") from exc

    async def _connection(self) -> asyncio.StreamWriter:
        if self._writer is not None:
            return self._writer
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is not None:
                return self._writer
            loop = asyncio.get_running_loop()
            wait = self._next_attempt - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._closed:
                raise TransportError(f"{self._prefix} closed")
            try:
                async with asyncio.timeout(self._connect_timeout_ms / 1000):
                    reader, writer = await asyncio.open_connection(self.host, self.port)
            except (OSError, TimeoutError) as exc:
                self._backoff_ms = min(
                    max(self._backoff_ms * 2, self._backoff_initial_ms), self._backoff_max_ms
                )
                self._next_attempt = loop.time() + self._backoff_ms / 1000
                raise TransportError(f"{self._prefix} cannot connect: {exc}") from exc
            self._backoff_ms = 0
            self._reader, self._writer = reader, writer
            self._reader_task = loop.create_task(
                self._read_responses(reader, writer), name=f"transport-read-{self.port}"
            )
            return writer

    async def _read_responses(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        error: BaseException = TransportError(f"{self._prefix} connection closed by the peer")
        try:
            while True:
                (size,) = _SIZE.unpack(await reader.readexactly(4))
                if not 4 <= size <= MAX_RESPONSE_BYTES:
                    raise TransportError(f"{self._prefix} response size {size}")
                frame = await reader.readexactly(size)
                correlation_id = peek_correlation_id(frame)
                pending = self._pending.pop(correlation_id, None)
                if pending is None:
                    continue  # its request timed out: a late answer is dropped
                api_key, version, future = pending
                if future.done():
                    continue
                try:
                    _, response = decode_response(api_key, version, frame)
                except Exception as exc:  # kio raises several types on malformed bytes
                    future.set_exception(TransportError(f"{self._prefix} bad response: {exc!r}"))
                    continue
                future.set_result(response)
        except asyncio.IncompleteReadError:
            pass
        except (OSError, TransportError) as exc:
            error = exc
        except asyncio.CancelledError:
            return  # whoever cancelled it has disconnected already
        if self._writer is writer:
            self._disconnect(error)

    def _disconnect(self, error: BaseException) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        task, self._reader_task = self._reader_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        if writer is not None:
            writer.close()
        pending, self._pending = self._pending, {}
        for _, _, future in pending.values():
            if not future.done():
                exc = error if isinstance(error, TransportError) else TransportError(str(error))
                future.set_exception(exc)
        if not self._closed and writer is not None:
            logger.debug("%s disconnected: %s", self._prefix, error)

    async def close(self) -> None:
        self._closed = True
        task = self._reader_task
        writer = self._writer
        self._disconnect(TransportError(f"{self._prefix} closed"))
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if writer is not None:
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class TransportClient:
    """One `NodeClient` per destination node id."""

    def __init__(
        self,
        endpoints: Mapping[int, tuple[str, int]],
        *,
        client_id: str = "odradek",
        request_timeout_ms: int = 30_000,
        reconnect_backoff_ms: int = 50,
        reconnect_backoff_max_ms: int = 1000,
    ) -> None:
        self._clients = {
            node_id: NodeClient(
                host,
                port,
                client_id=client_id,
                request_timeout_ms=request_timeout_ms,
                reconnect_backoff_ms=reconnect_backoff_ms,
                reconnect_backoff_max_ms=reconnect_backoff_max_ms,
            )
            for node_id, (host, port) in endpoints.items()
        }

    def knows(self, node_id: int) -> bool:
        return node_id in self._clients

    async def send(self, node_id: int, request: Any, *, timeout_ms: int | None = None) -> Any:
        client = self._clients.get(node_id)
        if client is None:
            raise TransportError(f"no endpoint for node {node_id}")
        return await client.send(request, timeout_ms=timeout_ms)

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
