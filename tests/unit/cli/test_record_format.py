"""`--format` templates, the JSON form of a record and the consume summary, on fake records."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from odradek.cli.client_options import ClientError
from odradek.cli.record_format import Summary, compile_template, record_json


@dataclass
class FakeMessage:
    """The accessors of confluent_kafka.Message that the renderers use."""

    value_: bytes | None = b"v"
    key_: bytes | None = b"k"
    headers_: list[tuple[str, bytes | None]] | None = field(default_factory=list)
    topic_: str = "orders"
    partition_: int = 2
    offset_: int = 41
    timestamp_: tuple[int, int] = (1, 1_714_564_800_250)

    def value(self) -> bytes | None:
        return self.value_

    def key(self) -> bytes | None:
        return self.key_

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self.headers_

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def timestamp(self) -> tuple[int, int]:
        return self.timestamp_


def render(template: str, msg: FakeMessage) -> bytes:
    return compile_template(template)(msg)


def test_every_placeholder() -> None:
    msg = FakeMessage(headers_=[("a", b"1"), ("b", None), ("a", b"2")])
    template = (
        "{topic}|{partition}|{offset}|{key}|{value}|{key_size}|{value_size}|{headers}"
        "|{header:a}|{header:zz}|{timestamp}|{time}|{timestamp_type}"
    )
    assert render(template, msg) == (
        b"orders|2|41|k|v|1|1|a=1,b=,a=2|1||1714564800250|2024-05-01T12:00:00.250Z|CreateTime"
    )


def test_raw_bytes_escapes_and_braces() -> None:
    msg = FakeMessage(key_=None, value_=b"\xff{x}\r")
    assert render("{value}\\n", msg) == b"\xff{x}\r\n"
    assert render("{{{key}}}\\t{key_size}\\\\\\0", msg) == b"{}\t-1\\\x00"
    assert render("no placeholders", msg) == b"no placeholders"
    assert render("", msg) == b""


def test_record_without_timestamp() -> None:
    msg = FakeMessage(timestamp_=(0, -1))
    assert render("{timestamp} [{time}] {timestamp_type}", msg) == b"-1 [] NoTimestamp"
    assert record_json(msg)["timestamp"] is None
    assert record_json(msg)["timestamp_type"] is None


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{value", "--format: unclosed '{' at position 0"),
        ("a}b", "--format: single '}' at position 1 (write '}}')"),
        ("{Value}", "--format: unknown placeholder {Value}; known: {topic}"),
        ("{header:}", "--format: unknown placeholder {header:}"),
    ],
)
def test_bad_templates(template: str, message: str) -> None:
    with pytest.raises(ClientError) as raised:
        compile_template(template)
    assert raised.value.message.startswith(message)


def test_json_falls_back_to_base64_for_binary() -> None:
    msg = FakeMessage(key_=b"\x80", value_="é".encode(), headers_=[("h", b"x"), ("n", None)])
    assert record_json(msg) == {
        "topic": "orders",
        "partition": 2,
        "offset": 41,
        "timestamp": 1_714_564_800_250,
        "timestamp_type": "CreateTime",
        "key": "gA==",
        "key_encoding": "base64",
        "value": "é",
        "value_encoding": "utf-8",
        "headers": [
            {"key": "h", "value": "x", "value_encoding": "utf-8"},
            {"key": "n", "value": None, "value_encoding": "utf-8"},
        ],
    }


def test_summary_counts_keys_and_values_per_partition() -> None:
    summary = Summary()
    summary.add(FakeMessage(partition_=1, offset_=7))
    summary.add(FakeMessage(partition_=0, offset_=3, key_=None, value_=b"abc"))
    summary.add(FakeMessage(partition_=1, offset_=9, value_=None))
    assert summary.to_json() == {
        "records": 3,
        "bytes": 6,
        "partitions": [
            {"topic": "orders", "partition": 0, "records": 1, "last_offset": 3},
            {"topic": "orders", "partition": 1, "records": 2, "last_offset": 9},
        ],
    }
    assert summary.text() == (
        "3 records, 6 bytes from 2 partitions; last offsets: orders-0 3, orders-1 9"
    )
    assert Summary().text() == "0 records, 0 bytes from 0 partitions"
