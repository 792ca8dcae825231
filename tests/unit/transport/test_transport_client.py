"""The internal client against a tiny asyncio Kafka server on 127.0.0.1.

The server decodes real request frames with `protocol.codec` and answers with kio response
entities; a script per test decides whether it answers, in which order, or drops the
connection.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest
from kio.schema.api_versions.v3.response import ApiVersionsResponse
from kio.schema.errors import ErrorCode
from kio.schema.vote.v0.request import VoteRequest
from kio.schema.vote.v0.response import VoteResponse

from odradek.protocol.codec import (
    build,
    decode_request,
    encode_response,
    parse_header,
    request_is_flexible,
)
from odradek.transport.client import NodeClient, TransportClient, TransportError, TransportTimeout

Request = tuple[int, Any]  # (correlation id, decoded request entity)
Script = Callable[[list[Request], asyncio.StreamWriter], Awaitable[bool]]


def api_versions_request() -> Any:
    return build(ApiVersionsRequest, client_software_name="t", client_software_version="1")


def vote_request() -> Any:
    return build(VoteRequest, cluster_id=None, topics=())


def vote_response() -> Any:
    return build(VoteResponse, error_code=ErrorCode.none, topics=())


def api_versions_response(throttle_ms: int) -> Any:
    return build(
        ApiVersionsResponse,
        error_code=ErrorCode.none,
        api_keys=(),
        throttle_time=throttle_ms,
    )


class TinyServer:
    """Reads request frames; after each one, `script(requests so far, writer)` answers (or
    not); it returns False to close the connection."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        seen: list[Request] = []
        try:
            while True:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                frame = await reader.readexactly(size)
                api_key, version = struct.unpack_from(">hh", frame)
                header, position = parse_header(frame, request_is_flexible(api_key, version))
                seen.append(
                    (header.correlation_id, decode_request(api_key, version, frame, position))
                )
                if not await self.script(seen, writer):
                    break
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def answer(
    writer: asyncio.StreamWriter, correlation_id: int, response: Any, flexible: bool
) -> None:
    writer.write(encode_response(correlation_id, flexible, response))


async def echo_throttle(seen: list[Request], writer: asyncio.StreamWriter) -> bool:
    """ApiVersions answered at once; its throttle time echoes the correlation id."""
    correlation_id, _ = seen[-1]
    answer(writer, correlation_id, api_versions_response(correlation_id), False)
    return True


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 20))  # type: ignore[arg-type]


def test_request_and_response_round_trip() -> None:
    async def main() -> None:
        server = TinyServer(echo_throttle)
        await server.start()
        client = NodeClient("127.0.0.1", server.port, request_timeout_ms=5000)
        for _ in range(3):
            response = await client.send(api_versions_request())
            assert isinstance(response, ApiVersionsResponse)
            assert response.error_code == ErrorCode.none
        assert server.connections == 1  # one connection, reused
        await client.close()
        await server.stop()

    run(main())


def test_answers_out_of_order_reach_their_requests() -> None:
    async def reversed_pairs(seen: list[Request], writer: asyncio.StreamWriter) -> bool:
        if len(seen) % 2 == 0:  # answer the second of each pair first
            for correlation_id, _ in reversed(seen[-2:]):
                answer(writer, correlation_id, api_versions_response(correlation_id), False)
        return True

    async def main() -> None:
        server = TinyServer(reversed_pairs)
        await server.start()
        client = NodeClient("127.0.0.1", server.port, request_timeout_ms=5000)
        first, second = await asyncio.gather(
            client.send(api_versions_request()), client.send(api_versions_request())
        )
        # each response echoes its own request's correlation id in throttle_time
        assert (
            first.throttle_time.total_seconds() * 1000 < second.throttle_time.total_seconds() * 1000
        )
        await client.close()
        await server.stop()

    run(main())


def test_flexible_and_non_flexible_versions() -> None:
    async def vote(seen: list[Request], writer: asyncio.StreamWriter) -> bool:
        correlation_id, request = seen[-1]
        assert isinstance(request, VoteRequest)
        answer(writer, correlation_id, vote_response(), True)  # Vote v0 is flexible
        return True

    async def main() -> None:
        server = TinyServer(vote)
        await server.start()
        client = NodeClient("127.0.0.1", server.port, request_timeout_ms=5000)
        response = await client.send(vote_request())
        assert isinstance(response, VoteResponse)
        await client.close()
        await server.stop()

    run(main())


def test_a_request_without_answer_times_out_and_the_connection_stays_usable() -> None:
    async def ignore_first(seen: list[Request], writer: asyncio.StreamWriter) -> bool:
        correlation_id, _ = seen[-1]
        if len(seen) > 1:
            answer(writer, correlation_id, api_versions_response(0), False)
        return True

    async def main() -> None:
        server = TinyServer(ignore_first)
        await server.start()
        client = NodeClient("127.0.0.1", server.port, request_timeout_ms=5000)
        with pytest.raises(TransportTimeout):
            await client.send(api_versions_request(), timeout_ms=100)
        response = await client.send(api_versions_request())
        assert response.error_code == ErrorCode.none
        assert server.connections == 1
        await client.close()
        await server.stop()

    run(main())


def test_a_dropped_connection_fails_in_flight_requests_and_the_next_one_reconnects() -> None:
    async def drop_first_connection(seen: list[Request], writer: asyncio.StreamWriter) -> bool:
        if server.connections == 1:
            return False  # close without answering
        correlation_id, _ = seen[-1]
        answer(writer, correlation_id, api_versions_response(0), False)
        return True

    server = TinyServer(drop_first_connection)

    async def main() -> None:
        await server.start()
        client = NodeClient("127.0.0.1", server.port, request_timeout_ms=5000)
        with pytest.raises(TransportError) as failed:
            await client.send(api_versions_request())
        assert not isinstance(failed.value, TransportTimeout)
        response = await client.send(api_versions_request())
        assert response.error_code == ErrorCode.none
        assert server.connections == 2
        await client.close()
        await server.stop()

    run(main())


def test_a_node_that_is_down_fails_then_is_reached_once_it_listens() -> None:
    async def main() -> None:
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        client = NodeClient("127.0.0.1", port, request_timeout_ms=5000, reconnect_backoff_ms=10)
        with pytest.raises(TransportError):
            await client.send(api_versions_request())
        assert not client.connected
        server = TinyServer(echo_throttle)
        await server.start(port)
        response = await client.send(api_versions_request())  # after the backoff
        assert response.error_code == ErrorCode.none
        await client.close()
        await server.stop()

    run(main())


def test_close_fails_requests_in_flight_and_refuses_new_ones() -> None:
    async def never(seen: list[Request], writer: asyncio.StreamWriter) -> bool:
        return True

    async def main() -> None:
        server = TinyServer(never)
        await server.start()
        client = NodeClient("127.0.0.1", server.port, request_timeout_ms=5000)
        in_flight = asyncio.ensure_future(client.send(api_versions_request()))
        while not client.connected:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await client.close()
        with pytest.raises(TransportError):
            await in_flight
        with pytest.raises(TransportError):
            await client.send(api_versions_request())
        await server.stop()

    run(main())


def test_transport_client_routes_by_node_id() -> None:
    async def main() -> None:
        one, two = TinyServer(echo_throttle), TinyServer(echo_throttle)
        await one.start()
        await two.start()
        client = TransportClient({1: ("127.0.0.1", one.port), 2: ("127.0.0.1", two.port)})
        await client.send(2, api_versions_request())
        assert (one.connections, two.connections) == (0, 1)
        with pytest.raises(TransportError):
            await client.send(3, api_versions_request())
        await client.close()
        await one.stop()
        await two.stop()

    run(main())
