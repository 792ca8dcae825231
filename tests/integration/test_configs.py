"""Topic and broker configs through real admin clients: DescribeConfigs, AlterConfigs and
IncrementalAlterConfigs as confluent-kafka's AdminClient and kafka-python's KafkaAdminClient
use them, with Kafka's errors for bad values and unknown names, and dynamic broker configs
that survive a restart.
"""

from __future__ import annotations

import io
import socket
import struct
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType
from kafka_helpers import TIMEOUT_S, admin, create_topic, produce, unique_topic


def topic_resource(topic: str) -> ConfigResource:
    return ConfigResource(ResourceType.TOPIC, topic)


def describe(bootstrap: str, resource: ConfigResource) -> dict[str, Any]:
    client = admin(bootstrap)  # must outlive its futures
    configs: dict[str, Any] = client.describe_configs([resource])[resource].result(TIMEOUT_S)
    return configs


def incremental(bootstrap: str, resource: ConfigResource, *entries: ConfigEntry) -> None:
    for entry in entries:
        resource.add_incremental_config(entry)
    client = admin(bootstrap)
    client.incremental_alter_configs([resource])[resource].result(TIMEOUT_S)


def refused_incremental(bootstrap: str, resource: ConfigResource) -> Any:
    """The KafkaError an IncrementalAlterConfigs of `resource` fails with."""
    client = admin(bootstrap)
    with pytest.raises(KafkaException) as info:
        client.incremental_alter_configs([resource])[resource].result(TIMEOUT_S)
    return info.value.args[0]


def produce_errors(bootstrap: str, topic: str, value: bytes) -> list[str]:
    result = produce(bootstrap, topic, [{"value": value}])
    return [str(d.error.name()) for d in result.deliveries if d.error is not None]


def test_incremental_set_delete_append_subtract(broker) -> None:
    topic = unique_topic("configs-incremental")
    create_topic(broker.bootstrap, topic)
    incremental(
        broker.bootstrap,
        topic_resource(topic),
        ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND),
    )
    configs = describe(broker.bootstrap, topic_resource(topic))
    assert configs["retention.ms"].value == "60000"
    assert configs["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["cleanup.policy"].value == "delete,compact"

    incremental(
        broker.bootstrap,
        topic_resource(topic),
        ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT),
    )
    configs = describe(broker.bootstrap, topic_resource(topic))
    assert configs["retention.ms"].is_default
    assert configs["cleanup.policy"].value == "compact"


def test_legacy_alter_replaces_every_config(broker) -> None:
    topic = unique_topic("configs-legacy")
    create_topic(broker.bootstrap, topic, **{"retention.ms": "1000"})
    resource = topic_resource(topic)
    resource.set_config("max.message.bytes", "2048")
    client = admin(broker.bootstrap)
    client.alter_configs([resource])[resource].result(TIMEOUT_S)
    configs = describe(broker.bootstrap, topic_resource(topic))
    assert configs["max.message.bytes"].value == "2048"
    assert configs["retention.ms"].is_default  # left out of the request: deleted


def test_changed_max_message_bytes_takes_effect(broker) -> None:
    topic = unique_topic("configs-max-bytes")
    create_topic(broker.bootstrap, topic)
    assert produce_errors(broker.bootstrap, topic, b"x" * 4000) == []
    incremental(
        broker.bootstrap,
        topic_resource(topic),
        ConfigEntry("max.message.bytes", "1000", incremental_operation=AlterConfigOpType.SET),
    )
    assert produce_errors(broker.bootstrap, topic, b"x" * 4000) == ["MSG_SIZE_TOO_LARGE"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("retention.ms", "soon", "Invalid value 'soon' for configuration retention.ms: Not a"),
        ("cleanup.policy", "shred", "Invalid value shred for configuration cleanup.policy"),
        ("min.insync.replicas", "0", "Value must be at least 1"),
        ("no.such.config", "1", "Unknown topic config name: no.such.config"),
    ],
)
def test_bad_topic_configs_are_invalid_config(broker, name, value, message) -> None:
    topic = unique_topic("configs-bad")
    create_topic(broker.bootstrap, topic)
    resource = topic_resource(topic)
    resource.add_incremental_config(
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
    )
    error = refused_incremental(broker.bootstrap, resource)
    assert error.name() == "INVALID_CONFIG"
    assert message in error.str()
    assert describe(broker.bootstrap, topic_resource(topic))["retention.ms"].is_default


def test_append_to_a_non_list_config_is_invalid_config(broker) -> None:
    topic = unique_topic("configs-append")
    create_topic(broker.bootstrap, topic)
    resource = topic_resource(topic)
    resource.add_incremental_config(
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.APPEND)
    )
    error = refused_incremental(broker.bootstrap, resource)
    assert error.name() == "INVALID_CONFIG"
    assert "because its type is not LIST" in error.str()


def test_unknown_topic(broker) -> None:
    resource = topic_resource(unique_topic("configs-missing"))
    resource.add_incremental_config(
        ConfigEntry("retention.ms", "1", incremental_operation=AlterConfigOpType.SET)
    )
    error = refused_incremental(broker.bootstrap, resource)
    assert error.name() == "UNKNOWN_TOPIC_OR_PART"
    client = admin(broker.bootstrap)
    with pytest.raises(KafkaException) as info:
        client.describe_configs([resource])[resource].result(TIMEOUT_S)
    describe_error = info.value.args[0]
    assert describe_error.name() == "UNKNOWN_TOPIC_OR_PART"


def test_validate_only_changes_nothing(broker) -> None:
    topic = unique_topic("configs-validate")
    create_topic(broker.bootstrap, topic)
    resource = topic_resource(topic)
    resource.add_incremental_config(
        ConfigEntry("retention.ms", "5", incremental_operation=AlterConfigOpType.SET)
    )
    client = admin(broker.bootstrap)
    futures = client.incremental_alter_configs([resource], validate_only=True)
    futures[resource].result(TIMEOUT_S)
    assert describe(broker.bootstrap, topic_resource(topic))["retention.ms"].is_default


def test_read_only_broker_config_is_refused(broker) -> None:
    resource = ConfigResource(ResourceType.BROKER, "1")
    resource.add_incremental_config(
        ConfigEntry("log.dirs", "/tmp/x", incremental_operation=AlterConfigOpType.SET)
    )
    error = refused_incremental(broker.bootstrap, resource)
    assert error.name() == "INVALID_REQUEST"
    assert "Cannot update these configs dynamically: log.dirs" in error.str()


@pytest.mark.parametrize("incremental", [False, True], ids=["alter", "incremental"])
def test_kafka_python_describe_and_alter(broker, incremental) -> None:
    topic = unique_topic("configs-kafka-python")
    create_topic(broker.bootstrap, topic)
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30_000)
    try:
        answer = client.alter_configs(
            [KpConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "123456"})],
            incremental=incremental,
        )
        assert answer == {"topic": {topic: "OK"}}
        described = client.describe_configs(
            [KpConfigResource(ConfigResourceType.TOPIC, topic)], include_synonyms=True
        )
        entry = described["topic"][topic]["retention.ms"]
        assert entry["value"] == "123456"
        assert entry["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        assert entry["synonyms"][0] == {
            "name": "retention.ms",
            "value": "123456",
            "source": "DYNAMIC_TOPIC_CONFIG",
        }
        refused = client.alter_configs(
            [KpConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "soon"})],
            incremental=incremental,
        )
        message = str(refused["topic"][topic])
        assert "Invalid value 'soon' for configuration retention.ms: Not a number" in message
        brokers = client.describe_configs(
            [KpConfigResource(ConfigResourceType.BROKER, "1")], config_filter="all"
        )
        assert brokers["broker"]["1"]["num.partitions"]["value"] == "1"
    finally:
        client.close()


# -- the cluster-wide default ("" broker resource) -----------------------------------------------
#
# confluent-kafka and kafka-python both refuse an empty broker name, so these requests are
# written by hand: IncrementalAlterConfigs v0 and DescribeConfigs v1, both non-flexible.


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def _call(bootstrap: str, api_key: int, version: int, body: bytes) -> bytes:
    header = struct.pack(">hhi", api_key, version, 7) + _string("configs-test")
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as sock:
        payload = header + body
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", _receive(sock, 4))[0]
        return _receive(sock, size)[4:]  # past the correlation id


def _receive(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def set_cluster_default(bootstrap: str, name: str, value: str) -> tuple[int, str | None]:
    body = struct.pack(">ib", 1, 4) + _string("") + struct.pack(">i", 1)
    body += _string(name) + struct.pack(">b", 0) + _string(value) + b"\x00"
    answer = io.BytesIO(_call(bootstrap, 44, 0, body))
    _throttle, count, error_code, message_length = struct.unpack(">iihh", answer.read(12))
    assert count == 1
    message = answer.read(message_length).decode() if message_length >= 0 else None
    return error_code, message


def describe_cluster_default(bootstrap: str) -> dict[str, tuple[str | None, int]]:
    body = struct.pack(">ib", 1, 4) + _string("") + struct.pack(">i", -1) + b"\x00"
    answer = io.BytesIO(_call(bootstrap, 32, 1, body))

    def string() -> str | None:
        length = struct.unpack(">h", answer.read(2))[0]
        return answer.read(length).decode() if length >= 0 else None

    _throttle, count, error_code = struct.unpack(">iih", answer.read(10))
    assert (count, error_code) == (1, 0)
    string()  # error message
    answer.read(1)  # resource type
    string()  # resource name
    configs: dict[str, tuple[str | None, int]] = {}
    for _ in range(struct.unpack(">i", answer.read(4))[0]):
        name, value = string(), string()
        _read_only, source, _sensitive = struct.unpack(">?b?", answer.read(3))
        for _ in range(struct.unpack(">i", answer.read(4))[0]):
            string(), string(), answer.read(1)
        assert name is not None
        configs[name] = (value, source)
    return configs


def test_dynamic_broker_configs_survive_a_restart(fresh_broker) -> None:
    bootstrap = fresh_broker.bootstrap
    topic = unique_topic("configs-dynamic")
    create_topic(bootstrap, topic)
    assert set_cluster_default(bootstrap, "log.retention.ms", "7200000") == (0, None)
    incremental(
        bootstrap,
        ConfigResource(ResourceType.BROKER, "1"),
        ConfigEntry("message.max.bytes", "5000", incremental_operation=AlterConfigOpType.SET),
    )
    fresh_broker.restart()
    dynamic_default = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value
    assert describe_cluster_default(bootstrap) == {"log.retention.ms": ("7200000", dynamic_default)}
    configs = describe(bootstrap, ConfigResource(ResourceType.BROKER, "1"))
    assert configs["message.max.bytes"].value == "5000"
    assert configs["message.max.bytes"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert configs["log.retention.ms"].source == dynamic_default
    topic_configs = describe(bootstrap, topic_resource(topic))
    assert topic_configs["retention.ms"].value == "7200000"
    assert topic_configs["max.message.bytes"].value == "5000"
    # the per-broker value is what the log enforces
    assert produce_errors(bootstrap, topic, b"x" * 8000) == ["MSG_SIZE_TOO_LARGE"]


def test_cluster_default_refuses_bad_values(broker) -> None:
    code, message = set_cluster_default(broker.bootstrap, "log.retention.ms", "never")
    assert code == 40  # INVALID_CONFIG
    assert message is not None and "log.retention.ms" in message
    code, message = set_cluster_default(broker.bootstrap, "no.such.thing", "1")
    assert (code, message) == (40, "Unknown broker config name: no.such.thing")


def test_a_segment_size_the_log_refuses_is_invalid_config(broker) -> None:
    topic = unique_topic("configs-tiny-segment")
    create_topic(broker.bootstrap, topic)
    resource = topic_resource(topic)
    resource.add_incremental_config(
        ConfigEntry("segment.bytes", "20", incremental_operation=AlterConfigOpType.SET)
    )
    error = refused_incremental(broker.bootstrap, resource)
    assert error.name() == "INVALID_CONFIG"
    assert "segment.bytes" in error.str()
    # the same value as the cluster-wide default would break every topic's log
    code, message = set_cluster_default(broker.bootstrap, "log.segment.bytes", "20")
    assert code == 40
    assert message is not None and "segment.bytes" in message
