"""A transactional producer made of raw requests (kio entities over a plain socket), for tests
that need every field under their control: a fixed producer id, epoch and sequence, an EndTxn
sent twice, a batch retried after a broker restart.

`RawTransactions(port, transactional_id)` runs InitProducerId on creation and then offers the
client's steps one by one: `add_partitions`, `produce`, `end`. Coordinator-side retriable
errors (loading, CONCURRENT_TRANSACTIONS while markers are written) are retried as a client
does; everything else is returned for the test to check.
"""

from __future__ import annotations

import time
from typing import Any

from test_groups_bad_input import Raw, entity

from odradek.common.errors import ErrorCode
from odradek.protocol.records import encode_batch

TIMEOUT_S = 30.0
TRANSACTIONAL = 0x10  # the batch attribute bit of a transactional batch
API_INIT_PRODUCER_ID = 22
API_ADD_PARTITIONS_TO_TXN = 24
API_END_TXN = 26
LOADING = (
    ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    ErrorCode.NOT_COORDINATOR,
)


def error_of(answer: Any) -> int:
    code = getattr(answer, "error_code", None)
    if code is None:
        code = answer.partition_error_code
    return int(code)


def retrying(call: Any, *retriable: int) -> Any:
    """`call()` again while it answers with one of the `retriable` error codes."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        answer = call()
        if error_of(answer) not in retriable or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def api_versions(raw: Raw) -> dict[int, int]:
    """api key -> highest version the broker advertises."""
    answer = raw.call(entity("api_versions", 0, "ApiVersionsRequest"))
    return {int(k.api_key): int(k.max_version) for k in answer.api_keys}


class RawTransactions:
    def __init__(
        self, port: int, transactional_id: str, timeout_ms: int = 60_000, end_version: int = 3
    ) -> None:
        self.port = port
        self.transactional_id = transactional_id
        self.raw = Raw(port)
        self.versions = api_versions(self.raw)
        self.end_version = min(end_version, self.versions[API_END_TXN])
        init_version = min(4, self.versions[API_INIT_PRODUCER_ID])
        init = retrying(
            lambda: self.raw.call(
                entity(
                    "init_producer_id",
                    init_version,
                    "InitProducerIdRequest",
                    transactional_id=transactional_id,
                    transaction_timeout=timeout_ms,
                    producer_id=-1,
                    producer_epoch=-1,
                )
            ),
            *LOADING,
            ErrorCode.CONCURRENT_TRANSACTIONS,
        )
        assert init.error_code == ErrorCode.NONE, init
        self.producer_id = int(init.producer_id)
        self.epoch = int(init.producer_epoch)
        self.sequences: dict[tuple[str, int], int] = {}

    def reconnect(self) -> None:
        self.raw = Raw(self.port)

    def add_partitions(self, topic: str, *partitions: int, epoch: int | None = None) -> int:
        """AddPartitionsToTxn as a client sends it (v3; v4+ are for brokers); the first
        partition's error code."""
        api, version = "add_partitions_to_txn", min(3, self.versions[API_ADD_PARTITIONS_TO_TXN])
        request = entity(
            api,
            version,
            "AddPartitionsToTxnRequest",
            v3_and_below_transactional_id=self.transactional_id,
            v3_and_below_producer_id=self.producer_id,
            v3_and_below_producer_epoch=self.epoch if epoch is None else epoch,
            v3_and_below_topics=(
                entity(api, version, "AddPartitionsToTxnTopic", name=topic, partitions=partitions),
            ),
        )
        answer = retrying(
            lambda: self.raw.call(request).results_by_topic_v3_and_below[0].results_by_partition[0],
            *LOADING,
            ErrorCode.CONCURRENT_TRANSACTIONS,
        )
        return error_of(answer)

    def batch(self, topic: str, partition: int, *values: bytes, epoch: int | None = None) -> bytes:
        """The next transactional batch of `values` for the partition (its sequence taken)."""
        sequence = self.sequences.get((topic, partition), 0)
        self.sequences[(topic, partition)] = sequence + len(values)
        return encode_batch(
            [(None, value, []) for value in values],
            producer_id=self.producer_id,
            producer_epoch=self.epoch if epoch is None else epoch,
            base_sequence=sequence,
            timestamp_ms=int(time.time() * 1000),
            attributes=TRANSACTIONAL,
        )

    def produce(self, topic: str, partition: int, batch: bytes, plain: bool = False) -> Any:
        """Produce v9 of one batch (`plain`: not a transactional one); the partition's response
        (error_code, base_offset)."""
        request = entity(
            "produce",
            9,
            "ProduceRequest",
            transactional_id=None if plain else self.transactional_id,
            acks=-1,
            timeout=10_000,
            topic_data=(
                entity(
                    "produce",
                    9,
                    "TopicProduceData",
                    name=topic,
                    partition_data=(
                        entity(
                            "produce", 9, "PartitionProduceData", index=partition, records=batch
                        ),
                    ),
                ),
            ),
        )
        (topic_response,) = self.raw.call(request).responses
        (partition_response,) = topic_response.partition_responses
        return partition_response

    def end(self, commit: bool, epoch: int | None = None, retry: bool = True) -> Any:
        """EndTxn; retried while the coordinator is busy unless `retry` is False."""
        request = entity(
            "end_txn",
            self.end_version,
            "EndTxnRequest",
            transactional_id=self.transactional_id,
            producer_id=self.producer_id,
            producer_epoch=self.epoch if epoch is None else epoch,
            committed=commit,
        )
        if not retry:
            return self.raw.call(request)
        return retrying(lambda: self.raw.call(request), *LOADING, ErrorCode.CONCURRENT_TRANSACTIONS)
