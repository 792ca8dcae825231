"""Exactly-once consume-transform-produce under SIGKILL: txn_copier.py copies 100,000 keyed
records from a 4-partition topic to another with send_offsets_to_transaction, committing every
500 records, and is killed 3 times at random points (after a random number of its commits plus
a random delay, or between a random batch's writes and its commit) and restarted with the same
transactional.id. The read_committed output must equal the input partition by partition:
nothing lost, nothing twice, the order kept.

The negative control runs the same copier without transactions (produce, flush, then commit
the offsets) under the same kind of kills: its output must hold duplicates, or the check could
not see them.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))  # the shared client helpers
from kafka_helpers import consume_all, create_topic, produce, unique_topic

COPIER = Path(__file__).with_name("txn_copier.py")
RECORDS = 100_000
PARTITIONS = 4
EVERY = 500
RUN_TIMEOUT_S = 120.0


class Copier:
    """One copier process; its JSON events are collected by a reader thread."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(COPIER), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.events.append(json.loads(line))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, event: str, count: int, deadline: float) -> None:
        with self._changed:
            while sum(e["event"] == event for e in self.events) < count:
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"the copier exited early: {self.stderr()}")
                assert time.monotonic() < deadline, "the copier made no progress in time"
                self._changed.wait(0.2)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)

    def finish(self, timeout_s: float) -> None:
        code = self.proc.wait(timeout_s)
        self._reader.join(5)
        assert code == 0, f"the copier failed with {code}: {self.stderr()}"
        assert self.events[-1]["event"] == "done", self.events[-3:]

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-3000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.kill()


@pytest.fixture
def copiers() -> Iterator[list[Copier]]:
    started: list[Copier] = []
    try:
        yield started
    finally:
        for copier in started:
            copier.close()


def fill_input(bootstrap: str, topic: str) -> dict[int, list[bytes]]:
    create_topic(bootstrap, topic, PARTITIONS)
    records = ({"key": f"k{i % 97}".encode(), "value": f"{i}".encode()} for i in range(RECORDS))
    result = produce(bootstrap, topic, records, **{"enable.idempotence": True})
    by_partition: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    for delivery in sorted(result.ok(), key=lambda d: (d.partition, d.offset)):
        assert delivery.value is not None
        by_partition[delivery.partition].append(delivery.value)
    return by_partition


def run_with_kills(
    bootstrap: str, source: str, mode: str, copiers: list[Copier], rng: random.Random
) -> str:
    """Copy `source` to a new topic with `mode`, killing the copier 3 times; the output
    topic's name."""
    target = unique_topic(f"copy-{mode}")
    create_topic(bootstrap, target, PARTITIONS)
    args = [bootstrap, source, target, str(PARTITIONS), unique_topic("copier-group")]
    args += [unique_topic("copier-txn"), mode, str(EVERY)]
    deadline = time.monotonic() + RUN_TIMEOUT_S
    # Kills of three kinds: anywhere (a random delay after a random number of commits), just
    # after a batch was handed to the producer (its records on their way), and just after they
    # were acknowledged (not yet committed). One of each of the last two at least, so kills
    # surely land between a batch's writes and its commit, where a copier without
    # transactions duplicates and a transactional one must abort.
    kinds = ["produced", "flushed", rng.choice(["anywhere", "produced", "flushed"])]
    rng.shuffle(kinds)
    for kind in kinds:
        batch = rng.randint(1, 8)
        # on "flushed" the copier holds the batch uncommitted until the kill (see txn_copier.py)
        copier = Copier([*args, str(batch if kind == "flushed" else 0)])
        copiers.append(copier)
        if kind == "anywhere":
            copier.wait_for("committed", batch, deadline)
            time.sleep(rng.uniform(0.0, 0.15))
        else:
            copier.wait_for(kind, batch, deadline)
        copier.kill()
    copier = Copier(args)
    copiers.append(copier)
    copier.finish(max(1.0, deadline - time.monotonic()))
    return target


def read_output(
    bootstrap: str, topic: str, isolation: str = "read_committed"
) -> dict[int, list[bytes]]:
    records = consume_all(
        bootstrap,
        topic,
        partitions=range(PARTITIONS),
        timeout_s=60,
        **{"isolation.level": isolation},
    )
    out: dict[int, list[bytes]] = {p: [] for p in range(PARTITIONS)}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        out[record.partition].append(record.value or b"")
    return out


@pytest.fixture
def seed() -> int:
    value = random.randrange(1 << 30)
    print(f"seed {value}")
    return value


def test_killed_transactional_copier_copies_exactly_once(broker, copiers, seed) -> None:
    source = unique_topic("copy-input")
    expected = fill_input(broker.bootstrap, source)
    target = run_with_kills(broker.bootstrap, source, "txn", copiers, random.Random(seed))
    output = read_output(broker.bootstrap, target)
    for partition in range(PARTITIONS):
        got, want = output[partition], expected[partition]
        assert len(got) == len(want), (partition, len(got), len(want))
        assert got == want, f"partition {partition} differs from the input"
    # The kills did land inside transactions: their records are in the log, aborted.
    everything = read_output(broker.bootstrap, target, "read_uncommitted")
    aborted = sum(len(everything[p]) - len(output[p]) for p in range(PARTITIONS))
    print(f"aborted records {aborted}")
    assert aborted > 0, "no kill hit an open transaction: the test would be blind"


def test_killed_copier_without_transactions_duplicates(broker, copiers, seed) -> None:
    source = unique_topic("copy-input-plain")
    expected = fill_input(broker.bootstrap, source)
    target = run_with_kills(broker.bootstrap, source, "plain", copiers, random.Random(seed))
    output = read_output(broker.bootstrap, target)
    duplicates = sum(len(output[p]) - len(set(output[p])) for p in range(PARTITIONS))
    print(f"duplicates {duplicates}")
    assert duplicates > 0, "the kills left no duplicates: the exactly-once check would be blind"
    for partition in range(PARTITIONS):  # at-least-once still holds: nothing is lost
        assert set(output[partition]) == set(expected[partition])
