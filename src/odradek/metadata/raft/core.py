"""`RaftCore`: KRaft's quorum protocol as a pure state machine, `step(event, now_ms) -> commands`.

It follows Kafka's raft module (KafkaRaftClient, QuorumState, LeaderState, FollowerState,
CandidateState): pull-based replication where followers and observers Fetch from the leader,
elections with Vote, leadership announced with BeginQuorumEpoch and handed over with
EndQuorumEpoch, snapshots served with FetchSnapshot. No pre-vote (KIP-996) yet.

The core never awaits and does no I/O: it decides, and the runtime carries the commands out in
order (send a message, append to or truncate the log, start an fsync, write the quorum-state
file, apply committed batches, store a snapshot). Time comes in as `now_ms`; randomness (the
election jitter) from an injected `RandomSource`, so a seeded run is reproducible.

Safety rules it keeps, each tested:
- votes and epochs are persisted (`PersistQuorumState`) before any message that depends on
  them is sent; a voter grants one vote per epoch, and only to a candidate whose log is at
  least as up to date as its own;
- a voter acknowledges (as its next fetch offset) only records it has flushed, and the leader
  counts its own records toward the high watermark only once flushed;
- the high watermark advances only over a majority of voters and only once a record of the
  leader's own epoch is covered (leader completeness); observers never count;
- a follower truncates only when the leader answers with a DivergingEpoch, never below the
  high watermark.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from odradek.metadata.raft.control import leader_change_value
from odradek.metadata.raft.log import Diverging, RaftLog, Snapshot, SnapshotNeeded
from odradek.metadata.raft.messages import (
    NO_LEADER,
    NO_VOTE,
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
    EndQuorumEpochResponse,
    Event,
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
    ReplicaState,
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
from odradek.metadata.raft.state import (
    CandidateState,
    EpochState,
    FetchCursor,
    FollowerState,
    LeaderState,
    ParkedFetch,
    QuorumStateFile,
    ReplicaProgress,
    ResignedState,
    UnattachedState,
    VotedState,
)


class RandomSource(Protocol):
    def randrange(self, start: int, stop: int) -> int: ...


class RaftInvariantError(RuntimeError):
    """The protocol reached a state that safety forbids (e.g. two leaders in one epoch)."""


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Kafka's `quorum.*` settings, in milliseconds."""

    node_id: int
    voters: tuple[int, ...]
    cluster_id: str | None = None
    election_timeout_ms: int = 1000  # quorum.election.timeout.ms; jitter adds up to as much
    fetch_timeout_ms: int = 2000  # quorum.fetch.timeout.ms
    retry_backoff_ms: int = 20  # quorum.retry.backoff.ms
    request_timeout_ms: int = 2000  # quorum.request.timeout.ms
    fetch_max_wait_ms: int = 500  # a leader holds a fetch with nothing new this long
    fetch_max_bytes: int = 1 << 20
    snapshot_chunk_bytes: int = 1 << 20

    @property
    def is_voter(self) -> bool:
        return self.node_id in self.voters

    @property
    def majority(self) -> int:
        return len(self.voters) // 2 + 1

    @property
    def check_quorum_timeout_ms(self) -> int:
        return self.fetch_timeout_ms * 3 // 2  # as Kafka's LeaderState


class RaftCore:
    def __init__(
        self,
        config: RaftConfig,
        *,
        log: RaftLog,
        quorum_state: QuorumStateFile | None,
        random: RandomSource,
        now_ms: int,
    ) -> None:
        self.config = config
        self.log = log
        self._random = random
        self._id = config.node_id
        self.high_watermark = log.log_start_offset
        self._applied_offset = log.log_start_offset
        self._next_correlation_id = 0
        self._out: list[Command] = []
        saved = quorum_state or QuorumStateFile(voters=config.voters)
        self.state: EpochState
        if saved.leader_id == self._id and config.is_voter:
            # It led this epoch before the restart: it may neither lead it again nor vote in it.
            self.state = ResignedState(saved.leader_epoch, self._election_deadline(now_ms))
        elif saved.leader_id != NO_LEADER:
            self.state = FollowerState(
                saved.leader_epoch,
                saved.leader_id,
                now_ms + config.fetch_timeout_ms,
                voted_id=saved.voted_id,
            )
        elif saved.voted_id != NO_VOTE and config.is_voter:
            deadline = self._election_deadline(now_ms)
            self.state = VotedState(saved.leader_epoch, saved.voted_id, deadline)
        else:
            self.state = UnattachedState(saved.leader_epoch, self._deadline_or_none(now_ms))

    # -- public surface -------------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        return self.state.epoch

    @property
    def state_name(self) -> StateName:
        return self.state.name

    @property
    def is_leader(self) -> bool:
        return isinstance(self.state, LeaderState)

    @property
    def leader_id(self) -> int:
        st = self.state
        if isinstance(st, LeaderState | ResignedState):
            return self._id
        if isinstance(st, FollowerState):
            return st.leader_id
        return NO_LEADER

    def start(self, now_ms: int) -> list[Command]:
        """The first commands after construction (a single voter elects itself at once)."""
        self._notify()
        if self.config.voters == (self._id,) and not self.is_leader:
            self._become_candidate(now_ms)
        self._poll(now_ms)
        return self._take()

    def step(self, event: Event, now_ms: int) -> list[Command]:
        if isinstance(event, Received):
            self._on_message(event.source, event.message, event.correlation_id, now_ms)
        elif isinstance(event, AppendRecords):
            self._on_append(event, now_ms)
        elif isinstance(event, LogFlushed):
            if self.log.mark_flushed(event.end_offset) and isinstance(self.state, LeaderState):
                self._maybe_advance_leader_high_watermark()
        elif isinstance(event, CreateSnapshot):
            self._on_create_snapshot(event)
        elif isinstance(event, Resign):
            if isinstance(self.state, LeaderState):
                self._resign(now_ms)
        elif not isinstance(event, Tick):
            raise TypeError(f"unknown event {event!r}")
        self._poll(now_ms)
        return self._take()

    def next_deadline_ms(self) -> int | None:
        """When the core next needs a `Tick`, if nothing else happens before."""
        st = self.state
        deadlines: list[int] = []
        if isinstance(st, LeaderState):
            check = self._check_quorum_deadline(st)
            if check is not None:
                deadlines.append(check)
            if set(st.voters) - st.begin_epoch_acked:
                deadlines.append(st.begin_epoch_retry_ms)
            deadlines.extend(parked.deadline_ms for parked in st.parked.values())
        elif isinstance(st, CandidateState | VotedState | ResignedState):
            deadlines.append(st.election_deadline_ms)
        elif isinstance(st, UnattachedState):
            if st.election_deadline_ms is not None:
                deadlines.append(st.election_deadline_ms)
            else:
                deadlines.extend(self._fetch_deadlines(st.fetch))
        elif isinstance(st, FollowerState):
            deadlines.append(st.fetch_deadline_ms)
            deadlines.extend(self._fetch_deadlines(st.fetch))
        return min(deadlines) if deadlines else None

    # -- output helpers -------------------------------------------------------------------------

    def _take(self) -> list[Command]:
        out, self._out = self._out, []
        return out

    def _request(self, destination: int, message: Message) -> int:
        self._next_correlation_id += 1
        self._out.append(Send(destination, message, self._next_correlation_id))
        return self._next_correlation_id

    def _respond(self, destination: int, message: Message, correlation_id: int) -> None:
        self._out.append(Send(destination, message, correlation_id))

    def _notify(self) -> None:
        self._out.append(StateChanged(self.state.name, self.state.epoch, self.leader_id))

    def _persist(self, leader_id: int, voted_id: int) -> None:
        self._out.append(
            PersistQuorumState(self.state.epoch, leader_id, voted_id, self.config.voters)
        )

    def _election_deadline(self, now_ms: int) -> int:
        timeout = self.config.election_timeout_ms
        return now_ms + timeout + self._random.randrange(0, timeout)

    def _deadline_or_none(self, now_ms: int) -> int | None:
        return self._election_deadline(now_ms) if self.config.is_voter else None

    def _current_leader(self) -> LeaderIdAndEpoch:
        return LeaderIdAndEpoch(self.leader_id, self.state.epoch)

    # -- transitions ----------------------------------------------------------------------------

    def _voted_in_current_epoch(self) -> int:
        st = self.state
        if isinstance(st, VotedState | FollowerState):
            return st.voted_id
        if isinstance(st, CandidateState | LeaderState | ResignedState):
            return self._id
        return NO_VOTE

    def _become_unattached(self, epoch: int, now_ms: int) -> None:
        deadline = self._deadline_or_none(now_ms)
        previous = self.state
        # A vote request of a higher epoch does not postpone our own election: otherwise a
        # candidate with a stale log, rejected again and again, would hold off the others.
        if (
            isinstance(previous, UnattachedState | VotedState | CandidateState | ResignedState)
            and previous.election_deadline_ms is not None
        ):
            deadline = previous.election_deadline_ms
        self.state = UnattachedState(epoch, deadline)
        self._persist(NO_LEADER, NO_VOTE)
        self._notify()

    def _become_voted(self, candidate_id: int, now_ms: int) -> None:
        self.state = VotedState(self.state.epoch, candidate_id, self._election_deadline(now_ms))
        self._persist(NO_LEADER, candidate_id)
        self._notify()

    def _become_follower(self, epoch: int, leader_id: int, now_ms: int) -> None:
        voted = self._voted_in_current_epoch() if epoch == self.state.epoch else NO_VOTE
        self.state = FollowerState(
            epoch, leader_id, now_ms + self.config.fetch_timeout_ms, voted_id=voted
        )
        self._persist(leader_id, voted)
        self._notify()

    def _become_candidate(self, now_ms: int) -> None:
        st = CandidateState(self.state.epoch + 1, self._election_deadline(now_ms))
        st.granted.add(self._id)
        self.state = st
        self._persist(NO_LEADER, self._id)  # the vote for itself is durable before it is asked
        self._notify()
        if len(st.granted) >= self.config.majority:
            self._become_leader(now_ms)
            return
        request = VoteRequest(
            candidate_epoch=st.epoch,
            candidate_id=self._id,
            last_offset_epoch=self.log.last_fetched_epoch,
            last_offset=self.log.end_offset,
            cluster_id=self.config.cluster_id,
        )
        for voter in self.config.voters:
            if voter != self._id:
                self._request(voter, request)

    def _become_leader(self, now_ms: int) -> None:
        candidate = self.state
        assert isinstance(candidate, CandidateState)
        epoch = candidate.epoch
        others = {v: ReplicaProgress(last_fetch_ms=now_ms) for v in self.config.voters}
        others.pop(self._id, None)
        self.state = LeaderState(epoch, self.log.end_offset, now_ms, others)
        self._persist(self._id, self._id)
        self._notify()
        # The LeaderChange control batch gives the epoch a record of its own to commit: only
        # once it is committed may the high watermark cover older epochs' records.
        leader_change = leader_change_value(self._id, self.config.voters, candidate.granted)
        self._append_batch(Batch(self.log.end_offset, epoch, (leader_change,), True))
        self._send_begin_quorum_epoch(now_ms)

    def _resign(self, now_ms: int) -> None:
        st = self.state
        assert isinstance(st, LeaderState)
        successors = tuple(
            sorted(st.voters, key=lambda v: (-st.voters[v].end_offset, v)),
        )
        self.state = ResignedState(st.epoch, self._election_deadline(now_ms), successors)
        self._notify()
        request = EndQuorumEpochRequest(
            leader_id=self._id,
            leader_epoch=st.epoch,
            preferred_successors=successors,
            cluster_id=self.config.cluster_id,
        )
        for voter in successors:
            self._request(voter, request)

    def _maybe_transition(self, leader_id: int, epoch: int, now_ms: int) -> bool:
        """Follow what a message says about the leader (Kafka's maybeTransition).

        A higher epoch moves this node to it (as a follower when the leader is known); a known
        leader of the current epoch turns an Unattached, Voted or Candidate node into its
        follower. True when the state changed.
        """
        st = self.state
        if epoch > st.epoch:
            if leader_id not in (NO_LEADER, self._id):
                self._become_follower(epoch, leader_id, now_ms)
            else:
                self._become_unattached(epoch, now_ms)
            return True
        if epoch < st.epoch or leader_id in (NO_LEADER, self._id):
            return False
        if isinstance(st, LeaderState | ResignedState):
            raise RaftInvariantError(f"node {leader_id} claims to lead epoch {epoch}, ours")
        if isinstance(st, FollowerState):
            if st.leader_id != leader_id:
                raise RaftInvariantError(
                    f"two leaders in epoch {epoch}: {st.leader_id} and {leader_id}"
                )
            return False
        self._become_follower(epoch, leader_id, now_ms)
        return True

    # -- the poll loop: timers and fetching ------------------------------------------------------

    def _poll(self, now_ms: int) -> None:
        st = self.state
        if isinstance(st, LeaderState):
            check = self._check_quorum_deadline(st)
            if check is not None and now_ms >= check:
                self._resign(now_ms)
                return
            if now_ms >= st.begin_epoch_retry_ms:
                self._send_begin_quorum_epoch(now_ms)
            expired = [p for p in st.parked.values() if now_ms >= p.deadline_ms]
            for parked in expired:
                self._complete_parked_fetch(st, parked)
        elif isinstance(st, CandidateState | VotedState | ResignedState):
            if now_ms >= st.election_deadline_ms:
                self._become_candidate(now_ms)
        elif isinstance(st, UnattachedState):
            if st.election_deadline_ms is not None:
                if now_ms >= st.election_deadline_ms:
                    self._become_candidate(now_ms)
            elif self.config.voters:
                self._maybe_fetch(st.fetch, None, now_ms)  # any voter knows who leads
        elif isinstance(st, FollowerState):
            if now_ms >= st.fetch_deadline_ms:
                if self.config.is_voter:
                    self._become_candidate(now_ms)
                else:
                    self._become_unattached(st.epoch, now_ms)
                    self._poll(now_ms)  # and ask a voter at once who leads
                return
            self._maybe_fetch(st.fetch, st.leader_id, now_ms)

    def _fetch_deadlines(self, cursor: FetchCursor) -> list[int]:
        if cursor.in_flight is not None:
            return [cursor.sent_ms + self.config.request_timeout_ms]
        if cursor.snapshot_id is None and self.log.flushed_offset < self.log.end_offset:
            return []  # waits for LogFlushed, not for time
        return [cursor.next_fetch_ms]

    def _maybe_fetch(self, cursor: FetchCursor, target: int | None, now_ms: int) -> None:
        if cursor.in_flight is not None:
            if now_ms - cursor.sent_ms < self.config.request_timeout_ms:
                return
            cursor.in_flight = None  # lost: ask again
        if now_ms < cursor.next_fetch_ms:
            return
        message: Message
        if cursor.snapshot_id is not None:
            message = FetchSnapshotRequest(
                replica_id=self._id,
                current_leader_epoch=self.state.epoch,
                snapshot_id=cursor.snapshot_id,
                position=len(cursor.snapshot_bytes),
                max_bytes=self.config.snapshot_chunk_bytes,
                cluster_id=self.config.cluster_id,
            )
        else:
            if self.log.flushed_offset < self.log.end_offset:
                return  # the fetch offset acknowledges records: only flushed ones
            message = FetchRequest(
                replica_id=self._id,
                current_leader_epoch=self.state.epoch,
                fetch_offset=self.log.end_offset,
                last_fetched_epoch=self.log.last_fetched_epoch,
                log_start_offset=self.log.log_start_offset,
                cluster_id=self.config.cluster_id,
                max_wait_ms=self.config.fetch_max_wait_ms,
                partition_max_bytes=self.config.fetch_max_bytes,
            )
        if target is None:
            voters = self.config.voters
            target = voters[self._random.randrange(0, len(voters))]
        cursor.in_flight = self._request(target, message)
        cursor.sent_ms = now_ms

    # -- leader duties -------------------------------------------------------------------------

    def _check_quorum_deadline(self, st: LeaderState) -> int | None:
        """When the leader must resign unless more voters fetch (Kafka's check-quorum)."""
        needed = self.config.majority - 1  # the leader counts itself
        if needed == 0:
            return None
        times = sorted((p.last_fetch_ms for p in st.voters.values()), reverse=True)
        return times[needed - 1] + self.config.check_quorum_timeout_ms

    def _send_begin_quorum_epoch(self, now_ms: int) -> None:
        st = self.state
        assert isinstance(st, LeaderState)
        request = BeginQuorumEpochRequest(
            leader_id=self._id, leader_epoch=st.epoch, cluster_id=self.config.cluster_id
        )
        for voter in sorted(set(st.voters) - st.begin_epoch_acked):
            self._request(voter, request)
        st.begin_epoch_retry_ms = now_ms + self.config.retry_backoff_ms

    def _append_batch(self, batch: Batch) -> None:
        self.log.append(batch)
        self._out.append(AppendToLog(batch))
        self._out.append(FlushLog(self.log.request_flush()))
        st = self.state
        if isinstance(st, LeaderState):
            self._complete_parked_fetches(st)

    def _complete_parked_fetches(self, st: LeaderState) -> None:
        for parked in list(st.parked.values()):
            self._complete_parked_fetch(st, parked)

    def _complete_parked_fetch(self, st: LeaderState, parked: ParkedFetch) -> None:
        """Answer a held fetch with what there is now (records, or just the HW)."""
        del st.parked[parked.source]
        records: tuple[Batch, ...] = ()
        if parked.fetch_offset < self.log.end_offset:
            records = self.log.read(parked.fetch_offset, self.config.fetch_max_bytes)
        response = FetchResponse(
            error_code=RaftError.NONE,
            high_watermark=self.high_watermark,
            current_leader=self._current_leader(),
            log_start_offset=self.log.log_start_offset,
            records=records,
        )
        self._respond(parked.source, response, parked.correlation_id)

    def _leader_local_end_offset(self) -> int:
        """The leader's own acknowledged end: only what it has flushed."""
        return self.log.flushed_offset

    def _maybe_advance_leader_high_watermark(self) -> None:
        st = self.state
        assert isinstance(st, LeaderState)
        ends = [self._leader_local_end_offset()] + [p.end_offset for p in st.voters.values()]
        ends.sort(reverse=True)
        reached = ends[self.config.majority - 1]
        # Kafka's LeaderState: only past the epoch's own first record (leader completeness).
        if reached > st.epoch_start_offset and reached > self.high_watermark:
            self._advance_high_watermark(reached)

    def _advance_high_watermark(self, high_watermark: int) -> None:
        self.high_watermark = high_watermark
        st = self.state
        if isinstance(st, LeaderState):
            self._complete_parked_fetches(st)  # followers learn the new HW at once
        batches = self.log.batches_between(self._applied_offset, high_watermark)
        if batches:
            self._applied_offset = batches[-1].end_offset
            self._out.append(ApplyCommitted(high_watermark, batches))

    def _on_append(self, event: AppendRecords, now_ms: int) -> None:
        st = self.state
        if not isinstance(st, LeaderState):
            self._out.append(
                AppendRejected(RaftError.NOT_LEADER_OR_FOLLOWER, self.leader_id, st.epoch)
            )
            return
        if not event.records:
            self._out.append(AppendRejected(RaftError.INVALID_REQUEST, self._id, st.epoch))
            return
        batch = Batch(self.log.end_offset, st.epoch, event.records)
        self._append_batch(batch)
        self._out.append(AppendAccepted(batch.base_offset, batch.end_offset, st.epoch))

    def _on_create_snapshot(self, event: CreateSnapshot) -> None:
        end = event.end_offset
        if end > self._applied_offset or end <= self.log.log_start_offset:
            raise ValueError(
                f"snapshot at {end} must be above the log start {self.log.log_start_offset} "
                f"and at most the applied offset {self._applied_offset}"
            )
        snapshot_id = OffsetAndEpoch(end, self.log.epoch_before(end))
        self.log.install_snapshot(Snapshot(snapshot_id, event.payload))
        self._out.append(WriteSnapshot(snapshot_id, event.payload))
        self._out.append(DeleteLogBefore(end))

    # -- messages ---------------------------------------------------------------------------------

    def _on_message(self, source: int, message: Message, correlation_id: int, now_ms: int) -> None:
        if isinstance(message, FetchRequest):
            self._on_fetch_request(source, message, correlation_id, now_ms)
        elif isinstance(message, FetchResponse):
            self._on_fetch_response(message, correlation_id, now_ms)
        elif isinstance(message, VoteRequest):
            self._on_vote_request(source, message, correlation_id, now_ms)
        elif isinstance(message, VoteResponse):
            self._on_vote_response(source, message, now_ms)
        elif isinstance(message, BeginQuorumEpochRequest):
            self._on_begin_quorum_epoch_request(source, message, correlation_id, now_ms)
        elif isinstance(message, BeginQuorumEpochResponse):
            self._on_begin_quorum_epoch_response(source, message, now_ms)
        elif isinstance(message, EndQuorumEpochRequest):
            self._on_end_quorum_epoch_request(source, message, correlation_id, now_ms)
        elif isinstance(message, EndQuorumEpochResponse):
            if message.error_code == RaftError.NONE:
                self._maybe_transition(message.leader_id, message.leader_epoch, now_ms)
        elif isinstance(message, FetchSnapshotRequest):
            self._on_fetch_snapshot_request(source, message, correlation_id, now_ms)
        elif isinstance(message, FetchSnapshotResponse):
            self._on_fetch_snapshot_response(message, correlation_id, now_ms)
        elif isinstance(message, DescribeQuorumRequest):
            self._respond(source, self.describe_quorum(now_ms), correlation_id)
        # A DescribeQuorumResponse is for admin clients; a core never asks.

    def _wrong_cluster(self, cluster_id: str | None) -> bool:
        mine = self.config.cluster_id
        return cluster_id is not None and mine is not None and cluster_id != mine

    def _leader_only_error(self, request_epoch: int) -> RaftError | None:
        """Kafka's validateLeaderOnlyRequest."""
        if request_epoch < self.state.epoch:
            return RaftError.FENCED_LEADER_EPOCH
        if request_epoch > self.state.epoch:
            return RaftError.UNKNOWN_LEADER_EPOCH
        if not isinstance(self.state, LeaderState):
            return RaftError.NOT_LEADER_OR_FOLLOWER
        return None

    # Vote

    def _on_vote_request(
        self, source: int, request: VoteRequest, correlation_id: int, now_ms: int
    ) -> None:
        def answer(granted: bool, error: RaftError = RaftError.NONE) -> None:
            response = VoteResponse(self.leader_id, self.state.epoch, granted, error_code=error)
            self._respond(source, response, correlation_id)

        if self._wrong_cluster(request.cluster_id):
            self._respond(
                source,
                VoteResponse(
                    NO_LEADER,
                    self.state.epoch,
                    False,
                    top_level_error_code=RaftError.INCONSISTENT_CLUSTER_ID,
                ),
                correlation_id,
            )
            return
        if not self.config.is_voter or request.candidate_id not in self.config.voters:
            answer(False, RaftError.INCONSISTENT_VOTER_SET)
            return
        if request.voter_id not in (-1, self._id):
            answer(False, RaftError.INCONSISTENT_VOTER_SET)
            return
        if request.candidate_epoch < self.state.epoch:
            answer(False, RaftError.FENCED_LEADER_EPOCH)
            return
        if request.candidate_epoch > self.state.epoch:
            self._become_unattached(request.candidate_epoch, now_ms)
        granted = self._can_grant_vote(request)
        if granted and isinstance(self.state, UnattachedState):
            self._become_voted(request.candidate_id, now_ms)  # persisted before the answer
        answer(granted)

    def _is_log_up_to_date(self, request: VoteRequest) -> bool:
        ours = (self.log.last_fetched_epoch, self.log.end_offset)
        return (request.last_offset_epoch, request.last_offset) >= ours

    def _can_grant_vote(self, request: VoteRequest) -> bool:
        st = self.state
        if isinstance(st, UnattachedState):
            return self._is_log_up_to_date(request)
        if isinstance(st, VotedState):
            return st.voted_id == request.candidate_id
        return False

    def _on_vote_response(self, source: int, response: VoteResponse, now_ms: int) -> None:
        if response.top_level_error_code != RaftError.NONE:
            return
        if self._maybe_transition(response.leader_id, response.leader_epoch, now_ms):
            return
        st = self.state
        if not isinstance(st, CandidateState) or response.leader_epoch != st.epoch:
            return
        if source not in self.config.voters:
            return
        if response.error_code == RaftError.NONE and response.vote_granted:
            st.granted.add(source)
            if len(st.granted) >= self.config.majority:
                self._become_leader(now_ms)
        else:
            st.rejected.add(source)  # a lost election waits out its randomized timeout

    # BeginQuorumEpoch / EndQuorumEpoch

    def _on_begin_quorum_epoch_request(
        self, source: int, request: BeginQuorumEpochRequest, correlation_id: int, now_ms: int
    ) -> None:
        error = RaftError.NONE
        if self._wrong_cluster(request.cluster_id):
            error = RaftError.INCONSISTENT_CLUSTER_ID
        elif request.leader_id not in self.config.voters or request.voter_id not in (-1, self._id):
            error = RaftError.INCONSISTENT_VOTER_SET
        elif request.leader_epoch < self.state.epoch:
            error = RaftError.FENCED_LEADER_EPOCH
        else:
            self._maybe_transition(request.leader_id, request.leader_epoch, now_ms)
        response = BeginQuorumEpochResponse(self.leader_id, self.state.epoch, error_code=error)
        self._respond(source, response, correlation_id)

    def _on_begin_quorum_epoch_response(
        self, source: int, response: BeginQuorumEpochResponse, now_ms: int
    ) -> None:
        if response.error_code != RaftError.NONE:
            self._maybe_transition(response.leader_id, response.leader_epoch, now_ms)
            return
        st = self.state
        if isinstance(st, LeaderState) and response.leader_epoch == st.epoch:
            st.begin_epoch_acked.add(source)

    def _on_end_quorum_epoch_request(
        self, source: int, request: EndQuorumEpochRequest, correlation_id: int, now_ms: int
    ) -> None:
        error = RaftError.NONE
        if self._wrong_cluster(request.cluster_id):
            error = RaftError.INCONSISTENT_CLUSTER_ID
        elif request.leader_id not in self.config.voters:
            error = RaftError.INCONSISTENT_VOTER_SET
        elif request.leader_epoch < self.state.epoch:
            error = RaftError.FENCED_LEADER_EPOCH
        else:
            self._maybe_transition(request.leader_id, request.leader_epoch, now_ms)
            st = self.state
            if (
                isinstance(st, FollowerState)
                and st.leader_id == request.leader_id
                and self.config.is_voter
            ):
                # The preferred successors stand first, one retry backoff apart.
                if self._id in request.preferred_successors:
                    position = request.preferred_successors.index(self._id)
                    wait = position * self.config.retry_backoff_ms * 5
                else:
                    wait = self._election_deadline(0)
                st.fetch_deadline_ms = min(st.fetch_deadline_ms, now_ms + wait)
        response = EndQuorumEpochResponse(self.leader_id, self.state.epoch, error_code=error)
        self._respond(source, response, correlation_id)

    # Fetch (leader side)

    def _on_fetch_request(
        self, source: int, request: FetchRequest, correlation_id: int, now_ms: int
    ) -> None:
        replica = request.replica_id  # whose progress it reports; the answer goes to `source`

        base = FetchResponse(
            error_code=RaftError.NONE,
            high_watermark=self.high_watermark if self.is_leader else -1,
            current_leader=self._current_leader(),
            log_start_offset=self.log.log_start_offset,
        )

        def answer(response: FetchResponse) -> None:
            self._respond(source, response, correlation_id)

        if self._wrong_cluster(request.cluster_id):
            answer(replace(base, top_level_error_code=RaftError.INCONSISTENT_CLUSTER_ID))
            return
        error = self._leader_only_error(request.current_leader_epoch)
        if error is not None:
            answer(replace(base, error_code=error))
            return
        if (
            request.fetch_offset < 0
            or request.last_fetched_epoch < 0
            or request.last_fetched_epoch > request.current_leader_epoch
        ):
            answer(replace(base, error_code=RaftError.INVALID_REQUEST))
            return
        st = self.state
        assert isinstance(st, LeaderState)
        progress = self._progress(st, replica)
        if progress is not None:
            progress.last_fetch_ms = now_ms
        validation = self.log.validate_fetch(request.fetch_offset, request.last_fetched_epoch)
        if isinstance(validation, Diverging):
            answer(replace(base, diverging_epoch=validation.diverging_epoch))
            return
        if isinstance(validation, SnapshotNeeded):
            answer(replace(base, snapshot_id=validation.snapshot_id))
            return
        high_watermark_before = self.high_watermark
        if progress is not None:
            progress.end_offset = request.fetch_offset
            if request.fetch_offset >= self.log.end_offset:
                progress.last_caught_up_ms = now_ms
            if replica in st.voters:
                st.begin_epoch_acked.add(replica)
                self._maybe_advance_leader_high_watermark()
        st.parked.pop(source, None)  # it has given up on an older one
        records: tuple[Batch, ...] = ()
        if request.fetch_offset < self.log.end_offset:
            max_bytes = min(request.partition_max_bytes, self.config.fetch_max_bytes)
            records = self.log.read(request.fetch_offset, max_bytes)
        elif request.max_wait_ms > 0 and self.high_watermark == high_watermark_before:
            # Nothing new: hold it (Kafka's fetch purgatory) until an append, a high
            # watermark move or the max wait, instead of having the follower poll.
            wait = min(request.max_wait_ms, self.config.fetch_max_wait_ms)
            st.parked[source] = ParkedFetch(
                source, replica, request.fetch_offset, correlation_id, now_ms + wait
            )
            return
        # The high watermark may have moved with this very fetch.
        answer(replace(base, high_watermark=self.high_watermark, records=records))

    def _progress(self, st: LeaderState, replica: int) -> ReplicaProgress | None:
        if replica == self._id or replica < 0:
            return None
        if replica in st.voters:
            return st.voters[replica]
        return st.observers.setdefault(replica, ReplicaProgress())

    # Fetch (follower side)

    def _fetch_cursor(self) -> FetchCursor | None:
        st = self.state
        if isinstance(st, FollowerState | UnattachedState):
            return st.fetch
        return None

    def _on_fetch_response(self, response: FetchResponse, correlation_id: int, now_ms: int) -> None:
        cursor = self._fetch_cursor()
        if cursor is None or cursor.in_flight != correlation_id:
            return  # an answer to a request we no longer wait for
        cursor.in_flight = None
        leader = response.current_leader
        if response.top_level_error_code != RaftError.NONE or response.error_code != RaftError.NONE:
            if not self._maybe_transition(leader.leader_id, leader.leader_epoch, now_ms):
                cursor.next_fetch_ms = now_ms + self.config.retry_backoff_ms
            return
        st = self.state
        if not isinstance(st, FollowerState) or leader.leader_epoch != st.epoch:
            # An observer that asked a voter at random found the leader itself.
            self._maybe_transition(leader.leader_id, leader.leader_epoch, now_ms)
            return
        st.fetch_deadline_ms = now_ms + self.config.fetch_timeout_ms
        if response.diverging_epoch is not None:
            offset = self.log.truncation_offset(response.diverging_epoch)
            if offset < self.high_watermark:
                raise RaftInvariantError(
                    f"truncation to {offset} below the high watermark {self.high_watermark}"
                )
            self.log.truncate_to(offset)
            self._out.append(TruncateLog(offset))
            return
        if response.snapshot_id is not None:
            cursor.snapshot_id = response.snapshot_id
            cursor.snapshot_bytes = bytearray()
            return
        appended = False
        for batch in response.records:
            if batch.end_offset <= self.log.end_offset:
                continue
            if batch.base_offset != self.log.end_offset:
                break
            self.log.append(batch)
            self._out.append(AppendToLog(batch))
            appended = True
        if appended:
            self._out.append(FlushLog(self.log.request_flush()))
        self._update_follower_high_watermark(response.high_watermark)

    def _update_follower_high_watermark(self, leader_high_watermark: int) -> None:
        # Below both the leader's high watermark and our end, our log is the leader's log.
        high_watermark = min(leader_high_watermark, self.log.end_offset)
        if high_watermark > self.high_watermark:
            self._advance_high_watermark(high_watermark)

    # FetchSnapshot

    def _on_fetch_snapshot_request(
        self, source: int, request: FetchSnapshotRequest, correlation_id: int, now_ms: int
    ) -> None:
        replica = request.replica_id

        base = FetchSnapshotResponse(RaftError.NONE, self._current_leader())

        def answer(response: FetchSnapshotResponse) -> None:
            self._respond(source, response, correlation_id)

        if self._wrong_cluster(request.cluster_id):
            answer(replace(base, top_level_error_code=RaftError.INCONSISTENT_CLUSTER_ID))
            return
        error = self._leader_only_error(request.current_leader_epoch)
        if error is not None:
            answer(replace(base, error_code=error))
            return
        st = self.state
        assert isinstance(st, LeaderState)
        progress = self._progress(st, replica)
        if progress is not None:
            progress.last_fetch_ms = now_ms
        snapshot = self.log.snapshot
        if snapshot is None or snapshot.snapshot_id != request.snapshot_id:
            answer(replace(base, error_code=RaftError.SNAPSHOT_NOT_FOUND))
            return
        payload = snapshot.payload
        if not 0 <= request.position <= len(payload):
            answer(replace(base, error_code=RaftError.POSITION_OUT_OF_RANGE))
            return
        size = max(1, min(request.max_bytes, self.config.snapshot_chunk_bytes))
        chunk = payload[request.position : request.position + size]
        answer(
            replace(
                base,
                snapshot_id=snapshot.snapshot_id,
                size=len(payload),
                position=request.position,
                unaligned_records=chunk,
            )
        )

    def _on_fetch_snapshot_response(
        self, response: FetchSnapshotResponse, correlation_id: int, now_ms: int
    ) -> None:
        cursor = self._fetch_cursor()
        if cursor is None or cursor.in_flight != correlation_id or cursor.snapshot_id is None:
            return
        cursor.in_flight = None
        leader = response.current_leader
        if response.top_level_error_code != RaftError.NONE or response.error_code != RaftError.NONE:
            if response.error_code in (
                RaftError.SNAPSHOT_NOT_FOUND,
                RaftError.POSITION_OUT_OF_RANGE,
            ):
                cursor.snapshot_id = None  # start over with a Fetch
            elif not self._maybe_transition(leader.leader_id, leader.leader_epoch, now_ms):
                cursor.next_fetch_ms = now_ms + self.config.retry_backoff_ms
            return
        st = self.state
        if not isinstance(st, FollowerState) or leader.leader_epoch != st.epoch:
            return
        if response.snapshot_id != cursor.snapshot_id or response.position != len(
            cursor.snapshot_bytes
        ):
            cursor.snapshot_id = None
            return
        st.fetch_deadline_ms = now_ms + self.config.fetch_timeout_ms
        cursor.snapshot_bytes += response.unaligned_records
        if len(cursor.snapshot_bytes) < response.size:
            return
        snapshot = Snapshot(cursor.snapshot_id, bytes(cursor.snapshot_bytes))
        cursor.snapshot_id = None
        cursor.snapshot_bytes = bytearray()
        end = snapshot.snapshot_id.offset
        if end < self.high_watermark:
            raise RaftInvariantError(f"snapshot at {end} below the high watermark")
        self.log.reset_to_snapshot(snapshot)
        self._out.append(LoadSnapshot(snapshot.snapshot_id, snapshot.payload))
        self.high_watermark = end
        self._applied_offset = end

    # DescribeQuorum

    def describe_quorum(self, now_ms: int) -> DescribeQuorumResponse:
        st = self.state
        if not isinstance(st, LeaderState):
            return DescribeQuorumResponse(
                error_code=RaftError.NOT_LEADER_OR_FOLLOWER,
                leader_id=self.leader_id,
                leader_epoch=st.epoch,
                high_watermark=-1,
                current_voters=(),
                observers=(),
            )
        me = ReplicaState(self._id, self.log.end_offset, now_ms, now_ms)
        voters = [me] + [
            ReplicaState(v, p.end_offset, p.last_fetch_ms, p.last_caught_up_ms)
            for v, p in sorted(st.voters.items())
        ]
        observers = [
            ReplicaState(o, p.end_offset, p.last_fetch_ms, p.last_caught_up_ms)
            for o, p in sorted(st.observers.items())
        ]
        return DescribeQuorumResponse(
            error_code=RaftError.NONE,
            leader_id=self._id,
            leader_epoch=st.epoch,
            high_watermark=self.high_watermark,
            current_voters=tuple(voters),
            observers=tuple(observers),
        )
