"""Property tests of the old-message-format conversions and old request codecs: records survive
v0/v1 -> v2 -> v0/v1 unchanged, every truncation of a produced set is refused, and no input
makes a decoder fail with anything but the protocol's own errors."""

from __future__ import annotations

import contextlib
import struct
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odradek.common.errors import CorruptRecordError, KafkaError
from odradek.protocol.codec import ProtocolError
from odradek.protocol.compression import compress, decompress
from odradek.protocol.down_convert import down_convert
from odradek.protocol.legacy_records import (
    compress_message_set,
    inner_messages,
    iter_messages,
)
from odradek.protocol.legacy_requests import (
    decode_legacy_fetch_request,
    decode_legacy_offset_commit_request,
    decode_list_offsets_v0_request,
)
from odradek.protocol.up_convert import up_convert

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

maybe_bytes = st.none() | st.binary(max_size=40)
records_strategy = st.lists(
    st.tuples(st.integers(0, 2**41), maybe_bytes, maybe_bytes), min_size=1, max_size=12
)


def _bytes(data: bytes | None) -> bytes:
    return struct.pack(">i", -1) if data is None else struct.pack(">i", len(data)) + data


def message(
    offset: int, magic: int, attributes: int, timestamp: int, key: bytes | None, value: bytes | None
) -> bytes:
    body = struct.pack(">bb", magic, attributes)
    if magic == 1:
        body += struct.pack(">q", timestamp)
    body += _bytes(key) + _bytes(value)
    return struct.pack(">qiI", offset, len(body) + 4, zlib.crc32(body)) + body


def message_set(
    records: list[tuple[int, bytes | None, bytes | None]], magic: int, codec: int
) -> bytes:
    entries = [message(i, magic, 0, ts, k, v) for i, (ts, k, v) in enumerate(records)]
    if codec == 0:
        return b"".join(entries)
    value = compress(codec, b"".join(entries))
    return message(len(records) - 1, magic, codec, 0, None, value)


def readable(data: bytes) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """(offset, timestamp, key, value) of every record of a fetched v0/v1 set."""
    out = []
    for shallow in iter_messages(data, allow_partial_tail=True):
        messages = [shallow] if shallow.compression == 0 else inner_messages(shallow)
        out += [(m.offset, m.timestamp, m.key, m.value) for m in messages]
    return out


@SETTINGS
@given(
    records=records_strategy,
    magic=st.sampled_from([0, 1]),
    codec=st.sampled_from([0, 1, 2, 3]),
    base=st.integers(0, 2**40),
)
def test_records_survive_up_and_down_conversion(
    records: list[tuple[int, bytes | None, bytes | None]], magic: int, codec: int, base: int
) -> None:
    batch = up_convert(message_set(records, magic, codec))
    struct.pack_into(">q", batch, 0, base)  # the offset the log assigns
    out = readable(down_convert(bytes(batch), magic, base, 2**31 - 1, min_one_message=True))
    expected = [(base + i, ts if magic == 1 else -1, k, v) for i, (ts, k, v) in enumerate(records)]
    assert out == expected


@SETTINGS
@given(
    records=records_strategy,
    magic=st.sampled_from([0, 1]),
    codec=st.sampled_from([0, 1, 2, 3]),
    data=st.data(),
)
def test_every_truncated_produced_set_is_refused(
    records: list[tuple[int, bytes | None, bytes | None]],
    magic: int,
    codec: int,
    data: st.DataObject,
) -> None:
    whole = message_set(records[:1], magic, codec)  # one entry: no prefix is a whole set
    cut = data.draw(st.integers(1, len(whole) - 1))
    try:
        up_convert(whole[:cut])
    except CorruptRecordError:
        return
    raise AssertionError(f"a set cut at {cut} of {len(whole)} bytes was accepted")


@SETTINGS
@given(data=st.binary(max_size=300))
def test_any_produced_bytes_convert_or_get_a_kafka_error(data: bytes) -> None:
    with contextlib.suppress(KafkaError):
        up_convert(data)


@SETTINGS
@given(
    records=records_strategy,
    magic=st.sampled_from([0, 1]),
    codec=st.sampled_from([0, 1, 2, 3]),
    flips=st.lists(st.integers(0, 10**6), max_size=4),
)
def test_altered_produced_sets_convert_or_get_a_kafka_error(
    records: list[tuple[int, bytes | None, bytes | None]], magic: int, codec: int, flips: list[int]
) -> None:
    data = bytearray(message_set(records, magic, codec))
    for flip in flips:
        data[flip % len(data)] ^= 0xFF
    with contextlib.suppress(KafkaError):
        up_convert(bytes(data))


@SETTINGS
@given(
    data=st.binary(max_size=300), to_magic=st.sampled_from([0, 1]), max_bytes=st.integers(0, 400)
)
def test_any_stored_bytes_down_convert_or_get_a_kafka_error(
    data: bytes, to_magic: int, max_bytes: int
) -> None:
    try:
        out = down_convert(data, to_magic, 0, max_bytes, min_one_message=False)
    except KafkaError:
        return
    assert len(out) <= max_bytes


@SETTINGS
@given(body=st.binary(max_size=120), version=st.integers(0, 3))
def test_old_request_bodies_decode_or_are_protocol_errors(body: bytes, version: int) -> None:
    for decode in (
        lambda: decode_legacy_fetch_request(body, 0, version),
        lambda: decode_list_offsets_v0_request(body, 0),
        lambda: decode_legacy_offset_commit_request(body, 0, version % 2),
    ):
        with contextlib.suppress(ProtocolError):
            decode()


def test_snappy_wrappers_are_written_in_xerial_blocks() -> None:
    data = bytes(range(256)) * 300  # more than one 32 KiB block
    framed = compress_message_set(2, data)
    assert framed.startswith(b"\x82SNAPPY\x00")
    assert decompress(2, framed) == data
    (block_length,) = struct.unpack_from(">i", framed, 16)
    assert 16 + 4 + block_length < len(framed)  # a second block follows the first
