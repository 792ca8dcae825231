"""RaftCore's transitions and RPC rules, one by one, stepping a core by hand (no network)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import pytest

from odradek.metadata.raft.control import leader_change_value
from odradek.metadata.raft.core import (
    RaftConfig,
    RaftCore,
    RaftInvariantError,
)
from odradek.metadata.raft.log import RaftLog, Snapshot
from odradek.metadata.raft.messages import (
    NO_LEADER,
    AppendAccepted,
    AppendRecords,
    AppendRejected,
    AppendToLog,
    ApplyCommitted,
    Batch,
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    Command,
    CreateSnapshot,
    DeleteLogBefore,
    DescribeQuorumRequest,
    DescribeQuorumResponse,
    EndQuorumEpochRequest,
    EpochEndOffset,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    FlushLog,
    LeaderIdAndEpoch,
    LoadSnapshot,
    LogFlushed,
    Message,
    OffsetAndEpoch,
    PersistQuorumState,
    RaftError,
    Received,
    Resign,
    Send,
    StateChanged,
    StateName,
    Tick,
    TruncateLog,
    VoteRequest,
    VoteResponse,
    WriteSnapshot,
)
from odradek.metadata.raft.state import QuorumStateFile

VOTERS = (1, 2, 3)
ELECTION_MS = 100
FETCH_MS = 200
C = TypeVar("C")


class NoJitter:
    """The election jitter is always 0: deadlines are exactly `now + election timeout`."""

    def randrange(self, start: int, stop: int) -> int:
        return start


def boot(
    node_id: int = 1,
    *,
    voters: tuple[int, ...] = VOTERS,
    batches: Sequence[Batch] = (),
    snapshot: Snapshot | None = None,
    quorum_state: QuorumStateFile | None = None,
    now: int = 0,
) -> tuple[RaftCore, list[Command]]:
    config = RaftConfig(
        node_id=node_id,
        voters=voters,
        cluster_id="c1",
        election_timeout_ms=ELECTION_MS,
        fetch_timeout_ms=FETCH_MS,
        retry_backoff_ms=10,
        request_timeout_ms=100,
        fetch_max_wait_ms=50,
        snapshot_chunk_bytes=4,
    )
    log = RaftLog(tuple(batches), snapshot)
    core = RaftCore(config, log=log, quorum_state=quorum_state, random=NoJitter(), now_ms=now)
    return core, core.start(now)


def of(commands: Sequence[Command], kind: type[C]) -> list[C]:
    return [c for c in commands if isinstance(c, kind)]


def sent(commands: Sequence[Command], kind: type[C]) -> list[tuple[int, C, int]]:
    return [
        (c.destination, c.message, c.correlation_id)
        for c in of(commands, Send)
        if isinstance(c.message, kind)
    ]


def batch(base: int, epoch: int, count: int = 1) -> Batch:
    return Batch(base, epoch, tuple(f"v{base + i}".encode() for i in range(count)))


def recv(core: RaftCore, source: int, message: Message, now: int, cid: int = 0) -> list[Command]:
    return core.step(Received(source, message, cid), now)


def elect(core: RaftCore, now: int = ELECTION_MS) -> list[Command]:
    """Time out into candidacy and receive node 2's vote."""
    commands = core.step(Tick(), now)
    ((_, request, cid),) = [s for s in sent(commands, VoteRequest) if s[0] == 2]
    return commands + recv(
        core, 2, VoteResponse(NO_LEADER, request.candidate_epoch, True), now + 1, cid
    )


def follower(node_id: int = 2, *, leader: int = 1, epoch: int = 1, **kw: object) -> RaftCore:
    core, _ = boot(node_id, quorum_state=QuorumStateFile(epoch, leader, -1, VOTERS), **kw)  # type: ignore[arg-type]
    return core


# -- elections ---------------------------------------------------------------------------------


def test_an_unattached_voter_times_out_into_candidacy_and_persists_its_vote_before_asking() -> None:
    core, commands = boot(1, batches=[batch(0, 1), batch(1, 2, 2)])
    assert core.state_name == StateName.UNATTACHED
    assert not sent(commands, VoteRequest)
    assert core.step(Tick(), ELECTION_MS - 1) == []
    commands = core.step(Tick(), ELECTION_MS)
    assert core.state_name == StateName.CANDIDATE and core.epoch == 1
    persist = commands.index(PersistQuorumState(1, NO_LEADER, 1, VOTERS))
    first_send = next(i for i, c in enumerate(commands) if isinstance(c, Send))
    assert persist < first_send
    requests = sent(commands, VoteRequest)
    assert sorted(d for d, _, _ in requests) == [2, 3]
    assert {(r.candidate_epoch, r.last_offset_epoch, r.last_offset) for _, r, _ in requests} == {
        (1, 2, 3)
    }


def test_a_single_voter_elects_itself_at_once_and_commits_once_flushed() -> None:
    core, commands = boot(1, voters=(1,))
    assert core.is_leader and core.epoch == 1
    (append,) = of(commands, AppendToLog)
    assert append.batch.control and append.batch.records == (leader_change_value(1, (1,), (1,)),)
    assert core.high_watermark == 0  # not flushed yet
    commands = core.step(LogFlushed(1), 1)
    assert core.high_watermark == 1
    assert of(commands, ApplyCommitted) == [ApplyCommitted(1, (append.batch,))]


def test_a_candidate_with_a_majority_becomes_leader_and_announces_its_epoch() -> None:
    core, _ = boot(1, batches=[batch(0, 1)])
    commands = elect(core)
    assert core.is_leader and core.epoch == 1
    assert PersistQuorumState(1, 1, 1, VOTERS) in commands
    assert StateChanged(StateName.LEADER, 1, 1) in commands
    (append,) = of(commands, AppendToLog)
    assert append.batch == Batch(1, 1, (leader_change_value(1, VOTERS, (1, 2)),), True)
    begins = sent(commands, BeginQuorumEpochRequest)
    assert sorted(d for d, _, _ in begins) == [2, 3]
    assert all(r.leader_id == 1 and r.leader_epoch == 1 for _, r, _ in begins)


def test_a_candidate_ignores_grants_of_an_older_epoch() -> None:
    core, _ = boot(1)
    core.step(Tick(), ELECTION_MS)  # epoch 1
    core.step(Tick(), 2 * ELECTION_MS)  # lost: epoch 2
    assert core.state_name == StateName.CANDIDATE and core.epoch == 2
    recv(core, 2, VoteResponse(NO_LEADER, 1, True), 2 * ELECTION_MS + 1)
    assert core.state_name == StateName.CANDIDATE


def test_a_candidate_that_hears_of_a_leader_in_its_epoch_follows_it() -> None:
    core, _ = boot(1)
    core.step(Tick(), ELECTION_MS)
    commands = recv(core, 3, BeginQuorumEpochRequest(leader_id=3, leader_epoch=1), 101)
    assert core.state_name == StateName.FOLLOWER and core.leader_id == 3
    assert PersistQuorumState(1, 3, 1, VOTERS) in commands  # its own vote stays on record


def vote(candidate: int, epoch: int, last_epoch: int, last_offset: int) -> VoteRequest:
    return VoteRequest(
        candidate_epoch=epoch,
        candidate_id=candidate,
        last_offset_epoch=last_epoch,
        last_offset=last_offset,
    )


def answer(commands: Sequence[Command]) -> VoteResponse:
    ((_, response, _),) = sent(commands, VoteResponse)
    return response


def test_a_vote_is_granted_to_an_up_to_date_log_and_persisted_before_the_answer() -> None:
    core, _ = boot(1, batches=[batch(0, 1), batch(1, 1)])
    commands = recv(core, 2, vote(2, 3, 1, 2), 5, cid=9)
    assert answer(commands) == VoteResponse(NO_LEADER, 3, True)
    persist = commands.index(PersistQuorumState(3, NO_LEADER, 2, VOTERS))
    assert persist < next(i for i, c in enumerate(commands) if isinstance(c, Send))
    assert of(commands, Send)[0].correlation_id == 9
    assert core.state_name == StateName.VOTED


@pytest.mark.parametrize(
    ("last_epoch", "last_offset"),
    [(0, 5), (1, 1)],
    ids=["older-last-epoch", "same-epoch-shorter-log"],
)
def test_a_vote_is_refused_to_a_log_behind_ours(last_epoch: int, last_offset: int) -> None:
    core, _ = boot(1, batches=[batch(0, 1), batch(1, 1)])
    commands = recv(core, 2, vote(2, 3, last_epoch, last_offset), 5)
    assert answer(commands).vote_granted is False
    assert core.state_name == StateName.UNATTACHED and core.epoch == 3


def test_one_vote_per_epoch_but_the_same_candidate_may_ask_again() -> None:
    core, _ = boot(1)
    assert answer(recv(core, 2, vote(2, 1, 0, 0), 1)).vote_granted
    assert answer(recv(core, 2, vote(2, 1, 0, 0), 2)).vote_granted
    assert not answer(recv(core, 3, vote(3, 1, 0, 0), 3)).vote_granted


def test_a_vote_of_an_older_epoch_is_fenced() -> None:
    core, _ = boot(1, quorum_state=QuorumStateFile(4, NO_LEADER, -1, VOTERS))
    response = answer(recv(core, 2, vote(2, 3, 9, 9), 1))
    assert response == VoteResponse(NO_LEADER, 4, False, RaftError.FENCED_LEADER_EPOCH)


def test_a_leader_steps_down_for_a_higher_epoch_vote() -> None:
    core, _ = boot(1)
    elect(core)
    commands = recv(core, 3, vote(3, 2, 1, 10), 150)
    assert core.state_name == StateName.VOTED and core.epoch == 2
    assert answer(commands).vote_granted


def test_observers_and_unknown_candidates_get_no_vote() -> None:
    observer, _ = boot(7)
    assert not answer(recv(observer, 2, vote(2, 1, 0, 0), 1)).vote_granted
    voter, _ = boot(1)
    response = answer(recv(voter, 9, vote(9, 1, 0, 0), 1))
    assert response.error_code == RaftError.INCONSISTENT_VOTER_SET and not response.vote_granted


def test_a_higher_epoch_vote_does_not_postpone_our_own_election() -> None:
    core, _ = boot(1, batches=[batch(0, 1), batch(1, 1)])
    recv(core, 2, vote(2, 1, 0, 0), ELECTION_MS - 10)  # refused: stale log
    core.step(Tick(), ELECTION_MS)
    assert core.state_name == StateName.CANDIDATE and core.epoch == 2


def test_a_restarted_node_resumes_from_its_quorum_state_file() -> None:
    led, _ = boot(1, quorum_state=QuorumStateFile(5, 1, 1, VOTERS))
    assert led.state_name == StateName.RESIGNED and led.epoch == 5
    assert not answer(recv(led, 2, vote(2, 5, 9, 9), 1)).vote_granted
    voted, _ = boot(1, quorum_state=QuorumStateFile(5, NO_LEADER, 3, VOTERS))
    assert voted.state_name == StateName.VOTED
    assert not answer(recv(voted, 2, vote(2, 5, 9, 9), 1)).vote_granted
    following, _ = boot(1, quorum_state=QuorumStateFile(5, 2, -1, VOTERS))
    assert following.state_name == StateName.FOLLOWER and following.leader_id == 2


# -- BeginQuorumEpoch / EndQuorumEpoch / check quorum ---------------------------------------------


def test_begin_quorum_epoch_makes_a_follower_and_an_older_one_is_fenced() -> None:
    core, _ = boot(2)
    commands = recv(core, 1, BeginQuorumEpochRequest(leader_id=1, leader_epoch=3), 1, cid=4)
    assert core.state_name == StateName.FOLLOWER and core.epoch == 3 and core.leader_id == 1
    assert PersistQuorumState(3, 1, -1, VOTERS) in commands
    assert sent(commands, BeginQuorumEpochResponse)[0] == (1, BeginQuorumEpochResponse(1, 3), 4)
    commands = recv(core, 3, BeginQuorumEpochRequest(leader_id=3, leader_epoch=2), 2)
    ((_, response, _),) = sent(commands, BeginQuorumEpochResponse)
    assert response.error_code == RaftError.FENCED_LEADER_EPOCH and response.leader_id == 1


def test_a_leader_resends_begin_quorum_epoch_until_a_voter_answers() -> None:
    core, _ = boot(1)
    elect(core)
    recv(core, 2, BeginQuorumEpochResponse(1, 1), 102)
    commands = core.step(Tick(), 200)
    assert [d for d, _, _ in sent(commands, BeginQuorumEpochRequest)] == [3]


def test_two_leaders_in_one_epoch_is_an_invariant_error() -> None:
    core, _ = boot(1)
    elect(core)
    with pytest.raises(RaftInvariantError):
        recv(core, 3, BeginQuorumEpochRequest(leader_id=3, leader_epoch=1), 150)


def test_resigning_sends_end_quorum_epoch_with_the_most_caught_up_voter_first() -> None:
    core, _ = boot(1, batches=[batch(0, 1, 3)])
    elect(core)
    recv(core, 3, fetch(3, 1, 3, 1), 110)
    commands = core.step(Resign(), 120)
    assert core.state_name == StateName.RESIGNED
    requests = sent(commands, EndQuorumEpochRequest)
    assert {r.preferred_successors for _, r, _ in requests} == {(3, 2)}
    assert sorted(d for d, _, _ in requests) == [2, 3]


def test_end_quorum_epoch_brings_the_preferred_successors_election_forward() -> None:
    first = follower(2)
    commands = recv(first, 1, EndQuorumEpochRequest(1, 1, preferred_successors=(2, 3)), 10)
    assert first.state_name == StateName.CANDIDATE and first.epoch == 2
    assert sent(commands, VoteRequest)
    second = follower(3)
    recv(second, 1, EndQuorumEpochRequest(1, 1, preferred_successors=(2, 3)), 10)
    assert second.state_name == StateName.FOLLOWER
    second.step(Tick(), 60)  # one step later in the line, still before its fetch timeout
    assert second.state_name == StateName.CANDIDATE


def test_a_leader_without_a_fetching_majority_resigns() -> None:
    core, _ = boot(1)
    elect(core)
    check_quorum_ms = FETCH_MS * 3 // 2
    recv(core, 2, fetch(2, 1, 0, 0), 101 + check_quorum_ms - 1)
    core.step(Tick(), 101 + check_quorum_ms)
    assert core.is_leader  # node 2 fetched recently
    core.step(Tick(), 101 + 2 * check_quorum_ms)
    assert core.state_name == StateName.RESIGNED


# -- Fetch, leader side ---------------------------------------------------------------------------


def fetch(replica: int, epoch: int, offset: int, last_epoch: int) -> FetchRequest:
    return FetchRequest(
        replica_id=replica,
        current_leader_epoch=epoch,
        fetch_offset=offset,
        last_fetched_epoch=last_epoch,
    )


def fetched(commands: Sequence[Command]) -> FetchResponse:
    ((_, response, _),) = sent(commands, FetchResponse)
    return response


def leader_with(batches: Sequence[Batch], snapshot: Snapshot | None = None) -> RaftCore:
    """Node 1 leading epoch 3 over `batches` (plus its LeaderChange batch)."""
    core, _ = boot(1, batches=batches, snapshot=snapshot,
                   quorum_state=QuorumStateFile(2, NO_LEADER, -1, VOTERS))  # fmt: skip
    elect(core)
    assert core.is_leader and core.epoch == 3
    return core


def test_a_leader_answers_a_matching_fetch_with_records_and_its_high_watermark() -> None:
    core = leader_with([batch(0, 1, 2), batch(2, 2)])
    response = fetched(recv(core, 2, fetch(2, 3, 2, 1), 200))
    assert response.error_code == RaftError.NONE
    assert response.current_leader == LeaderIdAndEpoch(1, 3)
    assert [b.base_offset for b in response.records] == [2, 3]


@pytest.mark.parametrize(
    ("offset", "last_epoch", "diverging"),
    [(4, 1, EpochEndOffset(1, 2)), (3, 2, None), (5, 2, EpochEndOffset(2, 3))],
    ids=["epoch-ends-earlier", "matches", "past-the-epoch-end"],
)
def test_a_leader_tells_a_diverging_follower_where_its_epoch_ends(
    offset: int, last_epoch: int, diverging: EpochEndOffset | None
) -> None:
    core = leader_with([batch(0, 1, 2), batch(2, 2)])
    response = fetched(recv(core, 2, fetch(2, 3, offset, last_epoch), 200))
    assert response.diverging_epoch == diverging


def test_a_fetch_below_the_log_start_is_sent_to_the_snapshot() -> None:
    snapshot = Snapshot(OffsetAndEpoch(2, 1), b"state")
    core = leader_with([batch(2, 2)], snapshot=snapshot)
    response = fetched(recv(core, 2, fetch(2, 3, 1, 1), 200))
    assert response.snapshot_id == OffsetAndEpoch(2, 1) and not response.records


@pytest.mark.parametrize(
    ("epoch", "error"),
    [(2, RaftError.FENCED_LEADER_EPOCH), (4, RaftError.UNKNOWN_LEADER_EPOCH)],
)
def test_a_fetch_in_another_epoch_is_refused(epoch: int, error: RaftError) -> None:
    core = leader_with([])
    assert fetched(recv(core, 2, fetch(2, epoch, 0, 0), 200)).error_code == error


def test_a_non_leader_answers_a_fetch_with_the_leader_it_knows() -> None:
    core = follower(2, epoch=4)
    response = fetched(recv(core, 7, fetch(7, 4, 0, 0), 1))
    assert response.error_code == RaftError.NOT_LEADER_OR_FOLLOWER
    assert response.current_leader == LeaderIdAndEpoch(1, 4)


def test_bad_fetch_positions_and_foreign_clusters_are_refused() -> None:
    core = leader_with([])
    bad = fetched(recv(core, 2, fetch(2, 3, -1, 0), 200))
    assert bad.error_code == RaftError.INVALID_REQUEST
    future = fetched(recv(core, 2, fetch(2, 3, 0, 4), 200))
    assert future.error_code == RaftError.INVALID_REQUEST
    foreign = FetchRequest(2, 3, 0, 0, cluster_id="other")
    response = fetched(recv(core, 2, foreign, 200))
    assert response.top_level_error_code == RaftError.INCONSISTENT_CLUSTER_ID


def test_the_high_watermark_needs_a_majority_of_flushed_voters_and_not_observers() -> None:
    core = leader_with([batch(0, 1)])  # LeaderChange at offset 1
    recv(core, 7, fetch(7, 3, 2, 3), 200)  # an observer: does not count
    recv(core, 2, fetch(2, 3, 2, 3), 200)  # a voter has it...
    assert core.high_watermark == 0  # ...but the leader has not flushed it
    commands = core.step(LogFlushed(2), 201)
    assert core.high_watermark == 2
    (apply,) = of(commands, ApplyCommitted)
    assert [b.base_offset for b in apply.batches] == [0, 1]


def test_older_epochs_commit_only_with_a_record_of_the_leaders_epoch() -> None:
    core = leader_with([batch(0, 1, 3)])  # LeaderChange of epoch 3 at offset 3
    core.step(LogFlushed(4), 150)
    recv(core, 2, fetch(2, 3, 3, 1), 200)  # a majority holds offsets 0..2 of epoch 1
    assert core.high_watermark == 0  # leader completeness: not yet
    recv(core, 2, fetch(2, 3, 4, 3), 210)
    assert core.high_watermark == 4


def test_appends_go_to_the_leader_only() -> None:
    core = leader_with([])
    commands = core.step(AppendRecords((b"a", b"b")), 200)
    assert of(commands, AppendAccepted) == [AppendAccepted(1, 3, 3)]
    assert of(commands, FlushLog) == [FlushLog(3)]
    other = follower(2, epoch=3)
    commands = other.step(AppendRecords((b"a",)), 1)
    assert of(commands, AppendRejected) == [AppendRejected(RaftError.NOT_LEADER_OR_FOLLOWER, 1, 3)]


def test_describe_quorum_reports_the_voters_from_the_leader() -> None:
    core = leader_with([batch(0, 1)])
    recv(core, 2, fetch(2, 3, 1, 1), 200)
    recv(core, 7, fetch(7, 3, 1, 1), 210)
    commands = recv(core, 9, DescribeQuorumRequest(), 220)
    ((_, response, _),) = sent(commands, DescribeQuorumResponse)
    assert response.leader_id == 1 and response.leader_epoch == 3
    assert [(r.replica_id, r.log_end_offset) for r in response.current_voters] == [
        (1, 2),
        (2, 1),
        (3, -1),
    ]
    assert [r.replica_id for r in response.observers] == [7]
    other = follower(2)
    assert other.describe_quorum(1).error_code == RaftError.NOT_LEADER_OR_FOLLOWER


# -- Fetch, follower side ------------------------------------------------------------------------


def test_a_follower_fetches_only_what_it_has_flushed() -> None:
    core, commands = boot(2, batches=[batch(0, 1)], quorum_state=QuorumStateFile(1, 1, -1, VOTERS))
    ((leader, request, cid),) = sent(commands, FetchRequest)
    assert leader == 1 and (request.fetch_offset, request.last_fetched_epoch) == (1, 1)
    response = FetchResponse(
        RaftError.NONE, 2, LeaderIdAndEpoch(1, 1), records=(batch(1, 1), batch(2, 1))
    )
    commands = recv(core, 1, response, 10, cid)
    assert [a.batch.base_offset for a in of(commands, AppendToLog)] == [1, 2]
    assert of(commands, FlushLog) == [FlushLog(3)]
    assert not sent(commands, FetchRequest)  # not before the flush
    assert core.high_watermark == 2
    commands = core.step(LogFlushed(3), 12)
    ((_, request, _),) = sent(commands, FetchRequest)
    assert request.fetch_offset == 3


def test_a_follower_ignores_answers_to_requests_it_no_longer_waits_for() -> None:
    core, commands = boot(2, quorum_state=QuorumStateFile(1, 1, -1, VOTERS))
    ((_, _, cid),) = sent(commands, FetchRequest)
    response = FetchResponse(RaftError.NONE, 0, LeaderIdAndEpoch(1, 1), records=(batch(0, 1),))
    assert not of(recv(core, 1, response, 5, cid + 100), AppendToLog)
    assert of(recv(core, 1, response, 6, cid), AppendToLog)
    assert not of(recv(core, 1, response, 7, cid), AppendToLog)  # a duplicate


def test_a_follower_truncates_where_the_leader_says_its_log_diverges() -> None:
    batches = [batch(0, 1), batch(1, 2), batch(2, 2), batch(3, 2)]
    core, commands = boot(2, batches=batches, quorum_state=QuorumStateFile(3, 1, -1, VOTERS))
    ((_, _, cid),) = sent(commands, FetchRequest)
    response = FetchResponse(
        RaftError.NONE, 0, LeaderIdAndEpoch(1, 3), diverging_epoch=EpochEndOffset(2, 2)
    )
    commands = recv(core, 1, response, 5, cid)
    assert of(commands, TruncateLog) == [TruncateLog(2)]
    assert core.log.end_offset == 2
    ((_, request, _),) = sent(commands, FetchRequest)  # at once: truncation needs no fsync
    assert (request.fetch_offset, request.last_fetched_epoch) == (2, 2)


def test_a_follower_never_truncates_below_its_high_watermark() -> None:
    core, commands = boot(
        2, batches=[batch(0, 1, 3)], quorum_state=QuorumStateFile(3, 1, -1, VOTERS)
    )
    ((_, _, cid),) = sent(commands, FetchRequest)
    commands = recv(core, 1, FetchResponse(RaftError.NONE, 3, LeaderIdAndEpoch(1, 3)), 5, cid)
    assert core.high_watermark == 3
    ((_, _, cid),) = sent(commands, FetchRequest)  # the leader held the empty one: ask again
    bad = FetchResponse(
        RaftError.NONE, 3, LeaderIdAndEpoch(1, 3), diverging_epoch=EpochEndOffset(1, 1)
    )
    with pytest.raises(RaftInvariantError):
        recv(core, 1, bad, 56, cid)


def test_a_fetch_error_naming_a_newer_leader_moves_the_follower_there() -> None:
    core, commands = boot(2, quorum_state=QuorumStateFile(1, 1, -1, VOTERS))
    ((_, _, cid),) = sent(commands, FetchRequest)
    response = FetchResponse(RaftError.FENCED_LEADER_EPOCH, -1, LeaderIdAndEpoch(3, 2))
    commands = recv(core, 1, response, 5, cid)
    assert core.leader_id == 3 and core.epoch == 2
    assert [d for d, _, _ in sent(commands, FetchRequest)] == [3]


def test_fetch_timeout_makes_a_voter_a_candidate_and_an_observer_unattached() -> None:
    voter = follower(2)
    voter.step(Tick(), FETCH_MS)
    assert voter.state_name == StateName.CANDIDATE and voter.epoch == 2
    observer = follower(7)
    commands = observer.step(Tick(), FETCH_MS)
    assert observer.state_name == StateName.UNATTACHED and observer.epoch == 1
    assert not sent(commands, VoteRequest)
    assert sent(commands, FetchRequest)  # it asks a voter who leads


def test_an_observer_learns_the_leader_from_any_voter() -> None:
    core, commands = boot(7)
    ((voter, request, cid),) = sent(commands, FetchRequest)
    assert voter in VOTERS and request.current_leader_epoch == 0
    response = FetchResponse(RaftError.FENCED_LEADER_EPOCH, -1, LeaderIdAndEpoch(2, 5))
    commands = recv(core, voter, response, 3, cid)
    assert core.state_name == StateName.FOLLOWER and core.leader_id == 2 and core.epoch == 5
    assert [d for d, _, _ in sent(commands, FetchRequest)] == [2]


# -- snapshots -------------------------------------------------------------------------------------


def test_a_snapshot_of_applied_records_replaces_the_log_prefix() -> None:
    core, _ = boot(1, voters=(1,))
    core.step(AppendRecords((b"a", b"b")), 1)
    core.step(LogFlushed(3), 2)
    with pytest.raises(ValueError):
        core.step(CreateSnapshot(4, b"x"), 3)
    commands = core.step(CreateSnapshot(3, b"state"), 3)
    assert of(commands, WriteSnapshot) == [WriteSnapshot(OffsetAndEpoch(3, 1), b"state")]
    assert of(commands, DeleteLogBefore) == [DeleteLogBefore(3)]
    assert core.log.log_start_offset == 3


def test_a_leader_serves_its_snapshot_in_chunks() -> None:
    snapshot = Snapshot(OffsetAndEpoch(2, 1), b"0123456789")
    core = leader_with([batch(2, 2)], snapshot=snapshot)
    request = FetchSnapshotRequest(2, 3, OffsetAndEpoch(2, 1), position=4)
    ((_, response, _),) = sent(recv(core, 2, request, 200), FetchSnapshotResponse)
    assert (response.size, response.position, response.unaligned_records) == (10, 4, b"4567")
    wrong = FetchSnapshotRequest(2, 3, OffsetAndEpoch(1, 1), position=0)
    ((_, response, _),) = sent(recv(core, 2, wrong, 200), FetchSnapshotResponse)
    assert response.error_code == RaftError.SNAPSHOT_NOT_FOUND
    far = FetchSnapshotRequest(2, 3, OffsetAndEpoch(2, 1), position=11)
    ((_, response, _),) = sent(recv(core, 2, far, 200), FetchSnapshotResponse)
    assert response.error_code == RaftError.POSITION_OUT_OF_RANGE


def test_a_follower_behind_the_log_start_loads_the_leaders_snapshot() -> None:
    core, commands = boot(2, batches=[batch(0, 1)], quorum_state=QuorumStateFile(3, 1, -1, VOTERS))
    ((_, _, cid),) = sent(commands, FetchRequest)
    snapshot_id = OffsetAndEpoch(5, 2)
    leader = LeaderIdAndEpoch(1, 3)
    commands = recv(
        core, 1, FetchResponse(RaftError.NONE, 6, leader, snapshot_id=snapshot_id), 1, cid
    )
    payload = b"abcdefg"
    for position in (0, 4):
        ((_, request, cid),) = sent(commands, FetchSnapshotRequest)
        assert request.position == position and request.snapshot_id == snapshot_id
        chunk = payload[position : position + 4]
        response = FetchSnapshotResponse(
            RaftError.NONE, leader, snapshot_id, len(payload), position, chunk
        )
        commands = recv(core, 1, response, 2 + position, cid)
    assert of(commands, LoadSnapshot) == [LoadSnapshot(snapshot_id, payload)]
    assert (core.log.log_start_offset, core.log.end_offset, core.high_watermark) == (5, 5, 5)
    ((_, request, _),) = sent(commands, FetchRequest)
    assert (request.fetch_offset, request.last_fetched_epoch) == (5, 2)


def committed_leader() -> RaftCore:
    """A leader of epoch 3 whose LeaderChange (offset 0) is committed, with node 2's help."""
    core = leader_with([])
    core.step(LogFlushed(1), 150)
    recv(core, 2, FetchRequest(2, 3, 1, 3), 160)
    assert core.high_watermark == 1
    return core


def test_a_leader_holds_an_empty_fetch_until_records_arrive_or_the_wait_ends() -> None:
    core = committed_leader()
    waiting = FetchRequest(2, 3, 1, 3, max_wait_ms=50)
    assert not sent(recv(core, 2, waiting, 200, cid=8), FetchResponse)  # held
    commands = core.step(AppendRecords((b"a",)), 210)
    ((_, response, cid),) = sent(commands, FetchResponse)
    assert cid == 8 and [b.base_offset for b in response.records] == [1]
    assert not sent(recv(core, 3, FetchRequest(3, 3, 2, 3, max_wait_ms=50), 220), FetchResponse)
    assert core.next_deadline_ms() == 270
    ((destination, response, _),) = sent(core.step(Tick(), 270), FetchResponse)
    assert destination == 3 and response.records == ()


def test_a_high_watermark_move_answers_held_fetches() -> None:
    core = committed_leader()
    core.step(AppendRecords((b"a",)), 170)
    core.step(LogFlushed(2), 171)
    recv(core, 7, FetchRequest(7, 3, 2, 3, max_wait_ms=500), 200, cid=4)  # an observer, held
    assert core.high_watermark == 1
    commands = recv(core, 2, FetchRequest(2, 3, 2, 3, max_wait_ms=500), 201, cid=5)
    assert core.high_watermark == 2
    answered = {cid: r.high_watermark for _, r, cid in sent(commands, FetchResponse)}
    assert answered == {4: 2, 5: 2}
