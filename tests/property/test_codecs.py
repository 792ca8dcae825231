"""Round trips and decode-or-ProtocolError for the broker's own codecs.

Metadata records (KRaft encoding), record batches (every compression codec), and the produce
request hot-path decoder, checked against a small independent encoder written here.
"""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odradek.common.errors import CorruptRecordError
from odradek.metadata import records as meta
from odradek.protocol.codec import ProtocolError, parse_header
from odradek.protocol.produce import (
    ProducePartition,
    ProduceRequestData,
    ProduceTopic,
    decode_legacy_produce_request,
    decode_produce_request,
)
from odradek.protocol.records import (
    HEADER_SIZE,
    assign_offsets,
    decode_records,
    encode_batch,
    read_header,
    validate_batches,
)

INT32 = st.integers(-(2**31), 2**31 - 1)
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- metadata records -------------------------------------------------------------------------

topic_ids = st.binary(min_size=16, max_size=16)
int32_lists = st.lists(INT32, max_size=8).map(tuple)
metadata_records = st.one_of(
    st.builds(meta.TopicRecord, st.text(max_size=60), topic_ids),
    st.builds(
        meta.PartitionRecord, INT32, topic_ids, int32_lists, int32_lists, INT32, INT32, INT32
    ),
    st.builds(
        meta.ConfigRecord,
        st.integers(-128, 127),
        st.text(max_size=40),
        st.text(max_size=40),
        st.none() | st.text(max_size=200),
    ),
    st.builds(meta.RemoveTopicRecord, topic_ids),
)


@SETTINGS
@given(record=metadata_records)
def test_metadata_record_round_trip(record: meta.MetadataRecord) -> None:
    assert meta.decode(meta.encode(record)) == record


@SETTINGS
@given(record=metadata_records)
def test_truncated_metadata_record_is_a_protocol_error(record: meta.MetadataRecord) -> None:
    data = meta.encode(record)
    for length in range(len(data)):
        with pytest.raises(ProtocolError):
            meta.decode(data[:length])


def test_unknown_metadata_record_type_is_skipped() -> None:
    # frame version 1, api key 12 (a record type this broker does not use), version 0
    assert meta.decode(b"\x01\x0c\x00" + b"\x00" * 20) is None


@SETTINGS
@given(
    key=st.sampled_from([meta.TOPIC_RECORD, meta.PARTITION_RECORD, meta.CONFIG_RECORD, 9, 12]),
    body=st.binary(max_size=80),
)
def test_metadata_decode_random_body_is_record_none_or_protocol_error(
    key: int, body: bytes
) -> None:
    with contextlib.suppress(ProtocolError):
        meta.decode(bytes([1, key, 0]) + body)


def test_metadata_decode_invalid_utf8_topic_name_is_a_protocol_error() -> None:
    body = b"\x03\xff\xfe" + bytes(16) + b"\x00"  # compact string of 2 bytes, not UTF-8
    with pytest.raises(ProtocolError):
        meta.decode(b"\x01\x02\x00" + body)


# --- record batches ---------------------------------------------------------------------------

maybe_bytes = st.none() | st.binary(max_size=50)
record_lists = st.lists(
    st.tuples(
        maybe_bytes,
        maybe_bytes,
        st.lists(st.tuples(st.text(max_size=10), maybe_bytes), max_size=3),
    ),
    min_size=1,
    max_size=8,
)


@SETTINGS
@given(
    batches=st.lists(record_lists, min_size=1, max_size=3),
    codec=st.integers(0, 4),
    timestamp=st.integers(0, 2**41),
    first_offset=st.integers(0, 2**40),
    leader_epoch=st.integers(0, 2**31 - 1),
    log_append_time=st.none() | st.integers(0, 2**41),
)
def test_batch_round_trip(
    batches: list[list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]]],
    codec: int,
    timestamp: int,
    first_offset: int,
    leader_epoch: int,
    log_append_time: int | None,
) -> None:
    buf = bytearray(
        b"".join(encode_batch(b, timestamp_ms=timestamp, compression=codec) for b in batches)
    )
    validated = validate_batches(buf, 1 << 30)
    assert validated.records_count == sum(len(b) for b in batches)
    assert len(validated.headers) == len(batches)
    next_offset = assign_offsets(buf, validated, first_offset, leader_epoch, log_append_time)
    assert next_offset == first_offset + validated.records_count
    # still valid after the in-place rewrite (the CRC is recomputed for LogAppendTime)
    validate_batches(buf, 1 << 30)
    offset = first_offset
    for position, records in zip(validated.positions, batches, strict=True):
        header, decoded = decode_records(memoryview(buf)[position:])
        assert header.base_offset == offset
        assert header.partition_leader_epoch == leader_epoch
        assert header.compression == codec
        expected_time = timestamp if log_append_time is None else log_append_time
        assert header.timestamp_type == (0 if log_append_time is None else 1)
        assert [(r.key, r.value, list(r.headers)) for r in decoded] == [
            (k, v, [(n, hv) for n, hv in h]) for k, v, h in records
        ]
        assert [r.offset for r in decoded] == list(range(offset, offset + len(records)))
        assert all(r.timestamp == expected_time for r in decoded)
        offset += len(records)


@settings(max_examples=25, deadline=None)
@given(records=record_lists, codec=st.integers(0, 4), data=st.data())
def test_flipped_byte_is_corrupt(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]],
    codec: int,
    data: st.DataObject,
) -> None:
    batch = encode_batch(records, compression=codec)
    validate_batches(batch, 1 << 30)  # negative control: the intact batch is fine
    positions = range(17, len(batch))  # the CRC itself and everything it covers
    chosen = data.draw(st.lists(st.sampled_from(positions), min_size=1, max_size=10))
    for position in chosen:
        for mask in (0x01, 0x80, 0xFF):
            corrupted = bytearray(batch)
            corrupted[position] ^= mask
            with pytest.raises(CorruptRecordError):
                validate_batches(corrupted, 1 << 30)


def test_every_flipped_byte_of_a_small_batch_is_corrupt() -> None:
    batch = encode_batch([(b"k", b"v", [("h", None)]), (None, b"value", [])], compression=0)
    for position in range(17, len(batch)):
        corrupted = bytearray(batch)
        corrupted[position] ^= 0x10
        with pytest.raises(CorruptRecordError):
            validate_batches(corrupted, 1 << 30)


def test_offset_and_epoch_are_not_covered_by_the_crc() -> None:
    batch = bytearray(encode_batch([(b"k", b"v", [])]))
    # bytes 0-7 and 12-15 (baseOffset, partitionLeaderEpoch) may change without a CRC error
    for position in (*range(8), *range(12, 16)):
        batch[position] ^= 0x5A
    assert validate_batches(batch, 1 << 30).records_count == 1


# --- produce requests -------------------------------------------------------------------------


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_produce(data: ProduceRequestData, version: int, correlation_id: int = 7) -> bytearray:
    """A whole Produce request (header + body, no size prefix), written independently."""
    flexible = version >= 9
    client = b"test-client"

    def string(value: str | None) -> bytes:
        if value is None:
            return _uvarint(0) if flexible else struct.pack(">h", -1)
        raw = value.encode()
        return _uvarint(len(raw) + 1) + raw if flexible else struct.pack(">h", len(raw)) + raw

    def nullable_bytes(value: bytes | None) -> bytes:
        if value is None:
            return _uvarint(0) if flexible else struct.pack(">i", -1)
        return (_uvarint(len(value) + 1) if flexible else struct.pack(">i", len(value))) + value

    def array(count: int) -> bytes:
        return _uvarint(count + 1) if flexible else struct.pack(">i", count)

    tags = b"\x00" if flexible else b""
    out = bytearray(struct.pack(">hhih", 0, version, correlation_id, len(client)) + client + tags)
    if version >= 3:
        out += string(data.transactional_id)
    out += struct.pack(">hi", data.acks, data.timeout_ms)
    out += array(len(data.topics))
    for topic in data.topics:
        out += string(topic.name) + array(len(topic.partitions))
        for partition in topic.partitions:
            records = None if partition.records is None else bytes(partition.records)
            out += struct.pack(">i", partition.partition) + nullable_bytes(records) + tags
        out += tags
    out += tags
    return out


batches = st.builds(
    lambda records, codec: encode_batch(records, compression=codec),
    record_lists,
    st.sampled_from([0, 1, 4]),
)
produce_partitions = st.builds(
    ProducePartition,
    INT32,
    st.none() | batches.map(memoryview) | st.just(memoryview(b"")),
)
produce_requests = st.builds(
    ProduceRequestData,
    st.none() | st.text(max_size=20),
    st.sampled_from([-1, 0, 1]),
    INT32,
    st.lists(
        st.builds(
            ProduceTopic,
            st.text(max_size=30),
            st.lists(produce_partitions, max_size=3).map(tuple),
        ),
        max_size=3,
    ).map(tuple),
)


def _decode(frame: bytearray, version: int) -> ProduceRequestData:
    header, position = parse_header(frame, version >= 9)
    assert header.api_key == 0 and header.api_version == version
    return decode_produce_request(frame, position, version)


@SETTINGS
@given(request=produce_requests, version=st.sampled_from([3, 8, 9, 11]))
def test_produce_request_round_trip(request: ProduceRequestData, version: int) -> None:
    frame = encode_produce(request, version)
    decoded = _decode(frame, version)
    assert decoded == request
    for topic in decoded.topics:
        for partition in topic.partitions:
            if partition.records is not None:
                # a view into the received frame, not a copy
                assert partition.records.obj is frame
                if len(partition.records):
                    frame_before = bytes(partition.records[:1])
                    partition.records[0] ^= 0xFF
                    assert bytes(partition.records[:1]) != frame_before
                    partition.records[0] ^= 0xFF


@settings(max_examples=40, deadline=None)
@given(request=produce_requests, version=st.sampled_from([3, 8, 9, 11]))
def test_truncated_produce_request_is_a_protocol_error(
    request: ProduceRequestData, version: int
) -> None:
    frame = encode_produce(request, version)
    for length in range(len(frame)):
        with pytest.raises(ProtocolError):
            _decode(bytearray(frame[:length]), version)


@SETTINGS
@given(body=st.binary(max_size=200), version=st.integers(3, 11))
def test_produce_random_body_is_decoded_or_protocol_error(body: bytes, version: int) -> None:
    frame = bytearray(struct.pack(">hhih", 0, version, 1, -1) + (b"\x00" if version >= 9 else b""))
    position = len(frame)
    frame += body
    with contextlib.suppress(ProtocolError):
        decode_produce_request(frame, position, version)


@SETTINGS
@given(body=st.binary(max_size=200))
def test_legacy_produce_random_body_is_decoded_or_protocol_error(body: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_legacy_produce_request(bytearray(body), 0)


def test_produce_request_with_invalid_utf8_topic_is_a_protocol_error() -> None:
    frame = bytearray(struct.pack(">hhih", 0, 3, 1, -1))
    position = len(frame)
    frame += struct.pack(">hhi", -1, 1, 1000) + struct.pack(">ih", 1, 2) + b"\xff\xfe"
    frame += struct.pack(">i", 0)
    with pytest.raises(ProtocolError):
        decode_produce_request(frame, position, 3)


def test_produce_request_with_null_topic_is_a_protocol_error() -> None:
    frame = bytearray(struct.pack(">hhi", -1, 1, 1000) + struct.pack(">ih", 1, -1))
    frame += struct.pack(">i", 0)
    with pytest.raises(ProtocolError, match="null topic"):
        decode_produce_request(frame, 0, 3)


def test_produce_request_huge_array_count_is_refused_without_looping() -> None:
    frame = bytearray(struct.pack(">hhi", -1, 1, 1000) + struct.pack(">i", 2**31 - 1))
    with pytest.raises(ProtocolError, match="array length"):
        decode_produce_request(frame, 0, 3)


def test_header_of_a_produced_batch_survives_the_request_path() -> None:
    batch = encode_batch([(b"key", b"value", [("h", b"1")])], compression=0)
    request = ProduceRequestData(
        None, -1, 30000, (ProduceTopic("t", (ProducePartition(0, memoryview(batch)),)),)
    )
    frame = encode_produce(request, 9)
    records = _decode(frame, 9).topics[0].partitions[0].records
    assert records is not None
    validated = validate_batches(records, 1 << 20)
    assign_offsets(records, validated, 42, 3, None)
    # the rewrite landed in the frame itself
    start = bytes(frame).index(batch[HEADER_SIZE - 4 :]) - (HEADER_SIZE - 4)
    assert read_header(frame, start).base_offset == 42
    assert decode_records(records)[1][0].offset == 42
