"""Record decoders for `odradek dump-log`, as kafka-dump-log.sh's `--offsets-decoder` and
`--transaction-log-decoder`: the key and value of a `__consumer_offsets` or
`__transaction_state` record shown as JSON, `{"type": <record type>, "data": {...}}`, instead
of raw bytes. A tombstone's payload is `null`; a record these decoders cannot read is shown
with the reason (`{"error": "..."}`), never fatal. Bytes inside records (assignments,
subscriptions) are shown as hex.

Imported only when one of the options is given (dump-log must stay cheap to import).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable
from typing import Any

Decoded = tuple[str, str]  # (key, payload) as text
Decoder = Callable[[bytes | None, bytes | None], Decoded]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, tuple | list | frozenset | set):
        return [_plain(item) for item in value]
    return value


def _json(record: Any) -> str:
    if record is None:
        return "null"
    return json.dumps({"type": type(record).__name__, "data": _plain(record)}, sort_keys=False)


def _error(exc: Exception) -> Decoded:
    text = json.dumps({"error": str(exc) or type(exc).__name__})
    return text, text


def offsets_decoder(key: bytes | None, value: bytes | None) -> Decoded:
    """A `__consumer_offsets` record: offset commits, classic group metadata, and the
    consumer group (KIP-848) records."""
    from odradek.coordinator.group.records import decode, decode_consumer_group_record, key_version

    if key is None:
        return "null", _json(None)
    try:
        record = decode_consumer_group_record(key, value)  # None unless key version 3-8
        if record is not None:
            return _json(record.key), _json(record.value)
        decoded = decode(key, value)
        if decoded is None:
            return _error(ValueError(f"unknown record key version {key_version(key)}"))
        return _json(decoded[0]), _json(decoded[1])
    except (ValueError, IndexError) as exc:
        return _error(exc)


def transaction_log_decoder(key: bytes | None, value: bytes | None) -> Decoded:
    """A `__transaction_state` record: a transactional id and its transaction's state."""
    from odradek.coordinator.transaction.records import decode_key, decode_value, key_version

    if key is None:
        return "null", _json(None)
    try:
        decoded_key = decode_key(key)
        if decoded_key is None:
            return _error(ValueError(f"unknown record key version {key_version(key)}"))
        return _json(decoded_key), _json(decode_value(value))
    except (ValueError, IndexError) as exc:
        return _error(exc)


DECODERS: dict[str, Decoder] = {
    "offsets": offsets_decoder,
    "transaction-log": transaction_log_decoder,
}
