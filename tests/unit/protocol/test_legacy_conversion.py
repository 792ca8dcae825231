"""Old message formats: up-conversion of produced v0/v1 message sets and down-conversion of v2
batches for old fetchers, checked against message sets built and read here by hand from
Kafka's protocol guide (not with the code under test)."""

from __future__ import annotations

import gzip
import struct
import zlib

import cramjam
import pytest

from odradek.common.errors import CorruptRecordError, ErrorCode, InvalidRecordError, KafkaError
from odradek.protocol.down_convert import down_convert
from odradek.protocol.records import decode_records, encode_batch
from odradek.protocol.up_convert import up_convert

NONE, GZIP, SNAPPY, LZ4 = 0, 1, 2, 3
LOG_APPEND_TIME = 0x08


# -- hand-rolled message sets ------------------------------------------------------------------


def _bytes(data: bytes | None) -> bytes:
    return struct.pack(">i", -1) if data is None else struct.pack(">i", len(data)) + data


def message(
    offset: int,
    key: bytes | None,
    value: bytes | None,
    *,
    magic: int = 1,
    attributes: int = 0,
    timestamp: int = 1_600_000_000_000,
    bad_crc: bool = False,
) -> bytes:
    body = struct.pack(">bb", magic, attributes)
    if magic == 1:
        body += struct.pack(">q", timestamp)
    body += _bytes(key) + _bytes(value)
    crc = zlib.crc32(body) ^ (1 if bad_crc else 0)
    return struct.pack(">qiI", offset, len(body) + 4, crc) + body


def compressed(codec: int, inner: bytes) -> bytes:
    if codec == GZIP:
        return gzip.compress(inner)
    if codec == SNAPPY:  # xerial framing, as Kafka's Java client writes it
        block = bytes(cramjam.snappy.compress_raw(inner))
        header = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
        return header + struct.pack(">i", len(block)) + block
    return bytes(cramjam.lz4.compress(inner))


def wrapper(
    codec: int, inner: list[bytes], *, magic: int = 1, offset: int = 0, attributes: int = 0
) -> bytes:
    return message(
        offset,
        None,
        compressed(codec, b"".join(inner)),
        magic=magic,
        attributes=codec | attributes,
        timestamp=1_600_000_000_999,
    )


def read_messages(data: bytes) -> list[tuple[int, int, int, int, bytes | None, bytes | None]]:
    """(offset, magic, attributes, timestamp, key, value) of each whole entry, CRC checked."""
    out = []
    pos = 0
    while pos + 12 <= len(data):
        offset, size = struct.unpack_from(">qi", data, pos)
        if pos + 12 + size > len(data):
            break
        crc, magic, attributes = struct.unpack_from(">Ibb", data, pos + 12)
        assert zlib.crc32(data[pos + 16 : pos + 12 + size]) == crc
        field = pos + 18
        timestamp = -1
        if magic == 1:
            (timestamp,) = struct.unpack_from(">q", data, field)
            field += 8
        values: list[bytes | None] = []
        for _ in range(2):
            (length,) = struct.unpack_from(">i", data, field)
            field += 4
            values.append(None if length < 0 else data[field : field + length])
            field += max(length, 0)
        out.append((offset, magic, attributes, timestamp, values[0], values[1]))
        pos += 12 + size
    return out


def records_of(batch: bytes) -> list[tuple[int, int, bytes | None, bytes | None]]:
    _header, records = decode_records(batch)
    return [(r.offset, r.timestamp, r.key, r.value) for r in records]


# -- up-conversion -----------------------------------------------------------------------------


@pytest.mark.parametrize("magic", [0, 1])
def test_uncompressed_set_becomes_one_v2_batch(magic: int) -> None:
    data = message(0, b"k0", b"v0", magic=magic, timestamp=5) + message(
        0, None, b"v1", magic=magic, timestamp=7
    )
    batch = bytes(up_convert(data))
    header, _ = decode_records(batch)
    assert header.magic == 2 and header.compression == NONE and header.producer_id == -1
    expected_ts = (5, 7) if magic == 1 else (-1, -1)
    assert records_of(batch) == [
        (0, expected_ts[0], b"k0", b"v0"),
        (1, expected_ts[1], None, b"v1"),
    ]


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4])
@pytest.mark.parametrize("magic", [0, 1])
def test_compressed_wrapper_keeps_its_codec_and_records(codec: int, magic: int) -> None:
    # magic 1: relative inner offsets; magic 0: absolute (anything the producer chose)
    inner = [
        message(
            i if magic == 1 else 100 + i,
            f"k{i}".encode(),
            f"v{i}".encode(),
            magic=magic,
            timestamp=1000 + i,
        )
        for i in range(3)
    ]
    batch = bytes(up_convert(wrapper(codec, inner, magic=magic, offset=2)))
    header, _ = decode_records(batch)
    assert header.compression == codec
    timestamps = [1000, 1001, 1002] if magic == 1 else [-1, -1, -1]
    assert records_of(batch) == [
        (i, timestamps[i], f"k{i}".encode(), f"v{i}".encode()) for i in range(3)
    ]


def test_raw_snappy_wrapper_is_read_too() -> None:
    inner = message(0, b"k", b"v")
    value = bytes(cramjam.snappy.compress_raw(inner))
    data = message(0, None, value, attributes=SNAPPY)
    assert records_of(bytes(up_convert(data))) == [(0, 1_600_000_000_000, b"k", b"v")]


def test_log_append_time_wrapper_gives_its_timestamp_to_inner_records() -> None:
    inner = [message(i, None, b"v", timestamp=1) for i in range(2)]
    data = wrapper(GZIP, inner, attributes=LOG_APPEND_TIME, offset=1)
    assert [r[1] for r in records_of(bytes(up_convert(data)))] == [1_600_000_000_999] * 2


def test_corrupt_crc_is_corrupt_message() -> None:
    data = message(0, b"k", b"v") + message(1, b"k", b"v", bad_crc=True)
    with pytest.raises(CorruptRecordError):
        up_convert(data)


def test_corrupt_inner_crc_is_corrupt_message() -> None:
    data = wrapper(GZIP, [message(0, b"k", b"v", bad_crc=True)])
    with pytest.raises(CorruptRecordError):
        up_convert(data)


def test_nested_compression_is_invalid_record() -> None:
    nested = wrapper(GZIP, [message(0, b"k", b"v")])
    with pytest.raises(InvalidRecordError):
        up_convert(wrapper(GZIP, [nested]))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(wrapper(GZIP, [message(0, None, b"a")]) * 2, id="two-wrappers"),
        pytest.param(message(0, None, b"a", magic=0) + message(1, None, b"b"), id="mixed-magic"),
        pytest.param(message(0, None, None, attributes=GZIP), id="null-wrapper-value"),
        pytest.param(message(0, None, compressed(GZIP, b""), attributes=GZIP), id="empty-inner"),
        pytest.param(wrapper(GZIP, [message(0, None, b"a", magic=0)]), id="inner-magic"),
        pytest.param(message(0, None, b"zstd frame?", attributes=4), id="zstd-wrapper"),
        pytest.param(
            wrapper(GZIP, [message(i, None, b"a") for i in range(3)], offset=1),
            id="wrapper-offset-below-last-inner",
        ),
    ],
)
def test_invalid_sets_are_invalid_record(data: bytes) -> None:
    with pytest.raises(InvalidRecordError):
        up_convert(data)


def test_undecompressable_wrapper_is_corrupt_message() -> None:
    with pytest.raises(CorruptRecordError):
        up_convert(message(0, None, b"not gzip", attributes=GZIP))


def test_every_truncation_is_corrupt_message() -> None:
    first = message(0, b"key", b"value")
    data = first + message(1, b"k", b"v")
    for cut in range(1, len(data)):
        if cut == len(first):
            continue  # a whole set of one message
        with pytest.raises(CorruptRecordError):
            up_convert(data[:cut])
    data = wrapper(LZ4, [message(0, b"k", b"v"), message(1, b"k", b"v")])
    for cut in range(1, len(data)):
        with pytest.raises(CorruptRecordError):
            up_convert(data[:cut])


def test_truncated_inner_set_is_corrupt_message() -> None:
    inner = message(0, b"k", b"v")
    with pytest.raises(CorruptRecordError):
        up_convert(message(0, None, gzip.compress(inner[:-3]), attributes=GZIP))


# -- down-conversion ---------------------------------------------------------------------------


def stored(values: list[bytes], base_offset: int, codec: int = NONE, **kwargs: int) -> bytes:
    return encode_batch(
        [(f"k{i}".encode(), v, [("h", b"x")]) for i, v in enumerate(values)],
        base_offset=base_offset,
        timestamp_ms=1_700_000_000_000,
        compression=codec,
        **kwargs,
    )


@pytest.mark.parametrize("magic", [0, 1])
def test_uncompressed_batch_becomes_one_message_per_record_from_the_fetch_offset(
    magic: int,
) -> None:
    data = stored([b"a", b"b", b"c", b"d"], base_offset=10)
    out = read_messages(down_convert(data, magic, 12, 1 << 20, min_one_message=True))
    timestamp = 1_700_000_000_000 if magic == 1 else -1
    assert out == [
        (12, magic, 0, timestamp, b"k2", b"c"),
        (13, magic, 0, timestamp, b"k3", b"d"),
    ]


@pytest.mark.parametrize("codec", [GZIP, SNAPPY, LZ4])
@pytest.mark.parametrize("magic", [0, 1])
def test_compressed_batch_becomes_one_wrapper_with_its_codec(codec: int, magic: int) -> None:
    data = stored([b"a", b"b", b"c"], base_offset=20, codec=codec)
    out = read_messages(down_convert(data, magic, 21, 1 << 20, min_one_message=True))
    assert len(out) == 1
    offset, got_magic, attributes, _, key, value = out[0]
    assert (offset, got_magic, attributes & 0x07, key) == (22, magic, codec, None)
    assert value is not None
    if codec == SNAPPY:
        assert value.startswith(b"\x82SNAPPY\x00")
        raw = value[16:]
        inner_bytes = bytes(cramjam.snappy.decompress_raw(raw[4:]))
    elif codec == GZIP:
        inner_bytes = gzip.decompress(value)
    else:
        assert value[4] & 0x20  # independent blocks: Kafka's and kafka-go's readers need them
        inner_bytes = bytes(cramjam.lz4.decompress(value))
    inner = read_messages(inner_bytes)
    # Kafka keeps every record of a compressed batch; magic 1 inner offsets are relative
    offsets = [0, 1, 2] if magic == 1 else [20, 21, 22]
    assert [(m[0], m[4], m[5]) for m in inner] == list(
        zip(offsets, [b"k0", b"k1", b"k2"], [b"a", b"b", b"c"], strict=True)
    )


def test_control_batches_are_dropped_and_transactional_ones_converted() -> None:
    transactional = stored(
        [b"t"], base_offset=0, producer_id=7, producer_epoch=0, base_sequence=0, attributes=0x10
    )
    control = stored([b"\x00\x00\x00\x00"], base_offset=1, producer_id=7, attributes=0x30)
    out = read_messages(down_convert(transactional + control, 1, 0, 1 << 20, min_one_message=True))
    assert [(m[0], m[5]) for m in out] == [(0, b"t")]


def test_zstd_batch_is_unsupported_compression_type_where_the_read_starts() -> None:
    zstd = stored([b"z"], base_offset=1, codec=4)
    with pytest.raises(KafkaError) as raised:
        down_convert(zstd, 1, 1, 1 << 20, min_one_message=True)
    assert raised.value.code == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
    out = read_messages(down_convert(stored([b"a"], 0) + zstd, 1, 0, 1 << 20, min_one_message=True))
    assert [m[5] for m in out] == [b"a"]


def test_magic0_lz4_with_kafkas_old_header_checksum_is_read() -> None:
    inner = message(5, b"k", b"v", magic=0)
    frame = bytearray(cramjam.lz4.compress(inner))
    flags = frame[4]
    assert not flags & 0x09  # no content size or dictionary id: the checksum is byte 6
    frame[6] ^= 0x5A  # a checksum computed over other bytes (KAFKA-3160)
    data = message(5, None, bytes(frame), magic=0, attributes=LZ4)
    assert records_of(bytes(up_convert(data))) == [(0, -1, b"k", b"v")]


def test_log_append_time_batch_keeps_its_timestamp_type() -> None:
    data = stored([b"a"], base_offset=0, attributes=LOG_APPEND_TIME)
    out = read_messages(down_convert(data, 1, 0, 1 << 20, min_one_message=True))
    assert out[0][2] & LOG_APPEND_TIME and out[0][3] == 1_700_000_000_000


def test_max_bytes_cuts_at_a_whole_message() -> None:
    data = stored([b"x" * 50] * 4, base_offset=0)
    one = len(down_convert(stored([b"x" * 50], 0), 1, 0, 1 << 20, min_one_message=True))
    out = down_convert(data, 1, 0, 2 * one + one // 2, min_one_message=False)
    assert [m[0] for m in read_messages(out)] == [0, 1] and len(out) == 2 * one


def test_first_message_larger_than_max_bytes() -> None:
    data = stored([b"x" * 100], base_offset=0)
    whole = down_convert(data, 1, 0, 10, min_one_message=True)
    assert [m[0] for m in read_messages(whole)] == [0]  # Fetch v3 (KIP-74): whole
    partial = down_convert(data, 1, 0, 10, min_one_message=False)
    assert partial == whole[:10] and read_messages(partial) == []  # v0-v2: too large


def test_partial_trailing_batch_is_ignored() -> None:
    data = stored([b"a"], 0) + stored([b"b"], 1)[:-5]
    out = read_messages(down_convert(data, 0, 0, 1 << 20, min_one_message=True))
    assert [m[5] for m in out] == [b"a"]


def test_round_trip_through_both_conversions() -> None:
    produced = wrapper(
        SNAPPY, [message(i, f"k{i}".encode(), b"v" * i, timestamp=i) for i in range(5)]
    )
    batch = bytearray(up_convert(produced))
    struct.pack_into(">q", batch, 0, 40)  # the offset the log would assign
    out = read_messages(down_convert(bytes(batch), 1, 40, 1 << 20, min_one_message=True))
    assert len(out) == 1 and out[0][0] == 44 and out[0][2] & 0x07 == SNAPPY
