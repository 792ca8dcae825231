"""`odradek configs` as a user runs it: a subprocess against a real broker, checked against what
a real client (confluent-kafka) then sees. Refusals by the broker are exit 1 with its message;
bad usage, an unreachable broker and an unknown topic are exit 2; always one line on stderr.
"""

from __future__ import annotations

from typing import Any

from cli_helpers import json_out, odradek, one_error_line, unused_address
from confluent_kafka.admin import ConfigResource, ResourceType
from kafka_helpers import TIMEOUT_S, admin, create_topic, unique_topic


def one_error(proc: Any, code: int) -> str:
    return one_error_line(proc, code, noun="configs")


def described(bootstrap: str, resource_type: Any, name: str) -> dict[str, Any]:
    client = admin(bootstrap)
    resource = ConfigResource(resource_type, name)
    configs: dict[str, Any] = client.describe_configs([resource])[resource].result(TIMEOUT_S)
    return configs


def test_describe_a_topic(broker) -> None:
    topic = unique_topic("cli-configs-describe")
    create_topic(broker.bootstrap, topic, **{"retention.ms": "1000"})
    document = json_out(
        odradek(broker, "configs", "describe", "--topic", topic, "--output", "json")
    )
    assert document == {
        "resource": {"type": "topic", "name": topic},
        "configs": [
            {
                "name": "retention.ms",
                "value": "1000",
                "source": "DYNAMIC_TOPIC_CONFIG",
                "is_default": False,
                "read_only": False,
                "sensitive": False,
            }
        ],
    }
    every = json_out(
        odradek(broker, "configs", "describe", "--topic", topic, "--all", "--output", "json")
    )
    by_name = {c["name"]: c for c in every["configs"]}
    assert by_name["cleanup.policy"]["value"] == "delete"
    assert by_name["cleanup.policy"]["source"] == "DEFAULT_CONFIG"
    text = odradek(broker, "configs", "describe", "--topic", topic)
    assert text.returncode == 0, text.stderr
    assert text.stdout.split()[:6] == [
        "NAME",
        "VALUE",
        "SOURCE",
        "retention.ms",
        "1000",
        "DYNAMIC_TOPIC_CONFIG",
    ]


def test_set_append_subtract_and_delete(broker) -> None:
    topic = unique_topic("cli-configs-set")
    create_topic(broker.bootstrap, topic)
    proc = odradek(
        broker,
        "configs",
        "set",
        "--topic",
        topic,
        "retention.ms=5000",
        "--append",
        "cleanup.policy=compact",
    )
    assert proc.returncode == 0, proc.stderr
    configs = described(broker.bootstrap, ResourceType.TOPIC, topic)
    assert configs["retention.ms"].value == "5000"
    assert configs["cleanup.policy"].value == "delete,compact"
    proc = odradek(
        broker, "configs", "set", "--topic", topic, "--subtract", "cleanup.policy=delete"
    )
    assert proc.returncode == 0, proc.stderr
    assert described(broker.bootstrap, ResourceType.TOPIC, topic)["cleanup.policy"].value == (
        "compact"
    )
    proc = odradek(
        broker, "configs", "delete", "--topic", topic, "retention.ms", "--output", "json"
    )
    assert json_out(proc) == {
        "resource": {"type": "topic", "name": topic},
        "validate_only": False,
        "changes": [{"name": "retention.ms", "operation": "DELETE", "value": None}],
    }
    assert described(broker.bootstrap, ResourceType.TOPIC, topic)["retention.ms"].is_default


def test_validate_only_changes_nothing(broker) -> None:
    topic = unique_topic("cli-configs-validate")
    create_topic(broker.bootstrap, topic)
    proc = odradek(broker, "configs", "set", "--topic", topic, "retention.ms=1", "--validate-only")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"Would change the configs of topic '{topic}':")
    assert described(broker.bootstrap, ResourceType.TOPIC, topic)["retention.ms"].is_default


def test_broker_configs(fresh_broker) -> None:
    proc = odradek(fresh_broker, "configs", "set", "--broker", "1", "message.max.bytes=2000000")
    assert proc.returncode == 0, proc.stderr
    document = json_out(
        odradek(fresh_broker, "configs", "describe", "--broker", "1", "--output", "json")
    )
    by_name = {c["name"]: c for c in document["configs"]}
    assert by_name["message.max.bytes"]["value"] == "2000000"
    assert by_name["message.max.bytes"]["source"] == "DYNAMIC_BROKER_CONFIG"
    read_only = odradek(fresh_broker, "configs", "set", "--broker", "1", "log.dirs=/elsewhere")
    assert one_error(read_only, 1) == (
        "cannot change the configs of broker '1': Cannot update these configs dynamically: log.dirs"
    )
    proc = odradek(fresh_broker, "configs", "delete", "--broker", "1", "message.max.bytes")
    assert proc.returncode == 0, proc.stderr
    configs = described(fresh_broker.bootstrap, ResourceType.BROKER, "1")
    assert configs["message.max.bytes"].value == "1048588"


def test_refusals(broker) -> None:
    topic = unique_topic("cli-configs-bad")
    create_topic(broker.bootstrap, topic)
    bad_value = odradek(broker, "configs", "set", "--topic", topic, "retention.ms=soon")
    assert one_error(bad_value, 1) == (
        f"cannot change the configs of topic '{topic}': Invalid value 'soon' for configuration"
        " retention.ms: Not a number of type LONG"
    )
    unknown = odradek(broker, "configs", "set", "--topic", topic, "retention.mss=1")
    assert one_error(unknown, 1).endswith("Unknown topic config name: retention.mss")
    not_a_list = odradek(broker, "configs", "set", "--topic", topic, "--append", "retention.ms=1")
    assert one_error(not_a_list, 1).endswith(
        "Can't APPEND to key retention.ms because its type is not LIST."
    )
    missing = odradek(broker, "configs", "describe", "--topic", topic + "-nope")
    assert one_error(missing, 2) == f"Topic '{topic}-nope' does not exist."
    missing = odradek(broker, "configs", "set", "--topic", topic + "-nope", "retention.ms=1")
    assert one_error(missing, 2) == f"Topic '{topic}-nope' does not exist."
    malformed = odradek(broker, "configs", "set", "--topic", topic, "retention.ms")
    assert one_error(malformed, 2) == "config 'retention.ms': expected KEY=VALUE"
    twice = odradek(broker, "configs", "set", "--topic", topic, "a=1", "--append", "a=2")
    assert one_error(twice, 2) == "config 'a' is given more than once"
    usage = odradek(broker, "configs", "describe", "--broker", "one")
    assert usage.returncode == 2
    assert "a broker is named by its id" in usage.stderr


def test_unreachable_broker(broker) -> None:
    proc = odradek(broker, "configs", "describe", "--topic", "orders", bootstrap=unused_address())
    assert one_error(proc, 2).startswith("cannot reach a broker at ")
