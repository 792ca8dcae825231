"""How `odradek consume` writes records: `--format` templates, the JSON form of a record, and the
end-of-run summary. Pure: works on anything with confluent-kafka's Message accessors.

Templates (`--format`), in the spirit of kcat's `-f`, with named placeholders in braces:

    {topic} {partition} {offset}      where the record is
    {key} {value}                     the raw bytes, unchanged (nothing for a null key or value)
    {key_size} {value_size}           their sizes in bytes (-1 for null)
    {headers}                         every header as KEY=VALUE, separated by commas
    {header:NAME}                     the value of the first header named NAME (else nothing)
    {timestamp}                       milliseconds since the epoch (-1 when the record has none)
    {time}                            the same as ISO 8601 UTC, e.g. 2024-05-01T12:00:00.250Z
    {timestamp_type}                  CreateTime, LogAppendTime or NoTimestamp

`{{` and `}}` are literal braces; `\\n`, `\\t`, `\\r`, `\\0` and `\\\\` are the usual escapes (so a
shell argument '{key}\\t{value}\\n' needs no $'...'). Any other `{...}` is a usage error naming
the known placeholders. The default is `{value}\\n`.

JSON (`--output json`): one object per line (JSON Lines), keys always present:

    {"topic": str, "partition": int, "offset": int, "timestamp": int | null,
     "timestamp_type": "CreateTime" | "LogAppendTime" | null,
     "key": str | null, "key_encoding": "utf-8" | "base64",
     "value": str | null, "value_encoding": "utf-8" | "base64",
     "headers": [{"key": str, "value": str | null, "value_encoding": "utf-8" | "base64"}]}

Bytes that are valid UTF-8 are given as text, others base64-encoded, as the encoding field says.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from odradek.cli.client_options import ClientError

DEFAULT_FORMAT = "{value}\\n"

# confluent_kafka.TIMESTAMP_NOT_AVAILABLE / _CREATE_TIME / _LOG_APPEND_TIME
TIMESTAMP_TYPES = {0: None, 1: "CreateTime", 2: "LogAppendTime"}

Render = Callable[[Any], bytes]

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\"}


def _text(value: str) -> bytes:
    return value.encode()


def _headers(msg: Any) -> bytes:
    return b",".join(key.encode() + b"=" + (value or b"") for key, value in (msg.headers() or ()))


def _header(name: str) -> Render:
    def render(msg: Any) -> bytes:
        for key, value in msg.headers() or ():
            if key == name:
                return value or b""
        return b""

    return render


def _timestamp_ms(msg: Any) -> int:
    kind, timestamp_ms = msg.timestamp()
    return int(timestamp_ms) if kind else -1


def iso_time(timestamp_ms: int) -> str:
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{timestamp_ms % 1000:03d}Z"


def _time(msg: Any) -> bytes:
    timestamp_ms = _timestamp_ms(msg)
    return iso_time(timestamp_ms).encode() if timestamp_ms >= 0 else b""


def _size(data: bytes | None) -> bytes:
    return b"-1" if data is None else str(len(data)).encode()


FIELDS: dict[str, Render] = {
    "topic": lambda msg: _text(msg.topic()),
    "partition": lambda msg: str(msg.partition()).encode(),
    "offset": lambda msg: str(msg.offset()).encode(),
    "key": lambda msg: msg.key() or b"",
    "value": lambda msg: msg.value() or b"",
    "key_size": lambda msg: _size(msg.key()),
    "value_size": lambda msg: _size(msg.value()),
    "headers": _headers,
    "timestamp": lambda msg: str(_timestamp_ms(msg)).encode(),
    "time": _time,
    "timestamp_type": lambda msg: _text(TIMESTAMP_TYPES.get(msg.timestamp()[0]) or "NoTimestamp"),
}


def parse_template(template: str) -> list[bytes | Render]:
    """The template as literal byte strings and field renderers, in order."""
    parts: list[bytes | Render] = []
    literal: list[str] = []
    i = 0
    while i < len(template):
        char = template[i]
        if char == "\\" and i + 1 < len(template) and template[i + 1] in _ESCAPES:
            literal.append(_ESCAPES[template[i + 1]])
            i += 2
        elif char in "{}" and template[i : i + 2] in ("{{", "}}"):
            literal.append(char)
            i += 2
        elif char == "{":
            end = template.find("}", i)
            if end < 0:
                raise ClientError(f"--format: unclosed '{{' at position {i}")
            name = template[i + 1 : end]
            if literal:
                parts.append("".join(literal).encode())
                literal = []
            parts.append(_field(name))
            i = end + 1
        elif char == "}":
            raise ClientError(f"--format: single '}}' at position {i} (write '}}}}')")
        else:
            literal.append(char)
            i += 1
    if literal:
        parts.append("".join(literal).encode())
    return parts


def _field(name: str) -> Render:
    if name.startswith("header:") and len(name) > len("header:"):
        return _header(name.removeprefix("header:"))
    if name in FIELDS:
        return FIELDS[name]
    known = ", ".join(f"{{{n}}}" for n in [*FIELDS, "header:NAME"])
    raise ClientError(f"--format: unknown placeholder {{{name}}}; known: {known}")


def compile_template(template: str) -> Render:
    """A function rendering one record as the template says."""
    parts = parse_template(template)
    if len(parts) == 2 and parts[0] is FIELDS["value"] and isinstance(parts[1], bytes):
        value, newline = parts[0], parts[1]
        return lambda msg: value(msg) + newline  # the default: no join per record
    renderers = [
        (lambda msg, part=part: part) if isinstance(part, bytes) else part for part in parts
    ]
    return lambda msg: b"".join([render(msg) for render in renderers])


# -- JSON --------------------------------------------------------------------------------------


def _decoded(data: bytes | None) -> tuple[str | None, str]:
    if data is None:
        return None, "utf-8"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def record_json(msg: Any) -> dict[str, Any]:
    kind, timestamp_ms = msg.timestamp()
    key, key_encoding = _decoded(msg.key())
    value, value_encoding = _decoded(msg.value())
    headers = []
    for header_key, header_value in msg.headers() or ():
        text, encoding = _decoded(header_value)
        headers.append({"key": header_key, "value": text, "value_encoding": encoding})
    return {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp": int(timestamp_ms) if kind else None,
        "timestamp_type": TIMESTAMP_TYPES.get(kind),
        "key": key,
        "key_encoding": key_encoding,
        "value": value,
        "value_encoding": value_encoding,
        "headers": headers,
    }


def render_json(msg: Any) -> bytes:
    return json.dumps(record_json(msg), ensure_ascii=False).encode() + b"\n"


# -- summary -----------------------------------------------------------------------------------


@dataclass
class Summary:
    """What a consume run read: records, key + value bytes, per partition count and last offset."""

    records: int = 0
    bytes: int = 0
    per_partition: dict[tuple[str, int], list[int]] = field(default_factory=dict)

    def add(self, msg: Any) -> None:
        self.records += 1
        self.bytes += len(msg.value() or b"") + len(msg.key() or b"")
        entry = self.per_partition.setdefault((msg.topic(), msg.partition()), [0, -1])
        entry[0] += 1
        entry[1] = msg.offset()

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "bytes": self.bytes,
            "partitions": [
                {"topic": topic, "partition": partition, "records": n, "last_offset": last}
                for (topic, partition), (n, last) in sorted(self.per_partition.items())
            ],
        }

    def text(self) -> str:
        partitions = len(self.per_partition)
        text = (
            f"{self.records} records, {self.bytes} bytes"
            f" from {partitions} partition{'' if partitions == 1 else 's'}"
        )
        if self.per_partition:
            last = ", ".join(
                f"{topic}-{partition} {offset}"
                for (topic, partition), (_, offset) in sorted(self.per_partition.items())
            )
            text += f"; last offsets: {last}"
        return text
