"""`odradek perf produce|consume` as a user runs it, against a real broker: the counts and bytes
it reports are the ones the log holds, the pacing holds, a stalled read fails, a progress bar
appears only on a terminal, and bad input is one line with exit code 2.

No test asserts on speed: only on what was sent and read, and on the lower bound pacing sets.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

from kafka_helpers import consume_all, create_topic, watermarks


def perf(broker: Any, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    bootstrap = ["--bootstrap-server", broker.bootstrap] if broker is not None else []
    return subprocess.run(
        [sys.executable, "-m", "odradek", "perf", *args, *bootstrap],
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def json_ok(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stderr == ""  # not a terminal: no progress bar
    return json.loads(proc.stdout)


def test_produce_then_consume_report_what_the_log_holds(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic, partitions=2)
    sent = json_ok(
        perf(
            broker,
            *("produce", topic, "--num-records", "20000", "--record-size", "100"),
            *("--acks", "1", "-X", "linger.ms=2", "--output", "json"),
        )
    )
    assert (sent["records"], sent["failed"], sent["bytes"]) == (20000, 0, 2_000_000)
    assert sent["acks"] == "1" and sent["records_per_s"] > 0 and sent["mb_per_s"] > 0
    latency = sent["latency_ms"]
    ordered = [latency[k] for k in ("p50", "p95", "p99", "p99_9", "max")]
    assert ordered == sorted(ordered) and latency["p50"] > 0 and latency["avg"] <= latency["max"]
    ends = [watermarks(broker.bootstrap, topic, p)[1] for p in (0, 1)]
    assert sum(ends) == 20000
    read = json_ok(perf(broker, "consume", topic, "--num-records", "20000", "--output", "json"))
    assert (read["records"], read["bytes"]) == (20000, 2_000_000)
    text = perf(broker, "consume", topic, "--num-records", "100")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("consume: 100 records in ")


def test_reports_only_for_errors_count_without_latency(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    args = ("produce", topic, "--num-records", "3000", "--output", "json")
    quick = json_ok(
        perf(broker, *args, "--record-size", "10", "-X", "delivery.report.only.error=true")
    )
    assert (quick["records"], quick["bytes"], quick["failed"]) == (3000, 30000, 0)
    assert quick["latency_ms"] is None
    assert watermarks(broker.bootstrap, topic, 0)[1] == 3000
    # records the broker refuses are counted in both modes
    small = f"{topic}-small"
    create_topic(broker.bootstrap, small, **{"max.message.bytes": "2000"})
    args = ("produce", small, "--num-records", "300", "--record-size", "5000", "--output", "json")
    for extra in (("-X", "delivery.report.only.error=true"), ()):
        proc = perf(broker, *args, *extra)
        assert proc.returncode == 1, proc.stderr
        failed = json.loads(proc.stdout)
        assert (failed["records"], failed["failed"], failed["bytes"]) == (0, 300, 0)
        assert proc.stderr.startswith("odradek perf: error: 300 records failed; the first: ")
    assert watermarks(broker.bootstrap, small, 0) == (0, 0)


def test_paced_produce_with_payload_file(broker: Any, topic: str, tmp_path: Path) -> None:
    create_topic(broker.bootstrap, topic)
    payloads = tmp_path / "payloads.txt"
    payloads.write_bytes(b"alpha|beta|gamma")
    proc = perf(
        broker,
        *("produce", topic, "--num-records", "600", "--payload-file", str(payloads)),
        *("--payload-delimiter", "|", "--throughput", "1000", "--output", "json"),
    )
    sent = json_ok(proc)
    assert sent["records"] == 600 and sent["throughput_limit"] == 1000
    assert sent["elapsed_s"] >= 0.55  # 600 records at 1,000/s cannot take less than 0.6 s
    values = {r.value for r in consume_all(broker.bootstrap, topic, expected=600)}
    assert values == {b"alpha", b"beta", b"gamma"}
    text = perf(broker, "produce", topic, "--num-records", "10", "--record-size", "10")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("produce: 10 records in ") and lines[1].startswith("latency ms: avg")


def test_consume_that_stalls_fails(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    perf(broker, "produce", topic, "--num-records", "5", "--record-size", "1")
    proc = perf(broker, "consume", topic, "--num-records", "10", "--timeout", "1")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == "odradek perf: error: no record for 1 s after 5 of 10 records\n"


def test_progress_bar_only_on_a_terminal(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    main, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "odradek", "perf", "produce", topic),
                *("--num-records", "200000", "--record-size", "10"),
                *("--bootstrap-server", broker.bootstrap),
            ],
            stdout=subprocess.PIPE,
            stderr=terminal,
            timeout=120,
        )
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal's other end is closed: everything was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
        if terminal >= 0:
            os.close(terminal)
    assert proc.returncode == 0
    assert f"produce {topic}".encode() in shown and b"200000/" in shown  # done / total


def test_bad_input(broker: Any, topic: str) -> None:
    proc = perf(broker, "produce", topic, "--num-records", "1", "--record-size", "1")
    assert (proc.returncode, proc.stderr) == (
        2,
        f"odradek perf: error: Topic '{topic}' does not exist.\n",
    )
    proc = perf(broker, "consume", topic, "--num-records", "1")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    proc = perf(broker, "produce", topic, "--num-records", "1")  # no payload option
    assert proc.returncode == 2 and "--record-size" in proc.stderr
    proc = perf(
        None,
        *("produce", topic, "--num-records", "1", "--record-size", "1"),
        *("--bootstrap-server", "127.0.0.1:1"),
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("odradek perf: error: cannot reach a broker at 127.0.0.1:1")
    assert "Traceback" not in proc.stderr
