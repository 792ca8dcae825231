"""IncrementalAlterConfigs (key 44), v0-v1: SET, DELETE, APPEND and SUBTRACT single keys of
topics and brokers.

APPEND and SUBTRACT work on LIST configs only, starting from the default when the key is not
set. Checks and errors are the controller's (`metadata/config_control.py`); a resource named
twice is INVALID_REQUEST for both, as Kafka answers. A resource is altered whole or not at
all; validate_only checks everything and commits nothing. Broker loggers are not served.
"""

from __future__ import annotations

from typing import Any

from odradek.metadata.config_control import ConfigChange, ConfigController
from odradek.metadata.image import MetadataImage
from odradek.metadata.records import ConfigRecord
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.handlers.alter_configs import alter_each
from odradek.server.registry import handler


def _change_keys(
    controller: ConfigController, image: MetadataImage, resource: Any
) -> list[ConfigRecord]:
    changes = [ConfigChange(c.name, c.config_operation, c.value) for c in resource.configs]
    return controller.incremental_alter(
        image, resource.resource_type, resource.resource_name, changes
    )


@handler(ApiKey.INCREMENTAL_ALTER_CONFIGS, versions=(0, 1))
async def handle_incremental_alter_configs(ctx: RequestContext, request: Any) -> Any:
    schema = response_schema(ApiKey.INCREMENTAL_ALTER_CONFIGS, ctx.api_version)
    responses = await alter_each(ctx, request, _change_keys, schema)
    return schema.IncrementalAlterConfigsResponse(throttle_time=0, responses=responses)
