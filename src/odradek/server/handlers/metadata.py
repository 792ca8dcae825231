"""Metadata (key 3), v0-v12.

Lists brokers and topics with their partitions, leaders, epochs and topic ids (v10+). Unknown
topics are created when both the broker (auto.create.topics.enable) and the request (v4+
allow_auto_topic_creation) allow it; the creation is committed before the answer, so the
client sees the new topic's leaders at once. Topics may be asked for by id (v10+). Authorized
operations (v8+) are all operations: this broker has no authorizer yet.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.controller import INTERNAL_TOPICS, NewTopic, validate_topic_name
from odradek.metadata.image import TopicImage
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import Schema, response_schema
from odradek.server.cluster_view import controller_id, live_brokers
from odradek.server.context import RequestContext
from odradek.server.registry import handler

# AclOperation bits (Kafka's AclOperation codes)
TOPIC_OPERATIONS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))
CLUSTER_OPERATIONS = sum(1 << op for op in (4, 5, 7, 8, 9, 10, 11, 12))
NOT_REQUESTED = -2147483648
NULL_TOPIC_ID = bytes(16)


def _topic_entry(
    schema: Schema, topic: TopicImage, include_operations: bool, live: frozenset[int]
) -> Any:
    """A partition whose leader is not a live broker is LEADER_NOT_AVAILABLE (retriable: the
    controller is electing one); replicas on brokers that are not live are offline."""
    partitions = tuple(
        schema.MetadataResponsePartition(
            error_code=ErrorCode.NONE if p.leader in live else ErrorCode.LEADER_NOT_AVAILABLE,
            partition_index=p.partition_id,
            leader_id=p.leader if p.leader in live else -1,
            leader_epoch=p.leader_epoch,
            replica_nodes=p.replicas,
            isr_nodes=p.isr,
            offline_replicas=tuple(r for r in p.replicas if r not in live),
        )
        for p in sorted(topic.partitions.values(), key=lambda p: p.partition_id)
    )
    return schema.MetadataResponseTopic(
        error_code=ErrorCode.NONE,
        name=topic.name,
        topic_id=topic.topic_id,
        is_internal=topic.name in INTERNAL_TOPICS,
        partitions=partitions,
        topic_authorized_operations=TOPIC_OPERATIONS if include_operations else NOT_REQUESTED,
    )


def _error_entry(schema: Schema, name: str | None, topic_id: bytes, code: ErrorCode) -> Any:
    return schema.MetadataResponseTopic(
        error_code=code,
        name=name,
        topic_id=topic_id,
        is_internal=False,
        partitions=(),
        topic_authorized_operations=NOT_REQUESTED,
    )


@handler(ApiKey.METADATA, versions=(0, 12))
async def handle_metadata(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    node = ctx.node
    schema = response_schema(ApiKey.METADATA, version)
    include_operations = bool(getattr(request, "include_topic_authorized_operations", False))
    include_cluster_ops = bool(getattr(request, "include_cluster_authorized_operations", False))
    allow_auto_create = bool(getattr(request, "allow_auto_topic_creation", True))

    brokers = live_brokers(node)
    live = frozenset(b.broker_id for b in brokers)
    wanted = request.topics
    if version == 0 and wanted == ():
        wanted = None  # v0: an empty list means every topic
    entries: list[Any] = []
    if wanted is None:
        image = node.image
        entries = [
            _topic_entry(schema, topic, include_operations, live)
            for topic in sorted(image.topics.values(), key=lambda t: t.name)
        ]
    else:
        to_create: list[str] = []
        for item in wanted:
            name = item.name
            topic_id = getattr(item, "topic_id", None)
            if name is None and topic_id is not None and topic_id.bytes != NULL_TOPIC_ID:
                continue
            if name is not None and node.image.topic(name) is None:
                try:
                    validate_topic_name(name)
                except KafkaError:
                    continue
                if node.config["auto.create.topics.enable"] and allow_auto_create:
                    to_create.append(name)
        if to_create:
            await node.create_topics(
                [NewTopic(name, -1, -1, {}, {}) for name in dict.fromkeys(to_create)],
                ignore_existing=True,
            )
        image = node.image
        for item in wanted:
            name = item.name
            topic_id = getattr(item, "topic_id", None)
            raw_id = topic_id.bytes if topic_id is not None else NULL_TOPIC_ID
            if name is None:
                found = image.topic_by_id(raw_id)
                if found is None:
                    entries.append(_error_entry(schema, None, raw_id, ErrorCode.UNKNOWN_TOPIC_ID))
                    continue
            else:
                found = image.topic(name)
                if found is None:
                    try:
                        validate_topic_name(name)
                        code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    except KafkaError:
                        code = ErrorCode.INVALID_TOPIC_EXCEPTION
                    entries.append(_error_entry(schema, name, NULL_TOPIC_ID, code))
                    continue
            entries.append(_topic_entry(schema, found, include_operations, live))

    return schema.MetadataResponse(
        throttle_time=0,
        brokers=tuple(
            schema.MetadataResponseBroker(
                node_id=b.broker_id, host=b.host, port=b.port, rack=b.rack
            )
            for b in brokers
        ),
        cluster_id=node.cluster_id,
        controller_id=controller_id(node, brokers),
        topics=tuple(entries),
        cluster_authorized_operations=CLUSTER_OPERATIONS if include_cluster_ops else NOT_REQUESTED,
    )
