"""Admin requests a broker cannot decide go to the active controller (Kafka's forwarding, KIP-590).

In a cluster with a Raft quorum only the active controller writes metadata. A broker that
receives CreateTopics, DeleteTopics, CreatePartitions, AlterConfigs,
IncrementalAlterConfigs, ElectLeaders, AlterPartitionReassignments or
ListPartitionReassignments sends the same request, at the client's version, to the controller and
returns its answer, which comes after the change is committed. Kafka wraps the request in an
Envelope to carry the client's principal; until there is an authorizer there is no principal to
carry, so the request goes as it came.

A broker's own image lags the controller's by a fetch: before a forwarded CreateTopics or
DeleteTopics is answered, the broker waits (a little) until its image shows the change, so the
client's next Metadata request to the same broker agrees with what it was told.

Topics the broker creates for itself (auto-creation on Metadata, the internal topics of the
coordinators) go the same way through `create_topics_at_controller`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.controller import CreatedTopic, NewTopic
from odradek.metadata.image import MetadataImage
from odradek.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from odradek.server.node import Node

FORWARDED = frozenset(
    {
        ApiKey.CREATE_TOPICS,
        ApiKey.DELETE_TOPICS,
        ApiKey.CREATE_PARTITIONS,
        ApiKey.ALTER_CONFIGS,
        ApiKey.INCREMENTAL_ALTER_CONFIGS,
        ApiKey.ELECT_LEADERS,
        ApiKey.ALTER_PARTITION_REASSIGNMENTS,
        ApiKey.LIST_PARTITION_REASSIGNMENTS,
    }
)
SETTLE_TIMEOUT_S = 3.0
CREATE_TOPICS_VERSION = 7


def _settled(api_key: int, request: Any, response: Any) -> Callable[[MetadataImage], bool] | None:
    """What the local image must show before the answer goes back (None: nothing to wait on)."""
    if api_key == ApiKey.CREATE_TOPICS and not request.validate_only:
        created = [t.name for t in response.topics if t.error_code == ErrorCode.NONE]
        return lambda image: all(image.topic(name) is not None for name in created)
    if api_key == ApiKey.DELETE_TOPICS:
        deleted = [r.name for r in response.responses if r.error_code == ErrorCode.NONE and r.name]
        return lambda image: all(image.topic(name) is None for name in deleted)
    return None


async def forward(
    node: Node, api_key: int, request: Any, local: Callable[[], Awaitable[Any]]
) -> Any:
    """The active controller's answer to `request` (`local` runs it when that is this node)."""
    channel = node.controller_channel
    assert channel is not None
    response = await channel.forward(request, local)
    settled = _settled(api_key, request, response)
    if settled is not None:
        await node.wait_for_image(settled, SETTLE_TIMEOUT_S)
    return response


async def create_topics_at_controller(
    node: Node,
    topics: Sequence[NewTopic],
    *,
    validate_only: bool,
    ignore_existing: bool,
    local: Callable[[], Awaitable[dict[str, CreatedTopic | KafkaError]]],
) -> dict[str, CreatedTopic | KafkaError]:
    """`Node.create_topics` on a node that is not (yet) the active controller: the controller
    creates them (`local` does, should this node become it meanwhile). With
    `ignore_existing`, topics that exist already are left out of the answer; either way the
    answer comes once the local image shows every topic that exists."""
    from kio.schema.create_topics.v7 import request as kio_request
    from kio.schema.types import BrokerId, TopicName
    from kio.static.primitive import i16, i32

    if ignore_existing:
        topics = [t for t in topics if node.image.topic(t.name) is None]
        if not topics:
            return {}
    request = kio_request.CreateTopicsRequest(
        topics=tuple(
            kio_request.CreatableTopic(
                name=TopicName(t.name),
                num_partitions=i32(t.num_partitions),
                replication_factor=i16(t.replication_factor),
                assignments=tuple(
                    kio_request.CreatableReplicaAssignment(
                        partition_index=i32(index), broker_ids=tuple(BrokerId(b) for b in brokers)
                    )
                    for index, brokers in sorted(t.assignments.items())
                ),
                configs=tuple(
                    kio_request.CreatableTopicConfig(name=k, value=v) for k, v in t.configs.items()
                ),
            )
            for t in topics
        ),
        validate_only=validate_only,
    )
    channel = node.controller_channel
    assert channel is not None
    try:
        response = await channel.forward(request, local)
    except KafkaError as exc:
        return {t.name: exc for t in topics}
    if isinstance(response, dict):  # created here: this node became the controller
        return response
    outcomes: dict[str, CreatedTopic | KafkaError] = {}
    for result in response.topics:
        code = ErrorCode(result.error_code)
        if code == ErrorCode.TOPIC_ALREADY_EXISTS and ignore_existing:
            continue
        if code != ErrorCode.NONE:
            outcomes[result.name] = KafkaError(result.error_message or code.name, code)
            continue
        topic_id = result.topic_id.bytes if isinstance(result.topic_id, uuid.UUID) else bytes(16)
        outcomes[result.name] = CreatedTopic(
            topic_id, int(result.num_partitions), int(result.replication_factor), {}
        )
    if not validate_only:
        existing = [
            r.name
            for r in response.topics
            if r.error_code in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS)
        ]
        await node.wait_for_image(
            lambda image: all(image.topic(name) is not None for name in existing),
            SETTLE_TIMEOUT_S,
        )
    return outcomes
