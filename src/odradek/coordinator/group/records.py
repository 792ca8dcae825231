"""The records of `__consumer_offsets` in Kafka's binary form: Kafka and Odradek read each other's.

A record's key and value each start with an int16 version; the rest is the message at that
version. The key's version names the record type, so it decides what the value holds:

    key version 0, 1   offset commit   group (string), topic (string), partition (int32)
    key version 2      group metadata  group (string)
    key version 3-8    Kafka 4's consumer group (KIP-848) records: `decode` returns None for
                       them; `decode_consumer_group_record` reads them (see below)
    key version >= 9   share group and later records: not held here; both decoders return
                       None for them, as Kafka's loader skips types it lacks

A loader dispatches on `key_version(key)`: 0-2 go to `decode`, 3-8 to
`decode_consumer_group_record`, anything else is skipped.

Values (a null value is a tombstone: the offset or the group is deleted):

    offset commit v0   offset (int64), metadata (string), commit_timestamp (int64)
                  v1   offset, metadata, commit_timestamp, expire_timestamp (int64)
                  v2   offset, metadata, commit_timestamp
                  v3   offset, leader_epoch (int32), metadata, commit_timestamp
                  v4   as v3, flexible
    group         v0   protocol_type (string), generation (int32), protocol (nullable string),
                       leader (nullable string), members (int32 count, then each:
                       member_id, client_id, client_host (strings), session_timeout_ms (int32),
                       subscription, assignment (bytes))
                  v1   members gain rebalance_timeout_ms (int32) before session_timeout_ms
                  v2   current_state_timestamp (int64) after leader
                  v3   members gain group_instance_id (nullable string) after member_id
                  v4   as v3, flexible

Keys are written at version 1 or 2. Values are written as Kafka writes them: offset commit v3,
or v1 when an expire timestamp is set (v1 has no leader epoch, so it is dropped; only the old
OffsetCommit requests that carry a retention time set one, and those carry no epoch); group
metadata v3. Flexible (v4) values are read so that a `__consumer_offsets` written by a newer
Kafka loads here.

Non-flexible strings are an int16 length (-1 = null) and UTF-8, bytes an int32 length. Flexible
versions use compact forms (unsigned varint length + 1, 0 = null), and every struct, each
member included, ends with tagged fields; no tags are defined for these records, so all are
skipped. A field absent from the version read takes Kafka's default: -1 for leader_epoch,
expire_timestamp, current_state_timestamp and rebalance_timeout_ms (Kafka's loader then uses
the session timeout), None for group_instance_id.

Consumer group (KIP-848) records. The key is the int16 record type followed by the key's
fields, laid out like the non-flexible keys above (Kafka 4 calls the type the record's apiKey
and the key's version 0; Kafka 3.7-3.9 called it the key version: the bytes are the same). The
value is an int16 version, always 0, then a flexible message: compact strings and arrays, and
tagged fields after every struct, array entries included. A uuid is 16 bytes (most significant
int64, then least significant). No field is nullable unless marked so below.

    3  ConsumerGroupMetadata        key: group    value: epoch (int32)
    4  ConsumerGroupPartitionMetadata  key: group   value: topics [topic_id (uuid),
                                    topic_name, num_partitions (int32), partition_metadata
                                    [partition (int32), racks [string]]]
    5  ConsumerGroupMemberMetadata  key: group, member   value: instance_id (nullable),
                                    rack_id (nullable), client_id, client_host,
                                    subscribed_topic_names [string], subscribed_topic_regex
                                    (nullable), rebalance_timeout_ms (int32), server_assignor
                                    (nullable); tag 0: classic_member_metadata
                                    {session_timeout_ms (int32), supported_protocols
                                    [name (string), metadata (bytes)]}
    6  ConsumerGroupTargetAssignmentMetadata  key: group   value: assignment_epoch (int32)
    7  ConsumerGroupTargetAssignmentMember    key: group, member   value: topic_partitions
                                    [topic_id (uuid), partitions [int32]]
    8  ConsumerGroupCurrentMemberAssignment   key: group, member   value: member_epoch (int32),
                                    previous_member_epoch (int32), state (int8),
                                    assigned_partitions, partitions_pending_revocation (each
                                    [topic_id (uuid), partitions [int32]])

Fields of Kafka's records that `consumer_group_records` does not hold: each is written as Kafka
writes its default and dropped when read.

    partition_metadata (key 4)       written empty, as Kafka 4 writes it (the racks it held are
                                     no longer used); any racks read are dropped
    classic_member_metadata (key 5)  tagged, written absent (null: a member that speaks the
                                     consumer protocol); a classic member's session timeout and
                                     protocols read from Kafka are dropped

Decoding normalizes what the values promise and Kafka does not: partitions sorted by topic id
and partition, empty topics dropped, subscribed topic names and partition metadata topics sorted.
Value versions other than 0 raise ValueError, as Kafka's reader refuses them.

This module only encodes and decodes, and imports only the standard library and the value
types of `consumer_group_records`. Malformed input raises ValueError; bytes after the last field
are ignored, as Kafka's reader ignores them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from odradek.coordinator.group.consumer_group_records import (
    ConsumerGroupCurrentMemberAssignmentKey,
    ConsumerGroupCurrentMemberAssignmentValue,
    ConsumerGroupMemberMetadataKey,
    ConsumerGroupMemberMetadataValue,
    ConsumerGroupMetadataKey,
    ConsumerGroupMetadataValue,
    ConsumerGroupPartitionMetadataKey,
    ConsumerGroupPartitionMetadataValue,
    ConsumerGroupRecord,
    ConsumerGroupRecordKey,
    ConsumerGroupRecordValue,
    ConsumerGroupTargetAssignmentMemberKey,
    ConsumerGroupTargetAssignmentMemberValue,
    ConsumerGroupTargetAssignmentMetadataKey,
    ConsumerGroupTargetAssignmentMetadataValue,
    TopicMetadata,
    TopicPartitions,
    from_topic_partitions,
    to_topic_partitions,
)

OFFSETS_TOPIC = "__consumer_offsets"

_OFFSET_KEY_VERSION = 1
_GROUP_KEY_VERSION = 2
_OFFSET_VALUE_VERSION = 3
_OFFSET_VALUE_VERSION_WITH_EXPIRY = 1
_GROUP_VALUE_VERSION = 3
_LAST_VALUE_VERSION = 4
_FLEXIBLE_VERSION = 4
_MAX_STRING_BYTES = 0x7FFF
_OFFSET_VALUE_NAMES = tuple(f"offset commit value v{v}" for v in range(_LAST_VALUE_VERSION + 1))
_GROUP_VALUE_NAMES = tuple(f"group metadata value v{v}" for v in range(_LAST_VALUE_VERSION + 1))

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")
_INT32_PAIR = struct.Struct(">ii")
_INT64_PAIR = struct.Struct(">qq")
_VERSION_INT64 = struct.Struct(">hq")
_VERSION_INT64_INT32 = struct.Struct(">hqi")


@dataclass(frozen=True, slots=True)
class OffsetKey:
    group: str
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class OffsetValue:
    offset: int
    leader_epoch: int
    metadata: str
    commit_timestamp: int
    expire_timestamp: int = -1


@dataclass(frozen=True, slots=True)
class GroupKey:
    group: str


@dataclass(frozen=True, slots=True)
class MemberValue:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupValue:
    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp: int
    members: tuple[MemberValue, ...]


GroupRecordKey = OffsetKey | GroupKey
GroupRecordValue = OffsetValue | GroupValue


# --- encoding -------------------------------------------------------------------------------


def _string(value: str | None) -> bytes:
    if value is None:
        return b"\xff\xff"
    data = value.encode()
    if len(data) > _MAX_STRING_BYTES:
        raise ValueError(f"string of {len(data)} bytes is longer than Kafka's 32767")
    return _INT16.pack(len(data)) + data


def _bytes(value: bytes) -> bytes:
    return _INT32.pack(len(value)) + value


def encode_key(key: GroupRecordKey) -> bytes:
    if isinstance(key, OffsetKey):
        return (
            _INT16.pack(_OFFSET_KEY_VERSION)
            + _string(key.group)
            + _string(key.topic)
            + _INT32.pack(key.partition)
        )
    return _INT16.pack(_GROUP_KEY_VERSION) + _string(key.group)


def encode_value(value: GroupRecordValue | None) -> bytes | None:
    """The value bytes, or None for a tombstone."""
    if value is None:
        return None
    if isinstance(value, OffsetValue):
        if value.expire_timestamp != -1:
            return (
                _VERSION_INT64.pack(_OFFSET_VALUE_VERSION_WITH_EXPIRY, value.offset)
                + _string(value.metadata)
                + _INT64_PAIR.pack(value.commit_timestamp, value.expire_timestamp)
            )
        return (
            _VERSION_INT64_INT32.pack(_OFFSET_VALUE_VERSION, value.offset, value.leader_epoch)
            + _string(value.metadata)
            + _INT64.pack(value.commit_timestamp)
        )
    parts = [
        _INT16.pack(_GROUP_VALUE_VERSION),
        _string(value.protocol_type),
        _INT32.pack(value.generation),
        _string(value.protocol),
        _string(value.leader),
        _INT64.pack(value.current_state_timestamp),
        _INT32.pack(len(value.members)),
    ]
    for member in value.members:
        parts += (
            _string(member.member_id),
            _string(member.group_instance_id),
            _string(member.client_id),
            _string(member.client_host),
            _INT32_PAIR.pack(member.rebalance_timeout_ms, member.session_timeout_ms),
            _bytes(member.subscription),
            _bytes(member.assignment),
        )
    return b"".join(parts)


# --- decoding -------------------------------------------------------------------------------


class _Reader:
    """Reads one key or value; `flexible` switches strings, bytes and arrays to compact forms."""

    __slots__ = ("data", "flexible", "position", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.what = what
        self.position = 0
        self.flexible = False

    # The readers are spelled out, not shared through one helper, because a method call
    # per field is most of the cost of loading a partition of offset commits.
    def int16(self) -> int:
        value: int
        try:
            (value,) = _INT16.unpack_from(self.data, self.position)
        except struct.error:
            raise self._truncated() from None
        self.position += 2
        return value

    def int32(self) -> int:
        value: int
        try:
            (value,) = _INT32.unpack_from(self.data, self.position)
        except struct.error:
            raise self._truncated() from None
        self.position += 4
        return value

    def int64(self) -> int:
        value: int
        try:
            (value,) = _INT64.unpack_from(self.data, self.position)
        except struct.error:
            raise self._truncated() from None
        self.position += 8
        return value

    def int8(self) -> int:
        if self.position >= len(self.data):
            raise self._truncated()
        value = self.data[self.position]
        self.position += 1
        return value - 0x100 if value >= 0x80 else value

    def _truncated(self) -> ValueError:
        return ValueError(f"{self.what} is truncated at byte {self.position} of {len(self.data)}")

    def uvarint(self) -> int:
        data, value = self.data, 0
        for shift in range(0, 35, 7):
            if self.position >= len(data):
                raise self._truncated()
            byte = data[self.position]
            self.position += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
        raise ValueError(f"{self.what} holds a varint longer than 5 bytes")

    def take(self, count: int) -> bytes:
        end = self.position + count
        if end > len(self.data):
            raise self._truncated()
        value = self.data[self.position : end]
        self.position = end
        return value

    def nullable_string(self, field: str) -> str | None:
        # Kafka reads any negative length as null, not only -1.
        length = self.uvarint() - 1 if self.flexible else self.int16()
        if length < 0:
            return None
        if length > _MAX_STRING_BYTES:
            raise ValueError(f"{self.what}: string field {field} has invalid length {length}")
        start = self.position
        end = start + length
        if end > len(self.data):
            raise self._truncated()
        self.position = end
        try:
            return self.data[start:end].decode()
        except UnicodeDecodeError as exc:
            raise ValueError(f"{self.what}: string field {field} is not UTF-8") from exc

    def string(self, field: str) -> str:
        value = self.nullable_string(field)
        if value is None:
            raise ValueError(f"{self.what}: non-nullable field {field} was serialized as null")
        return value

    def bytes_field(self, field: str) -> bytes:
        length = self.uvarint() - 1 if self.flexible else self.int32()
        if length < 0:
            raise ValueError(f"{self.what}: non-nullable field {field} was serialized as null")
        return self.take(length)

    def count(self, field: str) -> int:
        count = self.uvarint() - 1 if self.flexible else self.int32()
        if count < 0:
            raise ValueError(f"{self.what}: non-nullable field {field} was serialized as null")
        left = len(self.data) - self.position
        if count > left:
            raise ValueError(
                f"{self.what} is truncated: {field} claims {count} entries, {left} bytes are left"
            )
        return count

    def tagged_fields(self) -> None:
        """Skips a tagged-field section of a flexible version; these records define no tags."""
        if self.flexible:
            for _ in range(self.uvarint()):
                self.uvarint()
                self.take(self.uvarint())


def _offset_value(reader: _Reader, version: int) -> OffsetValue:
    offset = reader.int64()
    leader_epoch = reader.int32() if version >= 3 else -1
    metadata = reader.string("metadata")
    commit_timestamp = reader.int64()
    expire_timestamp = reader.int64() if version == 1 else -1
    reader.tagged_fields()
    return OffsetValue(offset, leader_epoch, metadata, commit_timestamp, expire_timestamp)


def _member_value(reader: _Reader, version: int) -> MemberValue:
    member_id = reader.string("memberId")
    group_instance_id = reader.nullable_string("groupInstanceId") if version >= 3 else None
    client_id = reader.string("clientId")
    client_host = reader.string("clientHost")
    rebalance_timeout_ms = reader.int32() if version >= 1 else -1
    session_timeout_ms = reader.int32()
    subscription = reader.bytes_field("subscription")
    assignment = reader.bytes_field("assignment")
    reader.tagged_fields()
    return MemberValue(
        member_id,
        group_instance_id,
        client_id,
        client_host,
        rebalance_timeout_ms,
        session_timeout_ms,
        subscription,
        assignment,
    )


def _group_value(reader: _Reader, version: int) -> GroupValue:
    protocol_type = reader.string("protocolType")
    generation = reader.int32()
    protocol = reader.nullable_string("protocol")
    leader = reader.nullable_string("leader")
    current_state_timestamp = reader.int64() if version >= 2 else -1
    members = tuple(_member_value(reader, version) for _ in range(reader.count("members")))
    reader.tagged_fields()
    return GroupValue(protocol_type, generation, protocol, leader, current_state_timestamp, members)


def decode(
    key: bytes, value: bytes | None
) -> tuple[GroupRecordKey, GroupRecordValue | None] | None:
    """The record's key and value (None for a tombstone), or None for a record type not held here.

    Bytes after the last field are ignored, as Kafka's reader ignores them.
    """
    reader = _Reader(key, "group record key")
    key_version = reader.int16()
    record_key: GroupRecordKey
    if key_version in (0, 1):
        reader.what = "offset commit key"
        record_key = OffsetKey(reader.string("group"), reader.string("topic"), reader.int32())
    elif key_version == _GROUP_KEY_VERSION:
        reader.what = "group metadata key"
        record_key = GroupKey(reader.string("group"))
    else:
        return None
    if value is None:
        return record_key, None

    reader = _Reader(value, "group record value")
    version = reader.int16()
    is_offset = isinstance(record_key, OffsetKey)
    if not 0 <= version <= _LAST_VALUE_VERSION:
        kind = "offset commit" if is_offset else "group metadata"
        raise ValueError(f"unknown {kind} value version {version}")
    reader.what = (_OFFSET_VALUE_NAMES if is_offset else _GROUP_VALUE_NAMES)[version]
    reader.flexible = version >= _FLEXIBLE_VERSION
    if is_offset:
        return record_key, _offset_value(reader, version)
    return record_key, _group_value(reader, version)


# --- consumer group (KIP-848) records -------------------------------------------------------

_CONSUMER_GROUP_VALUE_VERSION = 0
_UUID_BYTES = 16
_NO_TAGGED_FIELDS = b"\x00"
_EMPTY_ARRAY = b"\x01"
_INT8 = struct.Struct(">b")
_MEMBER_KEYS = (
    ConsumerGroupMemberMetadataKey,
    ConsumerGroupTargetAssignmentMemberKey,
    ConsumerGroupCurrentMemberAssignmentKey,
)


def key_version(key: bytes) -> int:
    """The int16 that opens every key of `__consumer_offsets`: it names the record type."""
    if len(key) < 2:
        raise ValueError(f"group record key is truncated at byte 0 of {len(key)}")
    value: int = _INT16.unpack_from(key)[0]
    return value


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _compact_string(value: str | None) -> bytes:
    if value is None:
        return b"\x00"
    data = value.encode()
    if len(data) > _MAX_STRING_BYTES:
        raise ValueError(f"string of {len(data)} bytes is longer than Kafka's 32767")
    return _uvarint(len(data) + 1) + data


def _uuid(topic_id: bytes) -> bytes:
    if len(topic_id) != _UUID_BYTES:
        raise ValueError(f"a topic id is 16 bytes, not {len(topic_id)}")
    return topic_id


def _compact_topic_partitions(topic_partitions: TopicPartitions) -> bytes:
    parts = [_uvarint(len(topic_partitions) + 1)]
    for topic_id, partitions in topic_partitions:
        parts += (
            _uuid(topic_id),
            _uvarint(len(partitions) + 1),
            struct.pack(f">{len(partitions)}i", *partitions),
            _NO_TAGGED_FIELDS,
        )
    return b"".join(parts)


def _consumer_group_value(value: ConsumerGroupRecordValue) -> bytes:
    """The value's fields, after the version and before its tagged fields."""
    if isinstance(value, ConsumerGroupMetadataValue):
        return _INT32.pack(value.epoch)
    if isinstance(value, ConsumerGroupTargetAssignmentMetadataValue):
        return _INT32.pack(value.assignment_epoch)
    if isinstance(value, ConsumerGroupPartitionMetadataValue):
        parts = [_uvarint(len(value.topics) + 1)]
        for topic in value.topics:
            parts += (
                _uuid(topic.topic_id),
                _compact_string(topic.name),
                _INT32.pack(topic.partitions),
                _EMPTY_ARRAY,  # partition_metadata: racks, unused since Kafka 4
                _NO_TAGGED_FIELDS,
            )
        return b"".join(parts)
    if isinstance(value, ConsumerGroupMemberMetadataValue):
        names = value.subscribed_topic_names
        return b"".join(
            (
                _compact_string(value.instance_id),
                _compact_string(value.rack_id),
                _compact_string(value.client_id),
                _compact_string(value.client_host),
                _uvarint(len(names) + 1),
                *(_compact_string(name) for name in names),
                _compact_string(value.subscribed_topic_regex),
                _INT32.pack(value.rebalance_timeout_ms),
                _compact_string(value.server_assignor),
            )
        )
    if isinstance(value, ConsumerGroupTargetAssignmentMemberValue):
        return _compact_topic_partitions(value.topic_partitions)
    return (
        _INT32_PAIR.pack(value.member_epoch, value.previous_member_epoch)
        + _INT8.pack(value.state)
        + _compact_topic_partitions(value.assigned_partitions)
        + _compact_topic_partitions(value.partitions_pending_revocation)
    )


def _read_topic_partitions(reader: _Reader, field: str) -> TopicPartitions:
    pairs = []
    for _ in range(reader.count(field)):
        topic_id = reader.take(_UUID_BYTES)
        partitions = tuple(reader.int32() for _ in range(reader.count(f"{field}.partitions")))
        reader.tagged_fields()
        pairs.append((topic_id, partitions))
    # Kafka writes topics in hash-map order; the values promise sorted, merged partitions.
    return to_topic_partitions(from_topic_partitions(tuple(pairs)))


def _read_metadata(reader: _Reader) -> ConsumerGroupMetadataValue:
    return ConsumerGroupMetadataValue(reader.int32())


def _read_partition_metadata(reader: _Reader) -> ConsumerGroupPartitionMetadataValue:
    topics = []
    for _ in range(reader.count("topics")):
        topic_id = reader.take(_UUID_BYTES)
        name = reader.string("topicName")
        partitions = reader.int32()
        for _ in range(reader.count("partitionMetadata")):  # racks, dropped
            reader.int32()
            for _ in range(reader.count("racks")):
                reader.string("racks")
            reader.tagged_fields()
        reader.tagged_fields()
        topics.append(TopicMetadata(topic_id, name, partitions))
    topics.sort(key=lambda topic: topic.name)
    return ConsumerGroupPartitionMetadataValue(tuple(topics))


def _read_member_metadata(reader: _Reader) -> ConsumerGroupMemberMetadataValue:
    instance_id = reader.nullable_string("instanceId")
    rack_id = reader.nullable_string("rackId")
    client_id = reader.string("clientId")
    client_host = reader.string("clientHost")
    names = sorted(
        reader.string("subscribedTopicNames") for _ in range(reader.count("subscribedTopicNames"))
    )
    return ConsumerGroupMemberMetadataValue(
        instance_id=instance_id,
        rack_id=rack_id,
        client_id=client_id,
        client_host=client_host,
        subscribed_topic_names=tuple(names),
        subscribed_topic_regex=reader.nullable_string("subscribedTopicRegex"),
        rebalance_timeout_ms=reader.int32(),
        server_assignor=reader.nullable_string("serverAssignor"),
    )


def _read_target_assignment_metadata(
    reader: _Reader,
) -> ConsumerGroupTargetAssignmentMetadataValue:
    return ConsumerGroupTargetAssignmentMetadataValue(reader.int32())


def _read_target_assignment_member(reader: _Reader) -> ConsumerGroupTargetAssignmentMemberValue:
    return ConsumerGroupTargetAssignmentMemberValue(
        _read_topic_partitions(reader, "topicPartitions")
    )


def _read_current_assignment(reader: _Reader) -> ConsumerGroupCurrentMemberAssignmentValue:
    return ConsumerGroupCurrentMemberAssignmentValue(
        member_epoch=reader.int32(),
        previous_member_epoch=reader.int32(),
        state=reader.int8(),
        assigned_partitions=_read_topic_partitions(reader, "assignedPartitions"),
        partitions_pending_revocation=_read_topic_partitions(reader, "partitionsPendingRevocation"),
    )


# Per key version: Kafka's record name, and the readers of the key's fields (after the version)
# and of the value's fields (between the version and the tagged fields).
_CONSUMER_GROUP_RECORD_TYPES: dict[
    int,
    tuple[
        str,
        Callable[[_Reader], ConsumerGroupRecordKey],
        Callable[[_Reader], ConsumerGroupRecordValue],
    ],
] = {
    3: (
        "ConsumerGroupMetadata",
        lambda r: ConsumerGroupMetadataKey(r.string("groupId")),
        _read_metadata,
    ),
    4: (
        "ConsumerGroupPartitionMetadata",
        lambda r: ConsumerGroupPartitionMetadataKey(r.string("groupId")),
        _read_partition_metadata,
    ),
    5: (
        "ConsumerGroupMemberMetadata",
        lambda r: ConsumerGroupMemberMetadataKey(r.string("groupId"), r.string("memberId")),
        _read_member_metadata,
    ),
    6: (
        "ConsumerGroupTargetAssignmentMetadata",
        lambda r: ConsumerGroupTargetAssignmentMetadataKey(r.string("groupId")),
        _read_target_assignment_metadata,
    ),
    7: (
        "ConsumerGroupTargetAssignmentMember",
        lambda r: ConsumerGroupTargetAssignmentMemberKey(r.string("groupId"), r.string("memberId")),
        _read_target_assignment_member,
    ),
    8: (
        "ConsumerGroupCurrentMemberAssignment",
        lambda r: ConsumerGroupCurrentMemberAssignmentKey(
            r.string("groupId"), r.string("memberId")
        ),
        _read_current_assignment,
    ),
}
_CONSUMER_GROUP_VALUE_TYPES: dict[type[ConsumerGroupRecordKey], type[ConsumerGroupRecordValue]] = {
    ConsumerGroupMetadataKey: ConsumerGroupMetadataValue,
    ConsumerGroupPartitionMetadataKey: ConsumerGroupPartitionMetadataValue,
    ConsumerGroupMemberMetadataKey: ConsumerGroupMemberMetadataValue,
    ConsumerGroupTargetAssignmentMetadataKey: ConsumerGroupTargetAssignmentMetadataValue,
    ConsumerGroupTargetAssignmentMemberKey: ConsumerGroupTargetAssignmentMemberValue,
    ConsumerGroupCurrentMemberAssignmentKey: ConsumerGroupCurrentMemberAssignmentValue,
}


def encode_consumer_group_record(record: ConsumerGroupRecord) -> tuple[bytes, bytes | None]:
    """The key bytes and the value bytes (None for a tombstone), as Kafka 4 writes them."""
    key, value = record.key, record.value
    key_bytes = _INT16.pack(key.version) + _string(key.group_id)
    if isinstance(key, _MEMBER_KEYS):
        key_bytes += _string(key.member_id)
    if value is None:
        return key_bytes, None
    expected = _CONSUMER_GROUP_VALUE_TYPES[type(key)]
    if not isinstance(value, expected):
        raise ValueError(f"a {type(key).__name__} holds a {expected.__name__}, not {value!r}")
    value_bytes = (
        _INT16.pack(_CONSUMER_GROUP_VALUE_VERSION)
        + _consumer_group_value(value)
        + _NO_TAGGED_FIELDS
    )
    return key_bytes, value_bytes


def decode_consumer_group_record(key: bytes, value: bytes | None) -> ConsumerGroupRecord | None:
    """The record (its value None for a tombstone), or None for a key version other than 3-8.

    Unknown tagged fields are skipped; bytes after the last field are ignored.
    """
    version = key_version(key)
    record_type = _CONSUMER_GROUP_RECORD_TYPES.get(version)
    if record_type is None:
        return None
    name, read_key, read_value = record_type
    reader = _Reader(key, f"{name}Key")
    reader.position = 2
    record_key = read_key(reader)
    if value is None:
        return ConsumerGroupRecord(record_key, None)

    reader = _Reader(value, f"{name}Value")
    value_version = reader.int16()
    if value_version != _CONSUMER_GROUP_VALUE_VERSION:
        raise ValueError(f"unknown {name}Value version {value_version}")
    reader.flexible = True
    record_value = read_value(reader)
    reader.tagged_fields()
    return ConsumerGroupRecord(record_key, record_value)


# --- partitioning ---------------------------------------------------------------------------


def group_partition(group_id: str, partitions: int) -> int:
    """The `__consumer_offsets` partition of a group: `Utils.abs(groupId.hashCode()) % partitions`.

    Java's String.hashCode runs over UTF-16 code units, so a character outside the BMP counts
    as its two surrogates. Kafka's Utils.abs is Math.abs except that Integer.MIN_VALUE gives 0
    (Math.abs would leave it negative).
    """
    if partitions <= 0:
        raise ValueError(f"partitions must be positive, not {partitions}")
    if group_id.isascii():
        units: bytes | tuple[int, ...] = group_id.encode("ascii")
    else:
        encoded = group_id.encode("utf-16-be", "surrogatepass")
        units = struct.unpack(f">{len(encoded) // 2}H", encoded)
    hash_code = 0
    for unit in units:
        hash_code = (31 * hash_code + unit) & 0xFFFFFFFF
    if hash_code >= 0x80000000:
        hash_code = 0 if hash_code == 0x80000000 else 0x100000000 - hash_code
    return hash_code % partitions
