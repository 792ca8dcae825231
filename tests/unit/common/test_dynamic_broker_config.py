"""Dynamic broker configs over the static ones: per-broker, then the cluster-wide default, then
server.properties, then the built-in default, each layer reported with its source."""

from __future__ import annotations

from odradek.common.config import BrokerConfig, ConfigSource


def test_precedence_and_sources() -> None:
    config = BrokerConfig({"message.max.bytes": "1000"})
    assert config["message.max.bytes"] == 1000
    config.set_dynamic({"message.max.bytes": "2000"}, {})
    assert config["message.max.bytes"] == 2000
    assert config.source("message.max.bytes") is ConfigSource.DYNAMIC_DEFAULT_BROKER
    config.set_dynamic({"message.max.bytes": "2000"}, {"message.max.bytes": "3000"})
    assert config["message.max.bytes"] == 3000
    assert config.source("message.max.bytes") is ConfigSource.DYNAMIC_BROKER
    assert config.layers("message.max.bytes") == [
        (ConfigSource.DYNAMIC_BROKER, 3000),
        (ConfigSource.DYNAMIC_DEFAULT_BROKER, 2000),
        (ConfigSource.STATIC_BROKER, 1000),
        (ConfigSource.DEFAULT, 1048588),
    ]
    config.set_dynamic({}, {})
    assert config["message.max.bytes"] == 1000
    assert config.source("message.max.bytes") is ConfigSource.STATIC_BROKER


def test_topic_defaults_follow_the_dynamic_layers() -> None:
    config = BrokerConfig()
    config.set_dynamic({"log.retention.ms": "5000", "log.roll.ms": "7000"}, {})
    assert config.topic_default("retention.ms") == 5000
    assert config.topic_default("segment.ms") == 7000


def test_values_the_controller_would_refuse_are_skipped() -> None:
    config = BrokerConfig()
    config.set_dynamic(
        {"message.max.bytes": "lots", "log.dirs": "/elsewhere", "no.such.name": "1"}, {}
    )
    assert config["message.max.bytes"] == 1048588
    assert config["log.dirs"] is None
    assert config.source("log.dirs") is ConfigSource.DEFAULT
