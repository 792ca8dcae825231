"""Old clients against Odradek: the old message formats (magic 0/1) and request versions that
Kafka 4 dropped and Kafka 3.x still serves.

- Debian's kafka-go 0.2.1 (Produce v2 with magic 1 message sets, Fetch v2, OffsetCommit v2)
  and Debian's sarama 1.22.1 at its oldest version 0.8.2.0 (Produce v0 with magic 0, Fetch v0,
  ListOffsets v0). sarama needs 0.10.0.0 for lz4 and 0.10.2.0 for consumer groups (its
  config check and consumer_group.go), the oldest versions that can do those; there it commits
  with OffsetCommit v1 and reads with Fetch v3. The Go programs are in tests/integration/go/,
  built once per session in GOPATH mode against Debian's packages (GO111MODULE=off).
- kcat (librdkafka 2.0.2) told the broker is 0.9.0 or 0.10.0 (no ApiVersions request), so it
  speaks Produce v1/v2 with magic 0/1 and Fetch v1/v2, compressed with gzip, snappy and lz4.
- Records written by an old client read back unchanged by a modern one and the other way
  round: keys, values, timestamps (magic 1; magic 0 has none), no headers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from kafka_helpers import (
    CODEC_IDS,
    consume_all,
    create_topic,
    keyed_records,
    produce,
    require_tool,
    segment_batches,
    unique_topic,
    watermarks,
)

PARTITIONS = 3
COUNT = 30
BASE_TS = 1_600_000_000_000
GO_DIR = Path(__file__).parent / "go"
SARAMA_OLDEST = "0.8.2.0"
SARAMA_LZ4 = "0.10.0.0"  # sarama's config check: lz4 requires Version >= V0_10_0_0
SARAMA_GROUPS = "0.10.2.0"  # consumer groups require Version >= V0_10_2_0


@pytest.fixture(scope="session")
def go_clients(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The test programs, built once per session against Debian's Go packages."""
    go = require_tool("go")
    out = tmp_path_factory.mktemp("go-clients")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{out / 'gopath'}:/usr/share/gocode",
        "GOCACHE": str(out / "cache"),
        "GOFLAGS": "",
    }
    binaries = {}
    for name in ("kafkago", "sarama"):
        binary = out / name
        proc = subprocess.run(
            [go, "build", "-o", str(binary), "."],
            cwd=GO_DIR / name,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, f"go build {name} failed:\n{proc.stderr}"
        binaries[name] = str(binary)
    return binaries


def run(args: list[str], timeout_s: float = 120) -> list[dict[str, Any]]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert proc.returncode == 0, (
        f"{' '.join(args)} exited with {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    )
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def expected_records(with_timestamps: bool) -> set[tuple[str, str, int]]:
    return {
        (f"key-{i}", f"value-{i}", BASE_TS + i if with_timestamps else -1) for i in range(COUNT)
    }


def check_offsets(lines: list[dict[str, Any]]) -> None:
    """Per partition the offsets are 0..n-1 (what the log assigned), in order."""
    for partition in range(PARTITIONS):
        offsets = [line["offset"] for line in lines if line["partition"] == partition]
        assert offsets == list(range(len(offsets))), f"partition {partition}: {offsets}"


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        parts = c.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30)
        return {tp.partition: tp.offset for tp in parts}
    finally:
        c.close()


def ends(bootstrap: str, topic: str) -> dict[int, int]:
    return {p: watermarks(bootstrap, topic, p)[1] for p in range(PARTITIONS)}


def stored_codecs(broker: Any, topic: str) -> set[int]:
    return {
        b.codec_id for p in range(PARTITIONS) for b in segment_batches(broker.data_dir, topic, p)
    }


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4"])
def test_kafka_go_produces_and_consumes_in_a_group(broker, go_clients, codec) -> None:
    topic = unique_topic(f"kafka-go-{codec}")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    kafkago = go_clients["kafkago"]
    run([kafkago, "produce", broker.bootstrap, topic, codec, str(COUNT), str(BASE_TS)])
    assert stored_codecs(broker, topic) == {CODEC_IDS[codec]}

    group = unique_topic("kafka-go-group")
    lines = run([kafkago, "consume", broker.bootstrap, topic, group, str(COUNT)])
    assert {(x["key"], x["value"], x["timestamp"]) for x in lines} == expected_records(True)
    check_offsets(lines)
    assert committed(broker.bootstrap, group, topic) == ends(broker.bootstrap, topic)


@pytest.mark.parametrize(
    ("codec", "version"),
    [
        ("none", SARAMA_OLDEST),
        ("gzip", SARAMA_OLDEST),
        ("snappy", SARAMA_OLDEST),
        ("lz4", SARAMA_LZ4),
    ],
)
def test_sarama_at_its_oldest_version_produces_reads_and_commits(
    broker, go_clients, codec, version
) -> None:
    topic = unique_topic(f"sarama-{codec}")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    sarama = go_clients["sarama"]
    run([sarama, "produce", version, broker.bootstrap, topic, codec, str(COUNT), str(BASE_TS)])
    assert stored_codecs(broker, topic) == {CODEC_IDS[codec]}
    magic1 = version != SARAMA_OLDEST

    # Fetch v0 and ListOffsets v0: magic 0, no timestamps
    lines = run([sarama, "partitions", SARAMA_OLDEST, broker.bootstrap, topic, str(COUNT)])
    assert {(x["key"], x["value"]) for x in lines} == {
        (k, v) for k, v, _ in expected_records(False)
    }
    assert {x["timestamp"] for x in lines} == {-1}
    check_offsets(sorted(lines, key=lambda x: (x["partition"], x["offset"])))

    group = unique_topic("sarama-group")
    lines = run([sarama, "group", SARAMA_GROUPS, broker.bootstrap, topic, group, str(COUNT)])
    assert {(x["key"], x["value"], x["timestamp"]) for x in lines} == expected_records(magic1)
    assert committed(broker.bootstrap, group, topic) == ends(broker.bootstrap, topic)


def test_records_of_a_modern_producer_read_unchanged_by_old_clients(broker, go_clients) -> None:
    topic = unique_topic("modern-to-old")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    records = [
        {**r, "key": f"key-{i}".encode(), "value": f"value-{i}".encode(), "timestamp": BASE_TS + i}
        for i, r in enumerate(keyed_records(COUNT, BASE_TS))
    ]
    for codec in ("lz4", "gzip"):
        produce(broker.bootstrap, topic, records[: COUNT // 2], **{"compression.type": codec})
        records = records[COUNT // 2 :]
    lines = run([go_clients["kafkago"], "consume", broker.bootstrap, topic, "mo-1", str(COUNT)])
    assert {(x["key"], x["value"], x["timestamp"]) for x in lines} == expected_records(True)
    lines = run(
        [go_clients["sarama"], "partitions", SARAMA_OLDEST, broker.bootstrap, topic, str(COUNT)]
    )
    assert {(x["key"], x["value"]) for x in lines} == {
        (k, v) for k, v, _ in expected_records(False)
    }


def test_records_of_an_old_producer_read_unchanged_by_a_modern_client(broker, go_clients) -> None:
    topic = unique_topic("old-to-modern")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    run(
        [
            go_clients["kafkago"],
            "produce",
            broker.bootstrap,
            topic,
            "snappy",
            str(COUNT),
            str(BASE_TS),
        ]
    )
    consumed = consume_all(broker.bootstrap, topic, range(PARTITIONS), expected=COUNT)
    assert {
        (c.key.decode(), c.value.decode(), c.timestamp[1])
        for c in consumed
        if c.key is not None and c.value is not None
    } == expected_records(True)
    assert all(c.timestamp[0] == 1 and c.headers == [] for c in consumed)  # CreateTime


def dump_log_sizes(broker: Any, topic: str) -> list[tuple[str, int, int]]:
    """(codec, records, size) of each batch, as `odradek dump-log` reports them."""
    files = [str(p) for p in (broker.data_dir / f"{topic}-0").glob("*.log")]
    proc = subprocess.run(
        [sys.executable, "-m", "odradek", "dump-log", "--output", "json", *files],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [
        (b["compresscodec"], b["count"], b["size"])
        for f in json.loads(proc.stdout)["files"]
        for b in f["batches"]
    ]


@pytest.mark.parametrize("fallback", ["0.9.0", "0.10.0", None])
@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4"])
def test_kcat_speaking_old_formats_really_compresses(broker, codec, fallback) -> None:
    """Told the broker is 0.9.0 / 0.10.0, kcat writes magic 0 / 1 message sets; with None it
    asks ApiVersions and, Produce v0 being advertised, compresses v2 batches (KAFKA-18659)."""
    kcat = require_tool("kcat", "kafkacat")
    topic = unique_topic(f"kcat-old-{codec}")
    create_topic(broker.bootstrap, topic)
    old = []
    if fallback is not None:
        old = ["-X", "api.version.request=false", "-X", f"broker.version.fallback={fallback}"]
    value = "compressible " * 100
    lines = "".join(f"k{i}:{i} {value}\n" for i in range(50))
    subprocess.run(
        [
            kcat,
            "-P",
            "-b",
            broker.bootstrap,
            "-t",
            topic,
            "-K",
            ":",
            "-z",
            codec,
            *old,
            "-X",
            "linger.ms=200",
        ],
        input=lines,
        text=True,
        capture_output=True,
        timeout=60,
        check=True,
    )
    batches = dump_log_sizes(broker, topic)
    assert sum(count for _, count, _ in batches) == 50
    assert {c for c, _, _ in batches} == {codec}
    assert sum(size for _, _, size in batches) < 50 * len(value) // 5  # really compressed

    out = subprocess.run(
        [
            kcat,
            "-C",
            "-b",
            broker.bootstrap,
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            *old,
            "-f",
            "%k %o %T %s\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    assert [line.split(" ", 3)[:2] for line in out] == [[f"k{i}", str(i)] for i in range(50)]
    timestamps = {int(line.split(" ", 3)[2]) for line in out}
    assert (timestamps == {0}) if fallback == "0.9.0" else all(t > BASE_TS for t in timestamps)
