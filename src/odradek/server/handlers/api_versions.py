"""ApiVersions (key 18), v0-v4.

Derived from the handler registry. A request whose version is above what we support is answered
with UNSUPPORTED_VERSION in a v0 response carrying our ranges, so the client can retry with a
version we speak (KIP-511). v3+ clients name their software; a malformed name or version is
INVALID_REQUEST.

v3+ also carry the cluster's features: `transaction.version` is finalized at level 2, which
tells clients that can (Kafka's Java client from 4.0) to use KIP-890 part 2 transactions:
Produce v12 and TxnOffsetCommit v5 add partitions implicitly, EndTxn v5 bumps the epoch.
Clients that do not read features (librdkafka, KafkaJS) keep transaction version 1.
"""

from __future__ import annotations

import re
from typing import Any

from odradek.common.errors import ErrorCode
from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import encode_response, response_schema
from odradek.server.context import RequestContext
from odradek.server.registry import handler, supported_versions

_SOFTWARE = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?$")


# name -> (lowest supported, highest supported = finalized level)
FEATURES = {"transaction.version": (0, 2)}


# Served only by a node that runs a Raft quorum (one that names controller.quorum.voters); as a
# Kafka broker listener does not list controller APIs, a node without one does not list them.
QUORUM_ONLY = frozenset(
    {
        ApiKey.VOTE,
        ApiKey.BEGIN_QUORUM_EPOCH,
        ApiKey.END_QUORUM_EPOCH,
        ApiKey.FETCH_SNAPSHOT,
        ApiKey.ALTER_PARTITION,
        ApiKey.BROKER_REGISTRATION,
        ApiKey.BROKER_HEARTBEAT,
        ApiKey.ALLOCATE_PRODUCER_IDS,
    }
)


def _response(
    version: int, error: ErrorCode, features_epoch: int = -1, quorum: bool = False
) -> Any:
    schema = response_schema(ApiKey.API_VERSIONS, version)
    keys = tuple(
        schema.ApiVersion(api_key=key, min_version=low, max_version=high)
        for key, low, high in supported_versions()
        if quorum or key not in QUORUM_ONLY
    )
    return schema.ApiVersionsResponse(
        error_code=error,
        api_keys=keys,
        throttle_time=0,
        supported_features=tuple(
            schema.SupportedFeatureKey(name=name, min_version=low, max_version=high)
            for name, (low, high) in FEATURES.items()
        )
        if version >= 3
        else (),
        finalized_features_epoch=features_epoch,
        finalized_features=tuple(
            schema.FinalizedFeatureKey(name=name, max_version_level=high, min_version_level=high)
            for name, (_, high) in FEATURES.items()
        )
        if version >= 3
        else (),
        zk_migration_ready=False,
    )


def unsupported_version_response(correlation_id: int, quorum: bool) -> bytes:
    response = _response(0, ErrorCode.UNSUPPORTED_VERSION, quorum=quorum)
    return encode_response(correlation_id, False, response)


@handler(ApiKey.API_VERSIONS, versions=(0, 4))
async def handle_api_versions(ctx: RequestContext, request: Any) -> Any:
    version = ctx.api_version
    if version >= 3:
        name = request.client_software_name
        software_version = request.client_software_version
        if not _SOFTWARE.match(name or "") or not _SOFTWARE.match(software_version or ""):
            return _response(version, ErrorCode.INVALID_REQUEST)
    quorum = ctx.node.raft_quorum() is not None
    return _response(version, ErrorCode.NONE, features_epoch=0, quorum=quorum)
