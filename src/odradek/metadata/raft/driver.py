"""The Raft runtime: runs a `RaftCore` on the event loop over real files and sockets.

It carries out the core's commands as `docs/reference/raft.md` ("Runtime contract") says:

- `AppendToLog`: the batch goes into the `__cluster_metadata-0` `storage.Log` as a v2 batch
  carrying its own offset and epoch (`append_as_follower`, for the leader's batches too);
- `TruncateLog`: truncate and fsync before the next command;
- `FlushLog`: fsync on the driver's own thread, then step `LogFlushed` with the same offset;
- `PersistQuorumState`: the `quorum-state` JSON, atomic and fsync'd, before the next command;
- `WriteSnapshot` / `LoadSnapshot`: `<offset>-<epoch>.checkpoint` files (files.py); a loaded
  snapshot empties the log and reloads the state machine;
- `DeleteLogBefore`: the log start moves up and older snapshots go;
- `Send`: a request goes out through the network seam (a task per request; its answer comes
  back as `Received` with the request's correlation id; a failed or timed-out request is
  simply not answered, the core resends on its own timers); a response answers the inbound
  request it belongs to;
- `ApplyCommitted`, `StateChanged`, `AppendAccepted` / `AppendRejected`: handed to the owner
  (the quorum) through callbacks and return values.

Timers: after every step the loop sleeps until `next_deadline_ms()` (or until another step
moved it) and then steps `Tick`. Start-up rebuilds the core's `RaftLog` from the newest
snapshot and the log's batches after it, and the core's state from `quorum-state` (a node that
led the persisted epoch restarts Resigned). A log written by the single-node quorum (plain
batches at epoch 0, no LeaderChange, no quorum-state) loads the same way.

Everything runs on one event loop: steps never interleave, so there are no locks here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from odradek.common.clock import Clock
from odradek.metadata.raft import files, wire
from odradek.metadata.raft.core import RaftConfig, RaftCore
from odradek.metadata.raft.log import RaftLog, Snapshot
from odradek.metadata.raft.messages import (
    AppendAccepted,
    AppendRejected,
    AppendToLog,
    ApplyCommitted,
    Batch,
    Command,
    DeleteLogBefore,
    DescribeQuorumResponse,
    Event,
    FlushLog,
    LoadSnapshot,
    LogFlushed,
    Message,
    PersistQuorumState,
    Received,
    ReplicaState,
    Request,
    Send,
    StateChanged,
    Tick,
    TruncateLog,
    WriteSnapshot,
)
from odradek.metadata.raft.state import QuorumStateFile
from odradek.metadata.raft.wire import QuorumMessage
from odradek.storage.fileio import FileIO
from odradek.storage.log import Log, LogConfig

logger = logging.getLogger(__name__)

# The versions this runtime sends (every Odradek node serves them; see server/handlers).
SEND_VERSIONS = {
    wire.FETCH: 13,
    wire.VOTE: 0,
    wire.BEGIN_QUORUM_EPOCH: 0,
    wire.END_QUORUM_EPOCH: 0,
    wire.DESCRIBE_QUORUM: 0,
    wire.FETCH_SNAPSHOT: 0,
}
READ_CHUNK_BYTES = 1 << 20


class RaftNetwork(Protocol):
    """Where requests to other nodes go: `transport.client.TransportClient` in a broker."""

    async def send(self, node_id: int, request: Any, *, timeout_ms: int | None = None) -> Any: ...


class NoNetwork:
    """The network of a quorum of one: there is nobody to send to."""

    async def send(self, node_id: int, request: Any, *, timeout_ms: int | None = None) -> Any:
        raise ConnectionError(f"node {node_id} is not reachable from a quorum of one")


def read_log_batches(log: Log, start: int) -> list[Batch]:
    """The log's batches from `start` on, as the core's `Batch` values."""
    out: list[Batch] = []
    offset = max(start, log.log_start_offset)
    end = log.log_end_offset
    while offset < end:
        data = log.read(offset, READ_CHUNK_BYTES, min_one_message=True).records
        batches = wire.decode_batches(bytes(data))
        if not batches:
            break
        for batch in batches:
            if batch.end_offset > offset and batch.records:
                out.append(batch)
        offset = batches[-1].end_offset
    return out


def _superseded(commands: list[Command], index: int) -> bool:
    """A quorum-state write that the next one replaces before anything relies on it (a
    single voter votes for itself and leads in one step): only the last is written."""
    for later in commands[index + 1 :]:
        if isinstance(later, PersistQuorumState):
            return True
        if not isinstance(later, StateChanged):
            return False
    return False


def _shifted(timestamp_ms: int, shift_ms: int) -> int:
    return timestamp_ms + shift_ms if timestamp_ms >= 0 else -1


class RaftDriver:
    """One node's Raft runtime over the `__cluster_metadata-0` directory `directory`."""

    def __init__(
        self,
        config: RaftConfig,
        directory: Path,
        *,
        fileio: FileIO,
        clock: Clock,
        network: RaftNetwork,
        on_commit: Callable[[ApplyCommitted], None],
        on_snapshot: Callable[[Snapshot], None],
        on_state: Callable[[StateChanged], None] | None = None,
        on_flush_error: Callable[[Exception], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.directory = directory
        self._fileio = fileio
        self._clock = clock
        self._network = network
        self._on_commit = on_commit
        self._on_snapshot = on_snapshot
        self._on_state = on_state
        self._on_flush_error = on_flush_error
        self._rng = rng or random.Random()
        self._prefix = f"[RaftDriver node={config.node_id}]"
        self.log: Log | None = None
        self.core: RaftCore | None = None
        self._inbound: dict[int, asyncio.Future[Message]] = {}
        self._next_inbound_id = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._closed = False
        # fsyncs run here, off the loop; its own thread, so that close() can wait for it
        self._executor: ThreadPoolExecutor | None = None

    # -- start-up ------------------------------------------------------------------------------

    def open(self) -> Snapshot | None:
        """Read the snapshot, the log and quorum-state back; returns the snapshot the state
        machine starts from (its committed records follow through `on_commit`)."""
        fileio = self._fileio
        fileio.mkdir(self.directory)
        self.log = Log.open(self.directory, LogConfig(), fileio=fileio, clock=self._clock)
        snapshot: Snapshot | None = None
        ids = files.snapshot_ids(fileio, self.directory)
        if ids:
            newest = ids[-1]
            snapshot = Snapshot(newest, files.read_snapshot(fileio, self.directory, newest))
        start = snapshot.snapshot_id.offset if snapshot else 0
        batches = read_log_batches(self.log, start)
        if snapshot is not None and (not batches or batches[0].base_offset != start):
            # A log that does not continue the snapshot (it was emptied for a fetched one):
            # everything in it below or apart from the snapshot is dropped.
            batches = [b for b in batches if b.base_offset >= start]
            if batches and batches[0].base_offset != start:
                self.log.truncate_to(self.log.log_start_offset)
                batches = []
        raft_log = RaftLog(tuple(batches), snapshot)
        saved = files.read_quorum_state(fileio, self.directory)
        self.core = RaftCore(
            self.config,
            log=raft_log,
            quorum_state=saved,
            random=self._rng,
            now_ms=self._clock.monotonic_ms(),
        )
        logger.info(
            "%s opened: log %d-%d, snapshot %s, quorum-state %s",
            self._prefix,
            raft_log.log_start_offset,
            raft_log.end_offset,
            snapshot.snapshot_id if snapshot else None,
            saved,
        )
        return snapshot

    def start(self) -> None:
        """Start the core and its timer loop (after `open`, on the running loop)."""
        core = self._require_core()
        self._wakeup = asyncio.Event()
        self._execute(core.start(self._clock.monotonic_ms()))
        self._timer = asyncio.get_running_loop().create_task(
            self._run_timers(), name=f"raft-timers-{self.config.node_id}"
        )

    def _require_core(self) -> RaftCore:
        if self.core is None:
            raise RuntimeError("the driver is not open")
        return self.core

    # -- stepping ------------------------------------------------------------------------------

    def step(self, event: Event) -> list[Command]:
        """Step the core with `event` and carry out its commands; returns them (the caller
        looks for `AppendAccepted` / `AppendRejected`)."""
        if self._closed:
            return []
        commands = self._require_core().step(event, self._clock.monotonic_ms())
        self._execute(commands)
        return commands

    async def _run_timers(self) -> None:
        core = self._require_core()
        assert self._wakeup is not None
        while not self._closed:
            deadline = core.next_deadline_ms()
            self._wakeup.clear()
            if deadline is None:
                await self._wakeup.wait()
                continue
            delay_ms = deadline - self._clock.monotonic_ms()
            if delay_ms > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay_ms / 1000):
                        await self._wakeup.wait()
                if self._wakeup.is_set():
                    continue  # another step moved the deadline: look again
            try:
                self.step(Tick())
            except Exception:
                logger.exception("%s a timer step failed", self._prefix)
                raise

    async def handle_request(self, source: int, message: Message, timeout_ms: int) -> Message:
        """An inbound quorum request from `source`: its response, once the core gives it
        (a held Fetch answers later). TimeoutError when none comes in `timeout_ms`."""
        self._next_inbound_id += 1
        inbound_id = self._next_inbound_id
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._inbound[inbound_id] = future
        try:
            self.step(Received(source, message, inbound_id))
            async with asyncio.timeout(timeout_ms / 1000):
                return await future
        finally:
            self._inbound.pop(inbound_id, None)

    def describe_quorum(self) -> DescribeQuorumResponse:
        """The leader's view of the replicas, its timestamps on the wall clock (the core
        keeps them on the monotonic one)."""
        now_ms = self._clock.monotonic_ms()
        shift = self._clock.wall_ms() - now_ms

        def wall(replica: ReplicaState) -> ReplicaState:
            return replace(
                replica,
                last_fetch_timestamp=_shifted(replica.last_fetch_timestamp, shift),
                last_caught_up_timestamp=_shifted(replica.last_caught_up_timestamp, shift),
            )

        described = self._require_core().describe_quorum(now_ms)
        return replace(
            described,
            current_voters=tuple(wall(r) for r in described.current_voters),
            observers=tuple(wall(r) for r in described.observers),
        )

    # -- commands ------------------------------------------------------------------------------

    def _execute(self, commands: list[Command]) -> None:
        log = self.log
        assert log is not None
        for index, command in enumerate(commands):
            if isinstance(command, Send):
                self._send(command)
            elif isinstance(command, AppendToLog):
                log.append_as_follower(wire.encode_records((command.batch,)))
            elif isinstance(command, FlushLog):
                self._spawn(self._flush(command.end_offset), "raft-flush")
            elif isinstance(command, TruncateLog):
                log.truncate_to(command.end_offset)
                log.flush()
            elif isinstance(command, PersistQuorumState):
                if _superseded(commands, index):
                    continue
                state = QuorumStateFile(
                    command.leader_epoch, command.leader_id, command.voted_id, command.voters
                )
                files.write_quorum_state(self._fileio, self.directory, state)
            elif isinstance(command, ApplyCommitted):
                self._on_commit(command)
            elif isinstance(command, WriteSnapshot):
                files.write_snapshot(
                    self._fileio, self.directory, command.snapshot_id, command.payload
                )
            elif isinstance(command, LoadSnapshot):
                files.write_snapshot(
                    self._fileio, self.directory, command.snapshot_id, command.payload
                )
                log.truncate_to(log.log_start_offset)  # empty: appends resume at its end
                log.flush()
                files.delete_snapshots_before(self._fileio, self.directory, command.snapshot_id)
                logger.info(
                    "%s loaded snapshot %s from the leader", self._prefix, command.snapshot_id
                )
                self._on_snapshot(Snapshot(command.snapshot_id, command.payload))
            elif isinstance(command, DeleteLogBefore):
                if command.log_start_offset <= log.log_end_offset:
                    log.delete_records_before(command.log_start_offset)
                newest = files.snapshot_ids(self._fileio, self.directory)
                if newest:
                    files.delete_snapshots_before(self._fileio, self.directory, newest[-1])
            elif isinstance(command, StateChanged):
                logger.info(
                    "%s %s in epoch %d, leader %d",
                    self._prefix,
                    command.state,
                    command.epoch,
                    command.leader_id,
                )
                if self._on_state is not None:
                    self._on_state(command)
            elif isinstance(command, AppendAccepted | AppendRejected):
                pass  # the caller of `step` reads them from the returned list
        if self._wakeup is not None:
            self._wakeup.set()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, end_offset: int) -> None:
        log = self.log
        assert log is not None
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="raft-fsync")
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, log.flush)
        except Exception as exc:  # StorageError: the log dir failed; nothing more is durable
            logger.exception("%s fsync of the metadata log failed", self._prefix)
            if self._on_flush_error is not None:
                self._on_flush_error(exc)
            return
        self.step(LogFlushed(end_offset))

    def _send(self, command: Send) -> None:
        message = command.message
        future = self._inbound.get(command.correlation_id)
        if not isinstance(message, Request):
            if future is not None and not future.done():
                future.set_result(message)
            return
        self._spawn(
            self._request(command.destination, message, command.correlation_id), "raft-send"
        )

    async def _request(self, destination: int, message: QuorumMessage, correlation_id: int) -> None:
        version = SEND_VERSIONS[wire.api_key_of(message)]
        request = wire.to_kio(message, version)
        try:
            response = await self._network.send(
                destination, request, timeout_ms=self.config.request_timeout_ms
            )
        except (ConnectionError, TimeoutError) as exc:
            logger.debug("%s request to %d failed: %s", self._prefix, destination, exc)
            return
        if self._closed:
            return
        self.step(Received(destination, wire.from_kio(response), correlation_id))

    # -- shutdown ------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the timers and in-flight requests, then flush and close the log."""
        self._closed = True
        tasks = [t for t in (self._timer, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for future in self._inbound.values():
            if not future.done():
                future.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=True)  # an fsync under way finishes first
        if self.log is not None:
            self.log.close()
