"""The consumer group (KIP-848) records of `__consumer_offsets` against bytes built here by hand
from Kafka's schemas (ConsumerGroup*Key/Value.json, key types 3-8, value version 0, flexible),
never with the module's own encoder."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire import NO_TAGS, carray, cstr, i8, i16, i32, s16, tags, uvarint

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
    ConsumerGroupTargetAssignmentMemberKey,
    ConsumerGroupTargetAssignmentMemberValue,
    ConsumerGroupTargetAssignmentMetadataKey,
    ConsumerGroupTargetAssignmentMetadataValue,
    TopicMetadata,
    to_topic_partitions,
)
from odradek.coordinator.group.records import (
    decode,
    decode_consumer_group_record,
    encode_consumer_group_record,
    key_version,
)

# --- hand-built encodings ---------------------------------------------------------------------


V0 = i16(0)

# Two uuids, the first sorting after the second, as Kafka's Uuid writes them: the most
# significant int64, then the least significant.
ORDERS_ID = struct.pack(">qq", 0x7E57_0000_0000_0001, 2)
PAYMENTS_ID = struct.pack(">qq", 0x1234_5678_9ABC_DEF0, -1)


def topic_partitions(topic_id: bytes, *partitions: int) -> bytes:
    return topic_id + carray(*(i32(p) for p in partitions)) + NO_TAGS


MEMBER_KEY = ConsumerGroupMemberMetadataKey("analytics", "m-1")
MEMBER_KEY_BYTES = i16(5) + s16("analytics") + s16("m-1")
MEMBER_VALUE = ConsumerGroupMemberMetadataValue(
    instance_id="static-1",
    rack_id=None,
    client_id="client-a",
    client_host="/10.0.0.1",
    subscribed_topic_names=("orders", "payments"),
    subscribed_topic_regex=None,
    rebalance_timeout_ms=300_000,
    server_assignor="uniform",
)
MEMBER_VALUE_BYTES = (
    V0
    + cstr("static-1")
    + cstr(None)
    + cstr("client-a")
    + cstr("/10.0.0.1")
    + carray(cstr("orders"), cstr("payments"))
    + cstr(None)
    + i32(300_000)
    + cstr("uniform")
    + NO_TAGS
)

CURRENT_KEY = ConsumerGroupCurrentMemberAssignmentKey("analytics", "m-1")
CURRENT_KEY_BYTES = i16(8) + s16("analytics") + s16("m-1")
CURRENT_VALUE = ConsumerGroupCurrentMemberAssignmentValue(
    member_epoch=12,
    previous_member_epoch=11,
    state=2,
    assigned_partitions=((PAYMENTS_ID, (0,)), (ORDERS_ID, (1, 3))),
    partitions_pending_revocation=((ORDERS_ID, (2,)),),
)
CURRENT_VALUE_BYTES = (
    V0
    + i32(12)
    + i32(11)
    + i8(2)
    + carray(topic_partitions(PAYMENTS_ID, 0), topic_partitions(ORDERS_ID, 1, 3))
    + carray(topic_partitions(ORDERS_ID, 2))
    + NO_TAGS
)

# Every record type, as this module's values and as Kafka lays out the bytes.
HAND_BUILT = [
    (
        ConsumerGroupRecord(ConsumerGroupMetadataKey("analytics"), ConsumerGroupMetadataValue(7)),
        i16(3) + s16("analytics"),
        V0 + i32(7) + NO_TAGS,
    ),
    (
        ConsumerGroupRecord(
            ConsumerGroupPartitionMetadataKey("analytics"),
            ConsumerGroupPartitionMetadataValue(
                (TopicMetadata(ORDERS_ID, "orders", 4), TopicMetadata(PAYMENTS_ID, "payments", 1))
            ),
        ),
        i16(4) + s16("analytics"),
        V0
        + carray(
            # partition_metadata is written empty, as Kafka 4 writes it
            ORDERS_ID + cstr("orders") + i32(4) + carray() + NO_TAGS,
            PAYMENTS_ID + cstr("payments") + i32(1) + carray() + NO_TAGS,
        )
        + NO_TAGS,
    ),
    (ConsumerGroupRecord(MEMBER_KEY, MEMBER_VALUE), MEMBER_KEY_BYTES, MEMBER_VALUE_BYTES),
    (
        ConsumerGroupRecord(
            ConsumerGroupTargetAssignmentMetadataKey("analytics"),
            ConsumerGroupTargetAssignmentMetadataValue(13),
        ),
        i16(6) + s16("analytics"),
        V0 + i32(13) + NO_TAGS,
    ),
    (
        ConsumerGroupRecord(
            ConsumerGroupTargetAssignmentMemberKey("analytics", "m-1"),
            ConsumerGroupTargetAssignmentMemberValue(((PAYMENTS_ID, (0, 5)),)),
        ),
        i16(7) + s16("analytics") + s16("m-1"),
        V0 + carray(topic_partitions(PAYMENTS_ID, 0, 5)) + NO_TAGS,
    ),
    (ConsumerGroupRecord(CURRENT_KEY, CURRENT_VALUE), CURRENT_KEY_BYTES, CURRENT_VALUE_BYTES),
]
HAND_BUILT_IDS = [type(record.key).__name__ for record, _, _ in HAND_BUILT]


@pytest.mark.parametrize(("record", "key", "value"), HAND_BUILT, ids=HAND_BUILT_IDS)
def test_records_are_written_as_kafka_lays_them_out(
    record: ConsumerGroupRecord, key: bytes, value: bytes
) -> None:
    assert encode_consumer_group_record(record) == (key, value)


@pytest.mark.parametrize(("record", "key", "value"), HAND_BUILT, ids=HAND_BUILT_IDS)
def test_records_are_read_as_kafka_lays_them_out(
    record: ConsumerGroupRecord, key: bytes, value: bytes
) -> None:
    assert key_version(key) == record.key.version
    assert decode_consumer_group_record(key, value) == record


@pytest.mark.parametrize(("record", "key", "value"), HAND_BUILT, ids=HAND_BUILT_IDS)
def test_tombstones(record: ConsumerGroupRecord, key: bytes, value: bytes) -> None:
    tombstone = ConsumerGroupRecord(record.key, None)
    assert encode_consumer_group_record(tombstone) == (key, None)
    assert decode_consumer_group_record(key, None) == tombstone


@pytest.mark.parametrize(("record", "key", "value"), HAND_BUILT, ids=HAND_BUILT_IDS)
def test_the_classic_decoder_still_skips_them(
    record: ConsumerGroupRecord, key: bytes, value: bytes
) -> None:
    assert decode(key, value) is None
    assert decode(key, None) is None


def test_a_member_of_kafka_with_classic_metadata_and_unknown_tags_reads_without_them() -> None:
    classic_member_metadata = (
        i32(45_000)  # session_timeout_ms
        + carray(cstr("range") + uvarint(4) + b"\x00\x03\x00" + NO_TAGS)  # supported protocols
        + NO_TAGS
    )
    value = MEMBER_VALUE_BYTES[:-1] + tags((0, classic_member_metadata), (7, b"future"))
    assert decode_consumer_group_record(MEMBER_KEY_BYTES, value) == ConsumerGroupRecord(
        MEMBER_KEY, MEMBER_VALUE
    )


def test_unknown_tags_inside_array_entries_are_skipped() -> None:
    value = (
        V0
        + i32(12)
        + i32(11)
        + i8(2)
        + carray(PAYMENTS_ID + carray(i32(0)) + tags((3, b"x")))
        + carray()
        + tags((1, b"yz"))
    )
    record = decode_consumer_group_record(CURRENT_KEY_BYTES, value)
    assert record is not None
    assert record.value == ConsumerGroupCurrentMemberAssignmentValue(
        12, 11, 2, ((PAYMENTS_ID, (0,)),), ()
    )


def test_what_kafka_writes_in_its_maps_order_reads_sorted() -> None:
    partition_metadata = V0 + carray(
        PAYMENTS_ID
        + cstr("payments")
        + i32(2)
        + carray(
            i32(0) + carray(cstr("rack-a"), cstr("rack-b")) + NO_TAGS,
            i32(1) + carray(cstr("rack-c")) + NO_TAGS,
        )
        + NO_TAGS,
        ORDERS_ID + cstr("orders") + i32(4) + carray() + NO_TAGS,
    )
    assert decode_consumer_group_record(
        i16(4) + s16("analytics"), partition_metadata + NO_TAGS
    ) == ConsumerGroupRecord(
        ConsumerGroupPartitionMetadataKey("analytics"),
        ConsumerGroupPartitionMetadataValue(
            (TopicMetadata(ORDERS_ID, "orders", 4), TopicMetadata(PAYMENTS_ID, "payments", 2))
        ),
    )

    member = (
        V0
        + cstr(None)
        + cstr("rack-a")
        + cstr("c")
        + cstr("h")
        + carray(cstr("zeta"), cstr("alpha"))
        + cstr("^orders-.*")
        + i32(-1)
        + cstr(None)
        + NO_TAGS
    )
    record = decode_consumer_group_record(MEMBER_KEY_BYTES, member)
    assert record is not None
    assert record.value == ConsumerGroupMemberMetadataValue(
        None, "rack-a", "c", "h", ("alpha", "zeta"), "^orders-.*", -1, None
    )

    target = V0 + carray(topic_partitions(ORDERS_ID, 3, 1), topic_partitions(PAYMENTS_ID)) + NO_TAGS
    record = decode_consumer_group_record(i16(7) + s16("g") + s16("m"), target)
    assert record is not None
    assert record.value == ConsumerGroupTargetAssignmentMemberValue(((ORDERS_ID, (1, 3)),))


def test_a_negative_state_reads_as_kafka_reads_an_int8() -> None:
    value = V0 + i32(1) + i32(0) + i8(-1) + carray() + carray() + NO_TAGS
    record = decode_consumer_group_record(CURRENT_KEY_BYTES, value)
    assert record is not None
    assert isinstance(record.value, ConsumerGroupCurrentMemberAssignmentValue)
    assert record.value.state == -1


@pytest.mark.parametrize("version", [0, 1, 2, 9, 10, 13, 15, 16, 100, -1])
def test_other_record_types_are_skipped(version: int) -> None:
    key = i16(version) + s16("analytics")
    assert key_version(key) == version
    assert decode_consumer_group_record(key, b"\x00\x00anything") is None
    assert decode_consumer_group_record(key, None) is None


def test_bytes_after_the_last_field_are_ignored_as_kafka_ignores_them() -> None:
    assert decode_consumer_group_record(
        MEMBER_KEY_BYTES + b"\x99", MEMBER_VALUE_BYTES + b"\x99"
    ) == ConsumerGroupRecord(MEMBER_KEY, MEMBER_VALUE)


# --- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize(("record", "key", "value"), HAND_BUILT, ids=HAND_BUILT_IDS)
def test_every_truncation_raises_value_error(
    record: ConsumerGroupRecord, key: bytes, value: bytes
) -> None:
    for end in range(len(key)):
        with pytest.raises(ValueError, match="truncated"):
            decode_consumer_group_record(key[:end], value)
    for end in range(len(value)):
        with pytest.raises(ValueError, match="truncated"):
            decode_consumer_group_record(key, value[:end])


@pytest.mark.parametrize("version", [1, -1, 4])
def test_a_value_version_other_than_0_is_refused(version: int) -> None:
    with pytest.raises(ValueError, match="unknown ConsumerGroupMemberMetadataValue version"):
        decode_consumer_group_record(MEMBER_KEY_BYTES, i16(version) + MEMBER_VALUE_BYTES[2:])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (i16(5) + i16(-1) + s16("m"), None, "groupId was serialized as null"),
        (MEMBER_KEY_BYTES, V0 + cstr(None) * 2 + b"\x00", "clientId was serialized as null"),
        (
            CURRENT_KEY_BYTES,
            V0 + i32(1) + i32(0) + i8(1) + b"\x00",
            "assignedPartitions was serialized as null",
        ),
        (
            CURRENT_KEY_BYTES,
            V0 + i32(1) + i32(0) + i8(1) + uvarint(1000),
            "claims 999 entries",
        ),
        (MEMBER_KEY_BYTES, V0 + cstr(None) * 2 + b"\x03\xff\xfe", "clientId is not UTF-8"),
    ],
)
def test_malformed_input_raises_value_error(key: bytes, value: bytes | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_consumer_group_record(key, value)


def test_a_topic_id_must_be_16_bytes() -> None:
    record = ConsumerGroupRecord(
        ConsumerGroupTargetAssignmentMemberKey("g", "m"),
        ConsumerGroupTargetAssignmentMemberValue(((b"short", (0,)),)),
    )
    with pytest.raises(ValueError, match="16 bytes"):
        encode_consumer_group_record(record)


def test_a_value_under_the_wrong_key_is_refused() -> None:
    record = ConsumerGroupRecord(ConsumerGroupMetadataKey("g"), MEMBER_VALUE)
    with pytest.raises(ValueError, match="ConsumerGroupMetadataValue"):
        encode_consumer_group_record(record)


def test_a_key_too_short_for_its_version_raises_value_error() -> None:
    for key in (b"", b"\x00"):
        with pytest.raises(ValueError, match="truncated"):
            key_version(key)


# --- properties -------------------------------------------------------------------------------

INT32 = st.integers(-(2**31), 2**31 - 1)
text = st.text(max_size=20)
topic_ids = st.binary(min_size=16, max_size=16)
assignments = st.dictionaries(
    topic_ids, st.frozensets(st.integers(0, 2**31 - 1), max_size=5), max_size=4
).map(to_topic_partitions)
group_and_member = (text, text)

records = st.one_of(
    st.builds(
        ConsumerGroupRecord,
        st.builds(ConsumerGroupMetadataKey, text),
        st.none() | st.builds(ConsumerGroupMetadataValue, INT32),
    ),
    st.builds(
        ConsumerGroupRecord,
        st.builds(ConsumerGroupPartitionMetadataKey, text),
        st.none()
        | st.lists(st.builds(TopicMetadata, topic_ids, text, INT32), max_size=4).map(
            lambda topics: ConsumerGroupPartitionMetadataValue(
                tuple(sorted(topics, key=lambda topic: topic.name))
            )
        ),
    ),
    st.builds(
        ConsumerGroupRecord,
        st.builds(ConsumerGroupMemberMetadataKey, *group_and_member),
        st.none()
        | st.builds(
            ConsumerGroupMemberMetadataValue,
            st.none() | text,
            st.none() | text,
            text,
            text,
            st.lists(text, max_size=4).map(lambda names: tuple(sorted(names))),
            st.none() | text,
            INT32,
            st.none() | text,
        ),
    ),
    st.builds(
        ConsumerGroupRecord,
        st.builds(ConsumerGroupTargetAssignmentMetadataKey, text),
        st.none() | st.builds(ConsumerGroupTargetAssignmentMetadataValue, INT32),
    ),
    st.builds(
        ConsumerGroupRecord,
        st.builds(ConsumerGroupTargetAssignmentMemberKey, *group_and_member),
        st.none() | st.builds(ConsumerGroupTargetAssignmentMemberValue, assignments),
    ),
    st.builds(
        ConsumerGroupRecord,
        st.builds(ConsumerGroupCurrentMemberAssignmentKey, *group_and_member),
        st.none()
        | st.builds(
            ConsumerGroupCurrentMemberAssignmentValue,
            INT32,
            INT32,
            st.integers(-128, 127),
            assignments,
            assignments,
        ),
    ),
)


@settings(max_examples=300, deadline=None)
@given(records)
def test_round_trip(record: ConsumerGroupRecord) -> None:
    key, value = encode_consumer_group_record(record)
    assert key_version(key) == record.key.version
    assert decode(key, value) is None
    assert decode_consumer_group_record(key, value) == record


@settings(max_examples=300, deadline=None)
@given(records, st.data())
def test_damaged_records_decode_or_raise_value_error(
    record: ConsumerGroupRecord, data: st.DataObject
) -> None:
    key, value = encode_consumer_group_record(record)
    target = data.draw(st.sampled_from(["key", "value"] if value else ["key"]))
    damaged = bytearray(key if target == "key" else value or b"")
    for _ in range(data.draw(st.integers(1, 3))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    damaged = damaged[: data.draw(st.integers(0, len(damaged)))]
    with contextlib.suppress(ValueError):
        if target == "key":
            decode_consumer_group_record(bytes(damaged), value)
        else:
            decode_consumer_group_record(key, bytes(damaged))


@settings(max_examples=300, deadline=None)
@given(st.integers(3, 8), st.binary(max_size=40), st.none() | st.binary(max_size=200))
def test_any_bytes_decode_or_raise_value_error(
    version: int, key: bytes, value: bytes | None
) -> None:
    with contextlib.suppress(ValueError):
        decode_consumer_group_record(i16(version) + key, value)
