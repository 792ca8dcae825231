"""KRaft-style quorum for `__cluster_metadata`: a pure core and the values it speaks.

- `messages`: the events a core is stepped with, the commands it returns, and the quorum RPCs
  (Vote, BeginQuorumEpoch, EndQuorumEpoch, Fetch, FetchSnapshot, DescribeQuorum) with Kafka's
  fields;
- `state`: the quorum states (Unattached, Voted, Candidate, Leader, Follower, Resigned) and the
  quorum-state file's content;
- `log`: the core's model of the replicated log (batches, epoch cache, flushed offset,
  snapshot) and Kafka's fetch validation rules;
- `core`: `RaftCore.step(event, now_ms) -> list[Command]`.

Nothing in this package does I/O or awaits: a runtime (an asyncio driver, later) executes the
commands against the real log, the quorum-state file and the network. It is proven by the
deterministic simulator in `tests/property/raft_simulator.py`.
"""
