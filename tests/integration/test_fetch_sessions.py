"""Fetch sessions (KIP-227) over a raw socket, requests encoded and responses decoded with kio
(independently of the broker's hand-written Fetch response encoder, which this also checks).

A session opens with id 0 / epoch 0; an incremental fetch then answers only partitions with
something new; a wrong epoch is INVALID_FETCH_SESSION_EPOCH and an unknown id
FETCH_SESSION_ID_NOT_FOUND; epoch -1 closes the session.
"""

from __future__ import annotations

import datetime
import io
import socket
import struct
from typing import Any

import pytest
from kafka_helpers import create_topic, produce
from kio.schema.fetch.v12 import request as fetch_request
from kio.schema.fetch.v12.response import FetchResponse
from kio.serial import entity_reader, entity_writer

INVALID_FETCH_SESSION_EPOCH = 71
FETCH_SESSION_ID_NOT_FOUND = 70


class Session:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.correlation_id = 0

    def fetch(self, session_id: int, epoch: int, partitions: list[tuple[str, int, int]]) -> Any:
        topics: dict[str, list[Any]] = {}
        for topic, partition, offset in partitions:
            topics.setdefault(topic, []).append(
                fetch_request.FetchPartition(
                    partition=partition, fetch_offset=offset, partition_max_bytes=1 << 20
                )
            )
        request = fetch_request.FetchRequest(
            max_wait=datetime.timedelta(milliseconds=0),
            min_bytes=0,
            session_id=session_id,
            session_epoch=epoch,
            topics=tuple(
                fetch_request.FetchTopic(topic=name, partitions=tuple(parts))
                for name, parts in topics.items()
            ),
            forgotten_topics_data=(),
        )
        self.correlation_id += 1
        body = io.BytesIO()
        entity_writer(fetch_request.FetchRequest)(body, request)
        header = struct.pack(">hhih", 1, 12, self.correlation_id, 3) + b"raw\x00"
        payload = header + body.getvalue()
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", self.sock.recv(4, socket.MSG_WAITALL))
        data = self.sock.recv(size, socket.MSG_WAITALL)
        assert struct.unpack_from(">i", data, 0)[0] == self.correlation_id
        response, used = entity_reader(FetchResponse)(data[5:], 0)
        assert used == len(data) - 5
        return response

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def session(broker) -> Any:
    opened = Session(broker.port)
    yield opened
    opened.close()


def partitions_of(response: Any) -> dict[tuple[str, int], Any]:
    return {
        (topic.topic, p.partition_index): p
        for topic in response.responses
        for p in topic.partitions
    }


def test_incremental_fetch_returns_only_what_changed(broker, topic, session) -> None:
    create_topic(broker.bootstrap, topic, 2)
    produce(broker.bootstrap, topic, [{"value": b"first", "partition": 0}])

    full = session.fetch(0, 0, [(topic, 0, 0), (topic, 1, 0)])
    assert full.error_code == 0 and full.session_id > 0
    seen = partitions_of(full)
    assert set(seen) == {(topic, 0), (topic, 1)}
    assert seen[(topic, 0)].high_watermark == 1 and seen[(topic, 0)].records
    assert seen[(topic, 1)].high_watermark == 0 and not seen[(topic, 1)].records

    # nothing new: an incremental fetch (moving partition 0 past its record) answers nothing
    quiet = session.fetch(full.session_id, 1, [(topic, 0, 1)])
    assert quiet.error_code == 0 and quiet.session_id == full.session_id
    assert partitions_of(quiet) == {}

    # a record on partition 1 only: only partition 1 comes back, though the request names none
    produce(broker.bootstrap, topic, [{"value": b"second", "partition": 1}])
    changed = session.fetch(full.session_id, 2, [])
    assert set(partitions_of(changed)) == {(topic, 1)}
    assert partitions_of(changed)[(topic, 1)].high_watermark == 1

    wrong = session.fetch(full.session_id, 7, [])
    assert wrong.error_code == INVALID_FETCH_SESSION_EPOCH
    unknown = session.fetch(full.session_id + 1000, 1, [])
    assert unknown.error_code == FETCH_SESSION_ID_NOT_FOUND

    closed = session.fetch(full.session_id, -1, [(topic, 0, 0)])
    assert closed.error_code == 0 and closed.session_id == 0
    assert set(partitions_of(closed)) == {(topic, 0)}
    gone = session.fetch(full.session_id, 3, [])
    assert gone.error_code == FETCH_SESSION_ID_NOT_FOUND
