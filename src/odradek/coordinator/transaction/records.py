"""The records of `__transaction_state` in Kafka's binary form: Kafka and Odradek read each other's.

One record per transactional id, keyed by it; the latest value is the id's state, and a null
value (a tombstone) deletes the id. Key and value each start with an int16 version:

    key    v0   transactional_id (string)
    value  v0   producer_id (int64), producer_epoch (int16), transaction_timeout_ms (int32),
                transaction_status (int8), transaction_partitions (nullable array of
                {topic (string), partition_ids (array of int32)}),
                last_update_timestamp_ms (int64), start_timestamp_ms (int64)
           v1   the same fields, flexible: compact strings and arrays (unsigned varint length
                + 1, 0 = null), tagged fields after each partition entry and after the value.
                Tags of the value: 0 previous_producer_id (int64), 1 next_producer_id (int64),
                2 client_transaction_version (int16); absent tags take their defaults
                (-1, -1, 0) and are written only when they differ from them.

Non-flexible strings are an int16 length and UTF-8, arrays an int32 count (-1 = null). Kafka
writes value v0 until the cluster's transaction.version feature is at least 1, and v1 from
then on; v0 cannot carry the tagged fields, so they read back as their defaults. An Empty
transaction is written with null partitions.

The status byte is a `TransactionState` id (see `metadata.py`); this module does not check it.
A key of an unknown version decodes to None (Kafka's loader skips such records); a value of an
unknown version, or malformed or truncated bytes, raise ValueError. Bytes after the last field
are ignored, as Kafka's reader ignores them. Unknown tags are skipped.

This module only encodes and decodes, and imports only the standard library.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

TRANSACTION_STATE_TOPIC = "__transaction_state"

KEY_VERSION = 0
NO_PRODUCER_ID = -1

_PREVIOUS_PRODUCER_ID_TAG = 0
_NEXT_PRODUCER_ID_TAG = 1
_CLIENT_TRANSACTION_VERSION_TAG = 2

# One topic's partitions in a transaction, as the value groups them.
TopicPartitions = tuple[str, tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class TransactionLogKey:
    transactional_id: str


@dataclass(frozen=True, slots=True)
class TransactionLogValue:
    producer_id: int
    producer_epoch: int
    transaction_timeout_ms: int
    transaction_status: int
    transaction_partitions: tuple[TopicPartitions, ...] | None
    last_update_timestamp_ms: int
    start_timestamp_ms: int
    previous_producer_id: int = NO_PRODUCER_ID  # v1 only
    next_producer_id: int = NO_PRODUCER_ID  # v1 only
    client_transaction_version: int = 0  # v1 only


def transaction_partition(transactional_id: str, partitions: int) -> int:
    """The `__transaction_state` partition of an id: `Utils.abs(id.hashCode()) % partitions`.

    Java's String.hashCode runs over UTF-16 code units (a character outside the BMP counts as
    its two surrogates); Utils.abs maps Integer.MIN_VALUE to 0, where Math.abs would not.
    """
    if partitions <= 0:
        raise ValueError(f"partitions must be positive, not {partitions}")
    encoded = transactional_id.encode("utf-16-be", "surrogatepass")
    units = struct.unpack(f">{len(encoded) // 2}H", encoded)
    hash_code = 0
    for unit in units:
        hash_code = (31 * hash_code + unit) & 0xFFFFFFFF
    if hash_code >= 0x80000000:
        hash_code -= 0x100000000
    return (0 if hash_code == -(2**31) else abs(hash_code)) % partitions


# --- encoding ---------------------------------------------------------------------------------


def encode_key(key: TransactionLogKey) -> bytes:
    return struct.pack(">h", KEY_VERSION) + _string(key.transactional_id)


def encode_value(value: TransactionLogValue | None, version: int = 1) -> bytes | None:
    """The value at `version` (0 or 1); None (a tombstone) stays None."""
    if value is None:
        return None
    if version == 0:
        return _encode_value_v0(value)
    if version == 1:
        return _encode_value_v1(value)
    raise ValueError(f"TransactionLogValue has versions 0 and 1, not {version}")


def _encode_value_v0(value: TransactionLogValue) -> bytes:
    parts = [struct.pack(">hqhib", 0, *_head(value))]
    partitions = value.transaction_partitions
    if partitions is None:
        parts.append(struct.pack(">i", -1))
    else:
        parts.append(struct.pack(">i", len(partitions)))
        for topic, ids in partitions:
            parts.append(_string(topic))
            parts.append(struct.pack(f">i{len(ids)}i", len(ids), *ids))
    parts.append(struct.pack(">qq", value.last_update_timestamp_ms, value.start_timestamp_ms))
    return b"".join(parts)


def _encode_value_v1(value: TransactionLogValue) -> bytes:
    parts = [struct.pack(">hqhib", 1, *_head(value))]
    partitions = value.transaction_partitions
    if partitions is None:
        parts.append(_uvarint(0))
    else:
        parts.append(_uvarint(len(partitions) + 1))
        for topic, ids in partitions:
            parts.append(_compact_string(topic))
            parts.append(_uvarint(len(ids) + 1) + struct.pack(f">{len(ids)}i", *ids))
            parts.append(_uvarint(0))  # no tagged fields
    parts.append(struct.pack(">qq", value.last_update_timestamp_ms, value.start_timestamp_ms))
    tags: list[tuple[int, bytes]] = []
    if value.previous_producer_id != NO_PRODUCER_ID:
        tags.append((_PREVIOUS_PRODUCER_ID_TAG, struct.pack(">q", value.previous_producer_id)))
    if value.next_producer_id != NO_PRODUCER_ID:
        tags.append((_NEXT_PRODUCER_ID_TAG, struct.pack(">q", value.next_producer_id)))
    if value.client_transaction_version != 0:
        tags.append(
            (_CLIENT_TRANSACTION_VERSION_TAG, struct.pack(">h", value.client_transaction_version))
        )
    parts.append(_uvarint(len(tags)))
    for tag, data in tags:
        parts.append(_uvarint(tag) + _uvarint(len(data)) + data)
    return b"".join(parts)


def _head(value: TransactionLogValue) -> tuple[int, int, int, int]:
    return (
        value.producer_id,
        value.producer_epoch,
        value.transaction_timeout_ms,
        value.transaction_status,
    )


def _string(text: str) -> bytes:
    data = text.encode()
    if len(data) > 0x7FFF:
        raise ValueError(f"a string of {len(data)} bytes does not fit an int16 length")
    return struct.pack(">h", len(data)) + data


def _compact_string(text: str) -> bytes:
    data = text.encode()
    return _uvarint(len(data) + 1) + data


def _uvarint(number: int) -> bytes:
    out = bytearray()
    while number >= 0x80:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


# --- decoding ---------------------------------------------------------------------------------


class _Reader:
    """A cursor over a record's bytes; every read checks that the bytes are there."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = memoryview(data)
        self.what = what
        self.position = 0

    def take(self, size: int) -> memoryview:
        end = self.position + size
        if size < 0 or end > len(self.data):
            raise ValueError(
                f"truncated {self.what}: {size} bytes needed at offset {self.position}, "
                f"{len(self.data) - self.position} left"
            )
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    def unpack(self, fmt: str) -> tuple[int, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def int16(self) -> int:
        return self.unpack(">h")[0]

    def int32(self) -> int:
        return self.unpack(">i")[0]

    def uvarint(self) -> int:
        result = 0
        for shift in range(0, 35, 7):
            byte = self.take(1)[0]
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
        raise ValueError(f"malformed {self.what}: varint longer than 5 bytes")

    def string(self) -> str:
        size = self.int16()
        if size < 0:
            raise ValueError(f"malformed {self.what}: null string where one is required")
        return self._text(size)

    def compact_string(self) -> str:
        size = self.uvarint() - 1
        if size < 0:
            raise ValueError(f"malformed {self.what}: null string where one is required")
        return self._text(size)

    def _text(self, size: int) -> str:
        try:
            return bytes(self.take(size)).decode()
        except UnicodeDecodeError as error:
            raise ValueError(f"malformed {self.what}: a string is not UTF-8") from error

    def count(self, size: int) -> int:
        """An array's element count, checked against the bytes left (each takes >= 1 byte)."""
        if size > len(self.data) - self.position:
            raise ValueError(
                f"truncated {self.what}: an array of {size} at offset {self.position}, "
                f"{len(self.data) - self.position} bytes left"
            )
        return size

    def skip_tags(self) -> None:
        for _ in range(self.count(self.uvarint())):
            self.uvarint()
            self.take(self.uvarint())


def key_version(key: bytes) -> int:
    return _Reader(key, "TransactionLogKey").int16()


def decode_key(key: bytes) -> TransactionLogKey | None:
    """The key, or None when its version is unknown (such records are skipped)."""
    reader = _Reader(key, "TransactionLogKey")
    if reader.int16() != KEY_VERSION:
        return None
    return TransactionLogKey(reader.string())


def decode_value(value: bytes | None) -> TransactionLogValue | None:
    """The value; None for a tombstone."""
    if value is None:
        return None
    reader = _Reader(value, "TransactionLogValue")
    version = reader.int16()
    if version not in (0, 1):
        raise ValueError(f"TransactionLogValue has versions 0 and 1, not {version}")
    flexible = version == 1
    producer_id, producer_epoch, timeout_ms, status = reader.unpack(">qhib")
    partitions: tuple[TopicPartitions, ...] | None
    size = reader.uvarint() - 1 if flexible else reader.int32()
    if size < 0:
        partitions = None
    else:
        entries = []
        for _ in range(reader.count(size)):
            topic = reader.compact_string() if flexible else reader.string()
            ids_count = reader.count(reader.uvarint() - 1 if flexible else reader.int32())
            if ids_count < 0:
                raise ValueError("malformed TransactionLogValue: null partition ids")
            ids = reader.unpack(f">{ids_count}i")
            if flexible:
                reader.skip_tags()
            entries.append((topic, ids))
        partitions = tuple(entries)
    last_update_ms, start_ms = reader.unpack(">qq")
    previous_producer_id = next_producer_id = NO_PRODUCER_ID
    client_transaction_version = 0
    if flexible:
        for _ in range(reader.count(reader.uvarint())):
            tag = reader.uvarint()
            data = _Reader(bytes(reader.take(reader.uvarint())), "TransactionLogValue tag")
            if tag == _PREVIOUS_PRODUCER_ID_TAG:
                previous_producer_id = data.unpack(">q")[0]
            elif tag == _NEXT_PRODUCER_ID_TAG:
                next_producer_id = data.unpack(">q")[0]
            elif tag == _CLIENT_TRANSACTION_VERSION_TAG:
                client_transaction_version = data.int16()
    return TransactionLogValue(
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        transaction_timeout_ms=timeout_ms,
        transaction_status=status,
        transaction_partitions=partitions,
        last_update_timestamp_ms=last_update_ms,
        start_timestamp_ms=start_ms,
        previous_producer_id=previous_producer_id,
        next_producer_id=next_producer_id,
        client_transaction_version=client_transaction_version,
    )
