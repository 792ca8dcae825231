"""The kio facade: request headers, request bodies, response frames and `build`."""

from __future__ import annotations

import datetime
import io
import struct
import uuid

import pytest
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode as KioErrorCode
from kio.serial import entity_reader, entity_writer

from odradek.protocol.codec import (
    ProtocolError,
    build,
    decode_request,
    encode_response,
    millis,
    parse_header,
    peek_header,
    read_uvarint,
    request_is_flexible,
    response_is_flexible,
    response_schema,
    skip_tagged_fields,
)


def header(api_key: int, version: int, correlation_id: int, client: bytes | None) -> bytes:
    out = struct.pack(">hhi", api_key, version, correlation_id)
    out += struct.pack(">h", -1) if client is None else struct.pack(">h", len(client)) + client
    return out


def test_peek_header() -> None:
    assert peek_header(header(3, 12, -5, b"c")) == (3, 12, -5)
    with pytest.raises(ProtocolError):
        peek_header(b"\x00\x03\x00\x0c\x00\x00\x00")


def test_parse_header_v1_and_v2() -> None:
    frame = header(18, 3, 42, b"client") + b"\x00BODY"
    parsed, position = parse_header(frame, flexible=True)
    assert (parsed.api_key, parsed.api_version, parsed.correlation_id) == (18, 3, 42)
    assert parsed.client_id == "client"
    assert frame[position:] == b"BODY"
    parsed, position = parse_header(header(3, 1, 1, None) + b"BODY", flexible=False)
    assert parsed.client_id is None and position == 10


def test_parse_header_skips_tagged_fields() -> None:
    tags = b"\x02" + b"\x00\x03abc" + b"\x05\x00"
    frame = header(3, 12, 1, b"") + tags + b"BODY"
    parsed, position = parse_header(frame, flexible=True)
    assert parsed.client_id == ""
    assert frame[position:] == b"BODY"


@pytest.mark.parametrize("flexible", [False, True])
def test_every_truncated_header_is_a_protocol_error(flexible: bool) -> None:
    frame = header(3, 12, 1, b"client-id") + (b"\x01\x00\x02ab" if flexible else b"")
    for length in range(len(frame)):
        with pytest.raises(ProtocolError):
            parse_header(frame[:length], flexible)


def test_uvarint_limits() -> None:
    assert read_uvarint(b"\xff\xff\xff\xff\x0f", 0) == (2**32 - 1, 5)
    with pytest.raises(ProtocolError, match="too long"):
        read_uvarint(b"\xff" * 10, 0)
    with pytest.raises(ProtocolError):
        skip_tagged_fields(b"\x01\x00\x7f", 0)


def test_flexibility() -> None:
    assert not request_is_flexible(3, 8) and request_is_flexible(3, 9)
    assert request_is_flexible(18, 3) and not response_is_flexible(18, 3)
    assert not request_is_flexible(0, 0)  # no schema: predates flexible versions


def test_decode_request_of_a_kio_encoded_request() -> None:
    cls = load_request_schema(3, 12)
    request = cls(
        topics=None, allow_auto_topic_creation=True, include_topic_authorized_operations=False
    )
    buffer = io.BytesIO()
    entity_writer(cls)(buffer, request)
    frame = bytearray(header(3, 12, 9, b"c") + b"\x00" + buffer.getvalue())
    _, position = parse_header(frame, flexible=True)
    assert decode_request(3, 12, frame, position) == request  # a writable frame is accepted


def test_decode_request_error_names_the_api() -> None:
    with pytest.raises(ProtocolError):
        decode_request(3, 1, bytearray(b"\x00\x00"), 0)


def test_encode_response_frame() -> None:
    schema = response_schema(18, 3)
    response = schema.ApiVersionsResponse(
        error_code=0,
        api_keys=(schema.ApiVersion(api_key=18, min_version=0, max_version=4),),
        throttle_time=0,
        supported_features=(),
        finalized_features_epoch=-1,
        finalized_features=(),
        zk_migration_ready=False,
    )
    frame = encode_response(77, response_is_flexible(18, 3), response)
    size, correlation_id = struct.unpack_from(">ii", frame)
    assert size == len(frame) - 4 and correlation_id == 77
    decoded, _ = entity_reader(load_response_schema(18, 3))(frame[8:], 0)
    assert decoded.error_code == KioErrorCode.none
    assert [(int(k.api_key), k.min_version, k.max_version) for k in decoded.api_keys] == [
        (18, 0, 4)
    ]
    flexible = encode_response(78, True, response)
    assert flexible[8] == 0 and len(flexible) == len(frame) + 1


def test_build_converts_and_drops_fields() -> None:
    from kio.schema.metadata.v12.response import MetadataResponseBroker

    broker = build(MetadataResponseBroker, node_id=1, host="h", port=9, rack=None, extra=1)
    assert (broker.node_id, broker.port) == (1, 9)
    schema = response_schema(3, 12)
    topic = schema.MetadataResponseTopic(
        error_code=3,
        name="t",
        topic_id=bytes(range(16)),
        is_internal=False,
        partitions=(),
        topic_authorized_operations=-2147483648,
    )
    assert topic.error_code == KioErrorCode.unknown_topic_or_partition
    assert topic.topic_id == uuid.UUID(bytes=bytes(range(16)))
    assert schema.has("MetadataResponseTopic") and not schema.has("NoSuchThing")


def test_millis() -> None:
    assert millis(datetime.timedelta(seconds=1.5)) == 1500
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    assert millis(epoch + datetime.timedelta(milliseconds=12345)) == 12345
    assert millis(7) == 7
