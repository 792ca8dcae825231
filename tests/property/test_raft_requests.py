"""Any quorum request, however odd its numbers, gets exactly one answer with its correlation id
and leaves the core able to serve: the broker keeps serving whatever a peer or client sends.

The one exception is a request that names another leader for an epoch this node leads or
follows: two leaders in one epoch is a safety violation, and the core says so by raising
`RaftInvariantError` rather than following it.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odradek.metadata.raft.core import RaftConfig, RaftCore, RaftInvariantError
from odradek.metadata.raft.log import RaftLog
from odradek.metadata.raft.messages import (
    AppendRecords,
    Batch,
    BeginQuorumEpochRequest,
    CreateSnapshot,
    DescribeQuorumRequest,
    EndQuorumEpochRequest,
    FetchRequest,
    FetchSnapshotRequest,
    LogFlushed,
    OffsetAndEpoch,
    Received,
    Request,
    Send,
    Tick,
    VoteRequest,
    VoteResponse,
)

VOTERS = (1, 2, 3)
ints = st.one_of(st.sampled_from([-1, 0, 1, 2, 3, 4]), st.integers(min_value=-3, max_value=12))
big = st.one_of(ints, st.integers(min_value=-(2**63), max_value=2**63 - 1))
ids = st.sampled_from([-1, 1, 2, 3, 7, 99])
clusters = st.sampled_from([None, "c1", "other"])

requests: st.SearchStrategy[Request] = st.one_of(
    st.builds(VoteRequest, big, ids, ints, big, cluster_id=clusters, voter_id=ids),
    st.builds(BeginQuorumEpochRequest, ids, big, cluster_id=clusters, voter_id=ids),
    st.builds(
        EndQuorumEpochRequest, ids, big, st.lists(ids, max_size=4).map(tuple), cluster_id=clusters
    ),
    st.builds(FetchRequest, ids, ints, big, ints, cluster_id=clusters, partition_max_bytes=big),
    st.builds(
        FetchSnapshotRequest,
        ids,
        ints,
        st.one_of(st.just(OffsetAndEpoch(3, 1)), st.builds(OffsetAndEpoch, ints, ints)),
        big,
        max_bytes=big,
        cluster_id=clusters,
    ),
    st.just(DescribeQuorumRequest()),
)


class FixedRandom:
    def randrange(self, start: int, stop: int) -> int:
        return start


def make_leader() -> RaftCore:
    """Node 1 leading epoch 1 over a few batches, with a snapshot (3, 1) of what is committed."""
    log = RaftLog((Batch(0, 1, (b"a", b"b")), Batch(2, 1, (b"c",))))
    config = RaftConfig(node_id=1, voters=VOTERS, cluster_id="c1", election_timeout_ms=100)
    core = RaftCore(config, log=log, quorum_state=None, random=FixedRandom(), now_ms=0)
    core.start(0)
    core.step(Tick(), 100)
    core.step(Received(2, VoteResponse(-1, 1, True), 1), 101)
    assert core.is_leader
    core.step(LogFlushed(4), 102)
    core.step(Received(2, FetchRequest(2, 1, 4, 1), 2), 103)
    assert core.high_watermark == 4
    core.step(CreateSnapshot(3, b"snapshot"), 104)
    core.step(AppendRecords((b"d",)), 105)
    return core


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(requests, min_size=1, max_size=12))
def test_every_request_gets_one_answer_and_the_core_keeps_serving(batch: list[Request]) -> None:
    for request in batch:  # each to a fresh leader, where most rules apply...
        if not answer_once(make_leader(), request, 1000, 200):
            return
    core = make_leader()  # ...and all of them, in order, to one node
    now = 200
    for i, request in enumerate(batch):
        now += 7
        if not answer_once(core, request, 1000 + i, now):
            return
    core.step(Tick(), now + 10_000)  # and time still moves it on


def answer_once(core: RaftCore, request: Request, correlation_id: int, now: int) -> bool:
    """Step `request`; False when it claimed a second leader for the node's epoch."""
    try:
        commands = core.step(Received(5, request, correlation_id), now)
    except RaftInvariantError:
        assert isinstance(request, BeginQuorumEpochRequest | EndQuorumEpochRequest)
        return False
    answers = [c for c in commands if isinstance(c, Send) and c.correlation_id == correlation_id]
    assert all(a.destination == 5 for a in answers)  # back where it came from
    assert len(answers) == 1, (request, commands)
    expected = type(request).__name__.replace("Request", "Response")
    assert type(answers[0].message).__name__ == expected
    return True
