"""Creating topics the way tests need them: created, and visible with a leader per partition."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

TIMEOUT_S = 10.0


def create_topic(
    admin: Any,
    name: str,
    partitions: int = 1,
    configs: Mapping[str, str] | None = None,
    *,
    timeout_s: float = TIMEOUT_S,
) -> None:
    """Create `name` with confluent-kafka's AdminClient `admin`; return once metadata has it."""
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    futures = admin.create_topics(
        [
            NewTopic(
                name, num_partitions=partitions, replication_factor=1, config=dict(configs or {})
            )
        ],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    futures[name].result(timeout_s)
    deadline = time.monotonic() + timeout_s
    while True:
        topic = admin.list_topics(topic=name, timeout=timeout_s).topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {name} not visible with {partitions} partitions: {topic}")
        time.sleep(0.01)
