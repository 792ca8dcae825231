"""odradek.testing: real Kafka-compatible brokers for tests, with fault injection.

The pytest plugin (`odradek.testing.plugin`, registered through the `pytest11` entry point) gives
the fixtures; what tests call directly is exported here.
"""

from odradek.testing.broker import InProcessBroker, KafkaBroker, ProcessBroker

__all__ = ["InProcessBroker", "KafkaBroker", "ProcessBroker"]
