"""DeleteGroups (key 42), v0-v2: remove empty groups and their committed offsets.

A group with members is NON_EMPTY_GROUP; an unknown one GROUP_ID_NOT_FOUND. Deleting writes
tombstones for every offset and for the group metadata, answered once they are durable.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import KafkaError
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.DELETE_GROUPS, versions=(0, 2))
async def handle_delete_groups(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.DELETE_GROUPS, ctx.api_version)
    group_ids = list(request.groups_names)
    try:
        coordinator = await ctx.node.groups()
        errors = await coordinator.delete_groups(group_ids)
    except KafkaError as exc:
        errors = [exc.code] * len(group_ids)
    return schema.DeleteGroupsResponse(
        throttle_time=0,
        results=tuple(
            schema.DeletableGroupResult(group_id=group_id, error_code=error)
            for group_id, error in zip(group_ids, errors, strict=True)
        ),
    )
