"""Broker and partition-change metadata records: Kafka's byte layout, and decode(encode(r)) == r."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odradek.metadata.records import (
    NO_LEADER_CHANGE,
    BrokerEndpoint,
    BrokerFeature,
    BrokerRegistrationChangeRecord,
    FenceBrokerRecord,
    MetadataRecord,
    PartitionChangeRecord,
    PartitionRecord,
    RegisterBrokerRecord,
    UnfenceBrokerRecord,
    UnregisterBrokerRecord,
    decode,
    encode,
)
from odradek.protocol.codec import ProtocolError

TOPIC_ID = bytes(range(16))
INCARNATION = bytes(range(100, 116))

ints = st.integers(-(2**31), 2**31 - 1)
broker_ids = st.integers(0, 2**31 - 1)
epochs = st.integers(-(2**63), 2**63 - 1)
id_tuples = st.lists(broker_ids, max_size=6).map(tuple)
maybe_ids = st.none() | id_tuples
uuids = st.binary(min_size=16, max_size=16)
names = st.text(max_size=20)

endpoints = st.builds(
    BrokerEndpoint, names, names, st.integers(0, 65535), st.integers(-(2**15), 2**15 - 1)
)
features = st.builds(
    BrokerFeature, names, st.integers(-(2**15), 2**15 - 1), st.integers(-(2**15), 2**15 - 1)
)
records: st.SearchStrategy[MetadataRecord] = st.one_of(
    st.builds(
        RegisterBrokerRecord,
        broker_ids,
        uuids,
        epochs,
        st.lists(endpoints, max_size=3).map(tuple),
        st.lists(features, max_size=3).map(tuple),
        st.none() | names,
        st.booleans(),
        st.booleans(),
    ),
    st.builds(UnregisterBrokerRecord, broker_ids, epochs),
    st.builds(
        BrokerRegistrationChangeRecord,
        broker_ids,
        epochs,
        st.sampled_from([-1, 0, 1]),
        st.sampled_from([0, 1]),
    ),
    st.builds(FenceBrokerRecord, broker_ids, epochs),
    st.builds(UnfenceBrokerRecord, broker_ids, epochs),
    st.builds(
        PartitionRecord,
        ints,
        uuids,
        id_tuples,
        id_tuples,
        ints,
        ints,
        ints,
        id_tuples,
        id_tuples,
        st.sampled_from([0, 1]),
    ),
    st.builds(
        PartitionChangeRecord,
        ints,
        uuids,
        maybe_ids,
        st.sampled_from([NO_LEADER_CHANGE, -1]) | broker_ids,
        maybe_ids,
        maybe_ids,
        maybe_ids,
        st.sampled_from([-1, 0, 1]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(records)
def test_round_trip(record: MetadataRecord) -> None:
    assert decode(encode(record)) == record


@settings(max_examples=200, deadline=None)
@given(records, st.data())
def test_truncated_record_is_a_protocol_error(record: MetadataRecord, data: st.DataObject) -> None:
    raw = encode(record)
    cut = data.draw(st.integers(3, len(raw) - 1))
    with pytest.raises(ProtocolError):
        decode(raw[:cut])


def test_partition_change_writes_only_what_changed_as_tagged_fields() -> None:
    """Kafka's PartitionChangeRecord v0: partition id, topic id, then tag 1 (leader) alone."""
    raw = encode(PartitionChangeRecord(7, TOPIC_ID, leader=3))
    assert raw == (
        b"\x01\x05\x00"
        + struct.pack(">i", 7)
        + TOPIC_ID
        + b"\x01"  # one tagged field
        + b"\x01\x04"  # tag 1, four bytes
        + struct.pack(">i", 3)
    )


def test_partition_change_isr_tag_is_a_compact_array() -> None:
    raw = encode(PartitionChangeRecord(0, TOPIC_ID, isr=(1, 2)))
    tags = raw[3 + 4 + 16 :]
    assert tags == b"\x01" + b"\x00\x09" + b"\x03" + struct.pack(">ii", 1, 2)


def test_broker_registration_change_fences_with_tag_zero() -> None:
    raw = encode(BrokerRegistrationChangeRecord(2, 40, fenced=1))
    assert raw == b"\x01\x11\x01" + struct.pack(">iq", 2, 40) + b"\x01\x00\x01\x01"


def test_register_broker_record_layout() -> None:
    """RegisterBrokerRecord v1: id, incarnation, epoch, endpoints, features, rack, fenced,
    in_controlled_shutdown; each struct in an array ends with its own tagged-field count."""
    record = RegisterBrokerRecord(
        1, INCARNATION, 9, (BrokerEndpoint("PLAINTEXT", "h", 9092, 0),), (), "r1", True, False
    )
    raw = encode(record)
    assert raw == (
        b"\x01\x00\x01"
        + struct.pack(">i", 1)
        + INCARNATION
        + struct.pack(">q", 9)
        + b"\x02"
        + b"\x0aPLAINTEXT"
        + b"\x02h"
        + struct.pack(">Hh", 9092, 0)
        + b"\x00"
        + b"\x01"
        + b"\x03r1"
        + b"\x01\x00"
        + b"\x00"
    )


def test_register_broker_record_v2_with_zk_migration_flag_is_read() -> None:
    """Kafka writes v2+ (IsMigratingZkBroker after the id); a replaying broker must read it."""
    body = (
        struct.pack(">i", 4)
        + b"\x00"
        + INCARNATION
        + struct.pack(">q", 11)
        + b"\x01\x01\x00"  # no endpoints, no features, null rack
        + b"\x00\x01"  # unfenced, in controlled shutdown
        + b"\x00"
    )
    decoded = decode(b"\x01\x00\x02" + body)
    assert decoded == RegisterBrokerRecord(4, INCARNATION, 11, (), (), None, False, True)


def test_partition_record_v1_directories_are_skipped() -> None:
    body = (
        struct.pack(">i", 0)
        + TOPIC_ID
        + b"\x02"
        + struct.pack(">i", 1)
        + b"\x02"
        + struct.pack(">i", 1)
        + b"\x01\x01"
        + struct.pack(">iii", 1, 5, 6)
        + b"\x02"
        + bytes(16)
        + b"\x01\x00\x01\x01"  # tag 0 leader_recovery_state = RECOVERING
    )
    assert decode(b"\x01\x03\x01" + body) == PartitionRecord(
        0, TOPIC_ID, (1,), (1,), 1, 5, 6, (), (), 1
    )


def test_unknown_tags_are_skipped() -> None:
    """PartitionChangeRecord v2 carries ELR in tags 6 and 7; they are not kept."""
    raw = (
        b"\x01\x05\x02"
        + struct.pack(">i", 1)
        + TOPIC_ID
        + b"\x02"
        + b"\x01\x04"
        + struct.pack(">i", 2)
        + b"\x06\x01\x01"  # tag 6 (ELR): an empty compact array
    )
    assert decode(raw) == PartitionChangeRecord(1, TOPIC_ID, leader=2)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([0, 1, 3, 5, 7, 8, 17]), st.integers(0, 3), st.binary(max_size=80))
def test_garbage_decodes_or_is_a_protocol_error(key: int, version: int, body: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode(bytes([1, key, version]) + body)
