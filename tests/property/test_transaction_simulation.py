"""A simulation of the transaction coordinator core: random requests from current and stale
producers, writes and markers completed late, in any order, or failed, and coordinator crashes
that lose whatever was not durable (a write in flight may or may not have become durable).

After every step these must hold:

- markers: every marker written belongs to the transaction whose PrepareCommit/PrepareAbort is
  the id's latest durable record, with that record's outcome, producer id and epoch, for one of
  its partitions; so a transaction's partitions get markers of exactly one outcome;
- the durable log of each id follows Kafka's state machine (each state may follow the last);
- epochs never go back: per id and producer id, durable epochs never decrease, and a producer
  id that is replaced is never used again;
- in the end, with every write and marker completed, no transaction is left prepared.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odradek.common.errors import ErrorCode
from odradek.coordinator.transaction.coordinator import TransactionCoordinator
from odradek.coordinator.transaction.messages import (
    MarkerRequest,
    ProducerIdAndEpoch,
    TransactionConfig,
    Write,
)
from odradek.coordinator.transaction.metadata import TransactionMetadata, TransactionState
from odradek.coordinator.transaction.records import decode_key, decode_value

IDS = ("t1", "t2")
PARTITIONS = (("a", 0), ("a", 1), ("b", 0))
CONFIG = TransactionConfig(state_partitions=2, abort_timed_out_interval_ms=1_000)
TIMEOUT_MS = 5_000
T = TypeVar("T")


@dataclass
class World:
    rng: random.Random
    now: int = 1_000_000
    epoch: int = 0
    core: TransactionCoordinator = field(init=False)
    writes: list[Write] = field(default_factory=list)
    markers: list[MarkerRequest] = field(default_factory=list)
    log: list[tuple[bytes, bytes | None]] = field(default_factory=list)
    handles: list[tuple[str, int, int, int]] = field(default_factory=list)  # id, pid, epoch, tv
    producer_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    retired_producer_ids: dict[str, set[int]] = field(default_factory=dict)
    delivered: list[MarkerRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.load()

    def load(self, same_core: bool = False) -> None:
        """A coordinator loads every partition: a new one, or this one again (leadership went
        away and came back, so timers and callbacks of the old load are still around)."""
        self.epoch += 1
        if not same_core:
            self.core = TransactionCoordinator(
                CONFIG, lambda: next(self.producer_ids), lambda group: 0
            )
        for partition in range(CONFIG.state_partitions):
            self.core.begin_loading(partition, self.epoch)
        for key, value in self.log:
            self.core.replay(key, value)
        self.core.finish_loading(self.now)
        self.collect()

    def collect(self) -> None:
        self.writes.extend(self.core.writes)
        self.core.writes.clear()
        self.markers.extend(self.core.marker_requests)
        self.core.marker_requests.clear()

    def crash(self) -> None:
        """The coordinator moves: what was in flight is durable or not, at random."""
        writes, self.writes = self.writes, []
        markers, self.markers = self.markers, []  # the new epoch fences the old markers
        for write in writes:
            if self.rng.random() < 0.5:  # durable, but the coordinator never heard back
                self.append(write)
        same_core = self.rng.random() < 0.5
        self.load(same_core)
        if same_core:
            # the old load's writes and markers report late, and must change nothing
            for write in writes:
                write.on_done(ErrorCode.NOT_LEADER_OR_FOLLOWER)
            for request in markers:
                request.on_done(ErrorCode.NOT_COORDINATOR)
            self.collect()

    def append(self, write: Write) -> None:
        for key, value in write.records:
            self.log.append((key, value))
            check_log_step(self, key, value)

    def complete_write(self, index: int, fail: bool) -> None:
        write = self.writes.pop(index)
        if fail:
            write.on_done(ErrorCode.NOT_ENOUGH_REPLICAS)
        else:
            self.append(write)
            write.on_done(ErrorCode.NONE)
        self.collect()

    def complete_markers(self, index: int, give_up: bool) -> None:
        request = self.markers.pop(index)
        self.delivered.append(request)
        if give_up:
            # the runtime gives up only when the partition moved: a new coordinator loads it
            request.on_done(ErrorCode.NOT_COORDINATOR)
            self.crash()
            return
        else:
            for marker in request.markers:
                check_marker(
                    self,
                    request.transactional_id,
                    marker.topic,
                    marker.partition,
                    marker.producer_id,
                    marker.producer_epoch,
                    marker.commit,
                )
            request.on_done(ErrorCode.NONE)
        self.collect()

    def remember(self, transactional_id: str, tv: int, result: ProducerIdAndEpoch) -> None:
        if result.error == ErrorCode.NONE and result.producer_id >= 0:
            self.handles.append((transactional_id, result.producer_id, result.producer_epoch, tv))

    def durable(self, transactional_id: str) -> TransactionMetadata | None:
        latest: TransactionMetadata | None = None
        for key, value in self.log:
            decoded = decode_key(key)
            assert decoded is not None
            if decoded.transactional_id != transactional_id:
                continue
            record = decode_value(value)
            latest = (
                None if record is None else TransactionMetadata.from_value(transactional_id, record)
            )
        return latest


def check_log_step(world: World, key: bytes, value: bytes | None) -> None:
    decoded = decode_key(key)
    assert decoded is not None
    transactional_id = decoded.transactional_id
    previous = durable_before_last(world, transactional_id)
    record = decode_value(value)
    if record is None:
        return
    current = TransactionMetadata.from_value(transactional_id, record)
    if previous is None:
        assert current.state == TransactionState.EMPTY, current
        return
    assert current.state.can_follow(previous.state), (previous, current)
    if current.producer_id == previous.producer_id:
        assert current.producer_epoch >= previous.producer_epoch, (previous, current)
    else:
        retired = world.retired_producer_ids.setdefault(transactional_id, set())
        retired.add(previous.producer_id)
        assert current.producer_id not in retired, (previous, current)


def durable_before_last(world: World, transactional_id: str) -> TransactionMetadata | None:
    latest: TransactionMetadata | None = None
    for key, value in world.log[:-1]:
        decoded = decode_key(key)
        assert decoded is not None
        if decoded.transactional_id == transactional_id:
            record = decode_value(value)
            latest = (
                None if record is None else TransactionMetadata.from_value(transactional_id, record)
            )
    return latest


def check_marker(
    world: World,
    transactional_id: str,
    topic: str,
    partition: int,
    producer_id: int,
    producer_epoch: int,
    commit: bool,
) -> None:
    prepared = world.durable(transactional_id)
    assert prepared is not None and prepared.state.is_prepared, prepared
    assert (prepared.state == TransactionState.PREPARE_COMMIT) == commit
    assert (prepared.producer_id, prepared.producer_epoch) == (producer_id, producer_epoch)
    assert (topic, partition) in prepared.partitions


class Chooser:
    """Where the simulation's choices come from: hypothesis (shrinks) or a seeded Random."""

    def __init__(self, data: st.DataObject | None, rng: random.Random) -> None:
        self.data = data
        self.rng = rng

    def choice(self, options: Sequence[T]) -> T:
        if self.data is None:
            return self.rng.choice(options)
        return self.data.draw(st.sampled_from(options))

    def integer(self, low: int, high: int) -> int:
        if self.data is None:
            return self.rng.randint(low, high)
        return self.data.draw(st.integers(low, high))


ACTIONS = ("init", "add", "end", "write", "write", "write", "markers", "markers", "time", "crash")


def step(world: World, choose: Chooser) -> None:
    core = world.core
    action = choose.choice(ACTIONS)
    if action == "init":
        transactional_id = choose.choice(IDS)
        core.init_producer_id(
            transactional_id,
            TIMEOUT_MS,
            world.now,
            lambda result: world.remember(transactional_id, 0, result),
        )
        world.collect()
    elif action in ("add", "end") and world.handles:
        transactional_id, producer_id, epoch, tv = choose.choice(world.handles)
        tv = choose.choice((tv, 2))
        if action == "add":
            partitions = {p for p in PARTITIONS if choose.integer(0, 1)} or {PARTITIONS[0]}
            core.add_partitions(
                transactional_id, producer_id, epoch, partitions, world.now, lambda e: None, tv
            )
        else:
            core.end_txn(
                transactional_id,
                producer_id,
                epoch,
                bool(choose.integer(0, 1)),
                world.now,
                lambda result: world.remember(transactional_id, tv, result),
                tv,
            )
        world.collect()
    elif action == "write" and world.writes:
        index = choose.integer(0, len(world.writes) - 1)
        world.complete_write(index, fail=choose.integer(0, 9) == 0)
    elif action == "markers" and world.markers:
        index = choose.integer(0, len(world.markers) - 1)
        world.complete_markers(index, give_up=choose.integer(0, 19) == 0)
    elif action == "time":
        world.now += choose.choice((10, 1_000, TIMEOUT_MS))
        core.poll(world.now)
        world.collect()
    elif action == "crash":
        world.crash()


def simulate(choose: Chooser, steps: int) -> World:
    world = World(choose.rng)
    for _ in range(steps):
        step(world, choose)
    drain(world)
    for transactional_id in IDS:
        metadata = world.core.transactions.get(transactional_id)
        assert metadata is None or not metadata.state.is_prepared, metadata
        durable = world.durable(transactional_id)
        if durable is None:
            assert metadata is None
        else:
            assert metadata is not None
            assert replace(durable, last_producer_epoch=metadata.last_producer_epoch) == metadata
    return world


def drain(world: World) -> None:
    """Complete everything, repeatedly, until the core is quiet."""
    for _ in range(100):
        if world.writes:
            world.complete_write(0, fail=False)
        elif world.markers:
            world.complete_markers(0, give_up=False)
        else:
            world.now += CONFIG.retry_backoff_ms
            world.core.poll(world.now)
            world.collect()
            if not world.writes and not world.markers:
                return


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data(), st.integers(0, 2**32 - 1), st.integers(1, 80))
def test_transactions_end_with_one_outcome_and_epochs_never_go_back(
    data: st.DataObject, seed: int, steps: int
) -> None:
    simulate(Chooser(data, random.Random(seed)), steps)


def test_the_simulation_reaches_commits_aborts_and_reloads() -> None:
    """The checks above would be blind if the random runs never got that far."""
    outcomes: set[bool] = set()
    reloads = 0
    for seed in range(200):
        world = simulate(Chooser(None, random.Random(seed)), 80)
        outcomes |= {request.commit for request in world.delivered}
        reloads += world.epoch - 1
    assert outcomes == {True, False} and reloads > 50


def _never_resume(self: TransactionCoordinator, now_ms: int) -> None:
    self._loading.clear()


def _complete_as_commit(current: TransactionMetadata, now_ms: int) -> TransactionMetadata:
    return replace(
        current,
        state=TransactionState.COMPLETE_COMMIT,
        partitions=frozenset(),
        last_update_timestamp_ms=now_ms,
    )


@pytest.mark.parametrize(
    "target, broken",
    [
        (
            "odradek.coordinator.transaction.coordinator.TransactionCoordinator.finish_loading",
            _never_resume,
        ),
        ("odradek.coordinator.transaction.transitions.complete", _complete_as_commit),
    ],
    ids=["load-forgets-prepared-transactions", "abort-completes-as-commit"],
)
def test_negative_control_a_broken_core_fails_the_checks(target: str, broken: object) -> None:
    with patch(target, broken), pytest.raises(AssertionError):
        for seed in range(300):
            simulate(Chooser(None, random.Random(seed)), 80)
