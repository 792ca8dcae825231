from __future__ import annotations

from pathlib import Path

import pytest
from storage_helpers import batch, read_all

from odradek.common.clock import FakeClock
from odradek.common.errors import StorageError
from odradek.storage import checkpoints
from odradek.storage.fileio import LossyFileIO, OsFileIO
from odradek.storage.log import LogConfig
from odradek.storage.log_manager import LogManager

DIRS = [Path("/data/a"), Path("/data/b")]


def make_manager(fileio: LossyFileIO | OsFileIO, dirs: list[Path] = DIRS) -> LogManager:
    manager = LogManager(dirs, LogConfig(), fileio=fileio, clock=FakeClock())
    manager.load()
    return manager


def test_logs_spread_over_dirs_and_reload_from_checkpoints() -> None:
    fileio = LossyFileIO()
    manager = make_manager(fileio)
    topic_id = bytes(range(16))
    for partition in range(4):
        log = manager.get_or_create("orders", partition, topic_id=topic_id)
        for _ in range(partition + 1):
            log.append_as_leader(batch(2), leader_epoch=0)
    assert manager.get_or_create("orders", 0) is manager.get("orders", 0)
    assert {manager.log_dir_of("orders", p) for p in range(4)} == set(DIRS)
    assert manager.topic_id("orders", 2) == topic_id
    manager.close()

    text = fileio.read_file(DIRS[0] / checkpoints.RECOVERY_POINT_CHECKPOINT)
    assert text.startswith(b"0\n2\n")
    fileio.crash()  # everything was flushed by close()
    reloaded = make_manager(fileio)
    logs = reloaded.logs()
    assert sorted(logs) == [("orders", p) for p in range(4)]
    for (_, partition), log in logs.items():
        assert log.log_end_offset == 2 * (partition + 1)
        assert log.recovery_point == log.log_end_offset


def test_load_skips_the_metadata_log_and_finishes_deletions() -> None:
    fileio = LossyFileIO()
    fileio.mkdir(DIRS[0] / "__cluster_metadata-0")
    fileio.mkdir(DIRS[0] / "old-0.0123abcd-delete")
    fileio.replace_file(DIRS[0] / "old-0.0123abcd-delete" / "00000000000000000000.log", b"x")
    manager = make_manager(fileio)
    assert manager.logs() == {}
    assert not fileio.exists(DIRS[0] / "old-0.0123abcd-delete")


def test_delete_renames_then_removes() -> None:
    fileio = LossyFileIO()
    manager = make_manager(fileio)
    log = manager.get_or_create("orders", 0)
    log.append_as_leader(batch(1), leader_epoch=0)
    log_dir = manager.log_dir_of("orders", 0)
    assert log_dir is not None
    manager.delete("orders", 0)
    assert manager.get("orders", 0) is None
    assert fileio.list_dir(log_dir) == []
    # A new log of the same name starts empty.
    assert manager.get_or_create("orders", 0).log_end_offset == 0


def test_io_error_marks_the_dir_offline_and_raises_storage_error() -> None:
    fileio = LossyFileIO()
    manager = make_manager(fileio, [DIRS[0]])
    log = manager.get_or_create("orders", 0)
    fileio.fail_operations.add("write")
    with pytest.raises(StorageError):
        log.append_as_leader(batch(1), leader_epoch=0)
    assert manager.offline_dirs == {DIRS[0]}
    with pytest.raises(StorageError):
        manager.get_or_create("orders", 1)


def test_meta_properties(tmp_path: Path) -> None:
    manager = make_manager(OsFileIO(), [tmp_path / "a"])
    ids = manager.ensure_meta_properties(1, "MkU3OEVBNTcwNTJENDM2Qg")
    assert ids == manager.ensure_meta_properties(1, "MkU3OEVBNTcwNTJENDM2Qg")
    with pytest.raises(StorageError):
        manager.ensure_meta_properties(2, "MkU3OEVBNTcwNTJENDM2Qg")


def test_real_directories(tmp_path: Path) -> None:
    dirs = [tmp_path / "a"]
    manager = make_manager(OsFileIO(), dirs)
    log = manager.get_or_create("t", 0, LogConfig(segment_bytes=300))
    for _ in range(5):
        log.append_as_leader(batch(1, value_size=100), leader_epoch=0)
    expected = read_all(log)
    manager.close()
    assert (tmp_path / "a" / "recovery-point-offset-checkpoint").read_text() == "0\n1\nt 0 5\n"
    reloaded = make_manager(OsFileIO(), dirs)
    log = reloaded.get("t", 0)
    assert log is not None
    assert read_all(log) == expected
    reloaded.delete("t", 0)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "log-start-offset-checkpoint",
        "recovery-point-offset-checkpoint",
    ]


def test_get_or_create_applies_a_new_config_to_an_existing_log() -> None:
    manager = make_manager(LossyFileIO())
    log = manager.get_or_create("t", 0)
    config = LogConfig(segment_bytes=12345)
    assert manager.get_or_create("t", 0, config) is log
    assert log.config == config


def test_clean_shutdown_marker_is_written_on_close_and_removed_on_load() -> None:
    fileio = LossyFileIO()
    manager = make_manager(fileio)
    manager.get_or_create("t", 0).append_as_leader(batch(1), leader_epoch=0)
    manager.close()
    assert all(fileio.exists(d / ".kafka_cleanshutdown") for d in DIRS)
    reloaded = make_manager(fileio)
    assert not any(fileio.exists(d / ".kafka_cleanshutdown") for d in DIRS)
    log = reloaded.get("t", 0)
    assert log is not None and log.log_end_offset == 1
