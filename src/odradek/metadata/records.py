"""Cluster metadata records in Kafka's KRaft encoding (the values of `__cluster_metadata`).

Each record value is `frame version (uvarint 1) | api key (uvarint) | version (uvarint) |
body`, the body in Kafka's flexible encoding (compact strings and arrays, UUIDs as 16 bytes,
tagged fields at the end). Only the records this broker writes or replays are here:

    RegisterBrokerRecord            key 0  v1 written (v0-3 read): broker_id, incarnation_id,
                                           broker_epoch, endpoints, features, rack, fenced,
                                           in_controlled_shutdown
    UnregisterBrokerRecord          key 1  broker_id, broker_epoch
    TopicRecord                     key 2  name, topic_id
    PartitionRecord                 key 3  v0 written (v0-2 read): partition_id, topic_id,
                                           replicas, isr, removing, adding, leader,
                                           leader_epoch, partition_epoch; tag 0
                                           leader_recovery_state
    ConfigRecord                    key 4  resource_type, resource_name, name, value
                                           (null = deleted)
    PartitionChangeRecord           key 5  v0 written (v0-2 read): partition_id, topic_id, then
                                           only what changed, as tagged fields: 0 isr, 1 leader
                                           (-2 = unchanged, -1 = none), 2 replicas, 3 removing,
                                           4 adding, 5 leader_recovery_state (-1 = unchanged)
    FenceBrokerRecord               key 7  id, epoch (read only; older metadata versions)
    UnfenceBrokerRecord             key 8  id, epoch (read only; older metadata versions)
    RemoveTopicRecord               key 9  topic_id
    ProducerIdsRecord               key 15 broker_id, broker_epoch, next_producer_id
    BrokerRegistrationChangeRecord  key 17 v1 written (v0-2 read): broker_id, broker_epoch;
                                           tag 0 fenced (1 fence, -1 unfence, 0 no change),
                                           tag 1 in_controlled_shutdown (1 = entered)

Not carried: directories (KIP-858) and the ELR fields of KIP-966 (PartitionRecord v2 tags
1-2, PartitionChangeRecord v2 tags 6-8); they are skipped when read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from odradek.protocol.codec import ProtocolError, read_uvarint
from odradek.protocol.codec import write_uvarint as _uvarint

REGISTER_BROKER_RECORD = 0
UNREGISTER_BROKER_RECORD = 1
TOPIC_RECORD = 2
PARTITION_RECORD = 3
CONFIG_RECORD = 4
PARTITION_CHANGE_RECORD = 5
FENCE_BROKER_RECORD = 7
UNFENCE_BROKER_RECORD = 8
REMOVE_TOPIC_RECORD = 9
PRODUCER_IDS_RECORD = 15
BROKER_REGISTRATION_CHANGE_RECORD = 17

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4

NO_LEADER = -1
NO_LEADER_CHANGE = -2  # PartitionChangeRecord.leader when the leader did not change

LEADER_RECOVERED = 0
LEADER_RECOVERING = 1  # elected uncleanly and not yet recovered

FENCE = 1  # BrokerRegistrationChangeRecord.fenced
UNFENCE = -1
NO_CHANGE = 0


@dataclass(frozen=True, slots=True)
class BrokerEndpoint:
    name: str  # the listener name
    host: str
    port: int
    security_protocol: int


@dataclass(frozen=True, slots=True)
class BrokerFeature:
    name: str
    min_supported_version: int
    max_supported_version: int


@dataclass(frozen=True, slots=True)
class RegisterBrokerRecord:
    broker_id: int
    incarnation_id: bytes
    broker_epoch: int
    endpoints: tuple[BrokerEndpoint, ...] = ()
    features: tuple[BrokerFeature, ...] = ()
    rack: str | None = None
    fenced: bool = True
    in_controlled_shutdown: bool = False


@dataclass(frozen=True, slots=True)
class UnregisterBrokerRecord:
    broker_id: int
    broker_epoch: int


@dataclass(frozen=True, slots=True)
class BrokerRegistrationChangeRecord:
    broker_id: int
    broker_epoch: int
    fenced: int = NO_CHANGE
    in_controlled_shutdown: int = NO_CHANGE


@dataclass(frozen=True, slots=True)
class FenceBrokerRecord:
    broker_id: int
    broker_epoch: int


@dataclass(frozen=True, slots=True)
class UnfenceBrokerRecord:
    broker_id: int
    broker_epoch: int


@dataclass(frozen=True, slots=True)
class TopicRecord:
    name: str
    topic_id: bytes


@dataclass(frozen=True, slots=True)
class PartitionRecord:
    partition_id: int
    topic_id: bytes
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int = 0
    partition_epoch: int = 0
    removing_replicas: tuple[int, ...] = ()
    adding_replicas: tuple[int, ...] = ()
    leader_recovery_state: int = LEADER_RECOVERED


@dataclass(frozen=True, slots=True)
class PartitionChangeRecord:
    """What changed in one partition; None (or the NO_* value) means unchanged."""

    partition_id: int
    topic_id: bytes
    isr: tuple[int, ...] | None = None
    leader: int = NO_LEADER_CHANGE
    replicas: tuple[int, ...] | None = None
    removing_replicas: tuple[int, ...] | None = None
    adding_replicas: tuple[int, ...] | None = None
    leader_recovery_state: int = -1


@dataclass(frozen=True, slots=True)
class ConfigRecord:
    resource_type: int
    resource_name: str
    name: str
    value: str | None


@dataclass(frozen=True, slots=True)
class RemoveTopicRecord:
    topic_id: bytes


@dataclass(frozen=True, slots=True)
class ProducerIdsRecord:
    broker_id: int
    broker_epoch: int
    next_producer_id: int


MetadataRecord = (
    RegisterBrokerRecord
    | UnregisterBrokerRecord
    | BrokerRegistrationChangeRecord
    | FenceBrokerRecord
    | UnfenceBrokerRecord
    | TopicRecord
    | PartitionRecord
    | PartitionChangeRecord
    | ConfigRecord
    | RemoveTopicRecord
    | ProducerIdsRecord
)


def _string(value: str | None) -> bytes:
    if value is None:
        return b"\x00"
    data = value.encode()
    return _uvarint(len(data) + 1) + data


def _int32_array(values: tuple[int, ...] | None) -> bytes:
    if values is None:
        return b"\x00"
    return _uvarint(len(values) + 1) + b"".join(struct.pack(">i", v) for v in values)


def _tagged(fields: list[tuple[int, bytes]]) -> bytes:
    """Tagged fields in ascending tag order, each `tag | size | value`."""
    out = [_uvarint(len(fields))]
    for tag, value in fields:
        out.append(_uvarint(tag) + _uvarint(len(value)) + value)
    return b"".join(out)


def _endpoints(endpoints: tuple[BrokerEndpoint, ...]) -> bytes:
    parts = [_uvarint(len(endpoints) + 1)]
    for endpoint in endpoints:
        parts.append(
            _string(endpoint.name)
            + _string(endpoint.host)
            + struct.pack(">Hh", endpoint.port, endpoint.security_protocol)
            + b"\x00"
        )
    return b"".join(parts)


def _features(features: tuple[BrokerFeature, ...]) -> bytes:
    parts = [_uvarint(len(features) + 1)]
    for feature in features:
        parts.append(
            _string(feature.name)
            + struct.pack(">hh", feature.min_supported_version, feature.max_supported_version)
            + b"\x00"
        )
    return b"".join(parts)


def _partition_change_tags(record: PartitionChangeRecord) -> list[tuple[int, bytes]]:
    fields: list[tuple[int, bytes]] = []
    if record.isr is not None:
        fields.append((0, _int32_array(record.isr)))
    if record.leader != NO_LEADER_CHANGE:
        fields.append((1, struct.pack(">i", record.leader)))
    if record.replicas is not None:
        fields.append((2, _int32_array(record.replicas)))
    if record.removing_replicas is not None:
        fields.append((3, _int32_array(record.removing_replicas)))
    if record.adding_replicas is not None:
        fields.append((4, _int32_array(record.adding_replicas)))
    if record.leader_recovery_state != -1:
        fields.append((5, struct.pack(">b", record.leader_recovery_state)))
    return fields


def encode(record: MetadataRecord) -> bytes:
    version = 0
    tags: list[tuple[int, bytes]] = []
    if isinstance(record, TopicRecord):
        key, body = TOPIC_RECORD, _string(record.name) + record.topic_id
    elif isinstance(record, PartitionRecord):
        key = PARTITION_RECORD
        body = (
            struct.pack(">i", record.partition_id)
            + record.topic_id
            + _int32_array(record.replicas)
            + _int32_array(record.isr)
            + _int32_array(record.removing_replicas)
            + _int32_array(record.adding_replicas)
            + struct.pack(">iii", record.leader, record.leader_epoch, record.partition_epoch)
        )
        if record.leader_recovery_state != LEADER_RECOVERED:
            tags.append((0, struct.pack(">b", record.leader_recovery_state)))
    elif isinstance(record, PartitionChangeRecord):
        key = PARTITION_CHANGE_RECORD
        body = struct.pack(">i", record.partition_id) + record.topic_id
        tags = _partition_change_tags(record)
    elif isinstance(record, RegisterBrokerRecord):
        key, version = REGISTER_BROKER_RECORD, 1
        body = (
            struct.pack(">i", record.broker_id)
            + record.incarnation_id
            + struct.pack(">q", record.broker_epoch)
            + _endpoints(record.endpoints)
            + _features(record.features)
            + _string(record.rack)
            + struct.pack(">??", record.fenced, record.in_controlled_shutdown)
        )
    elif isinstance(record, BrokerRegistrationChangeRecord):
        key, version = BROKER_REGISTRATION_CHANGE_RECORD, 1
        body = struct.pack(">iq", record.broker_id, record.broker_epoch)
        if record.fenced != NO_CHANGE:
            tags.append((0, struct.pack(">b", record.fenced)))
        if record.in_controlled_shutdown != NO_CHANGE:
            tags.append((1, struct.pack(">b", record.in_controlled_shutdown)))
    elif isinstance(record, UnregisterBrokerRecord):
        key = UNREGISTER_BROKER_RECORD
        body = struct.pack(">iq", record.broker_id, record.broker_epoch)
    elif isinstance(record, FenceBrokerRecord):
        key, body = FENCE_BROKER_RECORD, struct.pack(">iq", record.broker_id, record.broker_epoch)
    elif isinstance(record, UnfenceBrokerRecord):
        key = UNFENCE_BROKER_RECORD
        body = struct.pack(">iq", record.broker_id, record.broker_epoch)
    elif isinstance(record, ConfigRecord):
        key = CONFIG_RECORD
        body = (
            struct.pack(">b", record.resource_type)
            + _string(record.resource_name)
            + _string(record.name)
            + _string(record.value)
        )
    elif isinstance(record, ProducerIdsRecord):
        key = PRODUCER_IDS_RECORD
        body = struct.pack(">iqq", record.broker_id, record.broker_epoch, record.next_producer_id)
    else:
        key, body = REMOVE_TOPIC_RECORD, record.topic_id
    return _uvarint(1) + _uvarint(key) + _uvarint(version) + body + _tagged(tags)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def take(self, count: int) -> bytes:
        if count < 0 or self.position + count > len(self.data):
            raise ProtocolError("metadata record is truncated")
        value = self.data[self.position : self.position + count]
        self.position += count
        return value

    def uvarint(self) -> int:
        value, self.position = read_uvarint(self.data, self.position)
        return value

    def string(self) -> str | None:
        length = self.uvarint() - 1
        if length < 0:
            return None
        try:
            return self.take(length).decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError("metadata record holds a string that is not UTF-8") from exc

    def int8(self) -> int:
        return int(struct.unpack(">b", self.take(1))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def boolean(self) -> bool:
        return self.take(1) != b"\x00"

    def int32_array(self) -> tuple[int, ...]:
        return self.nullable_int32_array() or ()

    def nullable_int32_array(self) -> tuple[int, ...] | None:
        length = self.uvarint() - 1
        if length < 0:
            return None
        raw = self.take(4 * length)
        return struct.unpack(f">{length}i", raw)

    def skip_uuid_array(self) -> None:
        self.take(16 * max(self.uvarint() - 1, 0))

    def tagged(self) -> dict[int, _Reader]:
        fields: dict[int, _Reader] = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            fields[tag] = _Reader(self.take(self.uvarint()))
        return fields


def _read_endpoints(reader: _Reader) -> tuple[BrokerEndpoint, ...]:
    endpoints = []
    for _ in range(max(reader.uvarint() - 1, 0)):
        name = reader.string() or ""
        host = reader.string() or ""
        port, protocol = struct.unpack(">Hh", reader.take(4))
        reader.tagged()
        endpoints.append(BrokerEndpoint(name, host, port, protocol))
    return tuple(endpoints)


def _read_features(reader: _Reader) -> tuple[BrokerFeature, ...]:
    features = []
    for _ in range(max(reader.uvarint() - 1, 0)):
        name = reader.string() or ""
        low, high = struct.unpack(">hh", reader.take(4))
        reader.tagged()
        features.append(BrokerFeature(name, low, high))
    return tuple(features)


def _read_register_broker(reader: _Reader, version: int) -> RegisterBrokerRecord:
    broker_id = reader.int32()
    if version >= 2:
        reader.boolean()  # IsMigratingZkBroker
    incarnation_id = reader.take(16)
    broker_epoch = reader.int64()
    endpoints = _read_endpoints(reader)
    features = _read_features(reader)
    rack = reader.string()
    fenced = reader.boolean()
    in_controlled_shutdown = reader.boolean() if version >= 1 else False
    return RegisterBrokerRecord(
        broker_id,
        incarnation_id,
        broker_epoch,
        endpoints,
        features,
        rack,
        fenced,
        in_controlled_shutdown,
    )


def _read_partition(reader: _Reader, version: int) -> PartitionRecord:
    partition_id = reader.int32()
    topic_id = reader.take(16)
    replicas = reader.int32_array()
    isr = reader.int32_array()
    removing = reader.int32_array()
    adding = reader.int32_array()
    leader, leader_epoch, partition_epoch = struct.unpack(">iii", reader.take(12))
    if version >= 1:
        reader.skip_uuid_array()  # Directories
    tags = reader.tagged()
    recovery = tags[0].int8() if 0 in tags else LEADER_RECOVERED
    return PartitionRecord(
        partition_id,
        topic_id,
        replicas,
        isr,
        leader,
        leader_epoch,
        partition_epoch,
        removing,
        adding,
        recovery,
    )


def _read_partition_change(reader: _Reader) -> PartitionChangeRecord:
    partition_id = reader.int32()
    topic_id = reader.take(16)
    tags = reader.tagged()

    def array(tag: int) -> tuple[int, ...] | None:
        return tags[tag].nullable_int32_array() if tag in tags else None

    return PartitionChangeRecord(
        partition_id,
        topic_id,
        isr=array(0),
        leader=tags[1].int32() if 1 in tags else NO_LEADER_CHANGE,
        replicas=array(2),
        removing_replicas=array(3),
        adding_replicas=array(4),
        leader_recovery_state=tags[5].int8() if 5 in tags else -1,
    )


def _read_registration_change(reader: _Reader) -> BrokerRegistrationChangeRecord:
    broker_id = reader.int32()
    broker_epoch = reader.int64()
    tags = reader.tagged()
    return BrokerRegistrationChangeRecord(
        broker_id,
        broker_epoch,
        tags[0].int8() if 0 in tags else NO_CHANGE,
        tags[1].int8() if 1 in tags else NO_CHANGE,
    )


def decode(data: bytes) -> MetadataRecord | None:
    """A record this broker understands, or None for record types it does not use."""
    reader = _Reader(data)
    reader.uvarint()  # frame version
    key = reader.uvarint()
    version = reader.uvarint()
    record: MetadataRecord
    if key == TOPIC_RECORD:
        record = TopicRecord(reader.string() or "", reader.take(16))
    elif key == PARTITION_RECORD:
        return _read_partition(reader, version)
    elif key == PARTITION_CHANGE_RECORD:
        return _read_partition_change(reader)
    elif key == REGISTER_BROKER_RECORD:
        record = _read_register_broker(reader, version)
    elif key == BROKER_REGISTRATION_CHANGE_RECORD:
        return _read_registration_change(reader)
    elif key == UNREGISTER_BROKER_RECORD:
        record = UnregisterBrokerRecord(reader.int32(), reader.int64())
    elif key == FENCE_BROKER_RECORD:
        record = FenceBrokerRecord(reader.int32(), reader.int64())
    elif key == UNFENCE_BROKER_RECORD:
        record = UnfenceBrokerRecord(reader.int32(), reader.int64())
    elif key == CONFIG_RECORD:
        resource_type = reader.int8()
        record = ConfigRecord(
            resource_type, reader.string() or "", reader.string() or "", reader.string()
        )
    elif key == REMOVE_TOPIC_RECORD:
        record = RemoveTopicRecord(reader.take(16))
    elif key == PRODUCER_IDS_RECORD:
        record = ProducerIdsRecord(*struct.unpack(">iqq", reader.take(20)))
    else:
        return None
    reader.tagged()
    return record
