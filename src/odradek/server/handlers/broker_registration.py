"""BrokerRegistration (key 62), v0-4: a broker registers with the active controller.

Served by the active controller (`server/cluster_control.py`); any other node answers
NOT_CONTROLLER, and a node without a metadata quorum closes the connection, as for the other
controller APIs. The answer comes after the registration is committed; its broker epoch is the
offset of the batch that holds it. A broker of another cluster gets INCONSISTENT_CLUSTER_ID; a
second live broker with the same id DUPLICATE_BROKER_REGISTRATION. Not done: the KIP-858 log
directory ids and v3's previous_broker_epoch are read but not used.
"""

from __future__ import annotations

from typing import Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.broker_control import BrokerRegistrationRequest
from odradek.metadata.records import BrokerEndpoint, BrokerFeature
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import response_schema
from odradek.server.context import RequestContext
from odradek.server.handlers.quorum_support import quorum_of
from odradek.server.registry import handler


@handler(ApiKey.BROKER_REGISTRATION, versions=(0, 4))
async def handle_broker_registration(ctx: RequestContext, request: Any) -> Any:
    quorum_of(ctx)  # no quorum: the connection closes
    schema = response_schema(ApiKey.BROKER_REGISTRATION, ctx.api_version)

    def answer(code: ErrorCode, epoch: int = -1) -> Any:
        return schema.BrokerRegistrationResponse(
            throttle_time=0, error_code=code, broker_epoch=epoch
        )

    if request.cluster_id != ctx.node.cluster_id:
        return answer(ErrorCode.INCONSISTENT_CLUSTER_ID)
    if request.incarnation_id is None or request.broker_id < 0:
        return answer(ErrorCode.INVALID_REQUEST)
    registration = BrokerRegistrationRequest(
        int(request.broker_id),
        request.incarnation_id.bytes,
        tuple(
            BrokerEndpoint(e.name, e.host, int(e.port), int(e.security_protocol))
            for e in request.listeners
        ),
        request.rack,
        tuple(
            BrokerFeature(f.name, int(f.min_supported_version), int(f.max_supported_version))
            for f in request.features
        ),
    )
    try:
        epoch = await ctx.node.cluster_control.register(registration)
    except KafkaError as exc:
        return answer(exc.code)
    return answer(ErrorCode.NONE, epoch)
