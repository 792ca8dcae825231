"""Loading a `__consumer_offsets` partition into the group coordinator core.

As Kafka's loader does, only the last record of each key counts: the partition is read whole
into a map of key -> latest (offset, value) (a tombstone included), and then just those are
decoded and replayed, in the order they were last written. The log cleaner compacts the topic,
but the part it has not cleaned yet holds every commit; this keeps the replay to one record per
live key however often it was committed.

Transactional offset commits and transaction markers are replayed as they come, merged in log
order with those: a transaction's offsets stay pending until its marker, which materializes
them unless a later record committed the same position. Skipping the superseded plain records
changes nothing there: a plain record that a later one of the same key replaces has a lower
log offset than it, so it could never have won over a transactional offset that the later one
would not also win over.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Iterator

from odradek.coordinator.group.coordinator import GroupCoordinator
from odradek.storage.log import ReplayedBatch
from odradek.storage.txn_index import ControlRecordType

logger = logging.getLogger(__name__)

# (log offset, producer id, commit, (key, value) or None for a transaction marker)
_Replayed = tuple[int, int, bool, tuple[bytes, bytes | None] | None]


def replay_batches(core: GroupCoordinator, batches: Iterable[ReplayedBatch]) -> int:
    """Replay a partition's batches, in log order, into `core`; the number of records read."""
    read_count = 0
    latest: dict[bytes, tuple[int, bytes | None]] = {}
    transactional: list[_Replayed] = []  # records of transactions, and markers
    for batch in batches:
        header = batch.header
        if batch.marker is not None:
            commit = batch.marker.control_type == ControlRecordType.COMMIT
            transactional.append((header.base_offset, header.producer_id, commit, None))
            continue
        for record in batch.records:
            if record.key is None:
                continue
            read_count += 1
            if header.is_transactional:
                entry = (record.key, record.value)
                transactional.append((record.offset, header.producer_id, False, entry))
            else:
                latest.pop(record.key, None)  # re-inserted last: replay in write order
                latest[record.key] = (record.offset, record.value)
    plain: Iterator[_Replayed] = (
        (offset, -1, False, (key, value)) for key, (offset, value) in latest.items()
    )
    for offset, producer_id, commit, replayed in heapq.merge(
        plain, transactional, key=lambda item: item[0]
    ):
        if replayed is None:
            core.replay_end_transaction_marker(producer_id, commit)
            continue
        try:
            core.replay(replayed[0], replayed[1], offset, producer_id)
        except ValueError as exc:
            logger.warning("[GroupCoordinator] skipping the record at offset %d: %s", offset, exc)
    return read_count
