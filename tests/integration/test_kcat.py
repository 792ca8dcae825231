"""kcat (Debian's, librdkafka 2.0.2) against Odradek: produce keyed records with headers in
every codec, consume them back, list metadata and query offsets by time.

librdkafka before 2.11.1 enables gzip/snappy/lz4 only when the broker advertises Produce v0
(KAFKA-18659), so these tests also check that Odradek advertises it.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

import pytest
from kafka_helpers import (
    CODEC_IDS,
    create_topic,
    java_partition,
    produce,
    require_tool,
    segment_batches,
    unique_topic,
)

PARTITIONS = 3


@pytest.fixture(scope="module")
def kcat() -> str:
    return require_tool("kcat", "kafkacat")


def run(args: list[str], stdin: str | None = None, timeout_s: float = 60) -> str:
    proc = subprocess.run(
        args, input=stdin, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    assert proc.returncode == 0, (
        f"{' '.join(args)} exited with {proc.returncode}\n"
        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return proc.stdout


def consume_json(kcat: str, bootstrap: str, topic: str) -> list[dict[str, Any]]:
    out = run([kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-J", "-q"])
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_and_consume_with_codec(broker, kcat, codec) -> None:
    topic = unique_topic(f"kcat-{codec}")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    lines = [(f"sensor-{i % 5}", f"reading {i} " + "x" * 200) for i in range(30)]
    produce_args = [kcat, "-P", "-b", broker.bootstrap, "-t", topic, "-K", ":"]
    produce_args += ["-H", "source=kcat", "-H", f"codec={codec}"]
    produce_args += ["-X", "partitioner=murmur2_random", "-X", "acks=all"]
    if codec != "none":
        produce_args += ["-z", codec]
    run(produce_args, stdin="".join(f"{k}:{v}\n" for k, v in lines))

    consumed = consume_json(kcat, broker.bootstrap, topic)
    assert len(consumed) == len(lines)
    for partition in range(PARTITIONS):
        mine = [m for m in consumed if m["partition"] == partition]
        expected = [(k, v) for k, v in lines if java_partition(k.encode(), PARTITIONS) == partition]
        assert [(m["key"], m["payload"]) for m in mine] == expected, f"partition {partition}"
        assert [m["offset"] for m in mine] == list(range(len(expected)))
    for message in consumed:
        assert message["headers"] == ["source", "kcat", "codec", codec]
        assert message["tstype"] == "create"
        assert abs(message["ts"] - time.time() * 1000) < 120_000

    stored = {
        b.codec_id for p in range(PARTITIONS) for b in segment_batches(broker.data_dir, topic, p)
    }
    assert stored == {CODEC_IDS[codec]}


def test_consume_with_format_string(broker, kcat, topic) -> None:
    create_topic(broker.bootstrap, topic, partitions=1)
    produce(
        broker.bootstrap,
        topic,
        [
            {"key": b"k1", "value": b"first", "headers": [("a", b"1")], "timestamp": 1_000},
            {"key": b"k2", "value": b"second", "headers": [("b", b"2")], "timestamp": 2_000},
        ],
    ).ok()
    args = [kcat, "-C", "-b", broker.bootstrap, "-t", topic, "-o", "beginning", "-e", "-q"]
    out = run([*args, "-f", "%p|%o|%k|%s|%h|%T\n"])
    assert out.splitlines() == ["0|0|k1|first|a=1|1000", "0|1|k2|second|b=2|2000"]


def test_metadata_list(broker, kcat, topic) -> None:
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    meta = json.loads(run([kcat, "-L", "-b", broker.bootstrap, "-J"]))
    assert [b["id"] for b in meta["brokers"]] == [1]
    assert meta["brokers"][0]["name"] == broker.bootstrap
    (mine,) = [t for t in meta["topics"] if t["topic"] == topic]
    assert [p["partition"] for p in sorted(mine["partitions"], key=lambda p: p["partition"])] == [
        0,
        1,
        2,
    ]
    for partition in mine["partitions"]:
        assert partition["leader"] == 1
        assert [r["id"] for r in partition["replicas"]] == [1]
        assert [r["id"] for r in partition["isrs"]] == [1]


def test_query_offset_by_time(broker, kcat, topic) -> None:
    create_topic(broker.bootstrap, topic, partitions=1)
    base_ts = 1_690_000_000_000
    produce(
        broker.bootstrap,
        topic,
        [{"value": f"v{i}".encode(), "timestamp": base_ts + 1000 * i} for i in range(6)],
    ).ok()
    out = run([kcat, "-Q", "-b", broker.bootstrap, "-t", f"{topic}:0:{base_ts + 3500}"])
    match = re.search(r"offset (-?\d+)", out)
    assert match is not None, out
    assert int(match.group(1)) == 4
