"""KIP-890 verification: before a transactional producer's first batch opens its transaction
on a partition, the transaction coordinator confirms the partition is in the transaction.

Without it, a batch delayed in the network could open a transaction on a partition after the
coordinator already ended it (a "hanging transaction" that blocks read_committed readers
forever). The partition leader asks the coordinator of the producer's transactional id (the
leader of its `__transaction_state` partition): itself when it leads that partition, else
with an AddPartitionsToTxn v5 request to that broker, verify-only (as Kafka's
AddPartitionsToTxnManager). Clients of transaction version 2 (Produce v12, TxnOffsetCommit v5)
send no AddPartitionsToTxn: their first batch for a partition adds it, the same request with
verify_only false.

While the answer is awaited, a marker may end the transaction; the batch must then not open
one. The partition's producer state holds a guard for each verification under way
(`ProducerStateManager.start_verification`): the producer's next transactional batch or marker
drops it, and a verified batch is appended only if its guard still holds, else it gets
INVALID_TXN_STATE.

A partition where the producer already has a transaction open needs no verification, nor does
anything when `transaction.partition.verification.enable` is false (transaction version 2 adds
partitions still). Errors are turned into what producers expect, as Kafka's ReplicaManager
does: a fenced producer gets INVALID_PRODUCER_EPOCH, a partition not in the transaction
INVALID_TXN_STATE (TRANSACTION_ABORTABLE from Produce v11 up, KIP-1050's clients), and a
coordinator that cannot answer now NOT_ENOUGH_REPLICAS, which old clients retry without
refreshing metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.transaction.metadata import TopicPartition
from odradek.coordinator.transaction.records import transaction_partition
from odradek.protocol.codec import build
from odradek.protocol.records import HEADER_SIZE, read_header
from odradek.server.transaction_coordinator import TRANSACTION_STATE_TOPIC

if TYPE_CHECKING:
    from odradek.server.node import Node

# Coordinator errors a producer may retry: Kafka answers NOT_ENOUGH_REPLICAS for them.
_RETRY = frozenset(
    {
        ErrorCode.CONCURRENT_TRANSACTIONS,
        ErrorCode.NETWORK_EXCEPTION,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.BROKER_NOT_AVAILABLE,
    }
)
# From this Produce version clients understand TRANSACTION_ABORTABLE (Kafka's genericError).
ABORTABLE_PRODUCE_VERSION = 11
_ADD_PARTITIONS_VERSION = 5


def transactional_producer(records: memoryview | None) -> tuple[int, int] | None:
    """(producer id, epoch) of a record set's first batch if it is transactional."""
    if records is None or len(records) < HEADER_SIZE:
        return None
    header = read_header(records)
    if header.magic != 2 or not header.is_transactional or header.is_control:
        return None
    return header.producer_id, header.producer_epoch


def verification_enabled(node: Node, add: bool) -> bool:
    """Whether batches of this kind are checked with the coordinator (`add`: transaction
    version 2, whose batches add their partition)."""
    return add or bool(node.config["transaction.partition.verification.enable"])


async def ask_coordinator(
    node: Node,
    transactional_id: str | None,
    producer: tuple[int, int],
    partitions: Sequence[TopicPartition],
    add: bool,
) -> dict[TopicPartition, ErrorCode]:
    """The coordinator's word, per partition, on whether `partitions` are in the producer's
    transaction (`add`: adding them if they are not); its own error codes, or
    COORDINATOR_NOT_AVAILABLE / NETWORK_EXCEPTION when it cannot be asked."""
    if transactional_id is None:
        return dict.fromkeys(partitions, ErrorCode.INVALID_TXN_STATE)  # nothing can verify it
    producer_id, producer_epoch = producer
    topic = node.image.topic(TRANSACTION_STATE_TOPIC)
    if topic is None or not topic.partitions:
        return dict.fromkeys(partitions, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    state_partition = topic.partitions.get(
        transaction_partition(transactional_id, len(topic.partitions))
    )
    leader = state_partition.leader if state_partition is not None else -1
    if leader == node.node_id or not node.image.brokers:
        runtime = node.transaction_coordinator
        if not add:
            return runtime.verify_partitions(
                transactional_id, producer_id, producer_epoch, partitions
            )
        error = await runtime.add_partitions(
            transactional_id, producer_id, producer_epoch, partitions, transaction_version=2
        )
        return dict.fromkeys(partitions, error)
    if leader < 0:
        return dict.fromkeys(partitions, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    try:
        response = await node.broker_channel.send(
            leader,
            _request(transactional_id, producer, partitions, add),
            node.config["request.timeout.ms"],
        )
    except KafkaError as exc:
        return dict.fromkeys(partitions, exc.code)
    return _answers(response, partitions)


def _request(
    transactional_id: str,
    producer: tuple[int, int],
    partitions: Sequence[TopicPartition],
    add: bool,
) -> Any:
    from kio.schema.add_partitions_to_txn.v5 import request as schema

    by_topic: dict[str, list[int]] = {}
    for name, index in partitions:
        by_topic.setdefault(name, []).append(index)
    transaction = build(
        schema.AddPartitionsToTxnTransaction,
        transactional_id=transactional_id,
        producer_id=producer[0],
        producer_epoch=producer[1],
        verify_only=not add,
        topics=tuple(
            build(schema.AddPartitionsToTxnTopic, name=name, partitions=tuple(indexes))
            for name, indexes in by_topic.items()
        ),
    )
    return build(schema.AddPartitionsToTxnRequest, transactions=(transaction,))


def _answers(
    response: Any, partitions: Sequence[TopicPartition]
) -> dict[TopicPartition, ErrorCode]:
    if response.error_code != ErrorCode.NONE:
        return dict.fromkeys(partitions, ErrorCode.answered(response.error_code))
    answers = dict.fromkeys(partitions, ErrorCode.UNKNOWN_SERVER_ERROR)  # if left out
    for transaction in response.results_by_transaction:
        for topic in transaction.topic_results:
            for result in topic.results_by_partition:
                position = (topic.name, int(result.partition_index))
                if position in answers:
                    answers[position] = ErrorCode.answered(result.partition_error_code)
    return answers


def produce_error(error: ErrorCode, produce_version: int) -> ErrorCode:
    if error == ErrorCode.PRODUCER_FENCED:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    if error == ErrorCode.TRANSACTION_ABORTABLE and produce_version < ABORTABLE_PRODUCE_VERSION:
        return ErrorCode.INVALID_TXN_STATE
    if error in _RETRY:
        return ErrorCode.NOT_ENOUGH_REPLICAS
    return error


def verification_failure(error: ErrorCode) -> KafkaError:
    if error == ErrorCode.INVALID_TXN_STATE:
        return KafkaError("Partition was not added to the transaction", error)
    if error == ErrorCode.NOT_ENOUGH_REPLICAS:
        return KafkaError("Unable to verify the partition has been added to the transaction", error)
    return KafkaError("", error)
