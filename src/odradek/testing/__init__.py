"""odradek.testing: real Kafka-compatible brokers for tests, with fault injection.

The pytest plugin (`odradek.testing.plugin`, registered through the `pytest11` entry point) gives
the fixtures; what tests call directly is exported here.
"""

from odradek.testing.broker import InProcessBroker, KafkaBroker, ProcessBroker
from odradek.testing.cluster import ClusterBroker, KafkaCluster
from odradek.testing.inspection import (
    Record,
    assert_per_key_order,
    committed_offsets,
    consumer_lag,
    murmur2,
    partition_for,
    read_records,
    wait_until,
)

__all__ = [
    "ClusterBroker",
    "InProcessBroker",
    "KafkaBroker",
    "KafkaCluster",
    "ProcessBroker",
    "Record",
    "assert_per_key_order",
    "committed_offsets",
    "consumer_lag",
    "murmur2",
    "partition_for",
    "read_records",
    "wait_until",
]
