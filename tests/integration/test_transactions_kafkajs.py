"""KafkaJS transactions against Odradek: js/transactions.js commits one transaction over every
partition of a topic (sending a group offset with it) and aborts the next one (with another
offset); a read_committed confluent-kafka consumer then sees exactly the committed records, in
the order KafkaJS sent them per partition, a read_uncommitted one sees both, and the group's
committed offset is the one the committed transaction carried.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from kafka_helpers import (
    TIMEOUT_S,
    admin,
    consume_all,
    require_kafkajs,
    unique_topic,
)

JS_DIR = Path(__file__).parent / "js"
PARTITIONS = 3


@pytest.fixture(scope="module")
def node() -> str:
    return require_kafkajs(JS_DIR)


def run_script(node: str, bootstrap: str, topic: str, transactional_id: str, group: str) -> Any:
    proc = subprocess.run(
        [node, "transactions.js", bootstrap, topic, transactional_id, group],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def by_partition(bootstrap: str, topic: str, isolation: str) -> dict[int, list[str]]:
    records = consume_all(
        bootstrap, topic, partitions=range(PARTITIONS), **{"isolation.level": isolation}
    )
    out: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        out[record.partition].append((record.value or b"").decode())
    return out


def test_kafkajs_commit_and_abort_seen_by_a_read_committed_consumer(broker, node) -> None:
    topic = unique_topic("kafkajs-txn")
    group = unique_topic("kafkajs-txn-group")
    result = run_script(node, broker.bootstrap, topic, unique_topic("kafkajs-txn-id"), group)
    assert all(m["errorCode"] == 0 for m in result["committedMetadata"]), result

    def split(values: list[str]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
        for value in values:
            out[int(value.split("-")[1])].append(value)
        return out

    committed, aborted = split(result["committed"]), split(result["aborted"])
    assert all(committed.values()) and all(aborted.values())  # every partition in both
    assert by_partition(broker.bootstrap, topic, "read_committed") == committed
    assert by_partition(broker.bootstrap, topic, "read_uncommitted") == {
        p: committed[p] + aborted[p] for p in range(PARTITIONS)
    }

    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])]
    client = admin(broker.bootstrap)  # must outlive its future
    future = client.list_consumer_group_offsets(request, require_stable=True)[group]
    (tp,) = future.result(TIMEOUT_S).topic_partitions
    assert (tp.error, tp.offset) == (None, 7)
