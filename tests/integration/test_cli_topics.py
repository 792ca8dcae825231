"""`odradek topics` as a user runs it: a subprocess against a real broker, checked against what
a real client (confluent-kafka) then sees. Every failure is one line on stderr with exit code 1
(refused) or 2 (bad usage, unreachable, no such topic).
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from cli_helpers import json_out, odradek, one_error_line, unused_address
from confluent_kafka.admin import ConfigResource, ResourceType
from kafka_helpers import TIMEOUT_S, admin, create_topic, unique_topic


def partition_count(bootstrap: str, topic: str) -> int | None:
    info = admin(bootstrap).list_topics(timeout=TIMEOUT_S).topics.get(topic)
    return None if info is None or info.error is not None else len(info.partitions)


def topic_config(bootstrap: str, topic: str, name: str) -> Any:
    client = admin(bootstrap)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return client.describe_configs([resource])[resource].result(TIMEOUT_S)[name]


def test_create_with_partitions_and_configs(broker) -> None:
    topic = unique_topic("cli-create")
    proc = odradek(
        broker,
        "topics",
        "create",
        topic,
        "--partitions",
        "3",
        "--replication-factor",
        "1",
        "--config",
        "retention.ms=60000",
        "--config",
        "cleanup.policy=compact",
        "--output",
        "json",
    )
    assert json_out(proc) == {"topics": [{"topic": topic, "created": True}]}
    assert partition_count(broker.bootstrap, topic) == 3
    assert topic_config(broker.bootstrap, topic, "retention.ms").value == "60000"
    assert topic_config(broker.bootstrap, topic, "cleanup.policy").value == "compact"


def test_create_uses_broker_defaults_and_if_not_exists(broker) -> None:
    topic = unique_topic("cli-create-default")
    proc = odradek(broker, "topics", "create", topic)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"Created topic {topic}.\n"
    assert partition_count(broker.bootstrap, topic) == 1  # num.partitions
    again = odradek(broker, "topics", "create", topic)
    assert (
        one_error_line(again, 1)
        == f"cannot create topic '{topic}': Topic '{topic}' already exists."
    )
    quiet = odradek(broker, "topics", "create", topic, "--if-not-exists", "--output", "json")
    assert json_out(quiet) == {"topics": [{"topic": topic, "created": False}]}


def test_create_refusals(broker) -> None:
    topic = unique_topic("cli-create-bad")
    malformed = odradek(broker, "topics", "create", topic, "--config", "retention.ms")
    assert one_error_line(malformed, 2) == "--config 'retention.ms': expected KEY=VALUE"
    unknown = odradek(broker, "topics", "create", topic, "--config", "retention.mss=1")
    assert "Unknown topic config name: retention.mss" in one_error_line(unknown, 1)
    bad_value = odradek(broker, "topics", "create", topic, "--config", "retention.ms=soon")
    assert "Invalid value 'soon' for configuration retention.ms" in one_error_line(bad_value, 1)
    assert partition_count(broker.bootstrap, topic) is None
    usage = odradek(broker, "topics", "create", topic, "--partitions", "0")
    assert usage.returncode == 2
    assert "must be at least 1" in usage.stderr


def test_list(broker) -> None:
    topic = unique_topic("cli-list")
    create_topic(broker.bootstrap, topic)
    text = odradek(broker, "topics", "list")
    assert text.returncode == 0, text.stderr
    assert topic in text.stdout.splitlines()
    names = json_out(odradek(broker, "topics", "list", "--exclude-internal", "--output", "json"))
    assert topic in names["topics"]
    assert all(not name.startswith("__") for name in names["topics"])


def test_describe(broker) -> None:
    topic = unique_topic("cli-describe")
    create_topic(broker.bootstrap, topic, partitions=2, **{"retention.ms": "1000"})
    [described] = json_out(odradek(broker, "topics", "describe", topic, "--output", "json"))[
        "topics"
    ]
    assert described["topic"] == topic
    assert described["topic_id"]
    assert described["partition_count"] == 2
    assert described["replication_factor"] == 1
    assert described["configs"] == {"retention.ms": "1000"}
    assert described["partitions"] == [
        {"partition": 0, "leader": 1, "replicas": [1], "isr": [1]},
        {"partition": 1, "leader": 1, "replicas": [1], "isr": [1]},
    ]
    text = odradek(broker, "topics", "describe", topic)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"Topic: {topic}\tTopicId: ")
    assert "PartitionCount: 2\tReplicationFactor: 1\tConfigs: retention.ms=1000" in lines[0]
    assert lines[1] == f"\tTopic: {topic}\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1"
    missing = odradek(broker, "topics", "describe", topic + "-nope")
    assert one_error_line(missing, 2) == f"Topic '{topic}-nope' does not exist."


def test_alter_partitions_and_configs(broker) -> None:
    topic = unique_topic("cli-alter")
    create_topic(broker.bootstrap, topic, **{"segment.ms": "100000"})
    proc = odradek(
        broker,
        "topics",
        "alter",
        topic,
        "--partitions",
        "3",
        "--config",
        "retention.ms=5000",
        "--delete-config",
        "segment.ms",
        "--output",
        "json",
    )
    assert json_out(proc) == {
        "topic": topic,
        "partition_count": 3,
        "configs": [
            {"name": "retention.ms", "operation": "SET", "value": "5000"},
            {"name": "segment.ms", "operation": "DELETE", "value": None},
        ],
    }
    assert partition_count(broker.bootstrap, topic) == 3
    assert topic_config(broker.bootstrap, topic, "retention.ms").value == "5000"
    assert topic_config(broker.bootstrap, topic, "segment.ms").is_default
    bad = odradek(broker, "topics", "alter", topic, "--config", "min.insync.replicas=0")
    assert "Value must be at least 1" in one_error_line(bad, 1)
    missing = odradek(broker, "topics", "alter", topic + "-nope", "--partitions", "2")
    assert one_error_line(missing, 2) == f"Topic '{topic}-nope' does not exist."
    nothing = odradek(broker, "topics", "alter", topic)
    assert one_error_line(nothing, 2).startswith("nothing to alter")


def test_add_partitions(broker) -> None:
    topic = unique_topic("cli-grow")
    create_topic(broker.bootstrap, topic)
    proc = odradek(broker, "topics", "add-partitions", topic, "--partitions", "4")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"Topic {topic} now has 4 partitions.\n"
    assert partition_count(broker.bootstrap, topic) == 4
    shrink = odradek(broker, "topics", "add-partitions", topic, "--partitions", "2")
    assert one_error_line(shrink, 1).startswith(f"Topic '{topic}' has 4 partitions")
    missing = odradek(broker, "topics", "add-partitions", topic + "-nope", "--partitions", "2")
    assert one_error_line(missing, 2) == f"Topic '{topic}-nope' does not exist."


def test_delete(broker) -> None:
    topic = unique_topic("cli-delete")
    create_topic(broker.bootstrap, topic)
    gone = topic + "-nope"
    refused = odradek(broker, "topics", "delete", topic, gone)
    assert one_error_line(refused, 2) == f"Topic '{gone}' does not exist."
    assert partition_count(broker.bootstrap, topic) == 1  # nothing deleted
    proc = odradek(broker, "topics", "delete", topic, gone, "--if-exists", "--output", "json")
    assert json_out(proc) == {
        "topics": [{"topic": topic, "deleted": True}, {"topic": gone, "deleted": False}]
    }
    assert partition_count(broker.bootstrap, topic) is None


def test_unreachable_broker(broker) -> None:
    proc = odradek(broker, "topics", "list", bootstrap=unused_address())
    assert one_error_line(proc, 2).startswith("cannot reach a broker at ")


def test_no_verb_prints_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "odradek", "topics"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "add-partitions" in proc.stdout


def test_create_with_a_segment_size_the_log_refuses(broker) -> None:
    topic = unique_topic("cli-create-tiny")
    proc = odradek(broker, "topics", "create", topic, "--config", "segment.bytes=20")
    assert "segment.bytes 20 is too small" in one_error_line(proc, 1)
    assert partition_count(broker.bootstrap, topic) is None
    assert odradek(broker, "topics", "list").returncode == 0  # the broker still serves


def test_delete_records_moves_low_watermarks_or_says_why_not(broker) -> None:
    from kafka_helpers import produce, watermarks

    topic = unique_topic("cli-delete-records")
    compacted = unique_topic("cli-delete-records-compacted")
    create_topic(broker.bootstrap, topic, 2)
    create_topic(broker.bootstrap, compacted, 1, **{"cleanup.policy": "compact"})
    produce(broker.bootstrap, topic, [{"value": b"v", "partition": i % 2} for i in range(10)]).ok()
    proc = odradek(
        broker, "topics", "delete-records", topic, "--partition", "1", "--offset", "3",
        "--output", "json",
    )  # fmt: skip
    assert json_out(proc) == {"topic": topic, "partitions": [{"partition": 1, "low_watermark": 3}]}
    everything = json_out(odradek(broker, "topics", "delete-records", topic, "--output", "json"))
    assert everything["partitions"] == [
        {"partition": 0, "low_watermark": 5},
        {"partition": 1, "low_watermark": 5},
    ]
    assert watermarks(broker.bootstrap, topic, 0) == (5, 5)
    refused = one_error_line(odradek(broker, "topics", "delete-records", compacted), 1)
    assert refused.startswith(f"cannot delete records of {compacted}-0: ")
    missing = odradek(broker, "topics", "delete-records", unique_topic("nope"))
    assert "does not exist" in one_error_line(missing, 2)
