from __future__ import annotations

from pathlib import Path

from odradek.storage.fileio import LossyFileIO
from odradek.storage.index import OffsetIndex, TimeIndex

DIR = Path("/logs/t-0")


def make_fileio() -> LossyFileIO:
    fileio = LossyFileIO()
    fileio.mkdir(DIR)
    return fileio


def test_offset_index_lookup_is_largest_entry_at_or_below_target() -> None:
    fileio = make_fileio()
    index = OffsetIndex(fileio, DIR / "x.index", 100, 1024)
    assert index.lookup(150) == (100, 0)  # empty: the segment start
    for offset, position in [(105, 400), (110, 800), (120, 1600)]:
        index.append(offset, position)
    assert index.lookup(99) == (100, 0)
    assert index.lookup(104) == (100, 0)
    assert index.lookup(105) == (105, 400)
    assert index.lookup(119) == (110, 800)
    assert index.lookup(10_000) == (120, 1600)


def test_offset_index_file_is_big_endian_8_byte_entries_and_reloads() -> None:
    fileio = make_fileio()
    path = DIR / "x.index"
    index = OffsetIndex(fileio, path, 100, 1024)
    index.append(105, 400)
    index.append(110, 800)
    index.append(110, 900)  # not increasing: ignored
    data = fileio.read_file(path)
    assert data == bytes.fromhex("00000005 00000190 0000000a 00000320")
    index.close()
    reloaded = OffsetIndex(fileio, path, 100, 1024)
    assert reloaded.entries() == [(105, 400), (110, 800)]


def test_offset_index_truncate_and_torn_entry() -> None:
    fileio = make_fileio()
    path = DIR / "x.index"
    index = OffsetIndex(fileio, path, 0, 1024)
    for i in range(1, 6):
        index.append(i * 10, i * 100)
    index.truncate_to(30)
    assert index.entries() == [(10, 100), (20, 200)]
    assert len(fileio.read_file(path)) == 16
    index.truncate_to_position(200)
    assert index.entries() == [(10, 100)]
    handle = fileio.open(path)
    fileio.write(handle, b"\x00\x00\x00")  # half an entry
    reloaded = OffsetIndex(fileio, path, 0, 1024)
    assert reloaded.entries() == [(10, 100)]
    assert len(fileio.read_file(path)) == 8


def test_offset_index_full_and_consistency() -> None:
    fileio = make_fileio()
    index = OffsetIndex(fileio, DIR / "x.index", 0, 16)
    index.append(1, 10)
    assert not index.is_full
    index.append(2, 20)
    assert index.is_full
    assert index.is_consistent_with(21)
    assert not index.is_consistent_with(20)


def test_time_index_appends_only_when_time_moves_forward() -> None:
    fileio = make_fileio()
    path = DIR / "x.timeindex"
    index = TimeIndex(fileio, path, 50, 1024)
    assert index.last_entry() is None
    index.maybe_append(1_000, 55)
    index.maybe_append(1_000, 60)  # same time: no entry
    index.maybe_append(900, 61)  # back in time: no entry
    index.maybe_append(2_000, 70)
    assert index.entries() == [(1_000, 55), (2_000, 70)]
    assert fileio.read_file(path) == bytes.fromhex(
        "00000000000003e8 00000005 00000000000007d0 00000014"
    )
    assert index.lookup_below(1_000) == 50
    assert index.lookup_below(1_001) == 55
    assert index.lookup_below(5_000) == 70
    index.truncate_to(70)
    assert index.entries() == [(1_000, 55)]
    assert len(fileio.read_file(path)) == 12
    index.close()
    assert TimeIndex(fileio, path, 50, 1024).entries() == [(1_000, 55)]
