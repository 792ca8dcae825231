"""Kafka's primitive encodings written out by hand, for tests that check bytes against the
schemas: fixed-width integers, int16-length strings (null: -1), unsigned varints, and the
flexible versions' compact strings, arrays and tagged fields."""

from __future__ import annotations

import struct

NO_TAGS = b"\x00"


def i8(value: int) -> bytes:
    return struct.pack(">b", value)


def i16(value: int) -> bytes:
    return struct.pack(">h", value)


def i32(value: int) -> bytes:
    return struct.pack(">i", value)


def i64(value: int) -> bytes:
    return struct.pack(">q", value)


def s16(value: str | None) -> bytes:
    """A STRING / NULLABLE_STRING: int16 length (-1 for null), then UTF-8."""
    if value is None:
        return i16(-1)
    data = value.encode()
    return i16(len(data)) + data


def b32(value: bytes) -> bytes:
    return i32(len(value)) + value


def uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def cstr(value: str | None) -> bytes:
    """A COMPACT_(NULLABLE_)STRING: uvarint length + 1 (0 for null), then UTF-8."""
    if value is None:
        return b"\x00"
    data = value.encode()
    return uvarint(len(data) + 1) + data


def compact_bytes(value: bytes) -> bytes:
    return uvarint(len(value) + 1) + value


def carray(*entries: bytes) -> bytes:
    return uvarint(len(entries) + 1) + b"".join(entries)


def tags(*fields: tuple[int, bytes]) -> bytes:
    return uvarint(len(fields)) + b"".join(uvarint(t) + uvarint(len(d)) + d for t, d in fields)
