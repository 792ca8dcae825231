"""Cluster metadata records in Kafka's KRaft encoding (the values of `__cluster_metadata`).

Each record value is `frame version (uvarint 1) | api key (uvarint) | version (uvarint) |
body`, the body in Kafka's flexible encoding (compact strings and arrays, UUIDs as 16 bytes,
tagged fields at the end). Only the records this broker writes are here:

    TopicRecord        key 2  name, topic_id
    PartitionRecord    key 3  partition_id, topic_id, replicas, isr, removing, adding, leader,
                              leader_epoch, partition_epoch
    ConfigRecord       key 4  resource_type, resource_name, name, value (null = deleted)
    RemoveTopicRecord  key 9  topic_id
    ProducerIdsRecord  key 15 broker_id, broker_epoch, next_producer_id (a block was handed out)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from odradek.protocol.codec import ProtocolError, read_uvarint, skip_tagged_fields
from odradek.protocol.codec import write_uvarint as _uvarint

TOPIC_RECORD = 2
PARTITION_RECORD = 3
CONFIG_RECORD = 4
REMOVE_TOPIC_RECORD = 9
PRODUCER_IDS_RECORD = 15

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4


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
    TopicRecord | PartitionRecord | ConfigRecord | RemoveTopicRecord | ProducerIdsRecord
)


def _string(value: str | None) -> bytes:
    if value is None:
        return b"\x00"
    data = value.encode()
    return _uvarint(len(data) + 1) + data


def _int32_array(values: tuple[int, ...]) -> bytes:
    return _uvarint(len(values) + 1) + b"".join(struct.pack(">i", v) for v in values)


def encode(record: MetadataRecord) -> bytes:
    if isinstance(record, TopicRecord):
        key, body = TOPIC_RECORD, _string(record.name) + record.topic_id
    elif isinstance(record, PartitionRecord):
        key = PARTITION_RECORD
        body = (
            struct.pack(">i", record.partition_id)
            + record.topic_id
            + _int32_array(record.replicas)
            + _int32_array(record.isr)
            + _int32_array(())
            + _int32_array(())
            + struct.pack(">iii", record.leader, record.leader_epoch, record.partition_epoch)
        )
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
    return _uvarint(1) + _uvarint(key) + _uvarint(0) + body + b"\x00"


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def take(self, count: int) -> bytes:
        if self.position + count > len(self.data):
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

    def int32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def int32_array(self) -> tuple[int, ...]:
        return tuple(self.int32() for _ in range(max(self.uvarint() - 1, 0)))


def decode(data: bytes) -> MetadataRecord | None:
    """A record this broker understands, or None for record types it does not use."""
    reader = _Reader(data)
    reader.uvarint()  # frame version
    key = reader.uvarint()
    reader.uvarint()  # record version
    record: MetadataRecord
    if key == TOPIC_RECORD:
        record = TopicRecord(reader.string() or "", reader.take(16))
    elif key == PARTITION_RECORD:
        partition_id = reader.int32()
        topic_id = reader.take(16)
        replicas = reader.int32_array()
        isr = reader.int32_array()
        reader.int32_array()
        reader.int32_array()
        leader, leader_epoch, partition_epoch = struct.unpack(">iii", reader.take(12))
        record = PartitionRecord(
            partition_id, topic_id, replicas, isr, leader, leader_epoch, partition_epoch
        )
    elif key == CONFIG_RECORD:
        resource_type = struct.unpack(">b", reader.take(1))[0]
        record = ConfigRecord(
            resource_type, reader.string() or "", reader.string() or "", reader.string()
        )
    elif key == REMOVE_TOPIC_RECORD:
        record = RemoveTopicRecord(reader.take(16))
    elif key == PRODUCER_IDS_RECORD:
        record = ProducerIdsRecord(*struct.unpack(">iqq", reader.take(20)))
    else:
        return None
    skip_tagged_fields(data, reader.position)
    return record
