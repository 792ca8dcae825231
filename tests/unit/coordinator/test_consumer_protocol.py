"""The consumer protocol's subscription and assignment bytes, read from bytes built by hand
from Kafka's ConsumerProtocolSubscription and ConsumerProtocolAssignment schemas."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire import i16, i32, s16

from odradek.coordinator.group.consumer_protocol import (
    assignment_partitions,
    subscription_topics,
)


def topic_partitions(pairs: dict[str, list[int]]) -> bytes:
    body = i32(len(pairs))
    for topic, partitions in pairs.items():
        body += s16(topic) + i32(len(partitions)) + b"".join(i32(p) for p in partitions)
    return body


def subscription(version: int, topics: list[str], user_data: bytes | None = None) -> bytes:
    body = i16(version) + i32(len(topics)) + b"".join(s16(t) for t in topics)
    body += i32(-1) if user_data is None else i32(len(user_data)) + user_data
    if version >= 1:
        body += topic_partitions({"owned": [0, 1]})
    if version >= 2:
        body += i32(7)  # generation
    if version >= 3:
        body += s16("rack-a")
    return body


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_subscription_topics_of_every_version(version: int) -> None:
    data = subscription(version, ["orders", "payments"], b"\x01\x02")
    assert subscription_topics(data) == ["orders", "payments"]


def test_a_newer_subscription_version_is_read_by_its_v0_prefix() -> None:
    data = subscription(3, ["t"]) + b"fields of v9"
    assert subscription_topics(i16(9) + data[2:]) == ["t"]


def test_subscription_topics_are_utf8() -> None:
    assert subscription_topics(subscription(0, ["tøpic"])) == ["tøpic"]


def test_assignment_partitions_in_order() -> None:
    data = i16(1) + topic_partitions({"a": [2, 0], "b": [5]}) + i32(3) + b"usr"
    assert assignment_partitions(data) == [("a", 2), ("a", 0), ("b", 5)]


def test_empty_assignment_bytes_mean_no_partitions() -> None:
    assert assignment_partitions(b"") == []


@pytest.mark.parametrize(
    "data",
    [
        b"",  # not even a version
        i16(0) + i32(2) + s16("only-one"),  # truncated topic array
        i16(0) + i32(1) + i16(5) + b"ab",  # truncated string
        i16(0) + i32(1) + i16(-1),  # null topic name
        i16(-1) + i32(0),  # negative version
        i16(0) + i32(-2),  # negative array length
        i16(0) + i32(2**31 - 1),  # array longer than the bytes could hold
        i16(0) + i32(1) + s16("\xff").replace(b"\xc3\xbf", b"\xff\xfe"),  # not UTF-8
    ],
)
def test_malformed_subscription_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        subscription_topics(data)


@pytest.mark.parametrize(
    "data",
    [
        i16(0),  # no array
        i16(0) + i32(1) + s16("t") + i32(2) + i32(0),  # truncated partitions
        i16(-3) + i32(0),
    ],
)
def test_malformed_assignment_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        assignment_partitions(data)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=10),
        st.lists(st.integers(0, 2**31 - 1), max_size=4),
        max_size=5,
    ),
    st.integers(0, 3),
)
def test_assignment_round_trip(pairs: dict[str, list[int]], version: int) -> None:
    data = i16(version) + topic_partitions(pairs) + i32(-1)
    assert assignment_partitions(data) == [(t, p) for t, ps in pairs.items() for p in ps]


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=40))
def test_arbitrary_bytes_parse_or_raise_value_error(data: bytes) -> None:
    for parse in (subscription_topics, assignment_partitions):
        with contextlib.suppress(ValueError):
            parse(data)
