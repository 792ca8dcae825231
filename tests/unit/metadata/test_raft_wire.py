"""The quorum APIs' adapter: core message -> kio entity -> bytes -> kio entity -> core message,
for every version; fields a version lacks come back as the core's defaults."""

from __future__ import annotations

import dataclasses
import io
import uuid
from typing import Any

import pytest
from kio.serial import entity_reader, entity_writer

from odradek.metadata.raft.control import leader_change_value
from odradek.metadata.raft.messages import (
    Batch,
    BeginQuorumEpochRequest,
    BeginQuorumEpochResponse,
    DescribeQuorumRequest,
    DescribeQuorumResponse,
    Endpoint,
    EndQuorumEpochRequest,
    EndQuorumEpochResponse,
    EpochEndOffset,
    FetchRequest,
    FetchResponse,
    FetchSnapshotRequest,
    FetchSnapshotResponse,
    LeaderIdAndEpoch,
    OffsetAndEpoch,
    RaftError,
    ReplicaState,
    VoteRequest,
    VoteResponse,
)
from odradek.metadata.raft.wire import (
    VERSIONS,
    QuorumMessage,
    api_key_of,
    decode_batches,
    encode_records,
    from_kio,
    to_kio,
)
from odradek.protocol.records import iter_batches

U1, U2 = uuid.UUID(int=0x1234), uuid.UUID(int=0x5678)
NODE = Endpoint(2, "", "127.0.0.1", 9093)  # NodeEndpoints carry no listener name
LEADER_ENDPOINT = Endpoint(2, "CONTROLLER", "127.0.0.1", 9093)  # LeaderEndpoints: no node id

LEADER = LeaderIdAndEpoch(1, 5)
BATCHES = (
    Batch(10, 4, (leader_change_value(1, (1, 2, 3), (1, 2)),), control=True),
    Batch(11, 4, (b"a", b"", b"c" * 300)),
    Batch(14, 5, (b"d",)),
)
BEFORE_V17 = {v: {"replica_directory_id": None} for v in (15, 16)}
BEFORE_V15 = {v: {"replica_directory_id": None, "replica_epoch": -1} for v in (12, 13, 14)}
BEFORE_V16 = {v: {"node_endpoints": ()} for v in (12, 13, 14, 15)}

# (message, {version: fields that version lacks, with the defaults they come back as})
CASES: list[tuple[QuorumMessage, dict[int, dict[str, Any]]]] = [
    (
        FetchRequest(
            2,
            5,
            120,
            4,
            log_start_offset=10,
            cluster_id="c1",
            replica_epoch=3,
            max_wait_ms=500,
            min_bytes=1,
            max_bytes=4096,
            partition_max_bytes=1024,
            replica_directory_id=U1,
        ),
        BEFORE_V15 | BEFORE_V17,
    ),
    (
        FetchResponse(
            RaftError.NONE,
            14,
            LEADER,
            log_start_offset=3,
            records=BATCHES,
            node_endpoints=(Endpoint(1, "", "127.0.0.1", 9093),),
        ),
        BEFORE_V16,
    ),
    (
        FetchResponse(RaftError.NONE, 9, LEADER, 0, diverging_epoch=EpochEndOffset(3, 7)),
        {},
    ),
    (FetchResponse(RaftError.NONE, 9, LEADER, 8, snapshot_id=OffsetAndEpoch(8, 2)), {}),
    (
        FetchResponse(
            RaftError.FENCED_LEADER_EPOCH,
            -1,
            LeaderIdAndEpoch(-1, 6),
            top_level_error_code=RaftError.NONE,
        ),
        {},
    ),
    (
        VoteRequest(
            5,
            2,
            4,
            120,
            cluster_id="c1",
            voter_id=3,
            candidate_directory_id=U1,
            voter_directory_id=U2,
        ),
        {0: {"voter_id": -1, "candidate_directory_id": None, "voter_directory_id": None}},
    ),
    (VoteResponse(-1, 5, True, node_endpoints=(NODE,)), {0: {"node_endpoints": ()}}),
    (
        VoteResponse(3, 6, False, RaftError.FENCED_LEADER_EPOCH, RaftError.NONE),
        {},
    ),
    (
        BeginQuorumEpochRequest(
            2,
            5,
            cluster_id="c1",
            voter_id=3,
            voter_directory_id=U2,
            leader_endpoints=(LEADER_ENDPOINT,),
        ),
        {0: {"voter_id": -1, "voter_directory_id": None, "leader_endpoints": ()}},
    ),
    (
        BeginQuorumEpochResponse(2, 5, RaftError.FENCED_LEADER_EPOCH, node_endpoints=(NODE,)),
        {0: {"node_endpoints": ()}},
    ),
    (
        EndQuorumEpochRequest(
            2,
            5,
            (3, 1),
            cluster_id="c1",
            preferred_candidate_directory_ids=(U1, U2),
            leader_endpoints=(LEADER_ENDPOINT,),
        ),
        {0: {"preferred_candidate_directory_ids": (), "leader_endpoints": ()}},
    ),
    (
        EndQuorumEpochResponse(2, 5, top_level_error_code=RaftError.INCONSISTENT_CLUSTER_ID),
        {},
    ),
    (DescribeQuorumRequest(), {}),
    (
        DescribeQuorumResponse(
            RaftError.NONE,
            1,
            5,
            100,
            current_voters=(ReplicaState(1, 100, 5000, 5000, U1), ReplicaState(2, 90, 4990, -1)),
            observers=(ReplicaState(7, 80, 4000, 3000),),
            nodes=(Endpoint(1, "CONTROLLER", "127.0.0.1", 9093),),
        ),
        {
            0: {
                "current_voters": (ReplicaState(1, 100), ReplicaState(2, 90)),
                "observers": (ReplicaState(7, 80),),
                "nodes": (),
            },
            1: {
                "current_voters": (ReplicaState(1, 100, 5000, 5000), ReplicaState(2, 90, 4990)),
                "nodes": (),
            },
        },
    ),
    (
        DescribeQuorumResponse(
            RaftError.NOT_LEADER_OR_FOLLOWER,
            2,
            5,
            -1,
            (),
            (),
            error_message="not the leader",
            top_level_error_message="see the partition",
        ),
        {
            0: {"error_message": None, "top_level_error_message": None},
            1: {"error_message": None, "top_level_error_message": None},
        },
    ),
    (
        FetchSnapshotRequest(
            3,
            5,
            OffsetAndEpoch(100, 4),
            64,
            max_bytes=1024,
            cluster_id="c1",
            replica_directory_id=U1,
        ),
        {0: {"replica_directory_id": None}},
    ),
    (
        FetchSnapshotResponse(
            RaftError.NONE,
            LeaderIdAndEpoch(1, 5),
            OffsetAndEpoch(100, 4),
            300,
            64,
            b"\x00snapshot bytes\xff",
            throttle_time_ms=7,
            node_endpoints=(NODE,),
        ),
        {0: {"node_endpoints": ()}},
    ),
]


def over_the_wire(entity: Any) -> Any:
    buffer = io.BytesIO()
    entity_writer(type(entity))(buffer, entity)
    view = memoryview(buffer.getvalue()).toreadonly()
    decoded, _ = entity_reader(type(entity))(view, 0)
    return decoded


@pytest.mark.parametrize(
    ("message", "version", "lacking"),
    [
        (message, version, lacking.get(version, {}))
        for message, lacking in CASES
        for version in range(VERSIONS[api_key_of(message)][0], VERSIONS[api_key_of(message)][1] + 1)
    ],
    ids=lambda v: type(v).__name__ if dataclasses.is_dataclass(v) else str(v)[:12],
)
def test_round_trip(message: QuorumMessage, version: int, lacking: dict[str, Any]) -> None:
    entity = to_kio(message, version)
    assert entity.__version__ == version
    back = from_kio(over_the_wire(entity))
    assert back == dataclasses.replace(message, **lacking)  # type: ignore[type-var]


def test_unsupported_versions_are_refused() -> None:
    with pytest.raises(ValueError):
        to_kio(VoteRequest(1, 1, 0, 0), 2)


def test_record_batches_carry_offsets_epochs_and_the_control_flag() -> None:
    data = encode_records(BATCHES)
    header_epochs = [h.partition_leader_epoch for _, h in iter_batches(data)]
    assert header_epochs == [4, 4, 5]
    assert [h.is_control for _, h in iter_batches(data)] == [True, False, False]
    assert decode_batches(data) == BATCHES
    assert decode_batches(data[:-1]) == BATCHES[:2]  # a partial last batch is left out
