"""Helpers of the example's tests (a module name of its own: conftest.py names clash when
several test trees run in one session)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

PARTITIONS = 3


def run_until(services: list[Any], condition: Callable[[], Any], timeout_s: float = 20) -> Any:
    """Let the services poll until `condition` holds (checked between polls)."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"still not done after {timeout_s:g} s")
        for service in services:
            service.poll(0.02)
    return result
