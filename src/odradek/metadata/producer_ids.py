"""Producer ids, handed out in blocks as Kafka's controller does (AllocateProducerIds, KIP-730):
a broker asks for a block, the grant is a ProducerIdsRecord in the metadata log naming the next
id nobody has, and the broker gives the ids of its block to producers one at a time. Ids are
never reused, across restarts included, because the record is committed before any id of the
block is given out."""

from __future__ import annotations

from odradek.common.errors import ErrorCode, KafkaError
from odradek.metadata.image import MetadataImage
from odradek.metadata.records import ProducerIdsRecord

BLOCK_SIZE = 1000  # Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE
_LIMIT = 2**63 - 1


def allocate_block(image: MetadataImage, broker_id: int, broker_epoch: int) -> ProducerIdsRecord:
    """The record that grants the next block; its first id is `image.next_producer_id`."""
    first = image.next_producer_id
    if first > _LIMIT - BLOCK_SIZE:
        raise KafkaError("Exhausted all producerIds", ErrorCode.UNKNOWN_SERVER_ERROR)
    return ProducerIdsRecord(broker_id, broker_epoch, first + BLOCK_SIZE)
