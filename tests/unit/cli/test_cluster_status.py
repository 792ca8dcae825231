"""What `cluster status` makes of a Metadata answer: under-replicated and offline partitions."""

from __future__ import annotations

import datetime
from typing import Any

from kio.schema.metadata.v12 import response as schema
from kio.static.primitive import i32, i32Timedelta

from odradek.cli.cluster_status import BrokerRow, _partitions
from odradek.common.errors import ErrorCode


def partition(index: int, leader: int, replicas: list[int], isr: list[int]) -> Any:
    return schema.MetadataResponsePartition(
        error_code=ErrorCode.NONE,
        partition_index=i32(index),
        leader_id=schema.BrokerId(leader),
        leader_epoch=i32(0),
        replica_nodes=tuple(schema.BrokerId(r) for r in replicas),
        isr_nodes=tuple(schema.BrokerId(r) for r in isr),
        offline_replicas=(),
    )


def topic(name: str, *partitions: Any, error: int = ErrorCode.NONE) -> Any:
    return schema.MetadataResponseTopic(
        error_code=error,
        name=name,
        topic_id=None,
        is_internal=False,
        partitions=partitions,
        topic_authorized_operations=i32(-2147483648),
    )


def test_partitions_short_of_replicas_or_leader_are_reported() -> None:
    metadata = schema.MetadataResponse(
        throttle_time=i32Timedelta.parse(datetime.timedelta(0)),
        brokers=(),
        cluster_id="c",
        controller_id=schema.BrokerId(1),
        topics=(
            topic(
                "orders",
                partition(1, 2, [1, 2, 3], [2]),
                partition(0, 1, [1, 2, 3], [1, 2, 3]),
                partition(2, -1, [3], [3]),
            ),
            topic("missing", error=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
            topic("fine", partition(0, 1, [1], [1])),
        ),
    )
    under, offline, topics, count = _partitions(metadata)
    assert (topics, count) == (2, 4)
    assert under == [
        {"topic": "orders", "partition": 1, "leader": 2, "replicas": [1, 2, 3], "isr": [2]}
    ]
    assert offline == [
        {"topic": "orders", "partition": 2, "leader": -1, "replicas": [3], "isr": [3]}
    ]


def test_a_broker_s_state_says_what_is_wrong_first() -> None:
    row = BrokerRow(1, "h", 1)
    assert row.state == "unreachable"
    row.reachable = True
    assert row.state == "unregistered"
    row.registered = True
    assert row.state == "alive"
    row.fenced = True
    assert row.state == "fenced"
