"""The facade over kio: request headers, request bodies and response encoding.

kio (Kafka's JSON schemas, Rust-backed parsing) decodes and encodes the bodies; modules are
imported lazily per (api, version) so start-up stays fast. Everything kio can raise on bad
input becomes a `ProtocolError`, which closes the connection: no input crashes the broker.
`build(cls, **fields)` makes a kio entity from plain Python values, dropping fields the version
does not have and converting millisecond ints to the timedelta/datetime types kio expects, so
one handler can serve every version of its API.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
import struct
import uuid
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import Any

from odradek.protocol.api_keys import ApiKey

_HEADER_PREFIX = struct.Struct(">hhi")


class ProtocolError(Exception):
    """Input that is not a well-formed request: the connection is closed."""


@dataclasses.dataclass(frozen=True, slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def peek_header(frame: bytes | bytearray | memoryview) -> tuple[int, int, int]:
    """(api_key, api_version, correlation_id) from the fixed start of every request header."""
    if len(frame) < 8:
        raise ProtocolError("request is shorter than its header")
    api_key, api_version, correlation_id = _HEADER_PREFIX.unpack_from(frame, 0)
    return int(api_key), int(api_version), int(correlation_id)


def read_uvarint(buf: bytes | bytearray | memoryview, position: int) -> tuple[int, int]:
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if position >= end:
            raise ProtocolError("request ends inside a varint")
        byte = buf[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 35:
            raise ProtocolError("varint is too long")


def write_uvarint(value: int) -> bytes:
    """An unsigned varint (compact lengths, tag numbers and sizes)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def skip_tagged_fields(buf: bytes | bytearray | memoryview, position: int) -> int:
    count, position = read_uvarint(buf, position)
    for _ in range(count):
        _, position = read_uvarint(buf, position)
        size, position = read_uvarint(buf, position)
        position += size
        if position > len(buf):
            raise ProtocolError("tagged field runs past the end of the request")
    return position


def parse_header(
    frame: bytes | bytearray | memoryview, flexible: bool
) -> tuple[RequestHeader, int]:
    """Request header v1 (or v2 with tagged fields when `flexible`); returns body position."""
    api_key, api_version, correlation_id = peek_header(frame)
    if len(frame) < 10:
        raise ProtocolError("request header is truncated")
    (length,) = struct.unpack_from(">h", frame, 8)
    position = 10
    client_id: str | None = None
    if length >= 0:
        if position + length > len(frame):
            raise ProtocolError("client id runs past the end of the request")
        client_id = bytes(frame[position : position + length]).decode("utf-8", "replace")
        position += length
    if flexible:
        position = skip_tagged_fields(frame, position)
    return RequestHeader(api_key, api_version, correlation_id, client_id), position


@cache
def response_module(api_key: int, version: int) -> ModuleType:
    from kio.index import load_payload_module
    from kio.static.constants import EntityType

    return load_payload_module(api_key, version, EntityType.response)


@cache
def _request_class(api_key: int, version: int) -> type[Any]:
    from kio.index import load_request_schema

    return load_request_schema(api_key, version)


@cache
def _response_class(api_key: int, version: int) -> type[Any]:
    from kio.index import load_response_schema

    return load_response_schema(api_key, version)


@cache
def request_is_flexible(api_key: int, version: int) -> bool:
    from kio.index import KioIndexError

    try:
        return bool(_request_class(api_key, version).__flexible__)
    except KioIndexError:
        return False  # versions kio has no schema for predate flexible versions


@cache
def response_is_flexible(api_key: int, version: int) -> bool:
    from kio.index import KioIndexError

    if api_key == ApiKey.API_VERSIONS:
        return False  # ApiVersions responses always use header v0 (KIP-511)
    try:
        return bool(_response_class(api_key, version).__flexible__)
    except KioIndexError:
        return False


@cache
def _reader(api_key: int, version: int) -> Callable[[Any, int], tuple[Any, int]]:
    from kio.serial import entity_reader

    reader: Callable[[Any, int], tuple[Any, int]] = entity_reader(_request_class(api_key, version))
    return reader


def decode_request(
    api_key: int, version: int, frame: bytes | bytearray | memoryview, position: int
) -> Any:
    view = memoryview(frame)
    if not view.readonly:
        view = view.toreadonly()  # kio refuses writable buffers
    from odradek.protocol.guard import check_body

    check_body(_request_class(api_key, version), view, position)
    try:
        entity, _ = _reader(api_key, version)(view[position:], 0)
    except Exception as exc:  # BufferUnderflow, KeyError (unknown tag), ValueError, ...
        raise ProtocolError(f"cannot decode {ApiKey(api_key).name} v{version}: {exc!r}") from exc
    return entity


_WRITERS: dict[type[Any], Callable[[Any, Any], None]] = {}


def _writer(cls: type[Any]) -> Callable[[Any, Any], None]:
    writer = _WRITERS.get(cls)
    if writer is None:
        from kio.serial import entity_writer

        writer = _WRITERS[cls] = entity_writer(cls)
    return writer


def encode_response(correlation_id: int, flexible_header: bool, response: Any) -> bytes:
    """A whole response frame: size, header (v0, or v1 with empty tagged fields), body."""
    buffer = io.BytesIO()
    buffer.write(b"\x00\x00\x00\x00")
    buffer.write(struct.pack(">i", correlation_id))
    if flexible_header:
        buffer.write(b"\x00")
    _writer(type(response))(buffer, response)
    size = buffer.tell() - 4
    buffer.seek(0)
    buffer.write(struct.pack(">i", size))
    return buffer.getvalue()


# --- building entities from plain values ------------------------------------------------------

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _converter(kafka_type: str | None) -> Callable[[Any], Any] | None:
    if kafka_type in ("timedelta_i32", "timedelta_i64"):
        return lambda v: datetime.timedelta(milliseconds=v) if isinstance(v, int) else v
    if kafka_type == "datetime_i64":
        return lambda v: (
            None
            if v is None or (isinstance(v, int) and v < 0)
            else _EPOCH + datetime.timedelta(milliseconds=v)
            if isinstance(v, int)
            else v
        )
    if kafka_type == "uuid":
        return lambda v: uuid.UUID(bytes=v) if isinstance(v, bytes) else v
    if kafka_type == "error_code":
        from kio.schema.errors import ErrorCode

        return lambda v: ErrorCode(int(v))
    return None


_FIELDS: dict[type[Any], dict[str, Callable[[Any], Any] | None]] = {}


def _fields(cls: type[Any]) -> dict[str, Callable[[Any], Any] | None]:
    known = _FIELDS.get(cls)
    if known is None:
        known = _FIELDS[cls] = {
            f.name: _converter(f.metadata.get("kafka_type")) for f in dataclasses.fields(cls)
        }
    return known


def build(cls: type[Any], **values: Any) -> Any:
    """`cls(**values)` keeping only the fields this version has, with kio's value types."""
    known = _fields(cls)
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if name not in known:
            continue
        convert = known[name]
        kwargs[name] = convert(value) if convert is not None and value is not None else value
    return cls(**kwargs)


class Schema:
    """`Schema(module).PartitionProduceResponse(index=0, ...)` builds with `build`."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Callable[..., Any]:
        cls = getattr(self._module, name)

        def make(**values: Any) -> Any:
            return build(cls, **values)

        return make

    def has(self, name: str) -> bool:
        return hasattr(self._module, name)


def response_schema(api_key: int, version: int) -> Schema:
    return Schema(response_module(api_key, version))


def millis(value: Any) -> int:
    """A kio timedelta/datetime (or int) as integer milliseconds."""
    if isinstance(value, datetime.timedelta):
        return int(value.total_seconds() * 1000)
    if isinstance(value, datetime.datetime):
        return int((value - _EPOCH).total_seconds() * 1000)
    return int(value)
