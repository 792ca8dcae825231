"""Integration tests: real Kafka clients over real sockets against `odradek serve` subprocesses.

The broker fixtures (`broker`, `fresh_broker`, `broker_factory`) live in tests/conftest.py.
Helpers shared by the client tests live in kafka_helpers.py next to this file.
"""

from __future__ import annotations

import pytest
from kafka_helpers import unique_topic


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A topic name no other test uses."""
    name = request.node.name.split("[")[0].removeprefix("test_").replace("_", "-")
    return unique_topic(name[:40])
