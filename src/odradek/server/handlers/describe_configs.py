"""DescribeConfigs (key 32), v1-v4: topic and broker configs with sources and synonyms.

Resource types: 2 topic, 4 broker. A broker named by this node's id is described whole, with
each config's source (dynamic per-broker, dynamic cluster default, static, default) and, when
asked, its synonyms; the broker "" holds only the cluster-wide dynamic defaults, as in Kafka.
Others (broker loggers, groups) are INVALID_REQUEST until they exist. Types and documentation
are sent from v3.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler
from odradek.server.topic_configs import (
    ConfigEntry,
    broker_entries,
    cluster_default_entries,
    entry_fields,
    topic_entries,
)

RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4


@handler(ApiKey.DESCRIBE_CONFIGS, versions=(1, 4))
async def handle_describe_configs(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.DESCRIBE_CONFIGS, ctx.api_version)
    node = ctx.node
    include_synonyms = bool(getattr(request, "include_synonyms", False))
    include_docs = bool(getattr(request, "include_documentation", False))
    results = []
    for resource in request.resources:
        error, message = ErrorCode.NONE, None
        entries: list[ConfigEntry] = []
        if resource.resource_type == RESOURCE_TOPIC:
            topic = node.image.topic(resource.resource_name)
            if topic is None:
                error = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                message = f"Topic {resource.resource_name} does not exist"
            else:
                entries = topic_entries(node.config, topic.configs)
        elif resource.resource_type == RESOURCE_BROKER:
            if resource.resource_name == "":
                entries = cluster_default_entries(node.image.broker_config(""))
            elif resource.resource_name != str(node.node_id):
                error = ErrorCode.INVALID_REQUEST
                message = (
                    f"Unexpected broker id, expected {node.node_id} or empty string,"
                    f" but received {resource.resource_name}"
                )
            else:
                entries = broker_entries(node.config)
        else:
            error = ErrorCode.INVALID_REQUEST
            message = f"Unsupported resource type {resource.resource_type}"
        keys = resource.configuration_keys
        if keys is not None:
            entries = [e for e in entries if e.name in keys]
        configs = tuple(
            schema.DescribeConfigsResourceResult(
                **{**entry_fields(e), "documentation": e.documentation if include_docs else None},
                synonyms=tuple(
                    schema.DescribeConfigsSynonym(name=n, value=v, source=s)
                    for n, v, s in (e.synonyms if include_synonyms else ())
                ),
            )
            for e in entries
        )
        results.append(
            schema.DescribeConfigsResult(
                error_code=error,
                error_message=message,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
                configs=configs,
            )
        )
    return schema.DescribeConfigsResponse(throttle_time=0, results=tuple(results))
