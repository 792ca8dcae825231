"""Small text files Kafka keeps next to the logs, read and written through FileIO.

Offset checkpoints, one per log dir (`recovery-point-offset-checkpoint`,
`log-start-offset-checkpoint`, `replication-offset-checkpoint`, and the log cleaner's
`cleaner-offset-checkpoint`):

    0                   <- version
    2                   <- number of entries
    orders 0 1234       <- topic, partition, offset (space separated)
    orders 1 99

`partition.metadata`, in each partition dir:

    version: 0
    topic_id: <topic id, 16 bytes as unpadded base64url, like Kafka's Uuid.toString()>

`meta.properties`, in each log dir (a Java properties file, KRaft mode):

    version=1
    node.id=1
    cluster.id=<base64url uuid>
    directory.id=<base64url uuid>

Every write replaces the file atomically (write a .tmp, fsync, rename, fsync the directory), so a
crash leaves either the old or the new content, never a mix. A malformed file raises
StorageError: the log dir cannot be trusted then.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from odradek.common.errors import StorageError
from odradek.storage.fileio import FileIO

RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
REPLICATION_OFFSET_CHECKPOINT = "replication-offset-checkpoint"
CLEANER_OFFSET_CHECKPOINT = "cleaner-offset-checkpoint"
PARTITION_METADATA = "partition.metadata"
META_PROPERTIES = "meta.properties"

_CHECKPOINT_VERSION = 0


def uuid_to_string(value: bytes) -> str:
    """Kafka's Uuid.toString(): 16 bytes as base64url without padding."""
    if len(value) != 16:
        raise ValueError(f"a Uuid has 16 bytes, not {len(value)}")
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode("ascii")


def uuid_from_string(text: str) -> bytes:
    value = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(value) != 16:
        raise ValueError(f"{text!r} is not a base64url Uuid")
    return value


def random_uuid() -> bytes:
    return uuid.uuid4().bytes


# --- offset checkpoints ----------------------------------------------------------------------


def write_offsets_checkpoint(
    fileio: FileIO, path: Path, offsets: Mapping[tuple[str, int], int]
) -> None:
    lines = [str(_CHECKPOINT_VERSION), str(len(offsets))]
    lines.extend(
        f"{topic} {partition} {offset}" for (topic, partition), offset in sorted(offsets.items())
    )
    fileio.replace_file(path, ("\n".join(lines) + "\n").encode())


def read_offsets_checkpoint(fileio: FileIO, path: Path) -> dict[tuple[str, int], int]:
    """The entries of an offset checkpoint; {} if the file does not exist."""
    if not fileio.exists(path):
        return {}
    text = fileio.read_file(path).decode("utf-8", "replace")
    lines = text.splitlines()
    try:
        version = int(lines[0])
        count = int(lines[1])
        if version != _CHECKPOINT_VERSION:
            raise ValueError(f"unknown version {version}")
        entries = [line for line in lines[2:] if line.strip()]
        if len(entries) != count:
            raise ValueError(f"expected {count} entries, found {len(entries)}")
        offsets: dict[tuple[str, int], int] = {}
        for line in entries:
            topic, partition, offset = line.split(" ")
            offsets[(topic, int(partition))] = int(offset)
    except (ValueError, IndexError) as err:
        raise StorageError(f"malformed checkpoint file {path}: {err}") from err
    return offsets


# --- partition.metadata ----------------------------------------------------------------------


def write_partition_metadata(fileio: FileIO, partition_dir: Path, topic_id: bytes) -> None:
    text = f"version: 0\ntopic_id: {uuid_to_string(topic_id)}"
    fileio.replace_file(partition_dir / PARTITION_METADATA, text.encode())


def read_partition_metadata(fileio: FileIO, partition_dir: Path) -> bytes | None:
    """The topic id recorded in the partition dir, or None if there is no such file."""
    path = partition_dir / PARTITION_METADATA
    if not fileio.exists(path):
        return None
    fields = _read_fields(fileio, path, ":")
    try:
        if fields.get("version") != "0":
            raise ValueError(f"unknown version {fields.get('version')!r}")
        return uuid_from_string(fields["topic_id"])
    except (KeyError, ValueError) as err:
        raise StorageError(f"malformed {path}: {err}") from err


# --- meta.properties -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetaProperties:
    node_id: int
    cluster_id: str
    directory_id: str
    version: int = 1


def write_meta_properties(fileio: FileIO, log_dir: Path, meta: MetaProperties) -> None:
    text = (
        "#\n"
        f"version={meta.version}\n"
        f"node.id={meta.node_id}\n"
        f"cluster.id={meta.cluster_id}\n"
        f"directory.id={meta.directory_id}\n"
    )
    fileio.replace_file(log_dir / META_PROPERTIES, text.encode())


def read_meta_properties(fileio: FileIO, log_dir: Path) -> MetaProperties | None:
    path = log_dir / META_PROPERTIES
    if not fileio.exists(path):
        return None
    fields = _read_fields(fileio, path, "=")
    try:
        return MetaProperties(
            node_id=int(fields["node.id"]),
            cluster_id=fields["cluster.id"],
            directory_id=fields.get("directory.id", ""),
            version=int(fields["version"]),
        )
    except (KeyError, ValueError) as err:
        raise StorageError(f"malformed {path}: {err}") from err


def _read_fields(fileio: FileIO, path: Path, separator: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in fileio.read_file(path).decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition(separator)
        if sep:
            fields[key.strip()] = value.strip()
    return fields
