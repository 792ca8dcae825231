"""The controller's config duties as a core without I/O: check an alteration, return records.

AlterConfigs (legacy: the request is the resource's whole new set of configs, anything left
out is deleted) and IncrementalAlterConfigs (per key SET, DELETE, APPEND, SUBTRACT) both turn
into `ConfigRecord`s with Kafka's KRaft semantics: a null value deletes the key, a resource is
altered as a whole or not at all, and records change the image only when replayed.

Resources are topics (by name) and brokers: "" for the cluster-wide default, or this broker's
id (any other id is INVALID_REQUEST, as a Kafka broker answers for itself only). Errors follow
Kafka's controller and broker-side checks, with their messages:

- malformed requests (duplicate keys, null values where a value is needed, an unknown
  operation or resource type, a default topic resource) are INVALID_REQUEST;
- unknown topic config names and values that do not parse or are out of range are
  INVALID_CONFIG; so is APPEND or SUBTRACT on a key whose type is not LIST;
- a topic that does not exist is UNKNOWN_TOPIC_OR_PARTITION (checked after the configs, as
  Kafka's controller does);
- a broker config that cannot change at run time is INVALID_REQUEST ("Cannot update these
  configs dynamically: ..."), as Kafka answers.

Where this differs from Kafka, on purpose: an unknown broker config name is INVALID_CONFIG
(Kafka keeps unknown broker keys for plugins; there are none here, so a typo would be kept
silently), and a broker value that does not parse is INVALID_CONFIG (Kafka answers
INVALID_REQUEST and calls that a mistake it keeps for compatibility, KAFKA-13609).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from odradek.common.config import (
    BROKER_CONFIG_DEFS,
    TOPIC_CONFIGS,
    ConfigDef,
    ConfigType,
    render,
)
from odradek.common.errors import ErrorCode, InvalidConfigError, KafkaError
from odradek.metadata.image import MetadataImage
from odradek.metadata.records import RESOURCE_BROKER, RESOURCE_TOPIC, ConfigRecord


class AlterConfigOp(IntEnum):
    SET = 0
    DELETE = 1
    APPEND = 2
    SUBTRACT = 3


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """One key of an IncrementalAlterConfigs resource; `operation` is the raw wire value."""

    name: str
    operation: int
    value: str | None


def _invalid_request(message: str) -> KafkaError:
    return KafkaError(message, ErrorCode.INVALID_REQUEST)


def _invalid_config(message: str) -> KafkaError:
    return KafkaError(message, ErrorCode.INVALID_CONFIG)


class ConfigController:
    """`check_topic_configs` is the storage layer's last word on a topic's whole set of
    configs (the log refuses some values the table accepts, e.g. a segment smaller than a
    batch header); it raises InvalidConfigError. Broker values that are topic defaults
    (log.segment.bytes for segment.bytes, ...) go through it too."""

    def __init__(
        self,
        node_id: int,
        check_topic_configs: Callable[[Mapping[str, str]], None] | None = None,
    ) -> None:
        self.node_id = node_id
        self._check_topic_configs = check_topic_configs

    # -- the two requests ------------------------------------------------------------------

    def incremental_alter(
        self,
        image: MetadataImage,
        resource_type: int,
        resource_name: str,
        changes: Sequence[ConfigChange],
    ) -> list[ConfigRecord]:
        self._check_resource(resource_type, resource_name)
        self._check_keys([c.name for c in changes])
        missing = [
            c.name for c in changes if c.operation != AlterConfigOp.DELETE and c.value is None
        ]
        if missing:
            raise _invalid_request(f"Null value not supported for : {', '.join(missing)}")
        current = self._current(image, resource_type, resource_name)
        updated = dict(current)
        for change in changes:
            try:
                operation = AlterConfigOp(change.operation)
            except ValueError:
                raise _invalid_request(f"Unknown operations type {change.operation}") from None
            if operation is AlterConfigOp.SET:
                assert change.value is not None
                updated[change.name] = change.value
            elif operation is AlterConfigOp.DELETE:
                updated.pop(change.name, None)
            else:
                updated[change.name] = self._list_operation(
                    resource_type, change.name, operation, updated.get(change.name), change.value
                )
        names = [c.name for c in changes]
        return self._records(image, resource_type, resource_name, current, updated, names)

    def legacy_alter(
        self,
        image: MetadataImage,
        resource_type: int,
        resource_name: str,
        configs: Mapping[str, str | None],
    ) -> list[ConfigRecord]:
        self._check_resource(resource_type, resource_name)
        missing = [name for name, value in configs.items() if value is None]
        if missing:
            raise _invalid_request(f"Null value not supported for : {', '.join(missing)}")
        current = self._current(image, resource_type, resource_name)
        updated = {name: value for name, value in configs.items() if value is not None}
        names = list(dict.fromkeys([*configs, *current]))
        return self._records(image, resource_type, resource_name, current, updated, names)

    def check_keys_unique(self, names: Sequence[str]) -> None:
        """Raise INVALID_REQUEST when a key appears twice in one resource (the handler of the
        legacy request calls this: its configs arrive as a list, not a mapping)."""
        self._check_keys(names)

    # -- checks ----------------------------------------------------------------------------

    def _check_resource(self, resource_type: int, resource_name: str) -> None:
        if resource_type == RESOURCE_TOPIC:
            if not resource_name:
                raise _invalid_request("Default topic resources are not allowed.")
        elif resource_type == RESOURCE_BROKER:
            if resource_name:
                try:
                    node_id = int(resource_name)
                except ValueError:
                    raise _invalid_request(
                        f"Node id must be an integer, but it is: {resource_name}"
                    ) from None
                if node_id != self.node_id:
                    raise _invalid_request(
                        f"Unexpected broker id, expected {self.node_id},"
                        f" but received {resource_name}"
                    )
        else:
            raise _invalid_request(f"Unknown resource type {resource_type}")

    @staticmethod
    def _check_keys(names: Sequence[str]) -> None:
        if len(set(names)) != len(names):
            raise _invalid_request("Error due to duplicate config keys")

    @staticmethod
    def _current(image: MetadataImage, resource_type: int, resource_name: str) -> dict[str, str]:
        if resource_type == RESOURCE_TOPIC:
            topic = image.topic(resource_name)
            return dict(topic.configs) if topic is not None else {}
        return dict(image.broker_config(resource_name))

    @staticmethod
    def _definition(resource_type: int, name: str) -> ConfigDef | None:
        if resource_type == RESOURCE_TOPIC:
            entry = TOPIC_CONFIGS.get(name)
            return entry[1] if entry is not None else None
        return BROKER_CONFIG_DEFS.get(name)

    def _list_operation(
        self,
        resource_type: int,
        name: str,
        operation: AlterConfigOp,
        current: str | None,
        value: str | None,
    ) -> str:
        definition = self._definition(resource_type, name)
        if definition is None or definition.type is not ConfigType.LIST:
            raise _invalid_config(
                f"Can't {operation.name} to key {name} because its type is not LIST."
            )
        if current is None:  # the list starts from the default, as in Kafka
            current = render(self._default(resource_type, name))
        items = [item for item in (current or "").split(",") if item]
        given = (value or "").split(",")
        if operation is AlterConfigOp.APPEND:
            items.extend(item for item in dict.fromkeys(given) if item not in items)
        else:
            items = [item for item in items if item not in given]
        return ",".join(items)

    @staticmethod
    def _default(resource_type: int, name: str) -> object:
        if resource_type == RESOURCE_TOPIC:
            synonym, _ = TOPIC_CONFIGS[name]
            return BROKER_CONFIG_DEFS[synonym].default
        return BROKER_CONFIG_DEFS[name].default

    def _validate(self, resource_type: int, configs: Mapping[str, str]) -> None:
        read_only: list[str] = []
        for name, value in configs.items():
            definition = self._definition(resource_type, name)
            if definition is None:
                kind = "topic" if resource_type == RESOURCE_TOPIC else "broker"
                raise _invalid_config(f"Unknown {kind} config name: {name}")
            if definition.read_only:
                read_only.append(name)
                continue
            try:
                definition.parse(value)
            except InvalidConfigError as exc:
                raise _invalid_config(str(exc)) from None
        if read_only:
            raise _invalid_request(
                f"Cannot update these configs dynamically: {', '.join(sorted(read_only))}"
            )

    def _records(
        self,
        image: MetadataImage,
        resource_type: int,
        resource_name: str,
        current: Mapping[str, str],
        updated: Mapping[str, str],
        names: Sequence[str],
    ) -> list[ConfigRecord]:
        # Only the keys being set are checked: a key already stored was checked when it was
        # stored, and a key being deleted needs no check (so a stale name can be removed).
        self._validate(resource_type, {n: updated[n] for n in names if n in updated})
        if self._check_topic_configs is not None:
            if resource_type == RESOURCE_TOPIC:
                as_topic = dict(updated)
            else:  # a broker value is the default of its topic synonym: the log must take it
                as_topic = {
                    topic_name: updated[synonym]
                    for topic_name, (synonym, _) in TOPIC_CONFIGS.items()
                    if synonym in updated
                }
            try:
                self._check_topic_configs(as_topic)
            except InvalidConfigError as exc:
                raise _invalid_config(str(exc)) from None
        if resource_type == RESOURCE_TOPIC and image.topic(resource_name) is None:
            raise KafkaError(
                f"The topic '{resource_name}' does not exist.",
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            )
        records = []
        for name in names:
            value = updated.get(name)
            # Kafka writes broker records even when unchanged so that brokers reload them
            if value != current.get(name) or (
                resource_type == RESOURCE_BROKER and (value is not None or name in current)
            ):
                records.append(ConfigRecord(resource_type, resource_name, name, value))
        return records
