"""CreateTopics (key 19), v2-v7.

Each topic is validated by the controller (name, partitions, replication factor, assignments,
configs) and all valid ones are committed together to the metadata log before the response;
with validate_only nothing is committed. A name given twice is INVALID_REQUEST for it. From v5
the result carries the partition count, replication factor and the topic's configs; v7 its id.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.controller import CreatedTopic, NewTopic
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler
from odradek.server.topic_configs import entry_fields, topic_entries


@handler(ApiKey.CREATE_TOPICS, versions=(2, 7))
async def handle_create_topics(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.CREATE_TOPICS, ctx.api_version)
    node = ctx.node
    counts = Counter(topic.name for topic in request.topics)
    new_topics = [
        NewTopic(
            topic.name,
            topic.num_partitions,
            topic.replication_factor,
            {a.partition_index: tuple(a.broker_ids) for a in topic.assignments},
            {c.name: c.value for c in topic.configs},
        )
        for topic in request.topics
        if counts[topic.name] == 1
    ]
    outcomes = await node.create_topics(new_topics, validate_only=request.validate_only)
    results = []
    seen: set[str] = set()
    for topic in request.topics:
        if topic.name in seen:
            continue
        seen.add(topic.name)
        outcome: CreatedTopic | KafkaError
        if counts[topic.name] > 1:
            outcome = KafkaError(
                f"Found multiple entries for topic {topic.name}", ErrorCode.INVALID_REQUEST
            )
        else:
            outcome = outcomes[topic.name]
        if isinstance(outcome, KafkaError):
            results.append(
                schema.CreatableTopicResult(
                    name=topic.name,
                    topic_id=bytes(16),
                    error_code=outcome.code,
                    error_message=str(outcome) or None,
                    topic_config_error_code=0,
                    num_partitions=-1,
                    replication_factor=-1,
                    configs=None,
                )
            )
            continue
        overrides = {
            k: str(v) for k, v in ((c.name, c.value) for c in topic.configs) if v is not None
        }
        configs = (
            tuple(
                schema.CreatableTopicConfigs(**entry_fields(e))
                for e in topic_entries(node.config, overrides)
            )
            if schema.has("CreatableTopicConfigs")
            else None
        )
        results.append(
            schema.CreatableTopicResult(
                name=topic.name,
                topic_id=outcome.topic_id,
                error_code=ErrorCode.NONE,
                error_message=None,
                topic_config_error_code=0,
                num_partitions=outcome.num_partitions,
                replication_factor=outcome.replication_factor,
                configs=configs,
            )
        )
    return schema.CreateTopicsResponse(throttle_time=0, topics=tuple(results))
