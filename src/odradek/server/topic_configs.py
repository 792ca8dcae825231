"""Config entries as DescribeConfigs and CreateTopics report them: value, source, synonyms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from odradek.common.config import (
    BROKER_CONFIG_DEFS,
    BROKER_CONFIGS,
    CONFIG_SOURCE_IDS,
    CONFIG_TYPE_IDS,
    TOPIC_CONFIGS,
    BrokerConfig,
    ConfigSource,
    render,
)


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    name: str
    value: str | None
    source: int
    read_only: bool
    config_type: int
    documentation: str
    synonyms: tuple[tuple[str, str | None, int], ...]


def _synonyms(config: BrokerConfig, name: str) -> list[tuple[str, str | None, int]]:
    return [
        (name, render(value), CONFIG_SOURCE_IDS[source]) for source, value in config.layers(name)
    ]


def topic_entries(config: BrokerConfig, overrides: Mapping[str, str]) -> list[ConfigEntry]:
    """Every topic config: the topic's own value, else its broker synonym's. Synonyms list the
    topic's value, then each layer of the broker synonym that sets it (dynamic per-broker,
    dynamic cluster default, static, default), as Kafka orders them."""
    entries = []
    for name, (synonym, definition) in sorted(TOPIC_CONFIGS.items()):
        broker_source = CONFIG_SOURCE_IDS[config.source(synonym)]
        broker_value = render(config.topic_default(name))
        synonyms: list[tuple[str, str | None, int]] = []
        value: str | None
        if name in overrides:
            value, source = overrides[name], CONFIG_SOURCE_IDS[ConfigSource.TOPIC]
            synonyms.append((name, value, source))
        else:
            value, source = broker_value, broker_source
        synonyms.extend(_synonyms(config, synonym) or [(synonym, broker_value, broker_source)])
        entries.append(
            ConfigEntry(
                name,
                value,
                source,
                False,
                CONFIG_TYPE_IDS[definition.type],
                definition.doc,
                tuple(synonyms),
            )
        )
    return entries


def broker_entries(config: BrokerConfig) -> list[ConfigEntry]:
    """Every broker config as this broker resolves it (the resource named by its id)."""
    entries = []
    for definition in BROKER_CONFIGS:
        source = CONFIG_SOURCE_IDS[config.source(definition.name)]
        value = render(config[definition.name])
        entries.append(
            ConfigEntry(
                definition.name,
                value,
                source,
                definition.read_only,
                CONFIG_TYPE_IDS[definition.type],
                definition.doc,
                tuple(_synonyms(config, definition.name)),
            )
        )
    return entries


def cluster_default_entries(dynamic_defaults: Mapping[str, str]) -> list[ConfigEntry]:
    """The broker resource "": only the configs set as cluster-wide dynamic defaults, as
    Kafka describes it."""
    source = CONFIG_SOURCE_IDS[ConfigSource.DYNAMIC_DEFAULT_BROKER]
    entries = []
    for name, value in sorted(dynamic_defaults.items()):
        definition = BROKER_CONFIG_DEFS.get(name)
        if definition is None:
            continue
        entries.append(
            ConfigEntry(
                name,
                value,
                source,
                definition.read_only,
                CONFIG_TYPE_IDS[definition.type],
                definition.doc,
                ((name, value, source),),
            )
        )
    return entries


def entry_fields(entry: ConfigEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "value": entry.value,
        "read_only": entry.read_only,
        "config_source": entry.source,
        "is_sensitive": False,
        "config_type": entry.config_type,
        "documentation": entry.documentation,
        "is_default": entry.source == CONFIG_SOURCE_IDS[ConfigSource.DEFAULT],
    }
