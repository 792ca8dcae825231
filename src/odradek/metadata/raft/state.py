"""Kafka's quorum states (raft/QuorumState and the *State classes) as plain data.

    Unattached --timeout--> Candidate --majority--> Leader --resign/check-quorum--> Resigned
        |  ^                   |   ^ timeout (new epoch)                               |
        |  | higher epoch      |   +--------------+                            timeout |
        v  |                   v                                                     v
      Voted ---------------> Follower <----- BeginQuorumEpoch / fetch hint ----- Candidate

- Unattached: the epoch is known, no leader and no vote in it; a voter starts an election
  when its randomized election timeout expires. An observer (not a voter) never does: it
  fetches from a random voter to learn who leads.
- Voted: this voter granted its one vote of the epoch; it grants it again only to the same
  candidate.
- Candidate: voted for itself in a new epoch; wins with a majority of granted votes, or starts
  over in the next epoch when the randomized election timeout expires.
- Leader: appends a LeaderChange control batch to open its epoch, answers Fetch, computes the
  high watermark from the voters' fetch offsets, resigns when no majority fetched within the
  check-quorum timeout.
- Follower: fetches from the leader; becomes a candidate (an observer: unattached) when no
  fetch succeeded within the fetch timeout.
- Resigned: a leader that stepped down; it neither votes nor leads in its epoch, and becomes
  a candidate of the next epoch when its election timeout expires.

The transitions themselves live in `core.py`; these classes only hold each state's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from odradek.metadata.raft.messages import NO_LEADER, NO_VOTE, OffsetAndEpoch, StateName


@dataclass(frozen=True, slots=True)
class QuorumStateFile:
    """What the quorum-state file holds (Kafka's ElectionState + the voter set)."""

    leader_epoch: int = 0
    leader_id: int = NO_LEADER
    voted_id: int = NO_VOTE
    voters: tuple[int, ...] = ()


@dataclass(slots=True)
class FetchCursor:
    """A fetching replica's one outstanding Fetch or FetchSnapshot request."""

    in_flight: int | None = None  # correlation id of the outstanding request
    sent_ms: int = 0
    next_fetch_ms: int = 0  # do not send before (backoff after an error or an empty fetch)
    snapshot_id: OffsetAndEpoch | None = None  # a snapshot being fetched, chunk by chunk
    snapshot_bytes: bytearray = field(default_factory=bytearray)


@dataclass(slots=True)
class UnattachedState:
    epoch: int
    election_deadline_ms: int | None  # None for observers
    fetch: FetchCursor = field(default_factory=FetchCursor)  # observers fetch from a voter
    name: StateName = StateName.UNATTACHED


@dataclass(slots=True)
class VotedState:
    epoch: int
    voted_id: int
    election_deadline_ms: int
    name: StateName = StateName.VOTED


@dataclass(slots=True)
class CandidateState:
    epoch: int
    election_deadline_ms: int
    granted: set[int] = field(default_factory=set)
    rejected: set[int] = field(default_factory=set)
    name: StateName = StateName.CANDIDATE


@dataclass(slots=True)
class FollowerState:
    epoch: int
    leader_id: int
    fetch_deadline_ms: int  # a voter starts an election, an observer looks elsewhere
    voted_id: int = NO_VOTE
    fetch: FetchCursor = field(default_factory=FetchCursor)
    name: StateName = StateName.FOLLOWER


@dataclass(slots=True)
class ReplicaProgress:
    """What the leader knows of one replica: its fetch offset is its acknowledged end."""

    end_offset: int = -1
    last_fetch_ms: int = -1
    last_caught_up_ms: int = -1


@dataclass(slots=True)
class ParkedFetch:
    """A fetch with nothing new to return, held until records arrive or its max wait ends."""

    source: int
    replica_id: int
    fetch_offset: int
    correlation_id: int
    deadline_ms: int


@dataclass(slots=True)
class LeaderState:
    epoch: int
    epoch_start_offset: int  # offset of this epoch's LeaderChange batch
    started_ms: int
    voters: dict[int, ReplicaProgress]  # the other voters
    observers: dict[int, ReplicaProgress] = field(default_factory=dict)
    begin_epoch_acked: set[int] = field(default_factory=set)
    begin_epoch_retry_ms: int = 0
    parked: dict[int, ParkedFetch] = field(default_factory=dict)  # by source
    name: StateName = StateName.LEADER


@dataclass(slots=True)
class ResignedState:
    epoch: int
    election_deadline_ms: int
    preferred_successors: tuple[int, ...] = ()
    name: StateName = StateName.RESIGNED


EpochState = (
    UnattachedState | VotedState | CandidateState | FollowerState | LeaderState | ResignedState
)
