"""IncrementalAlterConfigs (key 44), v0-v1: SET, DELETE, APPEND and SUBTRACT single keys of
topics and brokers.

APPEND and SUBTRACT work on LIST configs only, starting from the default when the key is not
set. Checks and errors are the controller's (`metadata/config_control.py`); a resource named
twice is INVALID_REQUEST for both, as Kafka answers. A resource is altered whole or not at
all; validate_only checks everything and commits nothing. Broker loggers are not served.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.config_control import ConfigChange
from odradek.metadata.image import MetadataImage
from odradek.metadata.records import ConfigRecord
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler


@handler(ApiKey.INCREMENTAL_ALTER_CONFIGS, versions=(0, 1))
async def handle_incremental_alter_configs(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.INCREMENTAL_ALTER_CONFIGS, ctx.api_version)
    node = ctx.node
    controller = node.config_controller
    counts = Counter((r.resource_type, r.resource_name) for r in request.resources)

    def alteration(resource: Any) -> Callable[[MetadataImage], list[ConfigRecord]]:
        def alter(image: MetadataImage) -> list[ConfigRecord]:
            if counts[(resource.resource_type, resource.resource_name)] > 1:
                raise KafkaError(
                    "Each resource must appear at most once.", ErrorCode.INVALID_REQUEST
                )
            changes = [ConfigChange(c.name, c.config_operation, c.value) for c in resource.configs]
            return controller.incremental_alter(
                image, resource.resource_type, resource.resource_name, changes
            )

        return alter

    outcomes = await node.alter_configs(
        [alteration(r) for r in request.resources], validate_only=request.validate_only
    )
    return schema.IncrementalAlterConfigsResponse(
        throttle_time=0,
        responses=tuple(
            schema.AlterConfigsResourceResponse(
                error_code=ErrorCode.NONE if error is None else error.code,
                error_message=None if error is None else str(error),
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
            )
            for resource, error in zip(request.resources, outcomes, strict=True)
        ),
    )
