"""Broker configuration: parsing, checking, and the defaults < file < env < --override order."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from odradek.cli.serve import build_config
from odradek.common.config import (
    BROKER_CONFIG_DEFS,
    TOPIC_CONFIGS,
    BrokerConfig,
    ConfigSource,
    from_environment,
    parse_overrides,
    parse_properties,
    validate_topic_configs,
)
from odradek.common.errors import ErrorCode, InvalidConfigError


def args(config: Path | None = None, overrides: list[str] | None = None) -> argparse.Namespace:
    return argparse.Namespace(
        config=config, override=overrides or [], port=None, host=None, data_dir=None
    )


def test_defaults() -> None:
    config = BrokerConfig()
    assert config["num.partitions"] == 1
    assert config.num_partitions == 1
    assert config["auto.create.topics.enable"] is True
    assert config["log.cleanup.policy"] == ["delete"]
    assert config.source("num.partitions") is ConfigSource.DEFAULT
    assert config.retention_ms() == 168 * 3_600_000
    assert config.roll_ms() == 168 * 3_600_000


def test_explicit_values_are_parsed_and_marked_static() -> None:
    config = BrokerConfig(
        {
            "num.partitions": " 3 ",
            "auto.create.topics.enable": "FALSE",
            "log.dirs": "/a, /b,",
            "log.cleaner.min.cleanable.ratio": "0.25",
            "log.retention.minutes": "5",
        }
    )
    assert config["num.partitions"] == 3
    assert config["auto.create.topics.enable"] is False
    assert config.log_dirs() == [Path("/a"), Path("/b")]
    assert config["log.cleaner.min.cleanable.ratio"] == 0.25
    assert config.retention_ms() == 5 * 60_000
    assert config.source("num.partitions") is ConfigSource.STATIC_BROKER
    assert config.explicit["num.partitions"] == 3


def test_precedence_file_then_environment_then_override(tmp_path: Path) -> None:
    properties = tmp_path / "server.properties"
    properties.write_text(
        "# a comment\n"
        "! another\n"
        "num.partitions=2\n"
        "default.replication.factor : 1\n"
        "log.retention.hours=10\n"
        "message.max.bytes=1000\n"
    )
    environ = {
        "ODRADEK_NUM_PARTITIONS": "4",
        "ODRADEK_LOG_RETENTION_HOURS": "20",
        "ODRADEK_BOOTSTRAP_SERVER": "ignored:9092",
        "HOME": "/root",
    }
    config = build_config(args(properties, ["num.partitions=6"]), environ)
    assert config["num.partitions"] == 6  # override beats environment and file
    assert config["log.retention.hours"] == 20  # environment beats file
    assert config["message.max.bytes"] == 1000  # file beats default
    assert config["min.insync.replicas"] == 1  # default
    assert config.source("min.insync.replicas") is ConfigSource.DEFAULT


def test_parse_properties() -> None:
    text = "a=1\n  b = two words \nc: 3\nd=x=y\n\n# e=5\nflag\nurl=PLAINTEXT://h:9092\n"
    assert parse_properties(text) == {
        "a": "1",
        "b": "two words",
        "c": "3",
        "d": "x=y",
        "flag": "",
        "url": "PLAINTEXT://h:9092",
    }


def test_from_environment_maps_names() -> None:
    assert from_environment({"ODRADEK_LOG_SEGMENT_BYTES": "1024", "PATH": "/bin"}) == {
        "log.segment.bytes": "1024"
    }


def test_unknown_odradek_environment_variable_is_refused() -> None:
    with pytest.raises(InvalidConfigError, match="ODRADEK_NUM_PARTITION does not name"):
        from_environment({"ODRADEK_NUM_PARTITION": "3"})


def test_parse_overrides() -> None:
    assert parse_overrides(["a=1", " b = x=y "]) == {"a": "1", "b": "x=y"}
    with pytest.raises(InvalidConfigError, match=r"key=value.*'num\.partitions'"):
        parse_overrides(["num.partitions"])


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("num.partitions", "three", "Invalid value 'three' for configuration num.partitions"),
        ("num.partitions", "0", "Value must be at least 1"),
        ("node.id", "-1", "Value must be at least 0"),
        ("auto.create.topics.enable", "yes", "expected true or false"),
        ("message.max.bytes", "2147483648", "out of range"),
        ("log.retention.ms", "9223372036854775808", "out of range"),
        ("compression.type", "brotli", "String must be one of"),
        ("log.cleanup.policy", "delete,shred", "Invalid value shred"),
        ("process.roles", "broker,observer", "Invalid value observer"),
        ("log.cleaner.min.cleanable.ratio", "half", "Invalid value 'half'"),
        ("log.message.timestamp.type", "createtime", "CreateTime, LogAppendTime"),
    ],
)
def test_bad_value_is_an_invalid_config_error(name: str, value: str, message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message) as info:
        BrokerConfig({name: value})
    assert info.value.code is ErrorCode.INVALID_CONFIG
    assert name in str(info.value)


def test_unknown_broker_config_is_refused() -> None:
    with pytest.raises(
        InvalidConfigError, match=re.escape("Unknown broker configuration 'num.partition'")
    ):
        BrokerConfig({"num.partition": "1"})


def test_bad_value_from_environment_is_reported_by_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match=re.escape("num.partitions")):
        build_config(args(), {"ODRADEK_NUM_PARTITIONS": "many"})


def test_bad_value_in_file_is_overridden_by_a_good_one(tmp_path: Path) -> None:
    properties = tmp_path / "server.properties"
    properties.write_text("num.partitions=zero\n")
    assert build_config(args(properties, ["num.partitions=2"]), {})["num.partitions"] == 2


def test_topic_configs_are_checked() -> None:
    parsed = validate_topic_configs(
        {"retention.ms": "-1", "cleanup.policy": "compact,delete", "max.message.bytes": "10"}
    )
    assert parsed == {
        "retention.ms": -1,
        "cleanup.policy": ["compact", "delete"],
        "max.message.bytes": 10,
    }
    with pytest.raises(
        InvalidConfigError, match=re.escape("Unknown topic config name: retention.weeks")
    ):
        validate_topic_configs({"retention.weeks": "1"})
    with pytest.raises(InvalidConfigError, match=re.escape("retention.ms")):
        validate_topic_configs({"retention.ms": "-2"})
    with pytest.raises(InvalidConfigError, match=re.escape("segment.bytes")):
        validate_topic_configs({"segment.bytes": "13"})
    assert validate_topic_configs({"retention.ms": None}) == {"retention.ms": None}


def test_every_topic_config_has_a_broker_synonym() -> None:
    config = BrokerConfig()
    for name, (synonym, _definition) in TOPIC_CONFIGS.items():
        assert synonym in BROKER_CONFIG_DEFS, name
        config.topic_default(name)  # resolvable without error
    assert config.topic_default("retention.ms") == config.retention_ms()
    assert config.topic_default("segment.ms") == config.roll_ms()
