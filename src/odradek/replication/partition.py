"""A partition hosted here: its log, its role (leader or follower), leader epoch, ISR, high
watermark and waiters.

Roles come from the metadata image (`ReplicaManager.apply_image`): the image's leader leads,
the other replicas follow it (`become_leader` / `become_follower`, Kafka's makeLeader /
makeFollower). Only a leader serves produce and consumer fetches; a follower's log is written
by the replica fetcher (`append_as_follower`, `truncate_to`).

A leader alone (replication factor 1: the single-node cluster) has the high watermark at its log
end offset, as before replication existed. A leader with followers tracks each follower's fetch
state (replica_state.py) and moves the high watermark by the ISR rule (isr.py): the smallest log
end offset over the (maximal) ISR, never backwards, not at all while the ISR is below
min.insync.replicas. ISR changes are proposed to the controller through `alter_isr` (one in
flight). A follower's high watermark is the leader's, capped by its own log end offset.

The last stable offset is the first offset of the earliest unfinished transaction, capped by
the high watermark. Fetchers that long-poll park a future here and are woken by the next append
(transaction markers included) and by a replica fetch that moves the high watermark. acks=all
waits (`wait_replicated`) end once the high watermark reaches their offset; the group commit's
fsync of the leader's own log is the other half of acks=all (see `group_commit`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.records import ATTR_TRANSACTIONAL, encode_batch
from odradek.replication.durability import GroupCommit
from odradek.replication.isr import (
    IsrState,
    apply_alter_answer,
    effective_min_isr,
    next_high_watermark,
    out_of_sync_replicas,
    should_expand,
)
from odradek.replication.replica_state import FollowerFetchState
from odradek.replication.truncation import diverging_epoch
from odradek.storage.log import AppendResult, Log, ReadResult
from odradek.storage.producer_state import NO_PRODUCER_ID, AppendOrigin

logger = logging.getLogger(__name__)

NO_LEADER = -1


@dataclass(frozen=True, slots=True)
class ReplicaReadResult:
    """What a replica's fetch gets: batches up to the log end, or where its log diverges."""

    records: bytes
    diverging_epoch: tuple[int, int] | None  # (epoch, end offset)
    high_watermark: int
    log_start_offset: int


# Called with (partition, proposed ISR) to send AlterPartition; the replica manager owns the
# request and gives the answer back to `on_alter_answer`.
AlterIsr = Callable[["Partition", tuple[int, ...]], None]


class Partition:
    def __init__(
        self,
        topic: str,
        partition_id: int,
        topic_id: bytes,
        log: Log,
        leader_epoch: int,
        flush_messages: int,
        min_insync_replicas: int = 1,
        isr: tuple[int, ...] = (),
        flush_ms: int = 2**63 - 1,
        *,
        node_id: int = -1,
        replicas: tuple[int, ...] = (),
        leader_id: int | None = None,
        partition_epoch: int = 0,
        high_watermark: int = 0,
        replica_lag_time_max_ms: int = 30_000,
    ) -> None:
        self.flush_messages = flush_messages
        self.flush_ms = flush_ms
        self.min_insync_replicas = min_insync_replicas
        self.topic = topic
        self.partition_id = partition_id
        self.topic_id = topic_id
        self.log = log
        self.leader_epoch = leader_epoch
        self.node_id = node_id
        self.replicas = replicas
        self.leader_id = node_id if leader_id is None else leader_id
        self.partition_epoch = partition_epoch
        self.replica_lag_time_max_ms = replica_lag_time_max_ms
        self.isr_state = IsrState.committed(isr)
        self.followers: dict[int, FollowerFetchState] = {}
        self.leader_epoch_start_offset = log.log_end_offset
        self._high_watermark = min(high_watermark, log.log_end_offset)
        self.alter_isr: AlterIsr | None = None
        self.eligible: Callable[[int], bool] = lambda _: True  # may join the ISR (image)
        self.group_commit = GroupCommit(log.flush, lambda: log.recovery_point)
        self.group_commit.wait_replicated = self.wait_replicated
        self._waiters: list[asyncio.Future[None]] = []
        self._replication_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._unflushed_messages = 0
        self._unflushed_since_ms: int | None = None  # when the oldest unflushed append came
        self._prefix = f"[Partition {topic}-{partition_id}]"

    # --- role --------------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.node_id

    @property
    def alone(self) -> bool:
        """Leader of a partition without followers: the high watermark is the log end."""
        return self.leader_id == self.node_id and len(self.replicas) <= 1

    @property
    def isr(self) -> tuple[int, ...]:
        return self.isr_state.isr

    def become_leader(
        self,
        leader_epoch: int,
        partition_epoch: int,
        replicas: tuple[int, ...],
        isr: tuple[int, ...],
    ) -> None:
        """The image names this node leader (at a new epoch, or the same epoch with a new
        partition epoch: an ISR or assignment change)."""
        now_ms = self.log.clock.monotonic_ms()
        new_epoch = not self.is_leader or leader_epoch != self.leader_epoch
        if self.alone:
            # a leader alone had its high watermark at its log end: keep it if followers come
            self._high_watermark = self.log.log_end_offset
        elif new_epoch:
            # leaving the follower role: its high watermark is what this leader starts from
            self._high_watermark = min(self._high_watermark, self.log.log_end_offset)
        self.leader_id = self.node_id
        self.leader_epoch = leader_epoch
        self.replicas = replicas
        if partition_epoch >= self.partition_epoch or new_epoch:
            self.partition_epoch = partition_epoch
            self.isr_state = IsrState.committed(isr)
        log_end = self.log.log_end_offset
        followers: dict[int, FollowerFetchState] = {}
        for replica_id in replicas:
            if replica_id == self.node_id:
                continue
            state = self.followers.get(replica_id)
            if state is None or new_epoch:
                state = FollowerFetchState(replica_id)
                state.reset(now_ms, log_end, replica_id in isr)
            followers[replica_id] = state
        self.followers = followers
        if new_epoch:
            self.leader_epoch_start_offset = log_end
            if len(replicas) > 1:
                self.log.assign_epoch_start_offset(leader_epoch, log_end)
            logger.info(
                "%s leader at epoch %d from offset %d, isr %s",
                self._prefix,
                leader_epoch,
                log_end,
                list(isr),
            )
        self.maybe_increment_high_watermark()

    def become_follower(
        self,
        leader_id: int,
        leader_epoch: int,
        partition_epoch: int,
        replicas: tuple[int, ...],
        isr: tuple[int, ...],
    ) -> bool:
        """The image names another leader (or none: -1). True when the leader or its epoch
        changed (the fetcher then starts over for this partition)."""
        if self.alone:
            self._high_watermark = self.log.log_end_offset
        changed = leader_id != self.leader_id or leader_epoch != self.leader_epoch
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch
        self.partition_epoch = partition_epoch
        self.replicas = replicas
        self.isr_state = IsrState.committed(isr)
        self.followers = {}
        if changed:
            logger.info("%s follower of %d at epoch %d", self._prefix, leader_id, leader_epoch)
            self._fail_replication_waiters()
            self._wake()
        return changed

    # --- high watermark ----------------------------------------------------------------------

    @property
    def high_watermark(self) -> int:
        if self.alone:
            return self.log.log_end_offset
        return self._high_watermark

    @property
    def last_stable_offset(self) -> int:
        return self.log.last_stable_offset(self.high_watermark)

    def maybe_increment_high_watermark(self) -> bool:
        """Leader: move the high watermark by the ISR rule; wakes waiters when it moved."""
        if not self.is_leader or self.alone:
            return False
        log_end = self.log.log_end_offset
        new = next_high_watermark(
            self._high_watermark,
            log_end,
            self.followers,
            self.isr_state,
            effective_min_isr(self.min_insync_replicas, len(self.replicas)),
            self.log.clock.monotonic_ms(),
            self.replica_lag_time_max_ms,
            self.eligible,
        )
        new = min(new, log_end)
        if new <= self._high_watermark:
            return False
        self._high_watermark = new
        self._release_replication_waiters()
        self._wake()
        return True

    def update_follower_high_watermark(self, leader_high_watermark: int) -> None:
        """Follower: the leader's high watermark, capped by this log's end."""
        new = min(leader_high_watermark, self.log.log_end_offset)
        if new != self._high_watermark:
            self._high_watermark = new

    def checkpointed_high_watermark(self) -> int:
        """What replication-offset-checkpoint keeps for this partition."""
        return self.high_watermark

    async def wait_replicated(self, end_offset: int) -> None:
        """Return once the high watermark reaches `end_offset` (acks=all). Raises
        NOT_LEADER_OR_FOLLOWER if this node stops leading first."""
        if self.high_watermark >= end_offset:
            return
        if not self.is_leader:
            raise KafkaError("no longer the leader", ErrorCode.NOT_LEADER_OR_FOLLOWER)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._replication_waiters.append((end_offset, future))
        await future

    def _release_replication_waiters(self) -> None:
        if not self._replication_waiters:
            return
        high_watermark = self._high_watermark
        remaining: list[tuple[int, asyncio.Future[None]]] = []
        for end_offset, future in self._replication_waiters:
            if future.done():
                continue
            if end_offset <= high_watermark:
                future.set_result(None)
            else:
                remaining.append((end_offset, future))
        self._replication_waiters = remaining

    def _fail_replication_waiters(self) -> None:
        waiters, self._replication_waiters = self._replication_waiters, []
        for _, future in waiters:
            if not future.done():
                future.set_exception(
                    KafkaError("no longer the leader", ErrorCode.NOT_LEADER_OR_FOLLOWER)
                )

    # --- followers' fetches (leader side) ----------------------------------------------------

    def update_follower_fetch_state(
        self,
        replica_id: int,
        fetch_offset: int,
        follower_log_start_offset: int,
        leader_log_end_offset: int,
    ) -> None:
        """A replica fetched from `fetch_offset` (read while the log ended at
        `leader_log_end_offset`): record it, maybe add it to the ISR, maybe move the high
        watermark."""
        state = self.followers.get(replica_id)
        if state is None:
            return
        before = state.log_end_offset
        state.update(
            fetch_offset,
            follower_log_start_offset,
            self.log.clock.monotonic_ms(),
            leader_log_end_offset,
        )
        if should_expand(
            self.isr_state,
            state,
            self._high_watermark,
            self.leader_epoch_start_offset,
            self.eligible,
        ):
            self._propose(self.isr_state.expanding(replica_id))
        if before != state.log_end_offset:
            self.maybe_increment_high_watermark()

    def read_for_replica(
        self,
        replica_id: int,
        fetch_offset: int,
        last_fetched_epoch: int,
        current_leader_epoch: int,
        follower_log_start_offset: int,
        max_bytes: int,
        min_one_message: bool,
    ) -> ReplicaReadResult:
        """A follower's fetch (Kafka's Partition.fetchRecords for a follower): only the
        leader answers, at the follower's leader epoch, to a replica of the partition; it reads
        up to the log end (not the high watermark) unless the follower's last epoch diverges,
        and the fetch offset becomes the follower's log end offset."""
        self.check_leader()
        self.check_leader_epoch(current_leader_epoch)
        if replica_id not in self.followers:
            raise KafkaError(
                f"replica {replica_id} is not a replica of {self.topic}-{self.partition_id}"
                f" at leader epoch {self.leader_epoch}",
                ErrorCode.UNKNOWN_LEADER_EPOCH
                if current_leader_epoch >= 0
                else ErrorCode.NOT_LEADER_OR_FOLLOWER,
            )
        log = self.log
        log_end = log.log_end_offset  # before the read: appends after it do not count
        if last_fetched_epoch >= 0:
            diverging = diverging_epoch(
                last_fetched_epoch, fetch_offset, log.log_start_offset, log.end_offset_for_epoch
            )
            if diverging is not None:
                return ReplicaReadResult(b"", diverging, self.high_watermark, log.log_start_offset)
        read = log.read(fetch_offset, max_bytes, min_one_message=min_one_message)
        self.update_follower_fetch_state(
            replica_id, fetch_offset, follower_log_start_offset, log_end
        )
        return ReplicaReadResult(read.records, None, self.high_watermark, read.log_start_offset)

    def maybe_shrink_isr(self) -> None:
        """Drop ISR followers that have not caught up within replica.lag.time.max.ms."""
        if not self.is_leader or self.alone:
            return
        out = out_of_sync_replicas(
            self.isr_state,
            self.followers,
            self.node_id,
            self.log.log_end_offset,
            self.log.clock.monotonic_ms(),
            self.replica_lag_time_max_ms,
        )
        if out:
            logger.info(
                "%s shrinking ISR %s: out of sync %s (high watermark %d, log end %d)",
                self._prefix,
                list(self.isr),
                list(out),
                self._high_watermark,
                self.log.log_end_offset,
            )
            self._propose(self.isr_state.shrinking(out))

    def _propose(self, state: IsrState) -> None:
        if self.alter_isr is None or state.in_flight is None:
            return
        self.isr_state = state
        self.alter_isr(self, state.in_flight)

    def on_alter_answer(
        self,
        proposed: tuple[int, ...],
        error_code: int,
        leader_epoch: int,
        partition_epoch: int,
        isr: tuple[int, ...],
    ) -> None:
        outcome = apply_alter_answer(
            self.isr_state,
            proposed,
            self.leader_epoch,
            self.partition_epoch,
            error_code,
            leader_epoch,
            partition_epoch,
            isr,
        )
        self.isr_state = outcome.state
        self.partition_epoch = outcome.partition_epoch
        if outcome.applied:
            logger.info(
                "%s ISR is now %s (partition epoch %d)",
                self._prefix,
                list(self.isr),
                self.partition_epoch,
            )
            self.maybe_increment_high_watermark()
        elif error_code != ErrorCode.NONE:
            logger.info("%s AlterPartition %s failed: error %d", self._prefix, proposed, error_code)

    # --- checks ------------------------------------------------------------------------------

    def check_leader(self) -> None:
        if not self.is_leader:
            raise KafkaError(
                f"this broker is not the leader of {self.topic}-{self.partition_id}",
                ErrorCode.NOT_LEADER_OR_FOLLOWER,
            )

    def check_leader_epoch(self, current_leader_epoch: int) -> None:
        """KIP-320: a client that knows a newer epoch, or an older one, is told so."""
        if current_leader_epoch < 0 or current_leader_epoch == self.leader_epoch:
            return
        if current_leader_epoch > self.leader_epoch:
            raise KafkaError("newer leader epoch", ErrorCode.UNKNOWN_LEADER_EPOCH)
        raise KafkaError("fenced leader epoch", ErrorCode.FENCED_LEADER_EPOCH)

    def check_min_isr(self) -> None:
        """acks=all needs at least min.insync.replicas in the ISR (checked before appending)."""
        if len(self.isr) < self.min_insync_replicas:
            raise KafkaError(
                f"The size of the current ISR {len(self.isr)} is insufficient to satisfy the"
                f" min.isr requirement of {self.min_insync_replicas} for partition"
                f" {self.topic}-{self.partition_id}",
                ErrorCode.NOT_ENOUGH_REPLICAS,
            )

    def under_min_isr(self) -> bool:
        """The ISR is below the effective min.insync.replicas (capped at the replication
        factor): records replicated now would not be acknowledged (Kafka's DelayedProduce)."""
        if self.alone:
            return False
        min_isr = effective_min_isr(self.min_insync_replicas, len(self.replicas))
        return len(self.isr_state.maximal_isr) < min_isr

    def append(
        self,
        records: memoryview,
        origin: AppendOrigin = AppendOrigin.CLIENT,
        verified_producer: int = NO_PRODUCER_ID,
    ) -> AppendResult:
        """Append as leader and wake the fetchers waiting here. The transaction coordinator
        writes its markers (control batches) through this with `AppendOrigin.COORDINATOR`;
        `verified_producer` may open a transaction (see ProducerStateManager.check)."""
        self.check_leader()
        result = self.log.append_as_leader(
            records,
            leader_epoch=self.leader_epoch,
            origin=origin,
            verified_producer=verified_producer,
        )
        self._unflushed_messages += result.records_count
        if self._unflushed_since_ms is None:
            self._unflushed_since_ms = self.log.clock.monotonic_ms()
        if self._unflushed_messages >= self.flush_messages:
            self._flush_now()
        if not self.alone:
            self.maybe_increment_high_watermark()  # an ISR of the leader alone
        self._wake()
        return result

    def append_coordinator_records(
        self,
        records: Sequence[tuple[bytes, bytes | None]],
        timestamp_ms: int,
        producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int = -1,
    ) -> tuple[AppendResult, Awaitable[None]]:
        """A coordinator's keyed records as one batch (a transactional one of `producer_id`
        when set, at sequence 0, as Kafka writes a TxnOffsetCommit), appended now; with the
        awaitable that ends once they are durable."""
        transactional = producer_id != NO_PRODUCER_ID
        batch = encode_batch(
            [(key, value, []) for key, value in records],
            timestamp_ms=timestamp_ms,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=0 if transactional else -1,
            attributes=ATTR_TRANSACTIONAL if transactional else 0,
        )
        result = self.append(memoryview(bytearray(batch)), AppendOrigin.COORDINATOR)
        return result, self.group_commit.wait_durable(result.last_offset + 1)

    def append_as_follower(self, records: bytes | memoryview) -> int:
        """Batches fetched from the leader, offsets and epochs as the leader wrote them."""
        end = self.log.append_as_follower(records)
        self._wake()
        return end

    def truncate_to(self, offset: int) -> None:
        """Follower: drop what diverges from the leader's log (never below the high
        watermark's batch: what is committed is on the leader too)."""
        self.log.truncate_to(offset)
        self._high_watermark = min(self._high_watermark, self.log.log_end_offset)

    def truncate_fully_and_start_at(self, offset: int) -> None:
        """Follower behind the leader's log start: an empty log at `offset`."""
        self.log.truncate_fully_and_start_at(offset)
        self._high_watermark = offset

    def maybe_flush(self, now_ms: int) -> None:
        """flush.ms: fsync once the oldest unflushed append is that old (the node's flusher
        calls this every log.flush.scheduler.interval.ms)."""
        since = self._unflushed_since_ms
        if since is not None and now_ms - since >= self.flush_ms:
            self._flush_now()

    def _flush_now(self) -> None:
        self._unflushed_messages = 0
        self._unflushed_since_ms = None
        self.group_commit.request_flush()

    def read(
        self, offset: int, max_bytes: int, min_one_message: bool, read_committed: bool = False
    ) -> ReadResult:
        """Batches below the high watermark; for read_committed, below the last stable offset
        and with the aborted transactions overlapping them."""
        if not read_committed:
            return self.log.read(
                offset, max_bytes, max_offset=self.high_watermark, min_one_message=min_one_message
            )
        return self.log.read(
            offset,
            max_bytes,
            max_offset=self.last_stable_offset,
            min_one_message=min_one_message,
            include_aborted_transactions=True,
        )

    def add_waiter(self, future: asyncio.Future[None]) -> None:
        self._waiters.append(future)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)
