"""The `__transaction_state` record codec: Kafka's layouts byte for byte, round trips, and
malformed input refused with ValueError."""

from __future__ import annotations

import contextlib
import struct
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from odradek.coordinator.transaction.metadata import TransactionMetadata, TransactionState
from odradek.coordinator.transaction.records import (
    TransactionLogKey,
    TransactionLogValue,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
    transaction_partition,
)

VALUE = TransactionLogValue(
    producer_id=1000,
    producer_epoch=3,
    transaction_timeout_ms=60_000,
    transaction_status=1,
    transaction_partitions=(("orders", (0, 2)),),
    last_update_timestamp_ms=20,
    start_timestamp_ms=10,
)


def test_key_is_version_0_then_the_id_as_an_int16_length_string() -> None:
    assert encode_key(TransactionLogKey("tx")) == b"\x00\x00\x00\x02tx"
    assert decode_key(b"\x00\x00\x00\x02tx") == TransactionLogKey("tx")


def test_a_key_of_an_unknown_version_is_skipped() -> None:
    assert decode_key(b"\x00\x01\x00\x02tx") is None


def test_value_v0_layout() -> None:
    expected = (
        struct.pack(">hqhib", 0, 1000, 3, 60_000, 1)
        + struct.pack(">i", 1)
        + b"\x00\x06orders"
        + struct.pack(">iii", 2, 0, 2)
        + struct.pack(">qq", 20, 10)
    )
    assert encode_value(VALUE, 0) == expected
    assert decode_value(expected) == VALUE


def test_value_v1_layout_writes_only_tags_that_differ_from_their_defaults() -> None:
    value = replace(VALUE, next_producer_id=7, client_transaction_version=2)
    expected = (
        struct.pack(">hqhib", 1, 1000, 3, 60_000, 1)
        + b"\x02"  # one partition entry, compact
        + b"\x07orders"
        + b"\x03"
        + struct.pack(">ii", 0, 2)
        + b"\x00"  # the entry's tagged fields
        + struct.pack(">qq", 20, 10)
        + b"\x02"  # two tags: next producer id, client transaction version
        + b"\x01\x08"
        + struct.pack(">q", 7)
        + b"\x02\x02"
        + struct.pack(">h", 2)
    )
    assert encode_value(value, 1) == expected
    assert decode_value(expected) == value


def test_null_partitions_in_both_versions() -> None:
    empty = TransactionLogValue(1, 0, 1000, 0, None, 5, -1)
    assert decode_value(encode_value(empty, 0)) == empty
    assert decode_value(encode_value(empty, 1)) == empty


def test_tombstone_stays_none() -> None:
    assert encode_value(None) is None
    assert decode_value(None) is None


def test_unknown_value_version_is_refused() -> None:
    with pytest.raises(ValueError, match="versions 0 and 1, not 2"):
        decode_value(struct.pack(">h", 2) + b"\x00" * 40)


def test_unknown_tags_are_skipped() -> None:
    encoded = encode_value(VALUE, 1)
    assert encoded is not None and encoded.endswith(b"\x00")
    with_unknown_tag = encoded[:-1] + b"\x01\x09\x02ab"
    assert decode_value(with_unknown_tag) == VALUE


def test_transaction_partition_follows_java_string_hash_code() -> None:
    # "tx".hashCode() = 116 * 31 + 120 = 3716
    assert transaction_partition("tx", 50) == 3716 % 50
    # "polygenelubricants".hashCode() is Integer.MIN_VALUE: Utils.abs makes it 0
    assert transaction_partition("polygenelubricants", 50) == 0
    # a character outside the BMP counts as two UTF-16 surrogates
    assert transaction_partition("\U0001f600", 1000) == (0xD83D * 31 + 0xDE00) % 1000


def test_metadata_of_an_empty_transaction_has_no_partitions_whatever_was_written() -> None:
    value = TransactionLogValue(1, 0, 1000, TransactionState.EMPTY.id, (("t", (0,)),), 5, -1)
    assert TransactionMetadata.from_value("tx", value).partitions == frozenset()


def test_an_unknown_state_id_is_refused() -> None:
    value = TransactionLogValue(1, 0, 1000, 9, None, 5, -1)
    with pytest.raises(ValueError, match="unknown transaction state id 9"):
        TransactionMetadata.from_value("tx", value)


# --- properties -------------------------------------------------------------------------------

int64 = st.integers(-(2**63), 2**63 - 1)
int32 = st.integers(-(2**31), 2**31 - 1)
int16 = st.integers(-(2**15), 2**15 - 1)
int8 = st.integers(-128, 127)
topics = st.text(min_size=0, max_size=20)
partitions = st.none() | st.lists(
    st.tuples(topics, st.lists(int32, max_size=5).map(tuple)), max_size=4
).map(tuple)


@st.composite
def values(draw: st.DrawFn, version: int) -> TransactionLogValue:
    tagged = version == 1
    return TransactionLogValue(
        producer_id=draw(int64),
        producer_epoch=draw(int16),
        transaction_timeout_ms=draw(int32),
        transaction_status=draw(int8),
        transaction_partitions=draw(partitions),
        last_update_timestamp_ms=draw(int64),
        start_timestamp_ms=draw(int64),
        previous_producer_id=draw(int64) if tagged else -1,
        next_producer_id=draw(int64) if tagged else -1,
        client_transaction_version=draw(int16) if tagged else 0,
    )


@given(values(0))
def test_value_v0_round_trips(value: TransactionLogValue) -> None:
    assert decode_value(encode_value(value, 0)) == value


@given(values(1))
def test_value_v1_round_trips(value: TransactionLogValue) -> None:
    assert decode_value(encode_value(value, 1)) == value


@given(st.text(max_size=100))
def test_key_round_trips(transactional_id: str) -> None:
    assert decode_key(encode_key(TransactionLogKey(transactional_id))) == TransactionLogKey(
        transactional_id
    )


@given(st.sampled_from([0, 1]).flatmap(lambda v: st.tuples(st.just(v), values(v))), st.data())
def test_truncated_value_raises_a_clear_value_error(
    version_and_value: tuple[int, TransactionLogValue], data: st.DataObject
) -> None:
    version, value = version_and_value
    encoded = encode_value(value, version)
    assert encoded is not None
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(ValueError, match="truncated TransactionLogValue"):
        decode_value(encoded[:cut])


@given(st.text(max_size=30), st.data())
def test_truncated_key_raises_a_clear_value_error(
    transactional_id: str, data: st.DataObject
) -> None:
    encoded = encode_key(TransactionLogKey(transactional_id))
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(ValueError, match="truncated TransactionLogKey"):
        decode_key(encoded[:cut])


@given(st.binary(max_size=80))
def test_any_bytes_decode_or_raise_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        decode_value(data)
    with contextlib.suppress(ValueError):
        decode_key(data)
