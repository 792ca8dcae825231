"""Carrying out fault rules on live requests (the rules themselves are in `faults.py`).

`KafkaConnection` calls `intercept` instead of the handler only while `Node.faults` holds an
engine. Here a request's facts (topics and partitions, group, transactional id) are read from
the decoded request, the engine decides, and the decision is carried out on the connection:

- delay: sleep, then run the handler (later responses on the connection wait, as they would
  behind a slow request in Kafka);
- drop_request: the handler never runs and no response is sent;
- drop_response: the handler runs (the request takes effect) and its response is discarded;
- error: the handler never runs; the response carries the rule's error code in every
  `error_code` field, built from the response schema by mirroring the request's topics and
  partitions;
- close_connection: the connection is closed without a response.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import typing
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import encode_response, response_is_flexible, response_module
from odradek.server.faults import FaultAction, FaultEngine, RequestFacts
from odradek.server.registry import CloseConnection

if TYPE_CHECKING:
    from odradek.server.context import RequestContext

logger = logging.getLogger(__name__)

Respond = Callable[[], Awaitable[bytes | list[bytes] | None]]

_PARTITION_FIELDS = ("partition_index", "partition", "index")
_TOPIC_NAME_FIELDS = ("name", "topic")
# Fields by which a response entity names what it answers: the request's topics, partitions,
# groups or coordinator keys.
_KEY_FIELDS = ("group_id", "key", "transactional_id")
_MIRRORED_FIELDS = frozenset({*_PARTITION_FIELDS, *_TOPIC_NAME_FIELDS, *_KEY_FIELDS, "topic_id"})


async def intercept(
    engine: FaultEngine, ctx: RequestContext, request: Any, respond: Respond
) -> bytes | list[bytes] | None:
    header = ctx.header
    if header.api_key == ApiKey.PRODUCE and request is None and header.api_version >= 3:
        from odradek.protocol.produce import decode_produce_request

        request = decode_produce_request(ctx.frame, ctx.body_position, header.api_version)
    facts = request_facts(ctx, request)
    rule = engine.decide(facts, ctx.node.clock.monotonic_ms())
    if rule is None:
        return await respond()
    logger.info(
        "[Connection %s] fault %s on %s v%d (correlation id %d)",
        ctx.peer,
        rule.action,
        _api_name(header.api_key),
        header.api_version,
        header.correlation_id,
    )
    if rule.action is FaultAction.DELAY:
        await asyncio.sleep(rule.delay_ms / 1000)
        return await respond()
    if rule.action is FaultAction.DROP_REQUEST:
        return None
    if rule.action is FaultAction.DROP_RESPONSE:
        await respond()
        return None
    if rule.action is FaultAction.CLOSE_CONNECTION:
        raise CloseConnection("fault rule: close the connection")
    if request is None or getattr(request, "acks", None) == 0:
        # No response to carry the error (acks=0, or a request we do not decode): Kafka's way
        # to tell a client that a request without a response failed is to close the connection.
        raise CloseConnection("fault rule: error on a request without a response")
    module = response_module(header.api_key, header.api_version)
    response_cls = _entity_class(module)
    response = error_response(response_cls, request, rule.error_code, ctx)
    flexible = response_is_flexible(header.api_key, header.api_version)
    return encode_response(header.correlation_id, flexible, response)


def request_facts(ctx: RequestContext, request: Any) -> RequestFacts:
    header = ctx.header
    if request is None:
        return RequestFacts(header.api_key, header.api_version, header.client_id)
    groups, transactional_ids = _named_ids(request)
    return RequestFacts(
        header.api_key,
        header.api_version,
        header.client_id,
        topics=_topics(ctx, request),
        group_ids=groups,
        transactional_ids=transactional_ids,
    )


def _named_ids(request: Any) -> tuple[frozenset[str], frozenset[str]]:
    """The group ids and transactional ids a request names, wherever its version keeps them."""
    groups: set[str] = set()
    transactional_ids: set[str] = set()
    if (group_id := _str_field(request, "group_id")) is not None:
        groups.add(group_id)
    if (transactional_id := _str_field(request, "transactional_id")) is not None:
        transactional_ids.add(transactional_id)
    for item in getattr(request, "groups", None) or ():  # DescribeGroups, OffsetFetch v8+
        name = item if isinstance(item, str) else _str_field(item, "group_id")
        if name is not None:
            groups.add(name)
    groups.update(g for g in getattr(request, "groups_names", None) or () if isinstance(g, str))
    # FindCoordinator: key_type 0 looks up a group, 1 a transactional id (v4+ batches keys).
    keys = list(getattr(request, "coordinator_keys", None) or ())
    if (key := _str_field(request, "key")) is not None:
        keys.append(key)
    if keys:
        (transactional_ids if getattr(request, "key_type", 0) == 1 else groups).update(keys)
    return frozenset(groups), frozenset(transactional_ids)


def _api_name(api_key: int) -> str:
    try:
        return ApiKey(api_key).name
    except ValueError:
        return str(api_key)


def _str_field(entity: Any, name: str) -> str | None:
    value = getattr(entity, name, None)
    return value if isinstance(value, str) else None


def _topic_name(ctx: RequestContext, topic: Any) -> str | None:
    for name in _TOPIC_NAME_FIELDS:
        value = getattr(topic, name, None)
        if isinstance(value, str) and value:
            return value
    topic_id = getattr(topic, "topic_id", None)
    if isinstance(topic_id, uuid.UUID) and ctx.node.quorum is not None:
        found = ctx.node.image.topic_by_id(topic_id.bytes)
        return found.name if found is not None else None
    return None


def _topics(ctx: RequestContext, request: Any) -> dict[str, frozenset[int]]:
    topics: dict[str, frozenset[int]] = {}
    for topic in getattr(request, "topics", None) or ():
        name = _topic_name(ctx, topic)
        if name is None:
            continue
        partitions: set[int] = set()
        items = getattr(topic, "partitions", None) or getattr(topic, "partition_indexes", None)
        for item in items or ():
            index = item if isinstance(item, int) else _partition_index(item)
            if index is not None:
                partitions.add(index)
        topics[name] = topics.get(name, frozenset()) | partitions
    return topics


def _partition_index(item: Any) -> int | None:
    for name in _PARTITION_FIELDS:
        value = getattr(item, name, None)
        if isinstance(value, int):
            return value
    return None


# --- error responses built from the schema -----------------------------------------------------


def _entity_class(module: Any) -> type[Any]:
    """The top-level response entity of a kio response module."""
    from kio.static.constants import EntityType

    for value in vars(module).values():
        if isinstance(value, type) and getattr(value, "__type__", None) == EntityType.response:
            return value
    raise LookupError(f"no response entity in {module.__name__}")


def error_response(cls: type[Any], source: Any, error_code: int, ctx: RequestContext) -> Any:
    """An instance of response entity `cls` whose every `error_code` is `error_code`.

    Arrays of entities mirror the request's arrays (topics, partitions) so the client finds an
    answer for each thing it asked about; other required fields get neutral values (-1 offsets,
    empty strings, zero durations).
    """
    from kio.schema.errors import ErrorCode

    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kafka_type = f.metadata.get("kafka_type")
        if f.name == "error_code":
            values[f.name] = ErrorCode(error_code)
            continue
        element = _entity_element(hints[f.name])
        if element is not None:
            values[f.name] = tuple(
                error_response(element, item, error_code, ctx)
                for item in _mirror_items(source, element)
            )
            continue
        copied = _copied_value(f.name, kafka_type, source, ctx)
        if copied is not _MISSING:
            values[f.name] = copied
            continue
        if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        values[f.name] = _neutral(kafka_type, hints[f.name])
    return cls(**values)


_MISSING = object()


def _copied_value(name: str, kafka_type: str | None, source: Any, ctx: RequestContext) -> Any:
    """A field the response repeats from the request entity it answers (names, indexes, ids)."""
    if source is None or isinstance(source, int):
        if isinstance(source, int) and name in _PARTITION_FIELDS:
            return source
        return _MISSING
    if isinstance(source, str):  # an array of names: groups, coordinator keys, topics
        if kafka_type == "string" and name in (*_KEY_FIELDS, *_TOPIC_NAME_FIELDS):
            return source
        return _MISSING
    if name in _KEY_FIELDS and kafka_type == "string":
        value = getattr(source, name, None)
        return value if isinstance(value, str) else _MISSING
    if name in _PARTITION_FIELDS:
        index = _partition_index(source)
        return _MISSING if index is None else index
    if name in _TOPIC_NAME_FIELDS and kafka_type == "string":
        return _topic_name(ctx, source) or ""
    if name == "topic_id":
        value = getattr(source, "topic_id", None)
        return value if isinstance(value, uuid.UUID) else _MISSING
    return _MISSING


def _entity_element(hint: Any) -> type[Any] | None:
    """For `tuple[Entity, ...]` (optionally `| None`), the entity class."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is not tuple:
        candidates = [a for a in args if typing.get_origin(a) is tuple]
        if not candidates:
            return None
        args = typing.get_args(candidates[0])
    if args and isinstance(args[0], type) and dataclasses.is_dataclass(args[0]):
        return args[0]
    return None


def _mirror_items(source: Any, element: type[Any]) -> list[Any]:
    """The request array a response array answers: the only array of the source entity.

    Only arrays of things a request names (topics, partitions) are mirrored; others (node
    endpoints, record errors) stay empty.
    """
    if source is None or isinstance(source, (int, str)):
        return []
    if not _MIRRORED_FIELDS & {f.name for f in dataclasses.fields(element)}:
        return []
    arrays = []
    for name in getattr(type(source), "__dataclass_fields__", {}):
        value = getattr(source, name, None)
        if isinstance(value, tuple) and value and not isinstance(value[0], bytes):
            arrays.append(value)
    return list(arrays[0]) if len(arrays) == 1 else []


def _neutral(kafka_type: str | None, hint: Any) -> Any:
    if typing.get_origin(hint) is tuple or any(
        typing.get_origin(a) is tuple for a in typing.get_args(hint)
    ):
        return ()
    if kafka_type is None:
        element = hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None
        return None if element is None else element()
    if kafka_type.startswith(("int", "uint")):
        return -1
    if kafka_type == "float64":
        return 0.0
    if kafka_type == "bool":
        return False
    if kafka_type == "string":
        return ""
    if kafka_type == "uuid":
        return uuid.UUID(int=0)
    if kafka_type in ("timedelta_i32", "timedelta_i64"):
        return datetime.timedelta(0)
    if kafka_type == "datetime_i64":
        return None
    if kafka_type == "error_code":
        from kio.schema.errors import ErrorCode

        return ErrorCode(0)
    if kafka_type in ("bytes", "records"):
        return None if type(None) in typing.get_args(hint) else b""
    return None
