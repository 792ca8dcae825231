"""A partition this broker leads: its log, its leader epoch, its high watermark, its waiters.

In a single-replica partition the ISR is the leader alone, so the high watermark is the log
end offset. The last stable offset is the first offset of the earliest unfinished transaction,
capped by the high watermark (the same as it when no transaction is open). Fetchers that
long-poll park a future here and are woken by the next append, transaction markers included:
a marker moves the last stable offset, which is what a read_committed fetcher waits for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.records import ATTR_TRANSACTIONAL, encode_batch
from odradek.replication.durability import GroupCommit
from odradek.storage.log import AppendResult, Log, ReadResult
from odradek.storage.producer_state import NO_PRODUCER_ID, AppendOrigin


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
    ) -> None:
        self.flush_messages = flush_messages
        self.flush_ms = flush_ms
        self.min_insync_replicas = min_insync_replicas
        self.isr = isr
        self.topic = topic
        self.partition_id = partition_id
        self.topic_id = topic_id
        self.log = log
        self.leader_epoch = leader_epoch
        self.group_commit = GroupCommit(log.flush, lambda: log.recovery_point)
        self._waiters: list[asyncio.Future[None]] = []
        self._unflushed_messages = 0
        self._unflushed_since_ms: int | None = None  # when the oldest unflushed append came

    @property
    def high_watermark(self) -> int:
        return self.log.log_end_offset

    @property
    def last_stable_offset(self) -> int:
        return self.log.last_stable_offset(self.high_watermark)

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

    def append(
        self,
        records: memoryview,
        origin: AppendOrigin = AppendOrigin.CLIENT,
        verified_producer: int = NO_PRODUCER_ID,
    ) -> AppendResult:
        """Append as leader and wake the fetchers waiting here. The transaction coordinator
        writes its markers (control batches) through this with `AppendOrigin.COORDINATOR`;
        `verified_producer` may open a transaction (see ProducerStateManager.check)."""
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
