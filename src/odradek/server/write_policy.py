"""Who may produce where: clients may not write to the internal topics
(`__consumer_offsets`, `__transaction_state`), whose records only the coordinators write; a
stray record there would corrupt their state. Kafka answers INVALID_TOPIC_EXCEPTION to anyone
but its own admin tools (AdminUtils.AdminClientId)."""

from __future__ import annotations

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.controller import INTERNAL_TOPICS

ADMIN_CLIENT_ID = "__admin_client"


def check_client_may_write(client_id: str | None, topic: str) -> None:
    if topic in INTERNAL_TOPICS and client_id != ADMIN_CLIENT_ID:
        raise KafkaError(
            f"Cannot append to internal topic {topic}", ErrorCode.INVALID_TOPIC_EXCEPTION
        )
