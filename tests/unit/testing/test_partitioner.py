"""Kafka's murmur2 partitioner, checked against values Kafka publishes (UtilsTest)."""

from __future__ import annotations

import pytest

from odradek.testing import murmur2, partition_for


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_kafka(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_partition_for_is_positive_hash_modulo() -> None:
    # murmur2(b"foobar") is negative: Kafka masks the sign bit, it does not take abs().
    assert partition_for(b"foobar", 7) == (-790332482 & 0x7FFFFFFF) % 7
    assert partition_for("foobar", 7) == partition_for(b"foobar", 7)
    with pytest.raises(ValueError):
        partition_for(b"k", 0)
