"""What `odradek perf` computes: latency percentiles, throughput, and the pacing of
`--throughput`. Pure: no client, no clock of its own (callers pass times in seconds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MB = 1_000_000
PERCENTILES = (50.0, 95.0, 99.0, 99.9)


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile of already sorted values (0.0 for none): the smallest value
    with at least pct% of the values at or below it."""
    if not sorted_values:
        return 0.0
    # rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point
    rank = max(1, math.ceil(round(pct * len(sorted_values) / 100, 9)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True, slots=True)
class Latency:
    """Milliseconds."""

    avg: float
    p50: float
    p95: float
    p99: float
    p999: float
    max: float

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> Latency:
        ordered = sorted(values_ms)
        avg = sum(ordered) / len(ordered) if ordered else 0.0
        p50, p95, p99, p999 = (percentile(ordered, p) for p in PERCENTILES)
        return cls(avg, p50, p95, p99, p999, ordered[-1] if ordered else 0.0)

    def to_json(self) -> dict[str, float]:
        return {
            "avg": round(self.avg, 3),
            "p50": round(self.p50, 3),
            "p95": round(self.p95, 3),
            "p99": round(self.p99, 3),
            "p99_9": round(self.p999, 3),
            "max": round(self.max, 3),
        }

    def text(self) -> str:
        return (
            f"latency ms: avg {self.avg:.2f}, p50 {self.p50:.2f}, p95 {self.p95:.2f},"
            f" p99 {self.p99:.2f}, p99.9 {self.p999:.2f}, max {self.max:.2f}"
        )


@dataclass(frozen=True, slots=True)
class Throughput:
    records: int
    bytes: int
    elapsed_s: float

    @property
    def records_per_s(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MB / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "bytes": self.bytes,
            "elapsed_s": round(self.elapsed_s, 3),
            "records_per_s": round(self.records_per_s, 1),
            "mb_per_s": round(self.mb_per_s, 3),
        }

    def text(self) -> str:
        return (
            f"{self.records} records in {self.elapsed_s:.2f} s: {self.records_per_s:,.0f}"
            f" records/s, {self.mb_per_s:.2f} MB/s"
        )


class Pacer:
    """Holds a sender to `records_per_s` on average: `delay_s(sent, now_s)` is how long to wait
    before the next record. Unlimited when records_per_s <= 0."""

    def __init__(self, records_per_s: float, start_s: float) -> None:
        self.records_per_s = records_per_s
        self.start_s = start_s

    def delay_s(self, sent: int, now_s: float) -> float:
        if self.records_per_s <= 0:
            return 0.0
        due_s = self.start_s + sent / self.records_per_s
        return max(0.0, due_s - now_s)
