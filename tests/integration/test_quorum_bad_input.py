"""The quorum APIs of a single broker over a raw socket: what they answer to good and bad
requests, and that the broker keeps serving.

`quorum_of_one` names itself as the only voter (`controller.quorum.voters=1@...`), so it runs
the Raft quorum, leads it, and answers DescribeQuorum and a replica's Fetch of
`__cluster_metadata` itself. The default `broker` names no voters and runs no quorum: it
describes itself as the leader of a quorum of one and closes the connection on the quorum's
own RPCs, as a Kafka broker does for APIs its listener does not serve.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

import pytest
from kio.index import load_request_schema
from kio.schema.vote.v0.request import VoteRequest as KioVoteRequest

from odradek.metadata.raft import wire
from odradek.metadata.raft.messages import (
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    DescribeQuorumRequest,
    DescribeQuorumResponse,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    OffsetAndEpoch,
    VoteRequest,
    VoteResponse,
)
from odradek.protocol.codec import build
from odradek.transport.client import decode_response, encode_request

INVALID_REQUEST = 42
INCONSISTENT_VOTER_SET = 94
SNAPSHOT_NOT_FOUND = 98


def call(port: int, request: Any) -> Any:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(encode_request(request, 3, "quorum-bad-input"))
        (size,) = struct.unpack(">i", _read(sock, 4))
        _, response = decode_response(request.__api_key__, request.__version__, _read(sock, size))
    return response


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "the broker closed the connection"
        data += chunk
    return data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def quorum_of_one(unstarted_broker: Callable[..., Any]) -> Any:
    port = free_port()
    node = unstarted_broker({"controller.quorum.voters": f"1@127.0.0.1:{port}"}, port=port)
    return node.start()


def describe(port: int, version: int = 2) -> DescribeQuorumResponse:
    described = wire.from_kio(call(port, wire.to_kio(DescribeQuorumRequest(), version)))
    assert isinstance(described, DescribeQuorumResponse)
    return described


@pytest.mark.parametrize("version", [0, 1, 2])
def test_a_single_voter_leads_its_quorum_of_one(quorum_of_one: Any, version: int) -> None:
    described = describe(quorum_of_one.port, version)
    assert described.error_code == 0 and described.leader_id == 1
    assert described.leader_epoch >= 1  # it elected itself
    assert [v.replica_id for v in described.current_voters] == [1]
    assert described.high_watermark >= 1 and described.observers == ()


def test_a_broker_without_voters_is_described_as_a_leader_alone(broker: Any) -> None:
    described = describe(broker.port)
    assert (described.error_code, described.leader_id, described.leader_epoch) == (0, 1, 0)
    assert [v.replica_id for v in described.current_voters] == [1]
    # v2 lists the voters' endpoints: here the node itself
    assert [(n.node_id, n.name, n.host, n.port) for n in described.nodes] == [
        (1, "PLAINTEXT", "127.0.0.1", broker.port)
    ]


def test_a_quorum_lists_its_voters_endpoints(quorum_of_one: Any) -> None:
    described = describe(quorum_of_one.port)
    assert [(n.node_id, n.host, n.port) for n in described.nodes] == [
        (1, "127.0.0.1", quorum_of_one.port)
    ]
    assert describe(quorum_of_one.port, version=1).nodes == ()  # not in v0-v1


def advertised(port: int) -> set[int]:
    request = build(
        load_request_schema(18, 3),
        client_software_name="quorum-bad-input",
        client_software_version="1",
    )
    return {key.api_key for key in call(port, request).api_keys}


def test_the_quorum_rpcs_are_advertised_only_by_a_node_that_runs_a_quorum(
    broker: Any, quorum_of_one: Any
) -> None:
    quorum_only = {52, 53, 54, 59}  # Vote, BeginQuorumEpoch, EndQuorumEpoch, FetchSnapshot
    assert not quorum_only & advertised(broker.port)
    assert 55 in advertised(broker.port)  # DescribeQuorum is a broker API too
    assert quorum_only <= advertised(quorum_of_one.port)


def test_a_broker_without_voters_closes_on_the_quorum_rpcs(broker: Any) -> None:
    vote = VoteRequest(candidate_epoch=1, candidate_id=1, last_offset_epoch=0, last_offset=0)
    with pytest.raises((AssertionError, OSError)):
        call(broker.port, wire.to_kio(vote, 0))
    assert describe(broker.port).error_code == 0  # and keeps serving


def test_a_replica_fetch_of_the_metadata_log_gets_its_batches(quorum_of_one: Any) -> None:
    epoch = describe(quorum_of_one.port).leader_epoch
    request = FetchRequest(
        replica_id=5, current_leader_epoch=epoch, fetch_offset=0, last_fetched_epoch=0
    )
    response = wire.from_kio(call(quorum_of_one.port, wire.to_kio(request, 13)))
    assert isinstance(response, FetchResponse) and response.error_code == 0
    assert response.records and response.records[0].base_offset == 0
    assert any(batch.control for batch in response.records)  # a LeaderChange opens each epoch
    # up to the log end, committed or not (as KRaft answers a replica): the high watermark
    # is at most there
    assert 0 < response.high_watermark <= response.records[-1].end_offset
    assert [o.replica_id for o in describe(quorum_of_one.port).observers] == [5]


def test_a_vote_without_the_metadata_partition_is_an_invalid_request(quorum_of_one: Any) -> None:
    empty = build(KioVoteRequest, cluster_id=None, topics=())
    assert int(call(quorum_of_one.port, empty).error_code) == INVALID_REQUEST
    elsewhere = VoteRequest(
        candidate_epoch=99, candidate_id=1, last_offset_epoch=0, last_offset=0, topic_name="x"
    )
    response = wire.from_kio(call(quorum_of_one.port, wire.to_kio(elsewhere, 0)))
    assert isinstance(response, VoteResponse)
    assert response.top_level_error_code == INVALID_REQUEST and not response.vote_granted
    assert describe(quorum_of_one.port).error_code == 0  # still serving, still leading


def test_strangers_are_refused(quorum_of_one: Any) -> None:
    epoch = describe(quorum_of_one.port).leader_epoch
    vote = VoteRequest(
        candidate_epoch=epoch + 1, candidate_id=7, last_offset_epoch=99, last_offset=99
    )
    voted = wire.from_kio(call(quorum_of_one.port, wire.to_kio(vote, 1)))
    assert isinstance(voted, VoteResponse)
    assert voted.error_code == INCONSISTENT_VOTER_SET and not voted.vote_granted
    begin = BeginQuorumEpochRequest(leader_id=9, leader_epoch=epoch + 1)
    begun = wire.from_kio(call(quorum_of_one.port, wire.to_kio(begin, 0)))
    assert isinstance(begun, BeginQuorumEpochResponse)
    assert begun.error_code == INCONSISTENT_VOTER_SET
    snapshot = FetchSnapshotRequest(
        replica_id=5, current_leader_epoch=epoch, snapshot_id=OffsetAndEpoch(1, 1), position=0
    )
    fetched = wire.from_kio(call(quorum_of_one.port, wire.to_kio(snapshot, 0)))
    assert isinstance(fetched, FetchSnapshotResponse)
    assert fetched.error_code == SNAPSHOT_NOT_FOUND
    after = describe(quorum_of_one.port)
    assert after.leader_epoch == epoch and after.leader_id == 1  # nobody unseated it
