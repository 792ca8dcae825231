"""A deterministic cluster for `RaftCore`: seeded network, disks that lose unflushed writes,
crashes, partitions, a client, and a checker that runs after every step.

One `Simulation(seed)` is a whole run: N voters and some observers, each a `RaftCore` over a
`SimDisk`. The network delays every message by a random amount (so it reorders), drops and
duplicates some, and honours partitions; a message sent to a node that crashes before delivery
is lost with its connection. An fsync (`FlushLog`) finishes after a random delay; a crash keeps
the flushed log plus a random part of what was written after it, and everything in memory is
gone. Truncations, the quorum-state file and snapshots are written synchronously, as the
runtime does.

Checked after every step (`Checker`):
- election safety: at most one leader per epoch;
- log matching: a batch with the same base offset and epoch on two nodes has the same content
  and the same prefix (a hash chain over the log);
- leader completeness: every committed batch is in the log (or the snapshot) of every leader,
  checked when it is elected and after every later step;
- state-machine safety: no two nodes apply different batches at the same offset, a snapshot
  holds exactly the committed prefix, and committed never un-commits;
- no node's core raises `RaftInvariantError`.

With `over_the_wire`, every message is encoded and decoded by kio through `wire.py` at a
random version of its API, so the adapter is held to the whole protocol too.

After the faulty phase every node is restarted and healed; the run must then elect a leader and
commit a fresh batch on every node within a bounded simulated time (liveness), and everything
any leader reported committed must still be there.
"""

from __future__ import annotations

import bisect
import heapq
import io
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kio.serial import entity_reader, entity_writer

from odradek.metadata.raft.core import RaftConfig, RaftCore
from odradek.metadata.raft.log import RaftLog, Snapshot
from odradek.metadata.raft.messages import (
    AppendAccepted,
    AppendRecords,
    AppendRejected,
    AppendToLog,
    ApplyCommitted,
    Batch,
    Command,
    CreateSnapshot,
    DeleteLogBefore,
    Event,
    FlushLog,
    LoadSnapshot,
    LogFlushed,
    Message,
    OffsetAndEpoch,
    PersistQuorumState,
    Received,
    Resign,
    Send,
    StateChanged,
    StateName,
    Tick,
    TruncateLog,
    WriteSnapshot,
)
from odradek.metadata.raft.state import QuorumStateFile
from odradek.metadata.raft.wire import VERSIONS, api_key_of, from_kio, to_kio

CoreFactory = Callable[..., RaftCore]


class SafetyViolation(AssertionError):
    pass


class LivenessFailure(AssertionError):
    pass


@dataclass(frozen=True)
class FaultProfile:
    drop: float = 0.05
    duplicate: float = 0.03
    max_delay_ms: int = 25
    max_flush_ms: int = 15
    slow_flush: float = 0.1  # an fsync stall: this share of flushes takes up to ...
    max_slow_flush_ms: int = 150
    fault_every_ms: tuple[int, int] = (80, 300)
    client_every_ms: tuple[int, int] = (5, 40)
    snapshot_every_ms: tuple[int, int] = (200, 600)
    fault_phase_ms: int = 1500
    heal_limit_ms: int = 4000


@dataclass
class SimDisk:
    """What survives a crash is `durable`; `written` is the log as the core last wrote it."""

    written: list[Batch] = field(default_factory=list)
    durable_count: int = 0  # batches of `written` that are fsync'd
    quorum_state: QuorumStateFile | None = None
    snapshot: Snapshot | None = None
    snapshot_chain: int = 0


@dataclass
class SimNode:
    node_id: int
    voter: bool
    disk: SimDisk = field(default_factory=SimDisk)
    core: RaftCore | None = None
    incarnation: int = 0
    tick_at: int = -1
    chains: list[int] = field(default_factory=list)  # hash chain, parallel to disk.written
    ends: list[int] = field(default_factory=list)  # end offsets, parallel to disk.written
    applied: list[tuple[int, bytes]] = field(default_factory=list)  # state machine: records
    applied_end: int = 0

    @property
    def alive(self) -> bool:
        return self.core is not None

    def start_chain(self) -> int:
        return self.disk.snapshot_chain if self.disk.snapshot else 0

    def chain_at(self, end_offset: int) -> int | None:
        """The hash chain of this node's log prefix ending at `end_offset`, if it has one."""
        snapshot = self.disk.snapshot
        if end_offset == 0:
            return 0
        if snapshot is not None and end_offset == snapshot.snapshot_id.offset:
            return self.disk.snapshot_chain
        i = bisect.bisect_left(self.ends, end_offset)
        if i < len(self.ends) and self.ends[i] == end_offset:
            return self.chains[i]
        return None


def durable_prefix(written: list[Batch], covered: tuple[Batch, ...]) -> int:
    """How many leading batches of `written` an fsync that covered `covered` made durable:
    the same batch objects (a batch rewritten after a truncation is a new object)."""
    if not written:
        return 0
    first = written[0].base_offset
    shift = next((i for i, b in enumerate(covered) if b.base_offset == first), None)
    if shift is None:
        return 0
    count = 0
    while count < len(written) and shift + count < len(covered):
        if written[count] is not covered[shift + count]:
            break
        count += 1
    return count


def through_kio(message: Message, rng: random.Random) -> Message:
    """`message` encoded by kio at a random version of its API and decoded back."""
    low, high = VERSIONS[api_key_of(message)]
    entity = to_kio(message, rng.randint(low, high))
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    decoded, _ = entity_reader(type(entity))(memoryview(buffer.getvalue()).toreadonly(), 0)
    return from_kio(decoded)


def encode_state(applied: list[tuple[int, bytes]], end_offset: int) -> bytes:
    return json.dumps([end_offset, [[o, r.decode()] for o, r in applied]]).encode()


def decode_state(payload: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    end, items = json.loads(payload)
    return end, [(o, r.encode()) for o, r in items]


class Checker:
    """The safety properties, fed by what the nodes do."""

    def __init__(self) -> None:
        self.leaders: dict[int, int] = {}  # epoch -> leader
        self.batch_chains: dict[tuple[int, int], int] = {}  # (base offset, epoch) -> chain
        self.committed: dict[int, int] = {}  # end offset -> chain, of committed prefixes
        self.committed_end = 0
        self.committed_records: dict[int, bytes] = {}  # offset -> record, as applied
        self.snapshot_chains: dict[tuple[int, int], int] = {}
        self.commit_ends: dict[int, int] = {}  # epoch -> largest end committed by then

    def fail(self, what: str) -> None:
        raise SafetyViolation(what)

    def on_leader(self, node: SimNode, epoch: int) -> None:
        other = self.leaders.setdefault(epoch, node.node_id)
        if other != node.node_id:
            self.fail(f"election safety: {other} and {node.node_id} both lead epoch {epoch}")
        self.check_completeness(node, epoch)

    def on_append(self, node: SimNode, batch: Batch, chain: int) -> None:
        key = (batch.base_offset, batch.epoch)
        known = self.batch_chains.setdefault(key, chain)
        if known != chain:
            self.fail(
                f"log matching: node {node.node_id} has a different batch or prefix at "
                f"offset {batch.base_offset} epoch {batch.epoch}"
            )

    def on_commit(self, node: SimNode, end_offset: int, epoch: int) -> None:
        """`node`, in `epoch`, learnt that its log prefix up to `end_offset` is committed: by a
        leader of `epoch` or an earlier one."""
        chain = node.chain_at(end_offset)
        if chain is None:
            self.fail(f"node {node.node_id} applied up to {end_offset} which it does not hold")
        known = self.committed.setdefault(end_offset, chain)
        if known != chain:
            self.fail(f"state-machine safety: two committed prefixes end at {end_offset}")
        self.committed_end = max(self.committed_end, end_offset)
        self.commit_ends[epoch] = max(self.commit_ends.get(epoch, 0), end_offset)

    def on_apply(self, node: SimNode, offset: int, record: bytes) -> None:
        known = self.committed_records.setdefault(offset, record)
        if known != record:
            self.fail(
                f"state-machine safety: node {node.node_id} applied {record!r} at {offset}, "
                f"another node {known!r}"
            )

    def check_completeness(self, node: SimNode, epoch: int) -> None:
        """Leader completeness: the leader of `epoch` holds all that was committed before."""
        end = max((e for known, e in self.commit_ends.items() if known < epoch), default=0)
        if end == 0:
            return
        snapshot = node.disk.snapshot
        if snapshot is not None and end < snapshot.snapshot_id.offset:
            covered = snapshot.snapshot_id.offset
            if covered in self.committed and self.committed[covered] != node.disk.snapshot_chain:
                self.fail(f"leader {node.node_id} holds a snapshot that was never committed")
            return
        if node.chain_at(end) != self.committed[end]:
            self.fail(
                f"leader completeness: leader {node.node_id} lacks the committed prefix "
                f"ending at {end}"
            )


class Simulation:
    def __init__(
        self,
        seed: int,
        *,
        voters: int = 3,
        observers: int = 1,
        profile: FaultProfile | None = None,
        core_factory: CoreFactory = RaftCore,
        trace: bool = False,
        over_the_wire: bool = False,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.profile = profile or FaultProfile()
        self.core_factory = core_factory
        self.voter_ids = tuple(range(1, voters + 1))
        self.nodes = {i: SimNode(i, True) for i in self.voter_ids}
        for i in range(voters + 1, voters + observers + 1):
            self.nodes[i] = SimNode(i, False)
        self.node_rngs = {i: random.Random(seed * 1009 + i) for i in self.nodes}
        self.checker = Checker()
        self.now = 0
        self.queue: list[tuple[int, int, str, Any]] = []
        self.seq = 0
        self.cut: set[frozenset[int]] = set()  # pairs that cannot talk
        self.faulty = True
        self.steps = 0
        self.next_record = 0
        self.acknowledged: dict[int, bytes] = {}  # offset -> record a leader reported committed
        self.heal_record: int | None = None  # records from this number on came after the heal
        self.probe_committed = False
        self.trace: list[str] | None = [] if trace else None
        self.over_the_wire = over_the_wire  # every message through kio, at a random version

    # -- scheduling ---------------------------------------------------------------------------

    def at(self, time_ms: int, kind: str, data: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (time_ms, self.seq, kind, data))

    def config(self, node_id: int) -> RaftConfig:
        return RaftConfig(
            node_id=node_id,
            voters=self.voter_ids,
            cluster_id="sim",
            election_timeout_ms=150,
            fetch_timeout_ms=300,
            retry_backoff_ms=20,
            request_timeout_ms=200,
            fetch_max_wait_ms=50,
            fetch_max_bytes=400,
            snapshot_chunk_bytes=256,
        )

    # -- node lifecycle ----------------------------------------------------------------------

    def start_node(self, node: SimNode) -> None:
        disk = node.disk
        log = RaftLog(tuple(disk.written), disk.snapshot)
        node.core = self.core_factory(
            self.config(node.node_id),
            log=log,
            quorum_state=disk.quorum_state,
            random=self.node_rngs[node.node_id],
            now_ms=self.now,
        )
        node.tick_at = -1
        if disk.snapshot is not None:
            node.applied_end, node.applied = decode_state(disk.snapshot.payload)
        else:
            node.applied_end, node.applied = 0, []
        self.execute(node, node.core.start(self.now))

    def crash(self, node: SimNode) -> None:
        disk = node.disk
        keep = self.rng.randint(disk.durable_count, len(disk.written))
        del disk.written[keep:]
        del node.chains[keep:]
        del node.ends[keep:]
        disk.durable_count = keep
        node.core = None
        node.incarnation += 1
        node.applied, node.applied_end = [], 0

    # -- commands --------------------------------------------------------------------------------

    def execute(self, node: SimNode, commands: list[Command]) -> None:
        for command in commands:
            self.run_command(node, command)
        self.schedule_tick(node)

    def run_command(self, node: SimNode, command: Command) -> None:
        disk = node.disk
        if self.trace is not None and not isinstance(command, Send):
            self.trace.append(f"{self.now} n{node.node_id} {command}")
        if isinstance(command, Send):
            self.send(node.node_id, command.destination, command.message, command.correlation_id)
        elif isinstance(command, AppendToLog):
            batch = command.batch
            prev = node.chains[-1] if node.chains else node.start_chain()
            chain = hash((prev, batch.base_offset, batch.epoch, batch.records, batch.control))
            disk.written.append(batch)
            node.chains.append(chain)
            node.ends.append(batch.end_offset)
            self.checker.on_append(node, batch, chain)
        elif isinstance(command, TruncateLog):
            keep = bisect.bisect_right(node.ends, command.end_offset)
            del disk.written[keep:]
            del node.chains[keep:]
            del node.ends[keep:]
            disk.durable_count = min(disk.durable_count, keep)
        elif isinstance(command, FlushLog):
            p = self.profile
            slow = self.faulty and self.rng.random() < self.profile.slow_flush
            delay = self.rng.randint(1, p.max_slow_flush_ms if slow else p.max_flush_ms)
            covered = tuple(disk.written)  # an fsync covers what was written before it began
            self.at(
                self.now + delay,
                "flushed",
                (node.node_id, node.incarnation, command.end_offset, covered),
            )
        elif isinstance(command, PersistQuorumState):
            disk.quorum_state = QuorumStateFile(
                command.leader_epoch, command.leader_id, command.voted_id, command.voters
            )
        elif isinstance(command, ApplyCommitted):
            self.apply(node, command)
        elif isinstance(command, WriteSnapshot):
            end = command.snapshot_id.offset
            chain = node.chain_at(end)
            assert chain is not None
            self.record_snapshot(node, command.snapshot_id, chain)
            disk.snapshot = Snapshot(command.snapshot_id, command.payload)
            disk.snapshot_chain = chain
        elif isinstance(command, DeleteLogBefore):
            drop = bisect.bisect_right(node.ends, command.log_start_offset)
            del disk.written[:drop]
            del node.chains[:drop]
            del node.ends[:drop]
            disk.durable_count = max(0, disk.durable_count - drop)
        elif isinstance(command, LoadSnapshot):
            snapshot_id = command.snapshot_id
            key = (snapshot_id.offset, snapshot_id.epoch)
            if key not in self.checker.snapshot_chains:
                self.checker.fail(f"node {node.node_id} loaded an unknown snapshot {key}")
            disk.snapshot = Snapshot(snapshot_id, command.payload)
            disk.snapshot_chain = self.checker.snapshot_chains[key]
            disk.written.clear()
            node.chains.clear()
            node.ends.clear()
            disk.durable_count = 0
            node.applied_end, node.applied = decode_state(command.payload)
            self.check_snapshot_state(node, snapshot_id.offset)
        elif isinstance(command, StateChanged):
            if command.state == StateName.LEADER:
                self.checker.on_leader(node, command.epoch)
        elif isinstance(command, AppendAccepted | AppendRejected):
            pass

    def record_snapshot(self, node: SimNode, snapshot_id: OffsetAndEpoch, chain: int) -> None:
        committed = self.checker.committed.get(snapshot_id.offset)
        if committed is not None and committed != chain:
            self.checker.fail(f"node {node.node_id} snapshots an uncommitted prefix")
        key = (snapshot_id.offset, snapshot_id.epoch)
        known = self.checker.snapshot_chains.setdefault(key, chain)
        if known != chain:
            self.checker.fail(f"two different snapshots with id {key}")

    def check_snapshot_state(self, node: SimNode, end_offset: int) -> None:
        for offset, record in node.applied:
            if self.checker.committed_records.get(offset, record) != record:
                self.checker.fail(f"snapshot on node {node.node_id} differs at {offset}")
        if end_offset > self.checker.committed_end:
            self.checker.fail(f"snapshot at {end_offset} beyond anything committed")

    def apply(self, node: SimNode, command: ApplyCommitted) -> None:
        for batch in command.batches:
            if batch.base_offset != node.applied_end:
                self.checker.fail(
                    f"node {node.node_id} applies {batch.base_offset} after {node.applied_end}"
                )
            if not batch.control:
                for i, record in enumerate(batch.records):
                    self.checker.on_apply(node, batch.base_offset + i, record)
                    node.applied.append((batch.base_offset + i, record))
            node.applied_end = batch.end_offset
        core = node.core
        assert core is not None
        if command.batches:
            self.checker.on_commit(node, node.applied_end, core.epoch)
        if core.is_leader:
            for batch in command.batches:
                if not batch.control:
                    for i, record in enumerate(batch.records):
                        self.acknowledged[batch.base_offset + i] = record
                        if self.heal_record is not None and int(record[1:]) >= self.heal_record:
                            self.probe_committed = True

    def send(self, source: int, destination: int, message: Message, correlation_id: int) -> None:
        if destination not in self.nodes:
            return
        if frozenset((source, destination)) in self.cut:
            return
        if self.faulty and self.rng.random() < self.profile.drop:
            return
        copies = 2 if self.faulty and self.rng.random() < self.profile.duplicate else 1
        if self.over_the_wire:
            message = through_kio(message, self.rng)
        target = self.nodes[destination]
        for _ in range(copies):
            delay = self.rng.randint(1, self.profile.max_delay_ms)
            self.at(
                self.now + delay,
                "deliver",
                (destination, target.incarnation, Received(source, message, correlation_id)),
            )

    def schedule_tick(self, node: SimNode) -> None:
        core = node.core
        if core is None:
            return
        deadline = core.next_deadline_ms()
        if deadline is None:
            return
        deadline = max(deadline, self.now + 1)
        if node.tick_at <= self.now or deadline < node.tick_at:
            node.tick_at = deadline
            self.at(deadline, "tick", (node.node_id, node.incarnation))

    def step_node(self, node: SimNode, event: Event) -> None:
        core = node.core
        assert core is not None
        self.execute(node, core.step(event, self.now))

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> Simulation:
        for node in self.nodes.values():
            self.start_node(node)
        p = self.profile
        self.at(self.rng.randint(*p.fault_every_ms), "fault")
        self.at(self.rng.randint(*p.client_every_ms), "client")
        self.at(self.rng.randint(*p.snapshot_every_ms), "snapshot")
        self.at(p.fault_phase_ms, "heal")
        deadline = p.fault_phase_ms + p.heal_limit_ms
        while self.queue:
            time_ms, _, kind, data = heapq.heappop(self.queue)
            if time_ms > deadline:
                break
            self.now = time_ms
            self.handle(kind, data)
            self.steps += 1
            self.check()
            if not self.faulty and self.live():
                return self
        raise LivenessFailure(f"seed {self.seed}: no progress by {deadline} ms: {self.describe()}")

    def handle(self, kind: str, data: Any) -> None:
        p = self.profile
        if self.trace is not None:
            self.trace.append(f"{self.now} {kind} {data}")
        if kind == "deliver":
            destination, incarnation, received = data
            node = self.nodes[destination]
            if node.alive and node.incarnation == incarnation:
                self.step_node(node, received)
        elif kind == "tick":
            node_id, incarnation = data
            node = self.nodes[node_id]
            if node.alive and node.incarnation == incarnation and node.tick_at == self.now:
                self.step_node(node, Tick())
        elif kind == "flushed":
            node_id, incarnation, end_offset, covered = data
            node = self.nodes[node_id]
            if node.alive and node.incarnation == incarnation:
                node.disk.durable_count = max(
                    node.disk.durable_count, durable_prefix(node.disk.written, covered)
                )
                self.step_node(node, LogFlushed(end_offset))
        elif kind == "client":
            self.client_append()
            self.at(self.now + self.rng.randint(*p.client_every_ms), "client")
        elif kind == "snapshot":
            self.take_snapshot()
            self.at(self.now + self.rng.randint(*p.snapshot_every_ms), "snapshot")
        elif kind == "fault":
            if self.faulty:
                self.inject_fault()
                self.at(self.now + self.rng.randint(*p.fault_every_ms), "fault")
        elif kind == "restart":
            node = self.nodes[data]
            if not node.alive:
                self.start_node(node)
        elif kind == "reconnect":
            self.cut.discard(data)
        elif kind == "heal":
            self.faulty = False
            self.heal_record = self.next_record
            self.cut.clear()
            for node in self.nodes.values():
                if not node.alive:
                    self.start_node(node)

    def client_append(self) -> None:
        if not self.faulty and self.probe_committed:
            return  # after the heal, one committed batch is enough to show progress
        leaders = [n for n in self.nodes.values() if n.core is not None and n.core.is_leader]
        if not leaders:
            return
        node = self.rng.choice(leaders)
        count = self.rng.randint(1, 3)
        records = tuple(f"r{self.next_record + i}".encode() for i in range(count))
        self.next_record += count
        assert node.core is not None
        self.step_node(node, AppendRecords(records))

    def take_snapshot(self) -> None:
        alive = [n for n in self.nodes.values() if n.core is not None]
        if not alive:
            return
        node = self.rng.choice(alive)
        core = node.core
        assert core is not None
        if node.applied_end <= core.log.log_start_offset:
            return
        payload = encode_state(node.applied, node.applied_end)
        self.step_node(node, CreateSnapshot(node.applied_end, payload))

    def inject_fault(self) -> None:
        choice = self.rng.random()
        ids = list(self.nodes)
        if choice < 0.35:
            alive = [n for n in self.nodes.values() if n.alive]
            leaders = [n for n in alive if n.core is not None and n.core.is_leader]
            if alive:
                # Leaders crash more often: that is where lost writes and elections meet.
                node = self.rng.choice(leaders if leaders and self.rng.random() < 0.5 else alive)
                self.crash(node)
                self.at(self.now + self.rng.randint(20, 400), "restart", node.node_id)
        elif choice < 0.7:
            # Isolate one node, or split the cluster in two random sides.
            if self.rng.random() < 0.5:
                side = {self.rng.choice(ids)}
            else:
                side = {i for i in ids if self.rng.random() < 0.5}
            until = self.now + self.rng.randint(50, 500)
            for a in side:
                for b in ids:
                    if b not in side:
                        pair = frozenset((a, b))
                        self.cut.add(pair)
                        self.at(until, "reconnect", pair)
        elif choice < 0.85:
            leaders = [n for n in self.nodes.values() if n.core is not None and n.core.is_leader]
            for node in leaders:
                self.step_node(node, Resign())
        # else: a quiet period

    # -- checks -------------------------------------------------------------------------------

    def check(self) -> None:
        for node in self.nodes.values():
            core = node.core
            if core is not None and core.is_leader:
                other = self.checker.leaders.get(core.epoch)
                if other != node.node_id:
                    self.checker.fail(f"node {node.node_id} leads epoch {core.epoch} unannounced")
                self.checker.check_completeness(node, core.epoch)

    def live(self) -> bool:
        """Healed and done: one leader, a batch appended after the heal committed on every
        node, and every node applied everything committed."""
        if not self.probe_committed:
            return False
        leaders = [n for n in self.nodes.values() if n.core is not None and n.core.is_leader]
        if len(leaders) != 1:
            return False
        leader = leaders[0]
        assert leader.core is not None
        high_watermark = leader.core.high_watermark
        if any(n.applied_end != high_watermark for n in self.nodes.values()):
            return False
        # Whatever a leader reported committed is still there (a snapshot holds its records).
        applied = dict(leader.applied)
        for offset, record in self.acknowledged.items():
            if applied.get(offset) != record:
                self.checker.fail(f"acknowledged record {record!r} at {offset} was lost")
        return True

    def describe(self) -> str:
        parts = []
        for node in self.nodes.values():
            core = node.core
            if core is None:
                parts.append(f"{node.node_id}:down")
            else:
                parts.append(
                    f"{node.node_id}:{core.state_name}@{core.epoch} end={core.log.end_offset} "
                    f"hw={core.high_watermark} applied={node.applied_end}"
                )
        return "; ".join(parts)
