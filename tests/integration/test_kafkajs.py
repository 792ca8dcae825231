"""KafkaJS against Odradek: js/produce.js creates a topic, produces keyed records with headers
(gzip, the only codec KafkaJS has built in, and uncompressed) and reads metadata and offsets
through the admin client; this test checks its answers and reads the records back with
confluent-kafka. (KafkaJS has no consumer without a group, and groups are not built yet.)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kafka_helpers import (
    CODEC_IDS,
    consume_all,
    java_partition,
    require_kafkajs,
    segment_batches,
    unique_topic,
)

JS_DIR = Path(__file__).parent / "js"
PARTITIONS = 3
BASE_TS = 1_710_000_000_000
QUERY_TS = BASE_TS + 15_500


@pytest.fixture(scope="module")
def node() -> str:
    return require_kafkajs(JS_DIR)


def run_script(node: str, bootstrap: str, topic: str) -> dict[str, Any]:
    proc = subprocess.run(
        [node, "produce.js", bootstrap, topic, str(BASE_TS), str(QUERY_TS)],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


def test_kafkajs_produce_admin_and_read_back(broker, node) -> None:
    topic = unique_topic("kafkajs")
    result = run_script(node, broker.bootstrap, topic)

    assert result["created"] is True
    assert result["createdAgain"] is False  # KafkaJS's answer to TOPIC_ALREADY_EXISTS

    # Where each record must be: murmur2 partition, offsets from each send's base offset.
    expected: dict[tuple[int, int], dict[str, Any]] = {}
    per_partition: dict[int, list[dict[str, Any]]] = {p: [] for p in range(PARTITIONS)}
    codecs: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    sent = iter(result["sent"])
    for send in result["sends"]:
        base = {m["partition"]: int(m["baseOffset"]) for m in send["metadata"]}
        assert all(m["errorCode"] == 0 for m in send["metadata"]), send
        taken = dict.fromkeys(range(PARTITIONS), 0)
        for _ in range(20):
            message = next(sent)
            p = java_partition(message["key"].encode(), PARTITIONS)
            assert p in base, f"KafkaJS put {message['key']} elsewhere: {send['metadata']}"
            expected[(p, base[p] + taken[p])] = message
            per_partition[p].append(message)
            taken[p] += 1
        for p, n in taken.items():
            if n:
                codecs[p].append(CODEC_IDS[send["compression"]])
    assert len(expected) == len(result["sent"]) == 40

    (meta,) = result["metadata"]["topics"]
    assert meta["name"] == topic
    partitions = sorted(meta["partitions"], key=lambda p: p["partitionId"])
    assert [p["partitionId"] for p in partitions] == list(range(PARTITIONS))
    for p in partitions:
        assert (p["leader"], p["replicas"], p["isr"]) == (1, [1], [1])
        assert p["partitionErrorCode"] == 0

    offsets = {o["partition"]: o for o in result["offsets"]}
    for p in range(PARTITIONS):
        count = len(per_partition[p])
        assert (offsets[p]["low"], offsets[p]["high"]) == ("0", str(count))

    # ListOffsets by time: the first offset whose timestamp is at or after the query
    # (KafkaJS replaces "none" with the high watermark).
    by_time = {o["partition"]: int(o["offset"]) for o in result["offsetsByTimestamp"]}
    for p in range(PARTITIONS):
        times = [int(m["timestamp"]) for m in per_partition[p]]
        later = [i for i, ts in enumerate(times) if ts >= QUERY_TS]
        assert by_time[p] == (later[0] if later else len(times)), f"partition {p}"

    consumed = consume_all(broker.bootstrap, topic, partitions=range(PARTITIONS))
    assert len(consumed) == len(expected)
    for record in consumed:
        message = expected[(record.partition, record.offset)]
        assert record.key == message["key"].encode()
        assert record.value == message["value"].encode()
        assert sorted(record.headers) == sorted(
            (k, v.encode()) for k, v in message["headers"].items()
        )
        assert record.timestamp[1] == int(message["timestamp"])

    # One batch per partition per send, stored with the codec KafkaJS used.
    for p in range(PARTITIONS):
        assert [b.codec_id for b in segment_batches(broker.data_dir, topic, p)] == codecs[p]
