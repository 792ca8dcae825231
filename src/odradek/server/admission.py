"""Which requests a starting broker holds until it has caught up with the metadata log.

A restarted broker starts from its last metadata snapshot; until it has applied the metadata
log up to its own registration, its image may lack topics that exist, and a client told
UNKNOWN_TOPIC_OR_PARTITION by it gives up. Kafka's BrokerServer therefore enables its client
listeners only once the controller has answered a heartbeat with is_caught_up (and unfenced
the broker). Here one listener serves a node's clients and its quorum, so the listener stays
open and the held requests wait on `Node.clients_admitted` instead (`broker_lifecycle.py` sets
it, at the latest after its deadline). Replica fetches from other brokers wait too, as they
would at Kafka's closed listener: a broker that has not caught up may hold stale leaderships.

Never held: what the catching up itself needs (the quorum's APIs, the metadata Fetch,
registration and heartbeats, AlterPartition, AllocateProducerIds), ApiVersions and
SaslHandshake (answered from static data), and the admin requests the active controller
answers (`forwarding.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from odradek.protocol.api_keys import ApiKey
from odradek.server.forwarding import FORWARDED
from odradek.server.handlers.quorum_support import is_quorum_fetch

if TYPE_CHECKING:
    from odradek.server.context import RequestContext

NEVER_HELD = frozenset(
    {
        ApiKey.API_VERSIONS,
        ApiKey.SASL_HANDSHAKE,
        ApiKey.VOTE,
        ApiKey.BEGIN_QUORUM_EPOCH,
        ApiKey.END_QUORUM_EPOCH,
        ApiKey.DESCRIBE_QUORUM,
        ApiKey.FETCH_SNAPSHOT,
        ApiKey.BROKER_REGISTRATION,
        ApiKey.BROKER_HEARTBEAT,
        ApiKey.ALTER_PARTITION,
        ApiKey.ALLOCATE_PRODUCER_IDS,
    }
)
QUORUM_FETCH_MIN_VERSION = 12


def held_until_caught_up(ctx: RequestContext, request: Any) -> bool:
    """Whether this request waits for the broker to catch up (asked only while it has not)."""
    api_key = ctx.header.api_key
    if api_key in NEVER_HELD:
        return False
    if api_key == ApiKey.FETCH:
        return not (ctx.api_version >= QUORUM_FETCH_MIN_VERSION and is_quorum_fetch(ctx, request))
    # The active controller answers these (forwarded, or decided here when that is this
    # node), and a forwarded CreateTopics or DeleteTopics waits until the local image shows
    # the change. Holding them would also hold the heartbeats and AlterPartitions that other
    # brokers send the controller over the same connection, behind them.
    return api_key not in FORWARDED
