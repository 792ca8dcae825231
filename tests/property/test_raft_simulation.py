"""The Raft core under the deterministic simulator (`raft_simulator.py`), seed after seed.

Every seed is a whole run: a quorum of 1, 3 or 5 voters plus observers, a client appending to
whoever leads, snapshots taken on random nodes, and a faulty phase of drops, duplicates,
reordering, partitions, leader resignations, fsync stalls and crashes that lose unflushed
writes; then everything is healed and the cluster must commit a fresh batch on every node.
Election safety, log matching, leader completeness and state-machine safety are checked after
every step. The default run takes a slice of seeds; `--run-slow` runs 10,000 more.

Negative controls: a core that grants votes without comparing logs, one that votes twice in an
epoch, and a leader that counts its own unflushed records toward the high watermark must each
be caught within the slice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import pytest
from raft_simulator import CoreFactory, LivenessFailure, SafetyViolation, Simulation

from odradek.metadata.raft.core import RaftCore
from odradek.metadata.raft.messages import VoteRequest
from odradek.metadata.raft.state import VotedState

# (voters, observers, seeds in the default run, seeds in the slow run)
CLUSTERS = [(1, 1, 100, 1000), (3, 1, 250, 5000), (5, 2, 150, 4000)]
SLOW_SEEDS_FROM = 100_000


def run_seed(seed: int, voters: int, observers: int, factory: CoreFactory = RaftCore) -> None:
    try:
        Simulation(seed, voters=voters, observers=observers, core_factory=factory).run()
    except AssertionError as failure:
        replay = Simulation(
            seed, voters=voters, observers=observers, core_factory=factory, trace=True
        )
        with contextlib.suppress(AssertionError):
            replay.run()  # only for its trace
        trace = "\n".join((replay.trace or [])[-60:])
        raise AssertionError(
            f"seed {seed} ({voters} voters, {observers} observers): {failure}\nlast steps:\n{trace}"
        ) from failure


def run_seeds(seeds: Iterable[int], voters: int, observers: int) -> None:
    for seed in seeds:
        run_seed(seed, voters, observers)


@pytest.mark.parametrize(("voters", "observers", "count", "_slow"), CLUSTERS)
def test_every_step_is_safe_and_the_healed_cluster_commits(
    voters: int, observers: int, count: int, _slow: int
) -> None:
    run_seeds(range(count), voters, observers)


@pytest.mark.slow
@pytest.mark.parametrize(("voters", "observers", "_count", "slow"), CLUSTERS)
def test_ten_thousand_more_seeds(voters: int, observers: int, _count: int, slow: int) -> None:
    run_seeds(range(SLOW_SEEDS_FROM, SLOW_SEEDS_FROM + slow), voters, observers)


@pytest.mark.parametrize(("voters", "observers"), [(3, 1), (5, 1)])
def test_the_protocol_holds_with_every_message_through_kio(voters: int, observers: int) -> None:
    """The same runs with each message encoded and decoded at a random version of its API."""
    for seed in range(30):
        Simulation(seed, voters=voters, observers=observers, over_the_wire=True).run()


def test_a_seed_replays_identically() -> None:
    first = Simulation(7, voters=3, trace=True).run()
    second = Simulation(7, voters=3, trace=True).run()
    assert first.trace == second.trace
    assert first.steps > 100


class GrantsAnyVote(RaftCore):
    """Broken on purpose: votes without checking that the candidate's log is up to date."""

    def _is_log_up_to_date(self, request: VoteRequest) -> bool:
        return True


class VotesTwicePerEpoch(RaftCore):
    """Broken on purpose: having voted, grants another candidate of the same epoch too."""

    def _can_grant_vote(self, request: VoteRequest) -> bool:
        if isinstance(self.state, VotedState):
            return self._is_log_up_to_date(request)
        return super()._can_grant_vote(request)


class LeaderCountsUnflushed(RaftCore):
    """Broken on purpose: the leader counts records it has not fsync'd toward the HW."""

    def _leader_local_end_offset(self) -> int:
        return self.log.end_offset


def first_caught(factory: CoreFactory, voters: int, observers: int, count: int) -> str | None:
    for seed in range(count):
        try:
            Simulation(seed, voters=voters, observers=observers, core_factory=factory).run()
        except SafetyViolation as violation:
            return f"seed {seed}: {violation}"
        except LivenessFailure:
            continue
    return None


@pytest.mark.parametrize(("voters", "observers", "count"), [(3, 1, 250), (5, 2, 150)])
def test_negative_control_votes_without_log_check_are_caught(
    voters: int, observers: int, count: int
) -> None:
    caught = first_caught(GrantsAnyVote, voters, observers, count)
    assert caught is not None, "the checker missed a core that votes for stale logs"
    assert "leader completeness" in caught or "safety" in caught


@pytest.mark.parametrize(("voters", "observers", "count"), [(3, 1, 250), (5, 2, 150)])
def test_negative_control_two_votes_in_an_epoch_are_caught(
    voters: int, observers: int, count: int
) -> None:
    caught = first_caught(VotesTwicePerEpoch, voters, observers, count)
    assert caught is not None and "election safety" in caught


def test_negative_control_leader_counting_unflushed_records_is_caught() -> None:
    # A quorum of one makes the lost fsync decisive: nobody else holds the record.
    caught = first_caught(LeaderCountsUnflushed, 1, 1, 100)
    assert caught is not None, "the checker missed a leader that commits unflushed records"
