"""After any interleaving of writes, tombstones, rolls, clock steps, cleanings and crashes (a
process killed at any rename or fsync of a cleaning, then the log reopened), reading the log from
the start yields exactly the latest value of every live key, every record as it was written at
its offset, at most one record per key below the cleaner checkpoint (the latest below it), and
every record written above what any cleaning touched.

Negative controls: a cleaner whose offset map keeps the first offset of a key instead of the
last, and a log that throws away an interrupted swap instead of finishing it, both fail the
checker."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from odradek.common.clock import FakeClock
from odradek.common.errors import KafkaError, StorageError
from odradek.protocol import records
from odradek.storage import log as log_module
from odradek.storage.cleaner import Cleaner
from odradek.storage.cleaner_manager import log_to_clean
from odradek.storage.cleaner_offset_map import OffsetMap
from odradek.storage.fileio import LossyFileIO
from odradek.storage.log import Log, LogConfig

DIR = Path("/data/profiles-0")
START_MS = 1_700_000_000_000
DELETE_RETENTION_MS = 1_000
KEYS = [b"k0", b"k1", b"k2", b"k3", b"k4"]


class KillableFileIO(LossyFileIO):
    """Fails (as a killed process stops) at the `kill_at`-th rename or fsync and after."""

    def __init__(self) -> None:
        super().__init__()
        self.kill_at: int | None = None
        self.steps = 0

    def _step(self) -> None:
        if self.kill_at is not None:
            if self.steps >= self.kill_at:
                raise OSError(5, "killed")
            self.steps += 1

    def rename(self, source: Path, target: Path) -> None:
        self._step()
        super().rename(source, target)

    def fsync(self, handle: int) -> None:
        self._step()
        super().fsync(handle)


class FirstOffsetMap(OffsetMap):
    """Deliberately broken: remembers the first offset of a key, not the latest."""

    def put(self, key: bytes, offset: int) -> None:
        if self.get(key) < 0:
            super().put(key, offset)


record = st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), st.binary(max_size=6)))
operation = st.one_of(
    st.tuples(st.just("write"), st.lists(record, min_size=1, max_size=3)),
    st.tuples(st.just("write"), st.lists(record, min_size=1, max_size=3)),
    st.tuples(st.just("write"), st.lists(record, min_size=1, max_size=3)),
    st.tuples(st.just("roll"), st.just(0)),
    st.tuples(st.just("tick"), st.sampled_from([1, 400, DELETE_RETENTION_MS + 1])),
    st.tuples(st.just("clean"), st.just(0)),
    st.tuples(st.just("clean"), st.just(0)),
    st.tuples(st.just("killed_clean"), st.integers(min_value=0, max_value=40)),
    st.tuples(st.just("crash"), st.just(0)),
)

CONFIG = LogConfig(
    segment_bytes=400,
    cleanup_policy=("compact",),
    delete_retention_ms=DELETE_RETENTION_MS,
    file_delete_delay_ms=0,
    index_interval_bytes=64,
)


class Model:
    def __init__(self) -> None:
        self.written: dict[int, tuple[bytes, bytes | None]] = {}  # offset -> (key, value)
        self.checkpoint = 0  # the cleaner checkpoint: clean below it
        self.touched = 0  # no cleaning ever rewrote anything at or above this

    def latest(self) -> dict[bytes, tuple[int, bytes | None]]:
        found: dict[bytes, tuple[int, bytes | None]] = {}
        for offset in sorted(self.written):
            key, value = self.written[offset]
            found[key] = (offset, value)
        return found


def stored(log: Log) -> list[records.Record]:
    found: list[records.Record] = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 20).records
        assert data, f"nothing at {offset} below the log end {log.log_end_offset}"
        for position, header in records.iter_batches(data):
            found += records.decode_records(data[position : position + header.size])[1]
            offset = header.next_offset
    return found


def check(log: Log, model: Model) -> None:
    assert log.log_start_offset == 0, "compaction moved the log start"
    assert log.log_end_offset == max(model.written, default=-1) + 1, "the log end moved"
    found = stored(log)
    offsets = [r.offset for r in found]
    assert offsets == sorted(set(offsets)), "offsets repeat or go backwards"
    for r in found:
        assert model.written.get(r.offset) == (r.key, r.value), (
            f"offset {r.offset} is not as written"
        )
    latest = model.latest()
    view: dict[bytes | None, bytes | None] = {}
    for r in found:
        view[r.key] = r.value
    live = {key: value for key, (_, value) in latest.items() if value is not None}
    assert {k: v for k, v in view.items() if v is not None} == live, "latest values differ"
    # Below the checkpoint: one record per key, the latest of those below it (a later one above
    # the checkpoint was not in the offset map of the cleaning that got there).
    latest_below: dict[bytes, int] = {}
    for offset in sorted(o for o in model.written if o < model.checkpoint):
        latest_below[model.written[offset][0]] = offset
    for r in found:
        if r.offset < model.checkpoint:
            assert latest_below[r.key or b""] == r.offset, f"offset {r.offset} is stale"
    present = set(offsets)
    above = [o for o in model.written if o >= model.touched]
    assert all(o in present for o in above), "a record above what was cleaned is missing"


def clean(log: Log, model: Model, now_ms: int, map_type: type[OffsetMap]) -> None:
    chosen = log_to_clean(
        (log.topic, log.partition), log, model.checkpoint, now_ms, log.log_end_offset
    )
    model.touched = max(model.touched, chosen.first_uncleanable_offset)
    with log.cleaning_lock:
        result = Cleaner(map_type(1 << 10)).clean(
            log, chosen.first_dirty_offset, chosen.first_uncleanable_offset, now_ms
        )
    model.checkpoint = result.end_offset


def run(operations: list[tuple[str, object]], map_type: type[OffsetMap] = OffsetMap) -> None:
    fileio = KillableFileIO()
    clock = FakeClock(wall_ms=START_MS)
    log = Log.open(DIR, CONFIG, fileio=fileio, clock=clock)
    model = Model()

    def reopen() -> Log:
        fileio.kill_at = None
        fileio.crash()
        return Log.open(DIR, CONFIG, fileio=fileio, clock=clock, recovery_point=log.recovery_point)

    for name, argument in operations:
        if name == "write":
            pairs = argument
            assert isinstance(pairs, list)
            batch = records.encode_batch(
                [(k, v, []) for k, v in pairs], timestamp_ms=clock.wall_ms()
            )
            first = log.append_as_leader(bytearray(batch), leader_epoch=0).first_offset
            for i, (key, value) in enumerate(pairs):
                model.written[first + i] = (key, value)
            log.flush()
        elif name == "roll":
            log.roll()
            log.flush()
        elif name == "tick":
            assert isinstance(argument, int)
            clock.advance(argument)
        elif name == "clean":
            clean(log, model, clock.wall_ms(), map_type)
        elif name == "killed_clean":
            assert isinstance(argument, int)
            fileio.steps = 0
            fileio.kill_at = argument
            try:
                clean(log, model, clock.wall_ms(), map_type)
            except (StorageError, KafkaError):
                log = reopen()
            fileio.kill_at = None
        elif name == "crash":
            log = reopen()
        check(log, model)
    log = reopen()
    check(log, model)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operation, min_size=5, max_size=40))
def test_compaction_keeps_the_latest_of_every_key_across_crashes(
    operations: list[tuple[str, object]],
) -> None:
    run(operations)


# --- negative controls ----------------------------------------------------------------------

# Several segments of versions of the same keys, then the cleaning under test.
SCENARIO: list[tuple[str, object]] = [
    ("write", [(b"k3", b"written once"), (b"k4", b"written once")]),
    *[("write", [(KEYS[i % 3], b"version %d" % i), (KEYS[(i + 1) % 3], None)]) for i in range(30)],
]


def failures(operations: list[tuple[str, object]], map_type: type[OffsetMap]) -> int:
    failed = 0
    try:
        run(operations, map_type)
    except AssertionError:
        failed += 1
    return failed


def test_the_checker_catches_a_cleaner_that_keeps_stale_values() -> None:
    assert failures([*SCENARIO, ("clean", 0)], OffsetMap) == 0
    assert failures([*SCENARIO, ("clean", 0)], FirstOffsetMap) == 1


def test_the_checker_catches_a_log_that_drops_an_interrupted_swap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kills = [[*SCENARIO, ("killed_clean", step)] for step in range(60)]
    assert sum(failures(operations, OffsetMap) for operations in kills) == 0

    def drop_swaps(fileio: LossyFileIO, directory: Path, names: list[str]) -> None:
        for name in names:
            if name.endswith(".swap"):
                fileio.delete(directory / name)

    monkeypatch.setattr(log_module, "_complete_swaps", drop_swaps)
    assert sum(failures(operations, OffsetMap) for operations in kills) > 0
