"""`odradek consume` as a user runs it: a subprocess against a real broker, reading records that
a plain confluent-kafka producer (or `odradek produce`, for the round trip) wrote.

Checked: records come back byte for byte with keys and headers; where reading starts
(beginning, offset, last N, time, a group's commit) and stops (-n, the end of every partition);
`--follow` waits for new records and ends cleanly on Ctrl-C with the group's offsets committed;
and failures are one line on stderr with exit code 2.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions
from kafka_helpers import TIMEOUT_S, admin, create_topic, produce

BASE_TIMESTAMP_MS = 1_700_000_000_000


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


def ok(proc: subprocess.CompletedProcess[bytes]) -> bytes:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr.decode()}"
    return proc.stdout


def one_error_line(proc: subprocess.CompletedProcess[bytes], code: int = 2) -> str:
    stderr = proc.stderr.decode()
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout!r}\n{stderr}"
    assert stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("odradek consume: error: "), stderr
    return stderr.strip().removeprefix("odradek consume: error: ")


def committed(bootstrap: str, group: str) -> dict[int, int]:
    client = admin(bootstrap)
    futures = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    answer = futures[group].result(TIMEOUT_S)
    return {tp.partition: tp.offset for tp in answer.topic_partitions if tp.offset >= 0}


def fill(bootstrap: str, topic: str, count: int, partition: int = 0, tag: str = "v") -> None:
    records = [
        {
            "partition": partition,
            "key": f"k{i}".encode(),
            "value": f"{tag}{i}".encode(),
            "headers": [("n", str(i).encode())],
            "timestamp": BASE_TIMESTAMP_MS + i * 1000,
        }
        for i in range(count)
    ]
    produce(bootstrap, topic, records).ok()


def test_round_trip_of_100000_lines_with_keys_and_headers(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    # values with tabs, carriage returns, braces, non-UTF-8 bytes and empty ones
    lines = [
        b"key-%d\t%s" % (i, [b"plain %d" % i, b"t\tab\r", b"{value}", b"\xff\x00\xfe", b""][i % 5])
        for i in range(100_000)
    ]
    stdin = b"\n".join(lines) + b"\n"
    sent = odradek(
        broker,
        "produce",
        topic,
        "--key-separator",
        "\\t",
        "--header",
        "source=cli",
        "--header",
        "batch=7",
        stdin=stdin,
    )
    ok(sent)
    out = ok(
        odradek(
            broker,
            "consume",
            topic,
            "-n",
            "100000",
            "--format",
            "{key}\\t{value}\\n{headers}\\n",
        )
    )
    got = out.split(b"\n")
    assert got.pop() == b""
    assert got[0::2] == lines  # byte for byte, in order
    assert set(got[1::2]) == {b"source=cli,batch=7"}


def test_start_positions_and_count(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic, partitions=2)
    fill(broker.bootstrap, topic, 10, partition=0)
    fill(broker.bootstrap, topic, 4, partition=1, tag="w")
    template = ["--format", "{partition}:{offset}:{value}\\n"]

    def lines(*args: str) -> list[str]:
        return ok(odradek(broker, "consume", topic, *template, *args)).decode().splitlines()

    everything = lines()
    assert len(everything) == 14
    assert [x for x in everything if x.startswith("0:")] == [f"0:{i}:v{i}" for i in range(10)]
    assert lines("--partition", "0", "--offset", "7") == ["0:7:v7", "0:8:v8", "0:9:v9"]
    assert lines("--partition", "1", "--offset", "-2") == ["1:2:w2", "1:3:w3"]
    assert lines("--partition", "0", "-n", "3") == ["0:0:v0", "0:1:v1", "0:2:v2"]
    # record i carries BASE + i s; both partitions hold records at or after BASE + 3 s
    since = lines("--from-time", "2023-11-14T22:13:23Z")  # BASE_TIMESTAMP_MS + 3 s, in UTC
    assert sorted(since) == sorted([f"0:{i}:v{i}" for i in range(3, 10)] + ["1:3:w3"])
    assert lines("--from-time", "2100-01-01T00:00:00Z") == []


def test_json_output_and_summary(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    produce(
        broker.bootstrap,
        topic,
        [
            {"key": b"k", "value": b'{"a": 1}', "headers": [("h", b"\xff")], "timestamp": 5},
            {"value": None},
        ],
    ).ok()
    proc = odradek(broker, "consume", topic, "--output", "json")
    records = [json.loads(line) for line in ok(proc).splitlines()]
    assert records[0] == {
        "topic": topic,
        "partition": 0,
        "offset": 0,
        "timestamp": 5,
        "timestamp_type": "CreateTime",
        "key": "k",
        "key_encoding": "utf-8",
        "value": '{"a": 1}',
        "value_encoding": "utf-8",
        "headers": [{"key": "h", "value": "/w==", "value_encoding": "base64"}],
    }
    assert (records[1]["key"], records[1]["value"], records[1]["headers"]) == (None, None, [])
    assert json.loads(proc.stderr) == {
        "records": 2,
        "bytes": 9,
        "partitions": [{"topic": topic, "partition": 0, "records": 2, "last_offset": 1}],
    }
    text = odradek(broker, "consume", topic, "--isolation-level", "read_committed")
    assert ok(text) == b'{"a": 1}\n\n'
    assert text.stderr.decode() == (
        f"odradek consume: 2 records, 9 bytes from 1 partition; last offsets: {topic}-0 1\n"
    )


def test_group_resumes_from_its_commit(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    fill(broker.bootstrap, topic, 5)
    group = f"{topic}-g"
    first = ok(odradek(broker, "consume", topic, "--group", group, "-n", "3"))
    assert first == b"v0\nv1\nv2\n"
    assert committed(broker.bootstrap, group) == {0: 3}  # not 5: only what was written
    rest = ok(odradek(broker, "consume", topic, "--group", group))
    assert rest == b"v3\nv4\n"
    assert committed(broker.bootstrap, group) == {0: 5}
    assert ok(odradek(broker, "consume", topic, "--group", group)) == b""


def test_follow_ends_cleanly_on_ctrl_c_and_commits(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    fill(broker.bootstrap, topic, 3, tag="old")
    group = f"{topic}-g"
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "odradek", "consume", topic, "--group", group),
            *("--follow", "--from-beginning", "--bootstrap-server", broker.bootstrap),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        got = [proc.stdout.readline() for _ in range(3)]
        assert got == [b"old0\n", b"old1\n", b"old2\n"]
        fill(broker.bootstrap, topic, 2, tag="new")  # arrives while it follows
        got = [proc.stdout.readline() for _ in range(2)]
        assert got == [b"new0\n", b"new1\n"]
        time.sleep(0.3)
        assert proc.poll() is None  # still following
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr.decode()
    assert stderr.decode() == (
        f"odradek consume: 5 records, 30 bytes from 1 partition; last offsets: {topic}-0 4\n"
    )
    assert committed(broker.bootstrap, group) == {0: 5}


def test_follow_without_group_stops_on_sigint_while_waiting(broker: Any, topic: str) -> None:
    create_topic(broker.bootstrap, topic)
    fill(broker.bootstrap, topic, 2)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "odradek", "consume", topic, "--follow"),
            *("--output", "json", "--bootstrap-server", broker.bootstrap),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.5)  # started at the log end: nothing to read, it waits in the client
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr.decode()
    assert stdout == b""
    assert json.loads(stderr) == {"records": 0, "bytes": 0, "partitions": []}


def test_bad_input_is_one_line_and_exit_2(broker: Any, topic: str) -> None:
    assert one_error_line(odradek(broker, "consume", topic)) == f"Topic '{topic}' does not exist."
    create_topic(broker.bootstrap, topic)
    message = one_error_line(odradek(broker, "consume", topic, "--partition", "3"))
    assert message == f"Partition 3 of topic '{topic}' does not exist (the topic has 1 partitions)."
    message = one_error_line(odradek(broker, "consume", topic, "--format", "{nope}"))
    assert message.startswith("--format: unknown placeholder {nope}; known: {topic}")
    message = one_error_line(odradek(broker, "consume", topic, "--from-time", "yesterday"))
    assert message.startswith("--from-time 'yesterday' is not an ISO 8601 date-time")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    message = one_error_line(odradek(None, "consume", topic, "--bootstrap-server", address))
    assert message.startswith(f"cannot reach a broker at {address}")
