"""Garbage in, ProtocolError (or a closed connection) out; the broker keeps serving.

(a) The decoding path of every registered API and advertised version, fed random bodies after a
valid header, returns a request or raises ProtocolError, nothing else.
(b) An in-process broker is sent garbage over a real socket; after each kind, a new
connection's ApiVersions and Metadata requests still get correct answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import struct
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode as KioErrorCode
from kio.serial import entity_reader, entity_writer

import odradek.server.handlers  # noqa: F401  (registers every handler)
from odradek.common.config import BrokerConfig
from odradek.protocol.codec import (
    ProtocolError,
    decode_request,
    parse_header,
    request_is_flexible,
    response_is_flexible,
)
from odradek.protocol.legacy_requests import (
    decode_legacy_fetch_request,
    decode_legacy_offset_commit_request,
    decode_list_offsets_v0_request,
)
from odradek.protocol.produce import decode_legacy_produce_request, decode_produce_request
from odradek.server.handlers.api_versions import QUORUM_ONLY
from odradek.server.node import Node
from odradek.server.registry import HANDLERS

API_VERSIONS = 18
METADATA = 3
PRODUCE = 0
FETCH = 1
LIST_OFFSETS = 2
OFFSET_COMMIT = 8

ADVERTISED = sorted(
    (key, version)
    for key, spec in HANDLERS.items()
    for version in range(spec.min_version, spec.max_version + 1)
)


def request_header(api_key: int, version: int, correlation_id: int, client: bytes | None) -> bytes:
    header = struct.pack(">hhi", api_key, version, correlation_id)
    header += struct.pack(">h", -1) if client is None else struct.pack(">h", len(client)) + client
    if request_is_flexible(api_key, version):
        header += b"\x00"
    return header


def decode_body(api_key: int, version: int, frame: bytearray) -> Any:
    """The broker's decoding path for one request frame, as the connection runs it."""
    _header, position = parse_header(frame, request_is_flexible(api_key, version))
    if HANDLERS[api_key].raw:
        assert api_key == PRODUCE
        if version < 3:
            return decode_legacy_produce_request(frame, position)
        return decode_produce_request(frame, position, version)
    if version < HANDLERS[api_key].raw_below:  # old versions kio has no schema for
        legacy = {
            FETCH: lambda: decode_legacy_fetch_request(frame, position, version),
            LIST_OFFSETS: lambda: decode_list_offsets_v0_request(frame, position),
            OFFSET_COMMIT: lambda: decode_legacy_offset_commit_request(frame, position, version),
        }
        return legacy[api_key]()
    return decode_request(api_key, version, frame, position)


def test_every_advertised_version_is_covered() -> None:
    assert (API_VERSIONS, 0) in ADVERTISED and (METADATA, 12) in ADVERTISED
    assert len(ADVERTISED) >= len(HANDLERS)


def run_isolated(fuzz: Callable[[Callable[[bytes], None]], None]) -> None:
    """Run `fuzz` in a forked child: a decoder that aborts the process fails only this test.

    The child reports each input before decoding it, so a crash names the input that caused it.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            os.close(read_end)
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)

            def report(frame: bytes) -> None:
                os.write(write_end, b"input: " + frame.hex().encode() + b"\n")

            fuzz(report)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as pipe:
        while chunk := pipe.read(65536):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    lines = b"".join(chunks).decode("utf-8", "replace").splitlines()
    inputs = [line for line in lines if line.startswith("input: ")]
    others = [line for line in lines if not line.startswith("input: ")]
    if os.WIFSIGNALED(status):
        pytest.fail(
            f"the decoder killed the process with signal {os.WTERMSIG(status)} on frame"
            f" {inputs[-1][7:] if inputs else '?'}:\n" + "\n".join(others[:20])
        )
    assert os.waitstatus_to_exitcode(status) == 0, "\n".join(others[-60:])


@pytest.mark.parametrize(("api_key", "version"), ADVERTISED)
def test_random_body_decodes_or_is_a_protocol_error(api_key: int, version: int) -> None:
    def fuzz(report: Callable[[bytes], None]) -> None:
        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(body=st.binary(max_size=120), client=st.none() | st.binary(max_size=12))
        def decode_random(body: bytes, client: bytes | None) -> None:
            frame = bytearray(request_header(api_key, version, 1, client) + body)
            report(frame)
            with contextlib.suppress(ProtocolError):
                decode_body(api_key, version, frame)

        decode_random()

    run_isolated(fuzz)


@pytest.mark.parametrize(("api_key", "version"), ADVERTISED)
def test_small_integer_bodies_decode_or_are_a_protocol_error(api_key: int, version: int) -> None:
    """Bytes near length boundaries (0, 1, -1, varint continuation) reach deeper fields."""

    def fuzz(report: Callable[[bytes], None]) -> None:
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(
            body=st.lists(
                st.sampled_from([b"\x00", b"\x01", b"\x02", b"\xff", b"\x7f", b"\x80"]),
                max_size=60,
            )
        )
        def decode_small(body: list[bytes]) -> None:
            frame = bytearray(request_header(api_key, version, 1, b"c") + b"".join(body))
            report(frame)
            with contextlib.suppress(ProtocolError):
                decode_body(api_key, version, frame)

        decode_small()

    run_isolated(fuzz)


@pytest.mark.parametrize(
    ("api_key", "version", "body"),
    [
        (METADATA, 12, b"\xff\xff\xff\xff\x0f"),  # topics: compact array of 2**32 - 2
        (2, 6, b"\x00\x00\x00\x01\x00\xff\xff\xff\xff\x0f"),  # ListOffsets topics
        (19, 5, b"\xff\xff\xff\xff\x0f"),  # CreateTopics topics
        (METADATA, 1, b"\x7f\xff\xff\xff"),  # non-flexible: int32 array count
    ],
)
def test_huge_array_count_is_a_protocol_error(api_key: int, version: int, body: bytes) -> None:
    """A few bytes announcing billions of elements must not make the decoder allocate them."""

    def decode_once(report: Callable[[bytes], None]) -> None:
        frame = bytearray(request_header(api_key, version, 1, None) + body)
        report(frame)
        with pytest.raises(ProtocolError):
            decode_body(api_key, version, frame)

    run_isolated(decode_once)


# --- an in-process broker ---------------------------------------------------------------------


def encode_request(api_key: int, version: int, correlation_id: int, request: Any) -> bytes:
    buffer = io.BytesIO()
    entity_writer(type(request))(buffer, request)
    payload = request_header(api_key, version, correlation_id, b"fuzz") + buffer.getvalue()
    return struct.pack(">i", len(payload)) + payload


async def read_response(
    reader: asyncio.StreamReader, api_key: int, version: int, correlation_id: int
) -> Any:
    (size,) = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), 10))
    data = await asyncio.wait_for(reader.readexactly(size), 10)
    assert struct.unpack_from(">i", data)[0] == correlation_id
    position = 4
    if response_is_flexible(api_key, version):
        assert data[position] == 0  # no tagged fields in the response header
        position += 1
    entity, _ = entity_reader(load_response_schema(api_key, version))(data[position:], 0)
    return entity


async def assert_closed(reader: asyncio.StreamReader) -> None:
    """The broker closes the connection: nothing but end of stream arrives."""
    try:
        rest = await asyncio.wait_for(reader.read(), 10)
    except ConnectionResetError:
        return
    assert rest == b""


async def check_still_serving(node: Node) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", node.bound_port)
    try:
        api_versions = load_request_schema(API_VERSIONS, 3)(
            client_software_name="odradek-fuzz", client_software_version="1.0"
        )
        writer.write(encode_request(API_VERSIONS, 3, 11, api_versions))
        metadata = load_request_schema(METADATA, 12)(
            topics=None, allow_auto_topic_creation=False, include_topic_authorized_operations=False
        )
        writer.write(encode_request(METADATA, 12, 12, metadata))
        await writer.drain()
        versions = await read_response(reader, API_VERSIONS, 3, 11)
        assert versions.error_code == KioErrorCode.none
        ranges = {int(k.api_key): (k.min_version, k.max_version) for k in versions.api_keys}
        assert ranges == {
            k: (s.min_version, s.max_version)
            for k, s in HANDLERS.items()
            if k not in QUORUM_ONLY  # this node runs no Raft quorum
        }
        response = await read_response(reader, METADATA, 12, 12)
        assert [(b.node_id, b.host, b.port) for b in response.brokers] == [
            (node.node_id, "127.0.0.1", node.bound_port)
        ]
        assert response.cluster_id == node.cluster_id
        assert response.controller_id == node.node_id
    finally:
        writer.close()
        await writer.wait_closed()


def run_with_broker(tmp_path: Path, body: Callable[[Node], Awaitable[None]]) -> None:
    async def main() -> None:
        node = Node(
            BrokerConfig(
                {
                    "listeners": "PLAINTEXT://127.0.0.1:0",
                    "log.dirs": str(tmp_path / "data"),
                    "socket.request.max.bytes": str(1024 * 1024),
                }
            )
        )
        await node.start()
        try:
            await check_still_serving(node)  # negative control: it answers before the garbage
            await body(node)
            await check_still_serving(node)
        finally:
            await node.stop()

    asyncio.run(main())


async def send(node: Node, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", node.bound_port)
    writer.write(data)
    await writer.drain()
    return reader, writer


def sized(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


GARBAGE_THAT_CLOSES = {
    "negative_size": struct.pack(">i", -1) + b"abcdefgh",
    "huge_size": struct.pack(">i", 2**31 - 1) + b"abcdefgh",
    "size_just_over_limit": struct.pack(">i", 1024 * 1024 + 1),
    "unknown_api_key": sized(request_header(9999, 0, 1, b"x") + b"\x00" * 8),
    "unsupported_version_of_metadata": sized(request_header(METADATA, 99, 1, b"x")),
    "truncated_metadata_body": sized(request_header(METADATA, 12, 1, b"x") + b"\x03\x00"),
    "truncated_header": sized(b"\x00\x03\x00"),
    "client_id_past_end": sized(struct.pack(">hhih", METADATA, 1, 1, 500) + b"abc"),
    "truncated_produce": sized(request_header(PRODUCE, 9, 1, b"x") + b"\x00\xff"),
}


@pytest.mark.parametrize("name", sorted(GARBAGE_THAT_CLOSES))
def test_garbage_closes_the_connection_and_the_broker_keeps_serving(
    tmp_path: Path, name: str
) -> None:
    async def body(node: Node) -> None:
        reader, writer = await send(node, GARBAGE_THAT_CLOSES[name])
        await assert_closed(reader)
        writer.close()

    run_with_broker(tmp_path, body)


def test_random_bytes_then_the_broker_keeps_serving(tmp_path: Path) -> None:
    import random

    rng = random.Random(1234)

    async def body(node: Node) -> None:
        for size in (1, 3, 4, 17, 100, 4096, 70_000):
            reader, writer = await send(node, rng.randbytes(size))
            writer.close()  # the bytes may announce a frame never completed: hang up
            await writer.wait_closed()
        for _ in range(20):
            payload = rng.randbytes(rng.randrange(0, 300))
            reader, writer = await send(node, sized(payload))
            writer.write_eof()
            with contextlib.suppress(ConnectionResetError):
                await asyncio.wait_for(reader.read(), 10)
            writer.close()

    run_with_broker(tmp_path, body)


def test_api_versions_v99_gets_a_v0_unsupported_version_answer(tmp_path: Path) -> None:
    async def body(node: Node) -> None:
        # a client from the future: its body is whatever v99 looks like
        payload = request_header(API_VERSIONS, 99, 77, b"future") + b"\x07\x01\x02\x03\x00"
        reader, writer = await send(node, sized(payload))
        response = await read_response(reader, API_VERSIONS, 0, 77)
        assert response.error_code == KioErrorCode.unsupported_version
        assert int(response.error_code) == 35
        ranges = {int(k.api_key): (k.min_version, k.max_version) for k in response.api_keys}
        assert ranges[API_VERSIONS] == (HANDLERS[API_VERSIONS].min_version, 4)
        assert set(ranges) == set(HANDLERS) - QUORUM_ONLY
        writer.close()

    run_with_broker(tmp_path, body)


def test_good_request_after_garbage_on_another_connection_is_answered(tmp_path: Path) -> None:
    """A connection left half-way through a frame does not block the others."""

    async def body(node: Node) -> None:
        _reader, writer = await send(node, struct.pack(">i", 1000) + b"\x00\x03")
        await check_still_serving(node)
        writer.close()

    run_with_broker(tmp_path, body)


def test_huge_compact_array_count_does_not_stop_a_broker_process(broker_factory: Any) -> None:
    """Five bytes of Metadata v12 body announcing 2**32 - 2 topics, sent to `odradek serve`."""
    broker = broker_factory()
    payload = request_header(METADATA, 12, 1, b"x") + b"\xff\xff\xff\xff\x0f"
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as sock:
        sock.sendall(sized(payload))
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1) == b""  # the broker closes this connection...
    time.sleep(0.2)
    assert broker.running, "the broker process died:\n" + broker.log()[-2000:]
    # ...and answers the next one
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as sock:
        request = load_request_schema(API_VERSIONS, 0)()
        sock.sendall(encode_request(API_VERSIONS, 0, 5, request))
        size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
        data = sock.recv(size, socket.MSG_WAITALL)
        assert struct.unpack_from(">ih", data) == (5, 0)
