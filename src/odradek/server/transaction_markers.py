"""Transaction markers: the control batches that end a transaction on each of its partitions.

`write_marker_here` appends one marker to a partition this broker leads, with acks=all, as
the partition leader does for WriteTxnMarkers: the producer's transaction on the partition is
closed (a marker from an older coordinator epoch than the partition last saw is refused with
TRANSACTION_COORDINATOR_FENCED), and a marker on a `__consumer_offsets` partition settles the
transaction's pending offsets in the group coordinator once it is durable.

`ClusterMarkerWriter` is the transaction coordinator's `MarkerWriter`. It looks up each
marker's partition leader in the current image: markers for partitions this broker leads are
written here; the others go to their leaders in WriteTxnMarkers requests, one request per
leader for all the markers queued for it in the same moment (as Kafka's marker channel
batches them). A marker for a topic that no longer exists counts as written; errors come back
to the coordinator, which retries the retriable ones with the leader it finds then.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from odradek.common.errors import ErrorCode, KafkaError
from odradek.coordinator.group.records import OFFSETS_TOPIC
from odradek.coordinator.transaction.messages import Marker
from odradek.protocol.codec import build
from odradek.storage.producer_state import AppendOrigin
from odradek.storage.txn_index import ControlRecordType, encode_end_transaction_marker

if TYPE_CHECKING:
    from odradek.server.broker_channel import BrokerChannel
    from odradek.server.node import Node


async def write_marker_here(node: Node, marker: Marker) -> None:
    """Append `marker` to its partition, led by this broker, and wait until the ISR has it;
    KafkaError (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, ...) when it cannot."""
    leader = node.replica_manager.leader(marker.topic, marker.partition)
    control_type = ControlRecordType.COMMIT if marker.commit else ControlRecordType.ABORT
    batch = encode_end_transaction_marker(
        control_type,
        marker.coordinator_epoch,
        producer_id=marker.producer_id,
        producer_epoch=marker.producer_epoch,
        timestamp_ms=node.clock.wall_ms(),
    )
    result = leader.append(memoryview(batch), AppendOrigin.COORDINATOR)
    await leader.group_commit.wait_durable(result.last_offset + 1)
    if marker.topic == OFFSETS_TOPIC:
        groups = node.group_coordinator
        groups.core.replay_end_transaction_marker(marker.producer_id, marker.commit)
        groups.drive()


class ClusterMarkerWriter:
    def __init__(self, node: Node, channel: BrokerChannel) -> None:
        self.node = node
        self.channel = channel
        self._queued: dict[int, list[tuple[Marker, asyncio.Future[ErrorCode]]]] = {}
        self._requests: set[asyncio.Task[None]] = set()

    async def write(self, marker: Marker) -> None:
        node = self.node
        image = node.image
        topic = image.topic(marker.topic)
        if topic is None or marker.partition not in topic.partitions:
            return  # the topic was deleted: nothing is left to mark
        leader = topic.partitions[marker.partition].leader
        if leader == node.node_id or not image.brokers:
            await write_marker_here(node, marker)
            return
        if leader < 0:
            raise KafkaError(
                f"{marker.topic}-{marker.partition} has no leader", ErrorCode.NOT_LEADER_OR_FOLLOWER
            )
        error = await self._send(leader, marker)
        if error != ErrorCode.NONE:
            raise KafkaError(
                f"broker {leader} did not write the marker for {marker.topic}-{marker.partition}",
                error,
            )

    def _send(self, broker_id: int, marker: Marker) -> asyncio.Future[ErrorCode]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ErrorCode] = loop.create_future()
        queue = self._queued.setdefault(broker_id, [])
        if not queue:
            loop.call_soon(self._flush, broker_id)
        queue.append((marker, future))
        return future

    def _flush(self, broker_id: int) -> None:
        """Send what is queued for `broker_id` in one request. A producer appears once per
        request (the response names markers by producer id): a second marker of the same
        producer waits for the next request."""
        queued = self._queued.pop(broker_id, [])
        batch: dict[int, list[tuple[Marker, asyncio.Future[ErrorCode]]]] = {}
        later: list[tuple[Marker, asyncio.Future[ErrorCode]]] = []
        for marker, future in queued:
            same = batch.setdefault(marker.producer_id, [])
            if same and _transaction(same[0][0]) != _transaction(marker):
                later.append((marker, future))
            else:
                same.append((marker, future))
        if later:
            self._queued[broker_id] = later
            asyncio.get_running_loop().call_soon(self._flush, broker_id)
        task = asyncio.ensure_future(self._request(broker_id, batch))
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def _request(
        self, broker_id: int, batch: dict[int, list[tuple[Marker, asyncio.Future[ErrorCode]]]]
    ) -> None:
        from kio.schema.write_txn_markers.v1 import request as schema

        markers = []
        for producer_id, entries in batch.items():
            first = entries[0][0]
            by_topic: dict[str, list[int]] = {}
            for marker, _ in entries:
                by_topic.setdefault(marker.topic, []).append(marker.partition)
            markers.append(
                build(
                    schema.WritableTxnMarker,
                    producer_id=producer_id,
                    producer_epoch=first.producer_epoch,
                    transaction_result=first.commit,
                    topics=tuple(
                        build(
                            schema.WritableTxnMarkerTopic,
                            name=name,
                            partition_indexes=tuple(partitions),
                        )
                        for name, partitions in by_topic.items()
                    ),
                    coordinator_epoch=first.coordinator_epoch,
                )
            )
        request = build(schema.WriteTxnMarkersRequest, markers=tuple(markers))
        timeout_ms = self.node.config["request.timeout.ms"]
        try:
            response = await self.channel.send(broker_id, request, timeout_ms)
        except KafkaError as exc:
            answers: dict[tuple[int, str, int], ErrorCode] = {}
            default = exc.code
        else:
            answers = _answers(response)
            default = ErrorCode.UNKNOWN_SERVER_ERROR  # a partition the response left out
        for producer_id, entries in batch.items():
            for marker, future in entries:
                if not future.done():
                    key = (producer_id, marker.topic, marker.partition)
                    future.set_result(answers.get(key, default))


def _transaction(marker: Marker) -> tuple[int, int, bool]:
    return marker.producer_epoch, marker.coordinator_epoch, marker.commit


def _answers(response: Any) -> dict[tuple[int, str, int], ErrorCode]:
    return {
        (int(result.producer_id), topic.name, int(partition.partition_index)): ErrorCode.answered(
            partition.error_code
        )
        for result in response.markers
        for topic in result.topics
        for partition in topic.partitions
    }
