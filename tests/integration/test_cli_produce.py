"""`odradek produce` as a user runs it: a subprocess against a real broker, its records read
back with a plain confluent-kafka consumer (not with `odradek consume`).

Checked: keys split at the separator, headers on every record, the partition chosen, JSON
checked before it is sent, one delivery report per record in the summary, and every usage or
connection failure is one line on stderr with exit code 2 and nothing sent.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Any

from kafka_helpers import consume_all, create_topic, watermarks


def odradek(
    broker: Any, *args: str, stdin: bytes = b"", timeout_s: float = 60
) -> subprocess.CompletedProcess[bytes]:
    bootstrap = ["--bootstrap-server", broker.bootstrap] if broker is not None else []
    return subprocess.run(
        [sys.executable, "-m", "odradek", *args, *bootstrap, "--timeout", "20"],
        input=stdin,
        capture_output=True,
        timeout=timeout_s,
    )


def one_error_line(proc: subprocess.CompletedProcess[bytes], code: int = 2) -> str:
    stderr = proc.stderr.decode()
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout!r}\n{stderr}"
    assert stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("odradek produce: error: "), stderr
    return stderr.strip().removeprefix("odradek produce: error: ")


def unused_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_keys_headers_and_values_arrive_as_written(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic, partitions=3)
    lines = [b"k1\tv1", b"k2\t", b"k1\tvalue with \t tab\r", b"\tno key", b"k3\t\xff\xfe"]
    proc = odradek(
        broker,
        "produce",
        topic,
        "--key-separator",
        "\\t",
        "--header",
        "source=cli",
        "--header",
        "eq=a=b",
        "--output",
        "json",
        stdin=b"\n".join(lines),  # no newline after the last line: still a record
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["records"] == summary["delivered"] == 5
    assert summary["failed"] == 0 and summary["errors"] == []
    records = consume_all(broker.bootstrap, topic, partitions=(0, 1, 2), expected=5)
    got = sorted((r.key, r.value) for r in records)
    assert got == sorted(tuple(line.split(b"\t", 1)) for line in lines)
    assert all(r.headers == [("source", b"cli"), ("eq", b"a=b")] for r in records)
    # same key, same partition, in order; the summary's offsets are the ones stored
    k1 = [r for r in records if r.key == b"k1"]
    assert len({r.partition for r in k1}) == 1 and k1[0].value == b"v1"
    by_partition = {p["partition"]: p for p in summary["partitions"]}
    for partition, info in by_partition.items():
        assert info["last_offset"] == watermarks(broker.bootstrap, topic, partition)[1] - 1
    assert sum(p["records"] for p in summary["partitions"]) == 5


def test_partition_acks_and_compression(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic, partitions=2)
    stdin = b"".join(b"record %d\n" % i for i in range(1000))
    proc = odradek(
        broker,
        "produce",
        topic,
        "--partition",
        "1",
        "--acks",
        "1",
        "--compression",
        "zstd",
        "-X",
        "linger.ms=20",
        stdin=stdin,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"1000 of 1000 records delivered" in proc.stderr
    assert watermarks(broker.bootstrap, topic, 0) == (0, 0)
    records = consume_all(broker.bootstrap, topic, partitions=(1,), expected=1000)
    assert [r.value for r in records] == stdin.splitlines()


def test_json_values_are_checked_before_they_are_sent(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    ok = odradek(broker, "produce", topic, "--value-format", "json", stdin=b'{"a": 1}\n[2]\n')
    assert ok.returncode == 0, ok.stderr
    bad = odradek(
        broker, "produce", topic, "--value-format", "json", stdin=b'{"b": 1}\n{"b": \n"c"\n'
    )
    message = one_error_line(bad)
    assert message.startswith("line 2: the value is not valid JSON"), message
    # line 1 of the second run went out; line 2 and anything after it did not
    values = [r.value for r in consume_all(broker.bootstrap, topic, expected=3)]
    assert values == [b'{"a": 1}', b"[2]", b'{"b": 1}']
    assert watermarks(broker.bootstrap, topic, 0)[1] == 3


def test_malformed_header_is_a_usage_error(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    for header in ("novalue", "=value"):
        proc = odradek(broker, "produce", topic, "--header", header, stdin=b"x\n")
        assert header in one_error_line(proc)
    assert watermarks(broker.bootstrap, topic, 0) == (0, 0)


def test_line_without_key_separator(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    proc = odradek(broker, "produce", topic, "--key-separator", ":", stdin=b"a:1\nb\n")
    assert one_error_line(proc) == "line 2: no key separator b':' in the line"


def test_unknown_topic_and_partition(broker: Any, topic: str) -> None:
    proc = odradek(broker, "produce", topic, stdin=b"x\n")
    assert one_error_line(proc) == f"Topic '{topic}' does not exist."
    create_topic(broker.bootstrap, topic, partitions=2)
    proc = odradek(broker, "produce", topic, "--partition", "2", stdin=b"x\n")
    assert one_error_line(proc) == (
        f"Partition 2 of topic '{topic}' does not exist (the topic has 2 partitions)."
    )


def test_unreachable_broker() -> None:
    address = unused_address()
    proc = odradek(None, "produce", "orders", "--bootstrap-server", address, stdin=b"x\n")
    assert one_error_line(proc).startswith(f"cannot reach a broker at {address}")


def test_delivery_failures_are_reported_with_their_reason(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic, **{"max.message.bytes": "1000"})
    # the broker refuses the batch holding the large record (every record in it fails);
    # the client refuses the one over its own message.max.bytes before sending it
    stdin = b"small\n" + b"x" * 5000 + b"\n" + b"y" * 3000 + b"\n"
    proc = odradek(
        broker, "produce", topic, "-X", "message.max.bytes=4000", "--output", "json", stdin=stdin
    )
    assert proc.returncode == 1, proc.stderr
    stderr = proc.stderr.decode().splitlines()
    assert all(line.startswith("odradek produce: error: line ") for line in stderr), stderr
    summary = json.loads(proc.stdout)
    assert (summary["records"], summary["delivered"], summary["failed"]) == (3, 0, 3)
    errors = {e["line"]: e for e in summary["errors"]}
    assert errors[2]["code"] == "MSG_SIZE_TOO_LARGE" and errors[2]["partition"] is None
    assert {errors[1]["code"], errors[3]["code"]} == {"MSG_SIZE_TOO_LARGE"}, errors
    assert errors[1]["partition"] == 0
    assert watermarks(broker.bootstrap, topic, 0) == (0, 0)


def test_idempotent_producer_delivers(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    proc = odradek(broker, "produce", topic, "--idempotent", stdin=b"a\nb\n")
    assert proc.returncode == 0, proc.stderr
    assert [r.value for r in consume_all(broker.bootstrap, topic, expected=2)] == [b"a", b"b"]
