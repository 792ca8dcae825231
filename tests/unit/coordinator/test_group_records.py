"""The `__consumer_offsets` records against bytes built here by hand from Kafka's schemas
(OffsetCommitKey/Value, GroupMetadataKey/Value), never with the module's own encoder, and the
group-to-partition rule against an independent Java String.hashCode."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire import NO_TAGS, b32, compact_bytes, cstr, i16, i32, i64, s16, tags, uvarint

from odradek.coordinator.group.records import (
    OFFSETS_TOPIC,
    GroupKey,
    GroupValue,
    MemberValue,
    OffsetKey,
    OffsetValue,
    decode,
    encode_key,
    encode_value,
    group_partition,
)

# --- hand-built encodings ---------------------------------------------------------------------


OFFSET_KEY = OffsetKey("analytics", "orders", 7)
OFFSET_KEY_V1 = i16(1) + s16("analytics") + s16("orders") + i32(7)
GROUP_KEY = GroupKey("analytics")
GROUP_KEY_V2 = i16(2) + s16("analytics")

MEMBERS = (
    MemberValue("m-1", None, "client-a", "/10.0.0.1", 300_000, 45_000, b"\x00\x01sub", b""),
    MemberValue("m-2", "static-2", "client-b", "/10.0.0.2", 60_000, 10_000, b"", b"\x00\x03as"),
)


def member_v3(m: MemberValue) -> bytes:
    return (
        s16(m.member_id)
        + s16(m.group_instance_id)
        + s16(m.client_id)
        + s16(m.client_host)
        + i32(m.rebalance_timeout_ms)
        + i32(m.session_timeout_ms)
        + b32(m.subscription)
        + b32(m.assignment)
    )


GROUP_VALUE = GroupValue("consumer", 12, "range", "m-1", 1_700_000_000_123, MEMBERS)
GROUP_VALUE_V3 = (
    i16(3)
    + s16("consumer")
    + i32(12)
    + s16("range")
    + s16("m-1")
    + i64(1_700_000_000_123)
    + i32(2)
    + member_v3(MEMBERS[0])
    + member_v3(MEMBERS[1])
)


def test_the_topic_name() -> None:
    assert OFFSETS_TOPIC == "__consumer_offsets"


# --- what is written --------------------------------------------------------------------------


def test_keys_are_written_at_version_1_and_2_as_the_schema_lays_them_out() -> None:
    assert encode_key(OFFSET_KEY) == OFFSET_KEY_V1
    assert encode_key(GROUP_KEY) == GROUP_KEY_V2


def test_an_offset_commit_is_written_at_version_3() -> None:
    value = OffsetValue(42, 5, "meta", 1_700_000_000_000)
    expected = i16(3) + i64(42) + i32(5) + s16("meta") + i64(1_700_000_000_000)
    assert encode_value(value) == expected
    assert decode(OFFSET_KEY_V1, expected) == (OFFSET_KEY, value)


def test_an_offset_commit_with_an_expire_timestamp_is_written_at_version_1_as_kafka_does() -> None:
    value = OffsetValue(42, -1, "", 1_000, expire_timestamp=2_000)
    expected = i16(1) + i64(42) + s16("") + i64(1_000) + i64(2_000)
    assert encode_value(value) == expected
    assert decode(OFFSET_KEY_V1, expected) == (OFFSET_KEY, value)
    # v1 has no leader epoch: it does not survive.
    lossy = encode_value(OffsetValue(42, 9, "", 1_000, expire_timestamp=2_000))
    assert decode(OFFSET_KEY_V1, lossy) == (OFFSET_KEY, value)


def test_group_metadata_is_written_at_version_3() -> None:
    assert encode_value(GROUP_VALUE) == GROUP_VALUE_V3
    assert decode(GROUP_KEY_V2, GROUP_VALUE_V3) == (GROUP_KEY, GROUP_VALUE)


def test_an_empty_group_round_trips() -> None:
    empty = GroupValue("", 0, None, None, -1, ())
    encoded = encode_value(empty)
    assert encoded == i16(3) + s16("") + i32(0) + s16(None) + s16(None) + i64(-1) + i32(0)
    assert decode(GROUP_KEY_V2, encoded) == (GROUP_KEY, empty)


def test_tombstones() -> None:
    assert encode_value(None) is None
    assert decode(OFFSET_KEY_V1, None) == (OFFSET_KEY, None)
    assert decode(GROUP_KEY_V2, None) == (GROUP_KEY, None)


# --- what is read -----------------------------------------------------------------------------


def test_offset_key_version_0_reads_like_version_1() -> None:
    key_v0 = i16(0) + s16("g") + s16("t") + i32(0)
    assert decode(key_v0, None) == (OffsetKey("g", "t", 0), None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (i16(0) + i64(10) + s16("m0") + i64(100), OffsetValue(10, -1, "m0", 100)),
        (
            i16(1) + i64(11) + s16("m1") + i64(101) + i64(201),
            OffsetValue(11, -1, "m1", 101, expire_timestamp=201),
        ),
        (i16(2) + i64(12) + s16("m2") + i64(102), OffsetValue(12, -1, "m2", 102)),
        (i16(3) + i64(13) + i32(4) + s16("m3") + i64(103), OffsetValue(13, 4, "m3", 103)),
        (
            i16(4) + i64(14) + i32(5) + cstr("m4") + i64(104) + NO_TAGS,
            OffsetValue(14, 5, "m4", 104),
        ),
        (
            # Tags a newer Kafka might add (one of 200 bytes: a two-byte varint size) are skipped.
            i16(4)
            + i64(15)
            + i32(-1)
            + cstr("é✓")
            + i64(105)
            + tags((0, b"\xaa" * 16), (7, b"\xbb" * 200)),
            OffsetValue(15, -1, "é✓", 105),
        ),
    ],
    ids=["v0", "v1", "v2", "v3", "v4", "v4-tagged"],
)
def test_offset_commit_values_of_every_version(value: bytes, expected: OffsetValue) -> None:
    assert decode(OFFSET_KEY_V1, value) == (OFFSET_KEY, expected)


def _group_value_bytes(version: int) -> bytes:
    """GROUP_VALUE at `version` by the schema, with tags at version 4 on members and the top."""
    flexible = version >= 4
    string = cstr if flexible else s16
    blob = compact_bytes if flexible else b32
    out = i16(version) + string("consumer") + i32(12) + string("range") + string("m-1")
    if version >= 2:
        out += i64(1_700_000_000_123)
    out += uvarint(len(MEMBERS) + 1) if flexible else i32(len(MEMBERS))
    for index, m in enumerate(MEMBERS):
        out += string(m.member_id)
        if version >= 3:
            out += string(m.group_instance_id)
        out += string(m.client_id) + string(m.client_host)
        if version >= 1:
            out += i32(m.rebalance_timeout_ms)
        out += i32(m.session_timeout_ms) + blob(m.subscription) + blob(m.assignment)
        if flexible:
            out += tags((3, b"member-tag")) if index == 0 else NO_TAGS
    if flexible:
        out += tags((1, b"x"), (2, b"\x00" * 130))
    return out


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_group_metadata_values_of_every_version(version: int) -> None:
    expected_members = tuple(
        MemberValue(
            m.member_id,
            m.group_instance_id if version >= 3 else None,
            m.client_id,
            m.client_host,
            m.rebalance_timeout_ms if version >= 1 else -1,
            m.session_timeout_ms,
            m.subscription,
            m.assignment,
        )
        for m in MEMBERS
    )
    expected = GroupValue(
        "consumer",
        12,
        "range",
        "m-1",
        1_700_000_000_123 if version >= 2 else -1,
        expected_members,
    )
    assert decode(GROUP_KEY_V2, _group_value_bytes(version)) == (GROUP_KEY, expected)


def test_a_flexible_group_value_reads_null_protocol_and_leader() -> None:
    value = i16(4) + cstr("") + i32(0) + b"\x00" + b"\x00" + i64(-1) + uvarint(1) + NO_TAGS
    assert decode(GROUP_KEY_V2, value) == (GROUP_KEY, GroupValue("", 0, None, None, -1, ()))


@pytest.mark.parametrize("key_version", [3, 4, 8, 9, 15, 16, 100, -1])
def test_record_types_not_held_here_are_skipped(key_version: int) -> None:
    # Kafka 4's consumer (KIP-848) and share group records; the value is not looked at.
    key = i16(key_version) + s16("analytics")
    assert decode(key, b"\x00\x00anything") is None
    assert decode(key, None) is None


def test_bytes_after_the_last_field_are_ignored_as_kafka_ignores_them() -> None:
    value = i16(3) + i64(1) + i32(0) + s16("") + i64(2)
    assert decode(OFFSET_KEY_V1 + b"\x99", value + b"\x99") == (
        OFFSET_KEY,
        OffsetValue(1, 0, "", 2),
    )


# --- malformed input --------------------------------------------------------------------------


OFFSET_VALUES_BY_VERSION = [
    i16(0) + i64(1) + s16("md") + i64(2),
    i16(1) + i64(1) + s16("md") + i64(2) + i64(3),
    i16(2) + i64(1) + s16("md") + i64(2),
    i16(3) + i64(1) + i32(0) + s16("md") + i64(2),
    i16(4) + i64(1) + i32(0) + cstr("md") + i64(2) + tags((5, b"tag")),
]


@pytest.mark.parametrize(
    ("key", "value"),
    [(OFFSET_KEY_V1, None), (GROUP_KEY_V2, None)]
    + [(OFFSET_KEY_V1, value) for value in OFFSET_VALUES_BY_VERSION]
    + [(GROUP_KEY_V2, _group_value_bytes(v)) for v in range(5)],
    ids=["offset-key", "group-key"]
    + [f"offset-v{v}" for v in range(5)]
    + [f"group-v{v}" for v in range(5)],
)
def test_every_truncation_raises_value_error(key: bytes, value: bytes | None) -> None:
    for end in range(len(key)):
        with pytest.raises(ValueError, match="truncated"):
            decode(key[:end], value)
    if value is not None:
        for end in range(len(value)):
            with pytest.raises(ValueError, match="truncated"):
                decode(key, value[:end])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (OFFSET_KEY_V1, i16(5) + i64(1), "unknown offset commit value version 5"),
        (OFFSET_KEY_V1, i16(-1), "unknown offset commit value version -1"),
        (GROUP_KEY_V2, i16(5), "unknown group metadata value version 5"),
        (i16(1) + s16(None) + s16("t") + i32(0), None, "non-nullable field group"),
        (i16(1) + i16(2) + b"\xff\xfe" + s16("t") + i32(0), None, "not UTF-8"),
        (i16(2) + i16(-2), None, "non-nullable field group"),
        (OFFSET_KEY_V1, i16(4) + i64(1) + i32(0) + b"\x00" + i64(2) + b"\x00", "field metadata"),
        (
            GROUP_KEY_V2,
            i16(3) + s16("c") + i32(1) + s16(None) + s16(None) + i64(0) + i32(-1),
            "non-nullable field members",
        ),
        (
            GROUP_KEY_V2,
            i16(3) + s16("c") + i32(1) + s16(None) + s16(None) + i64(0) + i32(1_000_000),
            "claims 1000000 entries",
        ),
        (
            GROUP_KEY_V2,
            i16(4) + cstr("c") + i32(1) + b"\x00\x00" + i64(0) + b"\xff" * 5,
            "varint longer than 5 bytes",
        ),
        (
            GROUP_KEY_V2,
            i16(2)
            + s16("c")
            + i32(1)
            + s16(None)
            + s16(None)
            + i64(0)
            + i32(1)
            # the member's subscription claims a null length
            + s16("m")
            + s16("c")
            + s16("h")
            + i32(1)
            + i32(2)
            + i32(-1)
            + i32(0),
            "non-nullable field subscription",
        ),
    ],
    ids=[
        "offset-value-v5",
        "offset-value-v-1",
        "group-value-v5",
        "null-group",
        "bad-utf8",
        "negative-length",
        "flexible-null-metadata",
        "null-members",
        "member-count-past-end",
        "long-varint",
        "null-subscription",
    ],
)
def test_malformed_input_raises_value_error(key: bytes, value: bytes | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode(key, value)


def test_a_string_longer_than_kafka_allows_is_refused() -> None:
    with pytest.raises(ValueError, match="32767"):
        encode_key(GroupKey("g" * 32768))
    assert decode(encode_key(GroupKey("g" * 32767)), None) == (GroupKey("g" * 32767), None)
    with pytest.raises(ValueError, match="invalid length 32768"):
        decode(OFFSET_KEY_V1, i16(4) + i64(0) + i32(0) + uvarint(32768 + 1))


# --- group_partition --------------------------------------------------------------------------


def java_hash_code(text: str) -> int:
    """Java's String.hashCode, s[0]*31^(n-1) + ... + s[n-1] over UTF-16 units, as an int32."""
    units: list[int] = []
    for char in text:
        point = ord(char)
        if point > 0xFFFF:
            point -= 0x10000
            units += [0xD800 + (point >> 10), 0xDC00 + (point & 0x3FF)]
        else:
            units.append(point)
    total: int = sum(unit * 31 ** (len(units) - 1 - i) for i, unit in enumerate(units)) % 2**32
    return total - 2**32 if total >= 2**31 else total


def kafka_abs(n: int) -> int:
    return 0 if n == -(2**31) else abs(n)


def test_the_independent_hash_code_matches_known_java_values() -> None:
    assert java_hash_code("") == 0
    assert java_hash_code("a") == 97
    assert java_hash_code("hello") == 99162322
    assert java_hash_code("analytics") == -1693017210
    assert java_hash_code("polygenelubricants") == -(2**31)
    assert java_hash_code("\U0001f600") == 0xD83D * 31 + 0xDE00


def test_group_partition_known_values() -> None:
    assert group_partition("", 50) == 0
    assert group_partition("a", 50) == 97 % 50
    assert group_partition("foo", 10) == 4  # Kafka's GroupCoordinatorServiceTest
    assert group_partition("hello", 50) == 99162322 % 50


def test_a_negative_hash_code_takes_its_absolute_value_not_its_low_31_bits() -> None:
    # "analytics".hashCode() is -1693017210: Kafka's Utils.abs gives 1693017210, while
    # masking with 0x7fffffff would give 454466438 and another partition.
    assert group_partition("analytics", 50) == 1693017210 % 50 == 10
    assert (-1693017210 & 0x7FFFFFFF) % 50 != 10


def test_a_hash_code_of_integer_min_value_goes_to_partition_0() -> None:
    assert group_partition("polygenelubricants", 7) == 0


def test_a_character_outside_the_bmp_counts_as_two_utf16_units() -> None:
    assert group_partition("\U0001f600", 1_000_000_007) == 0xD83D * 31 + 0xDE00
    assert group_partition("grüße-\U0001f600-组", 50) == (
        kafka_abs(java_hash_code("grüße-\U0001f600-组")) % 50
    )


@pytest.mark.parametrize(
    "group", ["consumer-group-1", "my-group", "orders-service", "zzzzzzzzzz", "Ωmega", "x" * 300]
)
@pytest.mark.parametrize("partitions", [1, 3, 50, 1000])
def test_group_partition_matches_the_java_formula(group: str, partitions: int) -> None:
    assert group_partition(group, partitions) == kafka_abs(java_hash_code(group)) % partitions


def test_group_partition_needs_a_partition() -> None:
    with pytest.raises(ValueError):
        group_partition("g", 0)


# --- properties -------------------------------------------------------------------------------

INT32 = st.integers(-(2**31), 2**31 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)
text = st.text(max_size=30)
keys = st.one_of(st.builds(OffsetKey, text, text, INT32), st.builds(GroupKey, text))
offset_values = st.builds(OffsetValue, INT64, INT32, text, INT64, st.one_of(st.just(-1), INT64))
members = st.builds(
    MemberValue,
    text,
    st.none() | text,
    text,
    text,
    INT32,
    INT32,
    st.binary(max_size=40),
    st.binary(max_size=40),
)
group_values = st.builds(
    GroupValue,
    text,
    INT32,
    st.none() | text,
    st.none() | text,
    INT64,
    st.lists(members, max_size=4).map(tuple),
)


records = st.one_of(
    st.tuples(st.builds(OffsetKey, text, text, INT32), st.none() | offset_values),
    st.tuples(st.builds(GroupKey, text), st.none() | group_values),
)


@settings(max_examples=200, deadline=None)
@given(records)
def test_round_trip(record: tuple[OffsetKey | GroupKey, OffsetValue | GroupValue | None]) -> None:
    key, value = record
    expected = value
    if isinstance(value, OffsetValue) and value.expire_timestamp != -1:
        expected = OffsetValue(
            value.offset, -1, value.metadata, value.commit_timestamp, value.expire_timestamp
        )
    assert decode(encode_key(key), encode_value(value)) == (key, expected)


@settings(max_examples=300, deadline=None)
@given(records, st.data())
def test_damaged_records_decode_or_raise_value_error(
    record: tuple[OffsetKey | GroupKey, OffsetValue | GroupValue | None], data: st.DataObject
) -> None:
    key, value = encode_key(record[0]), encode_value(record[1])
    target = data.draw(st.sampled_from(["key", "value"] if value else ["key"]))
    damaged = bytearray(key if target == "key" else value or b"")
    for _ in range(data.draw(st.integers(1, 3))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    damaged = damaged[: data.draw(st.integers(0, len(damaged)))]
    with contextlib.suppress(ValueError):
        if target == "key":
            decode(bytes(damaged), value)
        else:
            decode(key, bytes(damaged))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=60), st.none() | st.binary(max_size=200))
def test_any_bytes_decode_or_raise_value_error(key: bytes, value: bytes | None) -> None:
    with contextlib.suppress(ValueError):
        decode(key, value)
