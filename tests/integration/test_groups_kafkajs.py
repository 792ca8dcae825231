"""Consumer groups with KafkaJS: js/group.js runs a group of two members that share a topic's
partitions, commit each message once processed, and leave; run again, the group resumes from
the committed offsets: nothing is read twice, nothing is skipped.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions
from kafka_helpers import (
    TIMEOUT_S,
    admin,
    create_topic,
    produce,
    require_kafkajs,
    unique_topic,
    watermarks,
)

JS_DIR = Path(__file__).parent / "js"
PARTITIONS = 3


@pytest.fixture(scope="module")
def node() -> str:
    return require_kafkajs(JS_DIR)


def run_group(
    node: str, bootstrap: str, topic: str, group: str, produce_count: int, expected: int
) -> dict[str, Any]:
    args = [bootstrap, topic, group, str(produce_count), str(expected), "kjs"]
    proc = subprocess.run(
        [node, "group.js", *args],
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


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    client = admin(bootstrap)  # must outlive its future
    request = [ConsumerGroupTopicPartitions(group)]
    offsets = client.list_consumer_group_offsets(request)[group].result(TIMEOUT_S)
    return {tp.partition: tp.offset for tp in offsets.topic_partitions if tp.topic == topic}


def test_kafkajs_group_shares_commits_and_resumes(broker, node) -> None:
    topic = unique_topic("kafkajs-group")
    group = unique_topic("kafkajs-group")
    create_topic(broker.bootstrap, topic, PARTITIONS)

    # First run: the members share the partitions, then the script produces 45 records.
    first = run_group(node, broker.bootstrap, topic, group, produce_count=45, expected=45)
    shared = {member: set(ps) for member, ps in first["shared"].items()}
    assert sorted(shared) == ["kjs-a", "kjs-b"]
    assert not shared["kjs-a"] & shared["kjs-b"]
    assert shared["kjs-a"] | shared["kjs-b"] == set(range(PARTITIONS))
    keys = [c["key"] for c in first["consumed"]]
    assert sorted(keys) == sorted(first["produced"]), "each record exactly once"
    for c in first["consumed"]:
        assert c["partition"] in shared[c["member"]], c
    ends = {p: watermarks(broker.bootstrap, topic, p)[1] for p in range(PARTITIONS)}
    assert sum(ends.values()) == 45
    assert committed(broker.bootstrap, group, topic) == ends

    # Records arrive while nobody is consuming; the second run starts from the commits (it
    # would start from the beginning without them: fromBeginning is set).
    later = [f"later-{i}".encode() for i in range(30)]
    produce(
        broker.bootstrap,
        topic,
        [{"key": k, "value": b"v", "partition": i % PARTITIONS} for i, k in enumerate(later)],
    ).ok()
    second = run_group(node, broker.bootstrap, topic, group, produce_count=0, expected=30)
    got = [c["key"].encode() for c in second["consumed"]]
    assert sorted(got) == sorted(later), "nothing redelivered, nothing skipped"
    assert all(c["offset"] >= ends[c["partition"]] for c in second["consumed"])
    shared = {member: set(ps) for member, ps in second["shared"].items()}
    assert shared["kjs-a"] | shared["kjs-b"] == set(range(PARTITIONS))
    assert committed(broker.bootstrap, group, topic) == {
        p: watermarks(broker.bootstrap, topic, p)[1] for p in range(PARTITIONS)
    }
