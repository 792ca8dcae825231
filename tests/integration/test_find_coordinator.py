"""FindCoordinator over a raw socket: a single node coordinates every group and transactional
id; bad key types and empty keys are INVALID_REQUEST. Also checks librdkafka's reading of it:
lz4 is used only when FindCoordinator is advertised (checked in the codec round trips)."""

from __future__ import annotations

import socket
import struct

import pytest

API_FIND_COORDINATOR = 10
INVALID_REQUEST = 42


def legacy_string(value: bytes) -> bytes:
    return struct.pack(">h", len(value)) + value


def compact_string(value: bytes) -> bytes:
    return bytes([len(value) + 1]) + value


def call(port: int, version: int, body: bytes) -> bytes:
    flexible = version >= 3
    header = struct.pack(">hhi", API_FIND_COORDINATOR, version, 7) + legacy_string(b"raw")
    if flexible:
        header += b"\x00"
    payload = header + body
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", sock.recv(4, socket.MSG_WAITALL))[0]
        data = sock.recv(size, socket.MSG_WAITALL)
    assert struct.unpack_from(">i", data, 0)[0] == 7
    return data[5:] if flexible else data[4:]


def test_v0_group_is_coordinated_by_this_node(broker) -> None:
    body = call(broker.port, 0, legacy_string(b"my-group"))
    error, node_id, host_length = struct.unpack_from(">hih", body, 0)
    host = body[8 : 8 + host_length].decode()
    (port,) = struct.unpack_from(">i", body, 8 + host_length)
    assert (error, node_id, host, port) == (0, 1, "127.0.0.1", broker.port)


@pytest.mark.parametrize(
    ("key_type", "key", "error"),
    [(1, b"txn-1", 0), (0, b"", INVALID_REQUEST), (5, b"g", INVALID_REQUEST)],
)
def test_v1_key_types(broker, key_type: int, key: bytes, error: int) -> None:
    body = call(broker.port, 1, legacy_string(key) + struct.pack(">b", key_type))
    _, code = struct.unpack_from(">ih", body, 0)
    assert code == error
    position = 6
    message_length = struct.unpack_from(">h", body, position)[0]
    position += 2 + max(message_length, 0)
    (node_id,) = struct.unpack_from(">i", body, position)
    assert node_id == (1 if error == 0 else -1)


def test_v4_batched_keys(broker) -> None:
    keys = [b"a", b"b", b"c"]
    body = call(
        broker.port,
        4,
        struct.pack(">b", 0)
        + bytes([len(keys) + 1])
        + b"".join(compact_string(k) for k in keys)
        + b"\x00",
    )
    position = 4  # throttle_time_ms
    count = body[position] - 1
    position += 1
    found = []
    for _ in range(count):
        length = body[position] - 1
        key = body[position + 1 : position + 1 + length]
        position += 1 + length
        (node_id,) = struct.unpack_from(">i", body, position)
        position += 4
        host_length = body[position] - 1
        position += 1 + host_length
        (port, error) = struct.unpack_from(">ih", body, position)
        position += 6
        position += 1  # null error message
        position += 1  # tagged fields
        found.append((key, node_id, port, error))
    assert found == [(k, 1, broker.port, 0) for k in keys]
