"""ElectLeaders (key 43), v0-v2: elect the preferred (0) or, for a leaderless partition, any
live (1, unclean) replica as leader, answered by the active controller once the elections are
committed (`metadata/elections.py` decides; other brokers forward the request).

v0 has no election type (always preferred) and no top-level error code; v2 is the flexible
version. `topic_partitions` null means every partition: those already led as asked are left
out of the answer, and every topic is listed, as Kafka's controller does. Per partition:
UNKNOWN_TOPIC_OR_PARTITION, ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE,
ELIGIBLE_LEADERS_NOT_AVAILABLE. An unknown election type is INVALID_REQUEST for the whole
request (and each named partition); the request `timeout` is not needed, the answer comes after
the commit.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.elections import ElectionOutcome
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler

PREFERRED = 0


@handler(ApiKey.ELECT_LEADERS, versions=(0, 2))
async def handle_elect_leaders(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    schema = response_schema(ApiKey.ELECT_LEADERS, version)
    election_type = int(request.election_type) if version >= 1 else PREFERRED
    wanted: dict[str, list[int]] | None = None
    if request.topic_partitions is not None:
        wanted = {}
        for topic in request.topic_partitions:
            wanted.setdefault(topic.topic, []).extend(int(p) for p in topic.partitions)
    topics = list(wanted) if wanted is not None else sorted(ctx.node.image.topics)
    error = ErrorCode.NONE
    try:
        outcomes = await ctx.node.cluster_control.elect_leaders(election_type, wanted)
    except KafkaError as exc:
        error = exc.code
        outcomes = [
            ElectionOutcome(name, partition_id, exc.code, str(exc) or None)
            for name, ids in (wanted or {}).items()
            for partition_id in ids
        ]
    by_topic: dict[str, list[Any]] = {name: [] for name in topics}
    for outcome in outcomes:
        by_topic.setdefault(outcome.topic, []).append(
            schema.PartitionResult(
                partition_id=outcome.partition_id,
                error_code=outcome.error,
                error_message=outcome.message,
            )
        )
    fields: dict[str, Any] = {"error_code": error} if version >= 1 else {}
    return schema.ElectLeadersResponse(
        throttle_time=0,
        replica_election_results=tuple(
            schema.ReplicaElectionResult(topic=name, partition_result=tuple(results))
            for name, results in by_topic.items()
        ),
        **fields,
    )
