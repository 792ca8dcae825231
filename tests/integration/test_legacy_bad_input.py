"""Old request versions over raw sockets: Produce v0-v2 with good and bad magic 0/1 message sets,
Fetch v0-v3, ListOffsets v0, OffsetCommit v0-v1. Bad input gets the error a Kafka 3.x broker
returns (CORRUPT_MESSAGE for a bad CRC or broken framing, INVALID_RECORD for nested compression
and more than one compressed wrapper, UNSUPPORTED_COMPRESSION_TYPE for zstd read by an old
fetcher), nothing is appended, and the broker keeps serving.

Everything is encoded and decoded here by hand from Kafka's protocol guide.
"""

from __future__ import annotations

import gzip
import socket
import struct
import zlib
from collections.abc import Callable, Iterator

import pytest
from kafka_helpers import consume_all, create_topic, produce, unique_topic

PRODUCE, FETCH, LIST_OFFSETS, OFFSET_COMMIT, OFFSET_FETCH, API_VERSIONS = 0, 1, 2, 8, 9, 18
NONE_ERROR, CORRUPT_MESSAGE, INVALID_RECORD, UNSUPPORTED_COMPRESSION_TYPE = 0, 2, 87, 76
GZIP = 1
TS = 1_650_000_000_000


def message(
    offset: int,
    key: bytes | None,
    value: bytes | None,
    *,
    magic: int = 1,
    attributes: int = 0,
    timestamp: int = TS,
    bad_crc: bool = False,
) -> bytes:
    def field(data: bytes | None) -> bytes:
        return struct.pack(">i", -1) if data is None else struct.pack(">i", len(data)) + data

    body = struct.pack(">bb", magic, attributes)
    if magic == 1:
        body += struct.pack(">q", timestamp)
    body += field(key) + field(value)
    crc = zlib.crc32(body) ^ (0xFF if bad_crc else 0)
    return struct.pack(">qiI", offset, len(body) + 4, crc) + body


def gzip_wrapper(inner: list[bytes], magic: int = 1) -> bytes:
    return message(
        len(inner) - 1, None, gzip.compress(b"".join(inner)), magic=magic, attributes=GZIP
    )


def string(s: str) -> bytes:
    return struct.pack(">h", len(s)) + s.encode()


def request(api_key: int, version: int, correlation_id: int, body: bytes) -> bytes:
    payload = struct.pack(">hhi", api_key, version, correlation_id) + string("legacy") + body
    return struct.pack(">i", len(payload)) + payload


def produce_request(
    version: int, correlation_id: int, topic: str, records: bytes, acks: int = -1
) -> bytes:
    body = struct.pack(">hi", acks, 10_000) + struct.pack(">i", 1) + string(topic)
    body += struct.pack(">ii", 1, 0) + struct.pack(">i", len(records)) + records
    return request(PRODUCE, version, correlation_id, body)


class Wire:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.correlation_id = 0

    def call(self, api_key: int, version: int, body: bytes) -> bytes:
        self.correlation_id += 1
        self.sock.sendall(request(api_key, version, self.correlation_id, body))
        response = self.frame()
        assert response is not None, "the broker closed the connection"
        assert struct.unpack_from(">i", response)[0] == self.correlation_id
        return response[4:]

    def frame(self) -> bytes | None:
        data = b""
        while len(data) < 4 or len(data) < 4 + struct.unpack_from(">i", data)[0]:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return None
            data += chunk
        return data[4:]

    def produce(self, version: int, topic: str, records: bytes) -> tuple[int, int]:
        """(error_code, base_offset) of a one-partition Produce v0-v2."""
        return self.produce_v2(version, topic, records)[:2]

    def produce_v2(self, version: int, topic: str, records: bytes) -> tuple[int, int, int]:
        """(error_code, base_offset, log_append_time or -1 before v2)."""
        self.correlation_id += 1
        self.sock.sendall(produce_request(version, self.correlation_id, topic, records))
        response = self.frame()
        assert response is not None
        position = 4 + 4  # correlation id, topic count
        (name_length,) = struct.unpack_from(">h", response, position)
        position += 2 + name_length + 4
        _, error_code, base_offset = struct.unpack_from(">ihq", response, position)
        log_append_time = -1
        if version >= 2:
            (log_append_time,) = struct.unpack_from(">q", response, position + 14)
        return error_code, base_offset, log_append_time

    def fetch(
        self, version: int, topic: str, offset: int, max_bytes: int = 1 << 20
    ) -> tuple[int, int, bytes]:
        """(error_code, high_watermark, records) of a one-partition Fetch v0-v3."""
        body = struct.pack(">iii", -1, 100, 0)
        if version >= 3:
            body += struct.pack(">i", max_bytes)
        body += struct.pack(">i", 1) + string(topic)
        body += struct.pack(">iiqi", 1, 0, offset, max_bytes)
        response = self.call(FETCH, version, body)
        position = 4 if version >= 1 else 0  # throttle time
        position += 4
        (name_length,) = struct.unpack_from(">h", response, position)
        position += 2 + name_length + 4
        _, error_code, high_watermark, size = struct.unpack_from(">ihqi", response, position)
        position += 18
        return error_code, high_watermark, response[position : position + size]


def messages(data: bytes) -> list[tuple[int, int, int, bytes | None, bytes | None]]:
    """(offset, magic, timestamp, key, value) of each whole entry; inner ones of gzip wrappers."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        offset, size = struct.unpack_from(">qi", data, pos)
        if pos + 12 + size > len(data):
            break
        crc, magic, attributes = struct.unpack_from(">Ibb", data, pos + 12)
        assert zlib.crc32(data[pos + 16 : pos + 12 + size]) == crc
        at = pos + 18
        timestamp = -1
        if magic == 1:
            (timestamp,) = struct.unpack_from(">q", data, at)
            at += 8
        fields: list[bytes | None] = []
        for _ in range(2):
            (length,) = struct.unpack_from(">i", data, at)
            at += 4
            fields.append(None if length < 0 else data[at : at + length])
            at += max(length, 0)
        if attributes & 0x07 == GZIP:
            assert fields[1] is not None
            inner = messages(gzip.decompress(fields[1]))
            base = offset - inner[-1][0] if magic == 1 else 0
            out += [(base + m[0], *m[1:]) for m in inner]
        else:
            out.append((offset, magic, timestamp, fields[0], fields[1]))
        pos += 12 + size
    return out


@pytest.fixture
def wire(broker) -> Iterator[Callable[[], Wire]]:
    opened: list[socket.socket] = []

    def open_wire() -> Wire:
        sock = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
        opened.append(sock)
        return Wire(sock)

    yield open_wire
    for sock in opened:
        sock.close()


@pytest.fixture
def legacy_topic(broker) -> str:
    topic = unique_topic("legacy-wire")
    create_topic(broker.bootstrap, topic)
    return topic


def test_produce_v0_to_v2_are_acknowledged_and_fetch_v0_to_v3_read_them(
    broker, wire, legacy_topic
) -> None:
    w = wire()
    assert w.produce(0, legacy_topic, message(0, b"k0", b"v0", magic=0)) == (NONE_ERROR, 0)
    # magic 1 inner offsets are relative: 0 and 1, the wrapper carries 1
    inner = [message(i - 1, f"k{i}".encode(), f"v{i}".encode(), timestamp=TS + i) for i in (1, 2)]
    assert w.produce(2, legacy_topic, gzip_wrapper(inner)) == (NONE_ERROR, 1)
    assert w.produce(1, legacy_topic, message(7, None, b"v3", timestamp=TS + 3)) == (NONE_ERROR, 3)

    for version in (0, 1):
        error, high_watermark, records = w.fetch(version, legacy_topic, 0)
        assert (error, high_watermark) == (NONE_ERROR, 4)
        assert messages(records) == [
            (0, 0, -1, b"k0", b"v0"),
            (1, 0, -1, b"k1", b"v1"),
            (2, 0, -1, b"k2", b"v2"),
            (3, 0, -1, None, b"v3"),
        ]
    for version in (2, 3):
        error, _, records = w.fetch(version, legacy_topic, 1)
        assert error == NONE_ERROR
        assert messages(records) == [
            (1, 1, TS + 1, b"k1", b"v1"),
            (2, 1, TS + 2, b"k2", b"v2"),
            (3, 1, TS + 3, None, b"v3"),
        ]
    modern = consume_all(broker.bootstrap, legacy_topic)
    assert [(c.offset, c.key, c.value, c.timestamp[1]) for c in modern] == [
        (0, b"k0", b"v0", -1),
        (1, b"k1", b"v1", TS + 1),
        (2, b"k2", b"v2", TS + 2),
        (3, None, b"v3", TS + 3),
    ]


def test_log_append_time_topic_stamps_old_producers_records(broker, wire) -> None:
    topic = unique_topic("legacy-append-time")
    create_topic(broker.bootstrap, topic, **{"message.timestamp.type": "LogAppendTime"})
    w = wire()
    error_code, base_offset, append_time = w.produce_v2(2, topic, message(0, b"k", b"v"))
    assert (error_code, base_offset) == (NONE_ERROR, 0) and append_time > TS
    assert w.produce_v2(1, topic, message(0, b"k", b"v"))[2] == -1  # v1 has no such field
    _, _, records = w.fetch(2, topic, 0)
    (first_offset, first_attributes, first_timestamp) = entry_heads(records)[0]
    assert first_attributes & 0x08 and (first_offset, first_timestamp) == (0, append_time)


def entry_heads(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, attributes, timestamp) of each magic 1 entry."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        offset, size = struct.unpack_from(">qi", data, pos)
        _, attributes, timestamp = struct.unpack_from(">bbq", data, pos + 16)
        out.append((offset, attributes, timestamp))
        pos += 12 + size
    return out


def test_fetch_v3_max_bytes_cuts_whole_messages_but_returns_a_first_larger_one(
    wire, legacy_topic
) -> None:
    w = wire()
    # Ten small messages are one small v2 batch but ten larger v1 messages: the limit applies
    # to what conversion produces, cut at a whole message.
    tiny = [message(i, None, b"t") for i in range(10)]
    assert w.produce(2, legacy_topic, b"".join(tiny)) == (NONE_ERROR, 0)
    one = len(tiny[0])
    _, _, records = w.fetch(3, legacy_topic, 0, max_bytes=4 * one + one // 2)
    assert [m[0] for m in messages(records)] == [0, 1, 2, 3] and len(records) == 4 * one
    _, _, records = w.fetch(3, legacy_topic, 0, max_bytes=10)
    assert [m[0] for m in messages(records)] == [0]  # KIP-74: the first whole
    _, _, records = w.fetch(2, legacy_topic, 0, max_bytes=10)
    assert len(records) == 10 and messages(records) == []  # v2: hard limit, partial message


@pytest.mark.parametrize(
    ("records", "error_code"),
    [
        pytest.param(message(0, b"k", b"v", bad_crc=True), CORRUPT_MESSAGE, id="bad-crc-v1"),
        pytest.param(
            message(0, b"k", b"v", magic=0, bad_crc=True), CORRUPT_MESSAGE, id="bad-crc-v0"
        ),
        pytest.param(
            gzip_wrapper([message(0, b"k", b"v", bad_crc=True)]),
            CORRUPT_MESSAGE,
            id="bad-inner-crc",
        ),
        pytest.param(
            message(0, b"k", b"v") + message(1, b"k", b"v")[:-4],
            CORRUPT_MESSAGE,
            id="truncated-set",
        ),
        pytest.param(
            message(0, None, gzip.compress(message(0, b"k", b"v")[:-2]), attributes=GZIP),
            CORRUPT_MESSAGE,
            id="truncated-inner-set",
        ),
        pytest.param(
            gzip_wrapper([gzip_wrapper([message(0, b"k", b"v")])]),
            INVALID_RECORD,
            id="nested-compression",
        ),
        pytest.param(gzip_wrapper([message(0, None, b"a")]) * 2, INVALID_RECORD, id="two-wrappers"),
    ],
)
@pytest.mark.parametrize("version", [0, 1, 2])
def test_bad_message_sets_get_kafkas_errors_and_append_nothing(
    broker, wire, legacy_topic, records, error_code, version
) -> None:
    w = wire()
    assert w.produce(version, legacy_topic, records) == (error_code, -1)
    assert w.produce(version, legacy_topic, message(0, b"good", b"after")) == (NONE_ERROR, 0)
    produce(broker.bootstrap, legacy_topic, [{"value": b"modern", "partition": 0}]).ok()
    assert [c.value for c in consume_all(broker.bootstrap, legacy_topic)] == [b"after", b"modern"]


def test_well_formed_produce_is_a_negative_control(wire, legacy_topic) -> None:
    """The same requests as above with good CRCs and one level of compression are accepted."""
    w = wire()
    assert w.produce(2, legacy_topic, gzip_wrapper([message(0, b"k", b"v")])) == (NONE_ERROR, 0)
    assert w.produce(1, legacy_topic, message(0, b"k", b"v") + message(1, b"k", b"v"))[0] == 0


def test_acks_0_with_a_bad_set_closes_the_connection(wire, legacy_topic) -> None:
    w = wire()
    w.sock.sendall(produce_request(2, 1, legacy_topic, message(0, None, b"v", bad_crc=True), 0))
    assert w.frame() is None


def test_zstd_batch_read_by_an_old_fetcher_is_unsupported_compression_type(
    broker, wire, legacy_topic
) -> None:
    produce(
        broker.bootstrap,
        legacy_topic,
        [{"value": b"z" * 1000, "partition": 0}],
        **{"compression.type": "zstd"},
    ).ok()
    error, high_watermark, records = wire().fetch(3, legacy_topic, 0)
    assert (error, high_watermark, records) == (UNSUPPORTED_COMPRESSION_TYPE, 1, b"")


def test_list_offsets_v0(broker, wire, legacy_topic) -> None:
    w = wire()
    for _i in range(3):
        w.produce(1, legacy_topic, message(0, None, b"v"))

    def offsets(timestamp: int, max_offsets: int = 1) -> tuple[int, list[int]]:
        body = struct.pack(">i", -1) + struct.pack(">i", 1) + string(legacy_topic)
        body += struct.pack(">iiqi", 1, 0, timestamp, max_offsets)
        response = w.call(LIST_OFFSETS, 0, body)
        position = 4 + 2 + len(legacy_topic) + 4
        _, error_code, count = struct.unpack_from(">ihi", response, position)
        found = list(struct.unpack_from(f">{count}q", response, position + 10))
        return error_code, found

    assert offsets(-1) == (NONE_ERROR, [3])
    assert offsets(-2) == (NONE_ERROR, [0])
    assert offsets(-1, 0) == (NONE_ERROR, [])


@pytest.mark.parametrize("version", [0, 1])
def test_offset_commit_v0_v1_simple_commit(broker, wire, legacy_topic, version) -> None:
    group = unique_topic("legacy-commit")
    body = string(group)
    if version == 1:
        body += struct.pack(">i", -1) + string("")
    body += struct.pack(">i", 1) + string(legacy_topic) + struct.pack(">i", 1)
    body += struct.pack(">iq", 0, 42)
    if version == 1:
        body += struct.pack(">q", -1)
    body += string("meta")
    w = wire()
    response = w.call(OFFSET_COMMIT, version, body)
    position = 4 + 2 + len(legacy_topic) + 4
    assert struct.unpack_from(">ih", response, position) == (0, NONE_ERROR)
    # OffsetFetch v1: [topic, [partition, offset, metadata, error]]
    body = string(group) + struct.pack(">i", 1) + string(legacy_topic) + struct.pack(">ii", 1, 0)
    response = w.call(OFFSET_FETCH, 1, body)
    partition, offset, length = struct.unpack_from(">iqh", response, position)
    metadata = response[position + 14 : position + 14 + length]
    (error_code,) = struct.unpack_from(">h", response, position + 14 + length)
    assert (partition, offset, metadata, error_code) == (0, 42, b"meta", NONE_ERROR)


def test_api_versions_advertises_the_old_versions(wire) -> None:
    response = wire().call(API_VERSIONS, 0, b"")
    error_code, count = struct.unpack_from(">hi", response)
    ranges = {}
    for i in range(count):
        key, low, high = struct.unpack_from(">hhh", response, 6 + 6 * i)
        ranges[key] = (low, high)
    assert error_code == NONE_ERROR
    assert ranges[PRODUCE][0] == 0 and ranges[FETCH][0] == 0
    assert ranges[LIST_OFFSETS][0] == 0 and ranges[OFFSET_COMMIT][0] == 0
