from __future__ import annotations

from pathlib import Path

import pytest

from odradek.common.errors import StorageError
from odradek.storage import checkpoints
from odradek.storage.fileio import LossyFileIO, OsFileIO

DIR = Path("/logs")


@pytest.fixture
def fileio() -> LossyFileIO:
    fileio = LossyFileIO()
    fileio.mkdir(DIR)
    return fileio


def test_offsets_checkpoint_round_trip_in_kafka_format(fileio: LossyFileIO) -> None:
    path = DIR / checkpoints.RECOVERY_POINT_CHECKPOINT
    assert checkpoints.read_offsets_checkpoint(fileio, path) == {}
    offsets = {("orders", 1): 42, ("orders", 0): 7, ("my-topic", 12): 0}
    checkpoints.write_offsets_checkpoint(fileio, path, offsets)
    assert fileio.read_file(path) == b"0\n3\nmy-topic 12 0\norders 0 7\norders 1 42\n"
    assert checkpoints.read_offsets_checkpoint(fileio, path) == offsets


def test_checkpoint_write_is_durable_at_once(fileio: LossyFileIO) -> None:
    path = DIR / checkpoints.LOG_START_OFFSET_CHECKPOINT
    checkpoints.write_offsets_checkpoint(fileio, path, {("t", 0): 5})
    fileio.crash()
    assert checkpoints.read_offsets_checkpoint(fileio, path) == {("t", 0): 5}


@pytest.mark.parametrize(
    "content", [b"", b"1\n0\n", b"0\n2\nt 0 1\n", b"0\n1\nt zero 1\n", b"0\n1\nt 0\n"]
)
def test_malformed_checkpoint_raises_storage_error(fileio: LossyFileIO, content: bytes) -> None:
    path = DIR / checkpoints.REPLICATION_OFFSET_CHECKPOINT
    fileio.replace_file(path, content)
    with pytest.raises(StorageError):
        checkpoints.read_offsets_checkpoint(fileio, path)


def test_partition_metadata_round_trip(fileio: LossyFileIO) -> None:
    partition_dir = DIR / "orders-0"
    fileio.mkdir(partition_dir)
    assert checkpoints.read_partition_metadata(fileio, partition_dir) is None
    topic_id = bytes(range(16))
    checkpoints.write_partition_metadata(fileio, partition_dir, topic_id)
    text = fileio.read_file(partition_dir / "partition.metadata").decode()
    assert text == "version: 0\ntopic_id: AAECAwQFBgcICQoLDA0ODw"
    assert checkpoints.read_partition_metadata(fileio, partition_dir) == topic_id


def test_meta_properties_round_trip(tmp_path: Path) -> None:
    fileio = OsFileIO()
    assert checkpoints.read_meta_properties(fileio, tmp_path) is None
    meta = checkpoints.MetaProperties(
        node_id=3, cluster_id="MkU3OEVBNTcwNTJENDM2Qg", directory_id="AAECAwQFBgcICQoLDA0ODw"
    )
    checkpoints.write_meta_properties(fileio, tmp_path, meta)
    text = (tmp_path / "meta.properties").read_text()
    assert "node.id=3\n" in text and "version=1\n" in text
    assert checkpoints.read_meta_properties(fileio, tmp_path) == meta
    assert not (tmp_path / "meta.properties.tmp").exists()


def test_uuid_strings_match_kafka() -> None:
    value = bytes.fromhex("ffffffffffffffffffffffffffffffff")
    assert checkpoints.uuid_to_string(value) == "_____________________w"
    assert checkpoints.uuid_from_string("_____________________w") == value
