"""ConfigController: alterations become ConfigRecords with Kafka's semantics; refusals carry
Kafka's error codes and messages; nothing changes until the records are replayed."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from odradek.common.errors import ErrorCode, InvalidConfigError, KafkaError
from odradek.metadata.config_control import AlterConfigOp, ConfigChange, ConfigController
from odradek.metadata.image import MetadataImage
from odradek.metadata.records import (
    RESOURCE_BROKER,
    RESOURCE_TOPIC,
    ConfigRecord,
    TopicRecord,
)

TOPIC_ID = bytes(range(16))


def image(configs: Mapping[str, str] | None = None) -> MetadataImage:
    records: list = [TopicRecord("t", TOPIC_ID)]
    records += [ConfigRecord(RESOURCE_TOPIC, "t", k, v) for k, v in (configs or {}).items()]
    return MetadataImage().apply(records)


def op(name: str, operation: AlterConfigOp | int, value: str | None = None) -> ConfigChange:
    return ConfigChange(name, int(operation), value)


def refusal(call, code: ErrorCode) -> str:
    with pytest.raises(KafkaError) as info:
        call()
    assert info.value.code == code
    return str(info.value)


def topic_configs(records: list[ConfigRecord], start: MetadataImage) -> dict[str, str]:
    topic = start.apply(records).topic("t")
    assert topic is not None
    return dict(topic.configs)


def test_set_and_delete() -> None:
    start = image({"retention.ms": "1"})
    records = ConfigController(1).incremental_alter(
        start,
        RESOURCE_TOPIC,
        "t",
        [
            op("segment.bytes", AlterConfigOp.SET, "1048576"),
            op("retention.ms", AlterConfigOp.DELETE),
        ],
    )
    assert topic_configs(records, start) == {"segment.bytes": "1048576"}


def test_append_and_subtract_start_from_the_default() -> None:
    start = image()
    controller = ConfigController(1)
    records = controller.incremental_alter(
        start, RESOURCE_TOPIC, "t", [op("cleanup.policy", AlterConfigOp.APPEND, "compact,delete")]
    )
    assert topic_configs(records, start) == {"cleanup.policy": "delete,compact"}
    records = controller.incremental_alter(
        start, RESOURCE_TOPIC, "t", [op("cleanup.policy", AlterConfigOp.SUBTRACT, "delete")]
    )
    assert topic_configs(records, start) == {"cleanup.policy": ""}


def test_unchanged_topic_values_write_nothing() -> None:
    start = image({"retention.ms": "1"})
    controller = ConfigController(1)
    assert (
        controller.incremental_alter(
            start, RESOURCE_TOPIC, "t", [op("retention.ms", AlterConfigOp.SET, "1")]
        )
        == []
    )
    # deleting a key that is not set (even an unknown one) is a no-op, as in Kafka
    assert (
        controller.incremental_alter(start, RESOURCE_TOPIC, "t", [op("x.y", AlterConfigOp.DELETE)])
        == []
    )


def test_legacy_alter_deletes_what_it_leaves_out() -> None:
    start = image({"retention.ms": "1", "segment.ms": "100"})
    records = ConfigController(1).legacy_alter(start, RESOURCE_TOPIC, "t", {"segment.ms": "200"})
    assert topic_configs(records, start) == {"segment.ms": "200"}


@pytest.mark.parametrize(
    ("changes", "code", "message"),
    [
        (
            [op("retention.ms", AlterConfigOp.SET, "soon")],
            ErrorCode.INVALID_CONFIG,
            "Invalid value 'soon' for configuration retention.ms: Not a number of type LONG",
        ),
        (
            [op("nope", AlterConfigOp.SET, "1")],
            ErrorCode.INVALID_CONFIG,
            "Unknown topic config name: nope",
        ),
        (
            [op("retention.ms", AlterConfigOp.APPEND, "1")],
            ErrorCode.INVALID_CONFIG,
            "Can't APPEND to key retention.ms because its type is not LIST.",
        ),
        (
            [op("retention.ms", AlterConfigOp.SET, None)],
            ErrorCode.INVALID_REQUEST,
            "Null value not supported for : retention.ms",
        ),
        (
            [op("retention.ms", 9, "1")],
            ErrorCode.INVALID_REQUEST,
            "Unknown operations type 9",
        ),
        (
            [op("retention.ms", AlterConfigOp.SET, "1"), op("retention.ms", AlterConfigOp.DELETE)],
            ErrorCode.INVALID_REQUEST,
            "Error due to duplicate config keys",
        ),
    ],
)
def test_topic_refusals(changes, code, message) -> None:
    controller = ConfigController(1)
    text = refusal(
        lambda: controller.incremental_alter(image(), RESOURCE_TOPIC, "t", changes), code
    )
    assert text == message


def test_resource_refusals() -> None:
    controller = ConfigController(1)
    change = [op("retention.ms", AlterConfigOp.SET, "1")]
    assert (
        refusal(
            lambda: controller.incremental_alter(image(), RESOURCE_TOPIC, "gone", change),
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        )
        == "The topic 'gone' does not exist."
    )
    refusal(
        lambda: controller.incremental_alter(image(), RESOURCE_TOPIC, "", change),
        ErrorCode.INVALID_REQUEST,
    )
    refusal(
        lambda: controller.incremental_alter(image(), 99, "x", change), ErrorCode.INVALID_REQUEST
    )
    assert (
        refusal(
            lambda: controller.incremental_alter(image(), RESOURCE_BROKER, "2", []),
            ErrorCode.INVALID_REQUEST,
        )
        == "Unexpected broker id, expected 1, but received 2"
    )


def test_broker_configs() -> None:
    controller = ConfigController(1)
    start = MetadataImage()
    set_default = [op("message.max.bytes", AlterConfigOp.SET, "5000")]
    records = controller.incremental_alter(start, RESOURCE_BROKER, "", set_default)
    assert records == [ConfigRecord(RESOURCE_BROKER, "", "message.max.bytes", "5000")]
    after = start.apply(records)
    # broker records are written even when unchanged, so brokers reload them (KAFKA-14136)
    assert controller.incremental_alter(after, RESOURCE_BROKER, "", set_default) == records
    assert (
        refusal(
            lambda: controller.incremental_alter(
                start, RESOURCE_BROKER, "1", [op("log.dirs", AlterConfigOp.SET, "/x")]
            ),
            ErrorCode.INVALID_REQUEST,
        )
        == "Cannot update these configs dynamically: log.dirs"
    )
    assert (
        refusal(
            lambda: controller.incremental_alter(
                start, RESOURCE_BROKER, "1", [op("log.dir.typo", AlterConfigOp.SET, "/x")]
            ),
            ErrorCode.INVALID_CONFIG,
        )
        == "Unknown broker config name: log.dir.typo"
    )


def test_the_storage_check_has_the_last_word() -> None:
    def check(configs: Mapping[str, str]) -> None:
        if int(configs.get("segment.bytes", "1048576")) < 100:
            raise InvalidConfigError("segment.bytes 20 is too small")

    controller = ConfigController(1, check)
    change = [op("segment.bytes", AlterConfigOp.SET, "20")]
    text = refusal(
        lambda: controller.incremental_alter(image(), RESOURCE_TOPIC, "t", change),
        ErrorCode.INVALID_CONFIG,
    )
    assert text == "segment.bytes 20 is too small"


def test_the_storage_check_sees_broker_defaults_as_topic_configs() -> None:
    seen: list[dict[str, str]] = []
    controller = ConfigController(1, lambda configs: seen.append(dict(configs)))
    change = [op("log.segment.bytes", AlterConfigOp.SET, "2000000")]
    controller.incremental_alter(MetadataImage(), RESOURCE_BROKER, "", change)
    assert seen == [{"segment.bytes": "2000000"}]
