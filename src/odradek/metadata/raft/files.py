"""The quorum's own files in the `__cluster_metadata-0` directory, as Kafka names them.

- `quorum-state`: Kafka's `FileQuorumStateStore` JSON (QuorumStateData v0 with its
  `data_version`): `{"clusterId": "", "leaderId": 1, "leaderEpoch": 3, "votedId": 1,
  "appliedOffset": 0, "currentVoters": [{"voterId": 1}, ...], "data_version": 0}`. Written
  atomically (a `.tmp`, fsync, rename, fsync of the directory) before any message that relies
  on it is sent.
- snapshots: `<end offset, 20 digits>-<epoch, 10 digits>.checkpoint` (Kafka's
  `Snapshots.filenameFromSnapshotId`), written the same atomic way. Their content is the
  state machine's payload (v2 record batches of metadata records), kept whole.

Only these two file kinds live here; the log segments belong to `storage.Log`.
"""

from __future__ import annotations

import json
from pathlib import Path

from odradek.metadata.raft.messages import OffsetAndEpoch
from odradek.metadata.raft.state import QuorumStateFile
from odradek.storage.fileio import FileIO

QUORUM_STATE_FILE = "quorum-state"
SNAPSHOT_SUFFIX = ".checkpoint"
DATA_VERSION = "data_version"


def encode_quorum_state(state: QuorumStateFile) -> bytes:
    data = {
        "clusterId": "",
        "leaderId": state.leader_id,
        "leaderEpoch": state.leader_epoch,
        "votedId": state.voted_id,
        "appliedOffset": 0,
        "currentVoters": [{"voterId": v} for v in sorted(state.voters)],
        DATA_VERSION: 0,
    }
    return json.dumps(data, separators=(",", ":")).encode()


def decode_quorum_state(data: bytes) -> QuorumStateFile:
    """ValueError when the file is not a quorum-state of version 0 or 1."""
    try:
        parsed = json.loads(data)
        version = int(parsed.get(DATA_VERSION, 0))
        if version not in (0, 1):
            raise ValueError(f"quorum-state data_version {version} is not supported")
        voters = parsed.get("currentVoters") or []
        return QuorumStateFile(
            leader_epoch=int(parsed.get("leaderEpoch", -1)),
            leader_id=int(parsed.get("leaderId", -1)),
            voted_id=int(parsed.get("votedId", -1)),
            voters=tuple(int(v["voterId"]) for v in voters),
        )
    except (AttributeError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"quorum-state is malformed: {exc}") from exc


def read_quorum_state(fileio: FileIO, directory: Path) -> QuorumStateFile | None:
    path = directory / QUORUM_STATE_FILE
    if not fileio.exists(path):
        return None
    state = decode_quorum_state(fileio.read_file(path))
    return QuorumStateFile(
        max(state.leader_epoch, 0), state.leader_id, state.voted_id, state.voters
    )


def write_quorum_state(fileio: FileIO, directory: Path, state: QuorumStateFile) -> None:
    fileio.replace_file(directory / QUORUM_STATE_FILE, encode_quorum_state(state))


def snapshot_file_name(snapshot_id: OffsetAndEpoch) -> str:
    return f"{snapshot_id.offset:020d}-{snapshot_id.epoch:010d}{SNAPSHOT_SUFFIX}"


def parse_snapshot_file_name(name: str) -> OffsetAndEpoch | None:
    if not name.endswith(SNAPSHOT_SUFFIX):
        return None
    stem = name[: -len(SNAPSHOT_SUFFIX)]
    offset, dash, epoch = stem.partition("-")
    if not dash or len(offset) != 20 or len(epoch) != 10:
        return None
    if not (offset.isdigit() and epoch.isdigit()):
        return None
    return OffsetAndEpoch(int(offset), int(epoch))


def snapshot_ids(fileio: FileIO, directory: Path) -> list[OffsetAndEpoch]:
    """The snapshots in `directory`, oldest first."""
    found = (parse_snapshot_file_name(name) for name in fileio.list_dir(directory))
    return sorted((s for s in found if s is not None), key=lambda s: (s.offset, s.epoch))


def write_snapshot(
    fileio: FileIO, directory: Path, snapshot_id: OffsetAndEpoch, payload: bytes
) -> None:
    fileio.replace_file(directory / snapshot_file_name(snapshot_id), payload)


def read_snapshot(fileio: FileIO, directory: Path, snapshot_id: OffsetAndEpoch) -> bytes:
    return fileio.read_file(directory / snapshot_file_name(snapshot_id))


def delete_snapshots_before(fileio: FileIO, directory: Path, snapshot_id: OffsetAndEpoch) -> None:
    """Remove the snapshots older than `snapshot_id` (the newest is all a restart needs)."""
    for old in snapshot_ids(fileio, directory):
        if old.offset < snapshot_id.offset:
            fileio.delete(directory / snapshot_file_name(old))
