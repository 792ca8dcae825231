"""KIP-890 verification: before a transactional producer's first batch opens its transaction
on a partition, the transaction coordinator confirms the partition is in the transaction.

Without it, a batch delayed in the network could open a transaction on a partition after the
coordinator already ended it (a "hanging transaction" that blocks read_committed readers
forever). Kafka asks the coordinator with a verify-only AddPartitionsToTxn; here the
coordinator runs on this node and answers at once, so the check and the append that follows
it happen in one step of the event loop and nothing can end the transaction in between.

A partition where the producer already has a transaction open needs no verification, nor does
anything when `transaction.partition.verification.enable` is false. Clients of transaction
version 2 (Produce v12) skip AddPartitionsToTxn: their first batch for a partition adds it.
Errors are turned into what producers expect, as Kafka's ReplicaManager does: a fenced producer
gets INVALID_PRODUCER_EPOCH, a partition not in the transaction INVALID_TXN_STATE
(TRANSACTION_ABORTABLE from Produce v11 up, KIP-1050's clients), and a coordinator that cannot
answer now NOT_ENOUGH_REPLICAS, which old clients retry without refreshing metadata.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from odradek.common.errors import ErrorCode, KafkaError
from odradek.protocol.records import HEADER_SIZE, read_header
from odradek.replication.partition import Partition

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
    }
)
# From this Produce version clients understand TRANSACTION_ABORTABLE (Kafka's genericError).
_ABORTABLE_PRODUCE_VERSION = 11


def transactional_producer(records: memoryview | None) -> tuple[int, int] | None:
    """(producer id, epoch) of a record set's first batch if it is transactional."""
    if records is None or len(records) < HEADER_SIZE:
        return None
    header = read_header(records)
    if header.magic != 2 or not header.is_transactional or header.is_control:
        return None
    return header.producer_id, header.producer_epoch


def verify_partition(
    node: Node,
    transactional_id: str | None,
    partition: Partition,
    producer: tuple[int, int],
    produce_version: int,
) -> ErrorCode:
    """NONE when `producer` may write its transactional batch to `partition` (and may open
    its transaction there); else the error to answer for the partition."""
    if not node.config["transaction.partition.verification.enable"]:
        return ErrorCode.NONE
    producer_id, producer_epoch = producer
    if partition.log.producer_state.has_open_transaction(producer_id):
        return ErrorCode.NONE
    if transactional_id is None:
        return ErrorCode.INVALID_TXN_STATE  # the log refuses it: nothing can verify it
    position = (partition.topic, partition.partition_id)
    runtime = node.transaction_coordinator
    error = runtime.verify_partitions(transactional_id, producer_id, producer_epoch, [position])[
        position
    ]
    return produce_error(error, produce_version)


async def add_partition_implicitly(
    node: Node, transactional_id: str, partition: Partition, producer: tuple[int, int]
) -> ErrorCode:
    """Produce v12 (KIP-890 part 2): the producer does not send AddPartitionsToTxn; its first
    batch for a partition adds the partition to its transaction. Answers as `verify_partition`.
    An append after this may race only an EndTxn of the same producer, which bumps the epoch
    its markers carry, so a batch arriving after them is refused for its old epoch."""
    producer_id, producer_epoch = producer
    if partition.log.producer_state.has_open_transaction(producer_id):
        return ErrorCode.NONE
    position = (partition.topic, partition.partition_id)
    error = await node.transaction_coordinator.add_partitions(
        transactional_id, producer_id, producer_epoch, [position], transaction_version=2
    )
    return produce_error(error, _ABORTABLE_PRODUCE_VERSION)


def produce_error(error: ErrorCode, produce_version: int) -> ErrorCode:
    if error == ErrorCode.PRODUCER_FENCED:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    if error == ErrorCode.TRANSACTION_ABORTABLE and produce_version < _ABORTABLE_PRODUCE_VERSION:
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
