"""Percentiles, throughput and pacing of `odradek perf`."""

from __future__ import annotations

import pytest

from odradek.cli.perf_stats import Latency, Pacer, Throughput, percentile


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 1001)]  # 1..1000
    assert percentile(values, 50) == 500
    assert percentile(values, 99) == 990
    assert percentile(values, 99.9) == 999
    assert percentile(values, 100) == 1000
    assert percentile([7.0], 99.9) == 7
    assert percentile([], 50) == 0


def test_latency_summary() -> None:
    latency = Latency.of([5.0, 1.0, 3.0, 2.0, 4.0] * 200 + [100.0])
    assert (latency.p50, latency.p95, latency.p99, latency.p999, latency.max) == (
        3.0,
        5.0,
        5.0,
        5.0,
        100.0,
    )
    assert latency.avg == pytest.approx((15 * 200 + 100) / 1001)
    assert latency.to_json()["p99_9"] == 5.0
    assert "p99.9 5.00" in latency.text()
    assert Latency.of([]).to_json() == dict.fromkeys(
        ("avg", "p50", "p95", "p99", "p99_9", "max"), 0.0
    )


def test_throughput() -> None:
    run = Throughput(records=500_000, bytes=50_000_000, elapsed_s=0.5)
    assert (run.records_per_s, run.mb_per_s) == (1_000_000, 100)
    assert run.text() == "500000 records in 0.50 s: 1,000,000 records/s, 100.00 MB/s"
    assert Throughput(0, 0, 0).records_per_s == 0


def test_pacer_holds_the_rate() -> None:
    pacer = Pacer(records_per_s=1000, start_s=10.0)
    assert pacer.delay_s(sent=0, now_s=10.0) == 0
    assert pacer.delay_s(sent=500, now_s=10.1) == pytest.approx(0.4)
    assert pacer.delay_s(sent=500, now_s=11.0) == 0  # behind: no wait, catch up
    assert Pacer(records_per_s=-1, start_s=0).delay_s(10**9, 0) == 0
