"""The asyncio edge of the group coordinator: writes, timers and waiting responses.

The core (`group/coordinator.py`) never awaits. After each call into it the runtime:

1. appends every queued `Write` to its `__consumer_offsets` partition through `GroupLog`, in
   the order the core queued them (the append itself is synchronous, so order is kept), then
   waits for it to be durable in a task and hands the outcome to the write's `on_done`;
2. re-arms one timer at the core's next deadline, which calls `poll`.

Delayed responses (JoinGroup waits for the rebalance, SyncGroup for the leader) are futures
that the core's `respond` callbacks complete. A client that disconnects cancels its future; a
late callback on a cancelled future is ignored.

Ownership: the runtime serves the groups of the `__consumer_offsets` partitions this broker
leads (`owned`); a request for any other group is NOT_COORDINATOR, so the client looks the
coordinator up again. When leadership moves, `set_owned` forgets the groups of the partitions
lost (their waiting requests are answered NOT_COORDINATOR) and loads the partitions gained.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from odradek.common.clock import Clock
from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.group.consumer_group_messages import (
    HeartbeatRequest,
    HeartbeatResponse,
)
from odradek.coordinator.group.coordinator import GroupCoordinator
from odradek.coordinator.group.messages import (
    JoinRequest,
    JoinResult,
    OffsetCommit,
    SyncResult,
    Write,
)
from odradek.coordinator.runtime_support import DeadlineTimer

logger = logging.getLogger(__name__)

T = TypeVar("T")


class GroupLog(Protocol):
    def append(
        self,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        producer_id: int = -1,
        producer_epoch: int = -1,
    ) -> tuple[int, Awaitable[None]]:
        """Append now, in a transactional batch when `producer_id` is set (raise KafkaError
        if that fails): the offset of the first record, and an awaitable that ends once the
        records are durable."""


class GroupCoordinatorRuntime:
    def __init__(
        self,
        core: GroupCoordinator,
        clock: Clock,
        log: GroupLog,
        retention_check_interval_ms: int,
    ) -> None:
        self.core = core
        self.clock = clock
        self.log = log
        self.retention_check_interval_ms = retention_check_interval_ms
        self._timer = DeadlineTimer(clock, self._poll)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._retention_task: asyncio.Task[None] | None = None
        self.owned: frozenset[int] = frozenset()
        self._waiting: dict[str, set[asyncio.Future[Any]]] = {}  # group id -> its requests

    def start(self) -> None:
        self._retention_task = asyncio.get_running_loop().create_task(self._check_retention())
        self.drive()

    def stop(self) -> None:
        self._timer.cancel()
        if self._retention_task is not None:
            self._retention_task.cancel()
        for task in self._tasks:
            task.cancel()

    # --- ownership ----------------------------------------------------------------------------

    def check_owner(self, group_id: str) -> None:
        """NOT_COORDINATOR unless this broker coordinates `group_id`."""
        if self.core.partition_for(group_id) not in self.owned:
            raise KafkaError(
                f"This is not the correct coordinator for group {group_id}.",
                ErrorCode.NOT_COORDINATOR,
            )

    def set_owned(self, owned: frozenset[int], load: Callable[[int], None]) -> None:
        """Coordinate the groups of `owned` from now on: forget the partitions lost, `load`
        (replay into the core) each partition gained."""
        for partition in sorted(self.owned - owned):
            for group_id in self.core.unload(partition):
                for future in self._waiting.pop(group_id, ()):
                    if not future.done():
                        future.set_exception(
                            KafkaError(
                                f"group {group_id} moved to another coordinator",
                                ErrorCode.NOT_COORDINATOR,
                            )
                        )
        gained = sorted(owned - self.owned)
        self.owned = owned
        for partition in gained:
            load(partition)
        if gained:
            self.core.finish_loading(self.clock.wall_ms())
        self.drive()

    # --- entry points -------------------------------------------------------------------------

    async def join_group(self, request: JoinRequest) -> JoinResult:
        return await self._call(
            request.group_id,
            lambda respond: self.core.join_group(request, self.clock.wall_ms(), respond),
        )

    async def sync_group(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol: str | None,
        assignments: dict[str, bytes],
    ) -> SyncResult:
        return await self._call(
            group_id,
            lambda respond: self.core.sync_group(
                group_id,
                generation,
                member_id,
                group_instance_id,
                protocol_type,
                protocol,
                assignments,
                self.clock.wall_ms(),
                respond,
            ),
        )

    def heartbeat(
        self, group_id: str, generation: int, member_id: str, group_instance_id: str | None
    ) -> ErrorCode:
        self.check_owner(group_id)
        error = self.core.heartbeat(
            group_id, generation, member_id, group_instance_id, self.clock.wall_ms()
        )
        self.drive()
        return error

    async def consumer_group_heartbeat(self, request: HeartbeatRequest) -> HeartbeatResponse:
        return await self._call(
            request.group_id,
            lambda respond: self.core.consumer_group_heartbeat(
                request, self.clock.wall_ms(), respond
            ),
        )

    def leave_group(
        self, group_id: str, members: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        self.check_owner(group_id)
        outcome = self.core.leave_group(group_id, members, self.clock.wall_ms())
        self.drive()
        return outcome

    async def commit_offsets(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        offsets: list[OffsetCommit],
        retention_ms: int = -1,
        version: int = 9,
    ) -> list[ErrorCode]:
        return await self._call(
            group_id,
            lambda respond: self.core.commit_offsets(
                group_id,
                generation,
                member_id,
                group_instance_id,
                offsets,
                self.clock.wall_ms(),
                respond,
                retention_ms,
                version,
            ),
        )

    async def commit_transactional_offsets(
        self,
        group_id: str,
        producer: tuple[int, int],
        generation: int,
        member_id: str,
        group_instance_id: str | None,
        offsets: list[OffsetCommit],
    ) -> list[ErrorCode]:
        return await self._call(
            group_id,
            lambda respond: self.core.commit_transactional_offsets(
                group_id,
                producer[0],
                producer[1],
                generation,
                member_id,
                group_instance_id,
                offsets,
                self.clock.wall_ms(),
                respond,
            ),
        )

    async def delete_groups(self, group_ids: list[str]) -> list[ErrorCode]:
        """One outcome per id; groups coordinated elsewhere are NOT_COORDINATOR."""
        here = [g for g in group_ids if self.core.partition_for(g) in self.owned]
        outcomes: dict[str, ErrorCode] = {}
        if here:
            errors: list[ErrorCode] = await self._call(
                here[0],
                lambda respond: self.core.delete_groups(here, self.clock.wall_ms(), respond),
            )
            outcomes = dict(zip(here, errors, strict=True))
        return [outcomes.get(g, ErrorCode.NOT_COORDINATOR) for g in group_ids]

    async def delete_offsets(
        self, group_id: str, partitions: list[tuple[str, int]]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        def start(respond: Callable[[tuple[ErrorCode, list[ErrorCode]]], None]) -> None:
            self.core.delete_offsets(
                group_id,
                partitions,
                self.clock.wall_ms(),
                lambda error, errors: respond((error, errors)),
            )

        return await self._call(group_id, start)

    async def _call(self, group_id: str, start: Callable[[Callable[[T], None]], None]) -> T:
        """Start an entry point of the core for `group_id` and wait for its answer; if the
        group's partition moves away meanwhile, NOT_COORDINATOR."""
        self.check_owner(group_id)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def respond(result: T) -> None:
            if not future.done():  # a client that went away cancelled it
                future.set_result(result)

        waiting = self._waiting.setdefault(group_id, set())
        waiting.add(future)
        try:
            start(respond)
            self.drive()
            return await future
        finally:
            waiting.discard(future)
            if not waiting and self._waiting.get(group_id) is waiting:
                del self._waiting[group_id]

    # --- writes and timers --------------------------------------------------------------------

    def drive(self) -> None:
        """Carry out what the core queued, then re-arm the timer."""
        core = self.core
        while core.writes:
            writes, core.writes = core.writes, []
            for write in writes:
                try:
                    offset, durable = self.log.append(
                        write.partition, write.records, write.producer_id, write.producer_epoch
                    )
                except KafkaError as exc:
                    logger.warning("[GroupCoordinator] append failed: %s", exc)
                    write.on_done(exc.code)
                    continue
                if write.on_appended is not None:
                    write.on_appended(offset)
                task = asyncio.ensure_future(self._finish(write, durable))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        self._timer.arm(self.core.next_deadline())

    async def _finish(self, write: Write, durable: Awaitable[None]) -> None:
        try:
            await durable
        except KafkaError as exc:
            logger.warning("[GroupCoordinator] write not durable: %s", exc)
            write.on_done(exc.code)
        else:
            write.on_done(ErrorCode.NONE)
        self.drive()

    def _poll(self, now_ms: int) -> None:
        self.core.poll(now_ms)
        self.drive()

    async def _check_retention(self) -> None:
        while True:
            await asyncio.sleep(self.retention_check_interval_ms / 1000)
            self.core.expire_offsets(self.clock.wall_ms())
            self.drive()
