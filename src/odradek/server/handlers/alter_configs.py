"""AlterConfigs (key 33), v0-v2: replace the whole set of configs of topics and brokers.

Every config of a resource that the request leaves out is deleted (the legacy semantics; use
IncrementalAlterConfigs to change one key). Checks and errors are the controller's
(`metadata/config_control.py`); a resource named twice is INVALID_REQUEST for both, as Kafka
answers. validate_only checks everything and commits nothing. Broker loggers are not served.
`alter_each` is the flow both alter APIs share.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.config_control import ConfigController
from odradek.metadata.image import MetadataImage
from odradek.metadata.records import ConfigRecord
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler

Alter = Callable[[ConfigController, MetadataImage, Any], list[ConfigRecord]]


async def alter_each(
    ctx: RequestContext, request: Any, alter: Alter, schema: Any
) -> tuple[Any, ...]:
    """Alter every resource of the request (each whole or not at all) and answer per resource."""
    node = ctx.node
    controller = node.config_controller
    counts = Counter((r.resource_type, r.resource_name) for r in request.resources)

    def alteration(resource: Any) -> Callable[[MetadataImage], list[ConfigRecord]]:
        def run(image: MetadataImage) -> list[ConfigRecord]:
            if counts[(resource.resource_type, resource.resource_name)] > 1:
                raise KafkaError(
                    "Each resource must appear at most once.", ErrorCode.INVALID_REQUEST
                )
            return alter(controller, image, resource)

        return run

    outcomes = await node.alter_configs(
        [alteration(r) for r in request.resources], validate_only=request.validate_only
    )
    return tuple(
        schema.AlterConfigsResourceResponse(
            error_code=ErrorCode.NONE if error is None else error.code,
            error_message=None if error is None else str(error),
            resource_type=resource.resource_type,
            resource_name=resource.resource_name,
        )
        for resource, error in zip(request.resources, outcomes, strict=True)
    )


def _replace_all(
    controller: ConfigController, image: MetadataImage, resource: Any
) -> list[ConfigRecord]:
    controller.check_keys_unique([c.name for c in resource.configs])
    configs = {c.name: c.value for c in resource.configs}
    return controller.legacy_alter(image, resource.resource_type, resource.resource_name, configs)


@handler(ApiKey.ALTER_CONFIGS, versions=(0, 2))
async def handle_alter_configs(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.ALTER_CONFIGS, ctx.api_version)
    responses = await alter_each(ctx, request, _replace_all, schema)
    return schema.AlterConfigsResponse(throttle_time=0, responses=responses)
