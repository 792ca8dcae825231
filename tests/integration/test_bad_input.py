"""Bad input over raw sockets: every malformed request gets the error a Kafka broker returns or a
closed connection, and after each one the broker still serves a real client and lost nothing.

The requests here are encoded by hand from Kafka's protocol guide, independent of Odradek's
codecs, so a codec bug cannot hide itself.
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterator

import crc32c
import pytest
from kafka_helpers import consume_all, create_topic, produce, unique_topic

API_PRODUCE = 0
API_METADATA = 3
API_VERSIONS = 18
UNSUPPORTED_VERSION = 35
CORRUPT_MESSAGE = 2
MIB = 1024 * 1024


# -- hand-rolled wire encoding -----------------------------------------------------------------


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def header_v1(api_key: int, version: int, correlation_id: int, client_id: bytes = b"raw") -> bytes:
    return struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id


def header_v2(api_key: int, version: int, correlation_id: int, client_id: bytes = b"raw") -> bytes:
    return header_v1(api_key, version, correlation_id, client_id) + b"\x00"  # no tagged fields


def uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def varint(n: int) -> bytes:
    return uvarint((n << 1) ^ (n >> 63))  # zigzag


def compact_string(s: bytes) -> bytes:
    return uvarint(len(s) + 1) + s


def record_batch(values: list[bytes], timestamp_ms: int, corrupt_crc: bool = False) -> bytes:
    """An uncompressed magic-2 record batch (Kafka's DefaultRecordBatch layout)."""
    records = b""
    for i, value in enumerate(values):
        body = b"\x00" + varint(0) + varint(i) + varint(-1) + varint(len(value)) + value
        body += uvarint(0)  # no headers
        records += varint(len(body)) + body
    after_crc = struct.pack(
        ">hiqqqhii", 0, len(values) - 1, timestamp_ms, timestamp_ms, -1, -1, -1, len(values)
    )
    after_crc += records
    crc = crc32c.crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0xDEADBEEF
    batch_length = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, rest
    return struct.pack(">qiibI", 0, batch_length, -1, 2, crc) + after_crc


def produce_v3(correlation_id: int, topic: str, partition: int, batch: bytes) -> bytes:
    name = topic.encode()
    body = struct.pack(">hhi", -1, -1, 10_000)  # no transactional id, acks=all, timeout
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">ii", 1, partition) + struct.pack(">i", len(batch)) + batch
    return frame(header_v1(API_PRODUCE, 3, correlation_id) + body)


# -- socket helpers ----------------------------------------------------------------------------


@pytest.fixture
def connect(broker) -> Iterator:
    opened: list[socket.socket] = []

    def open_socket() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
        opened.append(sock)
        return sock

    yield open_socket
    for sock in opened:
        sock.close()


def recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


def recv_frame(sock: socket.socket) -> bytes | None:
    """The next response frame, or None if the broker closed the connection."""
    size = recv_exactly(sock, 4)
    if size is None:
        return None
    (length,) = struct.unpack(">i", size)
    return recv_exactly(sock, length)


def assert_closed(sock: socket.socket) -> None:
    """The broker closes the connection (without answering) within the socket timeout."""
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        return
    except TimeoutError:
        pytest.fail("the broker neither answered nor closed the connection within 10 s")
    assert data == b"", f"expected a closed connection, got {data[:64]!r}"


def assert_closed_or_error(sock: socket.socket, correlation_id: int) -> None:
    """Kafka closes the connection here; an error response for this request is also fine."""
    try:
        response = recv_frame(sock)
    except TimeoutError:
        pytest.fail("the broker neither answered nor closed the connection within 10 s")
    if response is not None:
        assert struct.unpack_from(">i", response)[0] == correlation_id


def api_versions(sock: socket.socket, version: int, correlation_id: int) -> tuple[int, dict]:
    """Send ApiVersions; return (error_code, {api_key: (min, max)}). An UNSUPPORTED_VERSION
    answer is laid out as v0 whatever version was asked for."""
    if version >= 3:
        body = compact_string(b"raw-socket") + compact_string(b"1.0") + b"\x00"
        request = header_v2(API_VERSIONS, version, correlation_id) + body
    else:
        request = header_v1(API_VERSIONS, version, correlation_id)
    sock.sendall(frame(request))
    response = recv_frame(sock)
    assert response is not None, "connection closed instead of an ApiVersions response"
    got_correlation_id, error_code = struct.unpack_from(">ih", response)
    assert got_correlation_id == correlation_id
    ranges = {}
    if version >= 3 and error_code != UNSUPPORTED_VERSION:
        # Flexible v3+: a compact array (length + 1 as a varint; < 128 entries fit in one byte)
        # of entries that each end with an empty tagged-field section.
        count = response[6] - 1
        for i in range(count):
            key, low, high = struct.unpack_from(">hhh", response, 7 + 7 * i)
            ranges[key] = (low, high)
    else:
        (count,) = struct.unpack_from(">i", response, 6)
        for i in range(count):
            key, low, high = struct.unpack_from(">hhh", response, 10 + 6 * i)
            ranges[key] = (low, high)
    return error_code, ranges


# -- the broker survives every test --------------------------------------------------------------


@pytest.fixture(autouse=True)
def broker_still_serves(broker, connect) -> Iterator[None]:
    yield
    sock = connect()
    error_code, _ = api_versions(sock, 0, correlation_id=4242)
    assert error_code == 0
    topic = unique_topic("after-bad-input")
    values = [f"still fine {i}".encode() for i in range(5)]
    produce(broker.bootstrap, topic, [{"value": v, "partition": 0} for v in values]).ok()
    assert [r.value for r in consume_all(broker.bootstrap, topic)] == values
    assert broker.running, broker.log()


# -- tests ----------------------------------------------------------------------------------------


def test_api_versions_v0_advertises_produce_from_v0(connect) -> None:
    error_code, ranges = api_versions(connect(), 0, correlation_id=1)
    assert error_code == 0
    assert ranges[API_PRODUCE][0] == 0  # librdkafka < 2.11.1 needs v0 for gzip/snappy/lz4
    assert ranges[API_PRODUCE][1] >= 9
    assert ranges[API_VERSIONS][1] >= 3


def test_api_versions_unsupported_version_answers_v0_with_ranges(connect) -> None:
    sock = connect()
    error_code, ranges = api_versions(sock, 127, correlation_id=7)
    assert error_code == UNSUPPORTED_VERSION
    assert ranges[API_VERSIONS][0] == 0
    assert ranges[API_VERSIONS][1] >= 3
    assert API_PRODUCE in ranges
    assert API_METADATA in ranges
    # The connection stays usable: the client retries with a version it now knows.
    error_code, retried = api_versions(sock, 3, correlation_id=8)
    assert error_code == 0
    assert retried == ranges


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_close_the_connection(connect, seed) -> None:
    rng = random.Random(seed)
    sock = connect()
    sock.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096))))
    sock.shutdown(socket.SHUT_WR)
    try:
        while sock.recv(65536):
            pass  # an error response to garbage that happened to parse is acceptable
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail("the broker kept the connection open after random bytes and EOF")


@pytest.mark.parametrize("seed", range(5))
def test_random_request_body_closes_or_errors(connect, seed) -> None:
    """A complete frame whose contents are noise after a plausible header."""
    rng = random.Random(1000 + seed)
    # No Fetch: noise that parsed could long-poll for a random max_wait_ms.
    api_key = rng.choice([API_PRODUCE, API_METADATA, 2, 19, 20])
    noise = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 512)))
    sock = connect()
    sock.sendall(frame(header_v1(api_key, rng.randrange(0, 4), 99) + noise))
    assert_closed_or_error(sock, 99)


def test_negative_frame_length_closes_the_connection(connect) -> None:
    sock = connect()
    sock.sendall(struct.pack(">i", -2) + b"\x00" * 16)
    assert_closed(sock)


def test_huge_frame_length_closes_the_connection(connect) -> None:
    sock = connect()
    sock.sendall(struct.pack(">i", 200 * MIB) + header_v1(API_METADATA, 1, 5))
    assert_closed(sock)


def test_frame_over_a_configured_request_limit_closes(broker_factory) -> None:
    small = broker_factory(overrides={"socket.request.max.bytes": 4096})
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
        sock.sendall(struct.pack(">i", 8192) + header_v1(API_METADATA, 1, 5))
        assert_closed(sock)
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
        error_code, _ = api_versions(sock, 0, correlation_id=1)  # small requests still work
        assert error_code == 0


def test_unknown_api_key(connect) -> None:
    sock = connect()
    sock.sendall(frame(header_v1(9999, 0, 11) + b"\x00" * 8))
    assert_closed_or_error(sock, 11)


def test_unsupported_version_of_another_api(connect) -> None:
    sock = connect()
    sock.sendall(frame(header_v2(API_METADATA, 999, 12) + b"\x00" * 8))
    assert_closed_or_error(sock, 12)


def test_truncated_header_closes_the_connection(connect) -> None:
    sock = connect()
    sock.sendall(frame(b"\x00\x03\x00"))  # half an api key and version
    assert_closed(sock)


def test_truncated_body_closes_the_connection(connect) -> None:
    sock = connect()
    # Metadata v12 (flexible): a compact array of 3 topics, then nothing.
    sock.sendall(frame(header_v2(API_METADATA, 12, 13) + b"\x04"))
    assert_closed(sock)


def test_truncated_produce_closes_and_appends_nothing(broker, connect) -> None:
    topic = unique_topic("truncated-produce")
    create_topic(broker.bootstrap, topic)
    request = produce_v3(14, topic, 0, record_batch([b"lost"], 1_700_000_000_000))
    cut = request[4:-7]
    sock = connect()
    sock.sendall(frame(cut))
    assert_closed(sock)
    produce(broker.bootstrap, topic, [{"value": b"kept", "partition": 0}]).ok()
    assert [r.value for r in consume_all(broker.bootstrap, topic)] == [b"kept"]


def parse_produce_v3_response(response: bytes) -> tuple[int, int, int]:
    """(correlation_id, error_code, base_offset) of a one-partition Produce v3 response."""
    (correlation_id, _topics, name_length) = struct.unpack_from(">iih", response)
    pos = 10 + name_length
    (_partitions, _index, error_code, base_offset) = struct.unpack_from(">iihq", response, pos)
    return correlation_id, error_code, base_offset


def test_bad_crc_is_rejected_with_corrupt_message(broker, connect) -> None:
    topic = unique_topic("bad-crc")
    create_topic(broker.bootstrap, topic)
    sock = connect()

    # Positive control: the same hand-made batch with a correct CRC is accepted.
    sock.sendall(produce_v3(21, topic, 0, record_batch([b"good"], 1_700_000_000_000)))
    response = recv_frame(sock)
    assert response is not None
    assert parse_produce_v3_response(response) == (21, 0, 0)

    bad = record_batch([b"bad-1", b"bad-2"], 1_700_000_000_000, corrupt_crc=True)
    sock.sendall(produce_v3(22, topic, 0, bad))
    response = recv_frame(sock)
    assert response is not None
    correlation_id, error_code, _ = parse_produce_v3_response(response)
    assert (correlation_id, error_code) == (22, CORRUPT_MESSAGE)

    assert [r.value for r in consume_all(broker.bootstrap, topic)] == [b"good"]


def test_clients_may_not_write_to_internal_topics(broker, connect) -> None:
    from confluent_kafka import Consumer, TopicPartition

    topic = unique_topic("internal-guard")
    create_topic(broker.bootstrap, topic)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "guarded"})
    consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)  # the topic exists
    sock = connect()
    garbage = record_batch([b"not an offset commit"], 1_700_000_000_000)
    for correlation_id, internal in enumerate(["__consumer_offsets", "__transaction_state"]):
        sock.sendall(produce_v3(correlation_id, internal, 0, garbage))
        response = recv_frame(sock)
        assert response is not None
        assert parse_produce_v3_response(response)[:2] == (correlation_id, 17)  # INVALID_TOPIC
    # the group coordinator goes on as before
    consumer.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=False)
    assert consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 3
    consumer.close()
