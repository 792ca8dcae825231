"""A structural pre-check of request bodies before kio parses them.

kio allocates an array of the length the wire claims before reading its elements, so a
four-byte count of 2^31 aborts the process on allocation. This walker follows the same schema
(kio's dataclasses: field order, kafka_type, tags, flexible versions) without building
anything, and checks every length and count against the bytes that remain. Only a body that
passes is handed to kio.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from odradek.protocol.codec import ProtocolError, read_uvarint

_FIXED = {
    "int8": 1,
    "uint8": 1,
    "bool": 1,
    "int16": 2,
    "uint16": 2,
    "error_code": 2,
    "int32": 4,
    "uint32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "uuid": 16,
}
_VARINT = {"uvarint", "uvarlong", "varint", "varlong"}

Step = Callable[[bytes | bytearray | memoryview, int, int], int]


def _fail(what: str) -> ProtocolError:
    return ProtocolError(f"request {what} runs past the end of the body")


def _skip_varint(buf: bytes | bytearray | memoryview, position: int, end: int) -> int:
    for index in range(position, min(end, position + 10)):
        if not buf[index] & 0x80:
            return index + 1
    raise _fail("varint")


def _length(
    buf: bytes | bytearray | memoryview, position: int, end: int, flexible: bool, wide: bool
) -> tuple[int, int]:
    """(length or -1 for null, position after the length field)."""
    if flexible:
        value, position = read_uvarint(buf, position)
        if position > end:
            raise _fail("length")
        return value - 1, position
    size = 4 if wide else 2
    if position + size > end:
        raise _fail("length")
    (value,) = struct.unpack_from(">i" if wide else ">h", buf, position)
    return int(value), position + size


def _primitive_step(kafka_type: str, flexible: bool) -> Step:
    if kafka_type in _FIXED:
        size = _FIXED[kafka_type]

        def fixed(buf: Any, position: int, end: int) -> int:
            if position + size > end:
                raise _fail(kafka_type)
            return position + size

        return fixed
    if kafka_type in _VARINT:
        return _skip_varint
    if kafka_type in ("string", "bytes", "records"):
        wide = kafka_type != "string"

        def sized(buf: Any, position: int, end: int) -> int:
            length, position = _length(buf, position, end, flexible, wide)
            if length > end - position:
                raise _fail(kafka_type)
            return position + max(length, 0)

        return sized
    raise ProtocolError(f"no guard for field type {kafka_type}")


def _inner(field_type: Any) -> tuple[Any, bool]:
    """(element or value type, is_array) with Optional stripped."""
    origin = get_origin(field_type)
    if origin in (UnionType, Union):
        args = [a for a in get_args(field_type) if a is not NoneType]
        return _inner(args[0])
    if origin is tuple:
        return get_args(field_type)[0], True
    return field_type, False


def _field_step(field: dataclasses.Field[Any], flexible: bool) -> Step:
    element, is_array = _inner(field.type)
    if dataclasses.is_dataclass(element):
        element_step: Step = _entity_step(element)  # type: ignore[arg-type]
    else:
        element_step = _primitive_step(field.metadata["kafka_type"], flexible)
    if not is_array:
        return element_step

    def array(buf: Any, position: int, end: int) -> int:
        count, position = _length(buf, position, end, flexible, True)
        if count > end - position:
            raise _fail(f"array {field.name}")
        for _ in range(max(count, 0)):
            position = element_step(buf, position, end)
        return position

    return array


_ENTITY_STEPS: dict[type[Any], Step] = {}


def _entity_step(cls: type[Any]) -> Step:
    cached = _ENTITY_STEPS.get(cls)
    if cached is None:
        cached = _ENTITY_STEPS[cls] = _build_entity_step(cls)
    return cached


def _build_entity_step(cls: type[Any]) -> Step:
    flexible = bool(getattr(cls, "__flexible__", False))
    steps: list[Step] = []
    tagged: dict[int, Step] = {}
    for field in dataclasses.fields(cls):
        tag = field.metadata.get("tag")
        step = _lazy(field, flexible)
        if tag is None:
            steps.append(step)
        else:
            tagged[int(tag)] = step

    def entity(buf: Any, position: int, end: int) -> int:
        for step in steps:
            position = step(buf, position, end)
        if flexible:
            count, position = read_uvarint(buf, position)
            for _ in range(count):
                tag, position = read_uvarint(buf, position)
                size, position = read_uvarint(buf, position)
                if size > end - position:
                    raise _fail("tagged field")
                known = tagged.get(tag)
                if known is not None:
                    known(buf, position, position + size)
                position += size
            if position > end:
                raise _fail("tagged fields")
        return position

    return entity


def _lazy(field: dataclasses.Field[Any], flexible: bool) -> Step:
    """Build a field's step on first use, so self-referencing schemas cannot recurse."""
    built: list[Step] = []

    def step(buf: Any, position: int, end: int) -> int:
        if not built:
            built.append(_field_step(field, flexible))
        return built[0](buf, position, end)

    return step


def check_body(cls: type[Any], buf: bytes | bytearray | memoryview, position: int) -> None:
    """Raise ProtocolError unless the body of a `cls` request fits in `buf` from `position`."""
    _entity_step(cls)(buf, position, len(buf))
