"""Transactional offset commits in the group coordinator core, and loading them back.

The rules are Kafka's OffsetMetadataManager's: TxnOffsetCommit offsets stay pending until the
transaction's marker; a commit marker materializes each unless a later record (by log offset)
committed the same position, an abort drops them; an offset tombstone drops pending offsets;
pending offsets block expiry. `Driver` plays the runtime and the partition: it gives every
write its log offsets (as `on_appended` reports them), keeps the records and markers as a real
`__consumer_offsets` log would, and completes writes at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from odradek.common.clock import FakeClock
from odradek.common.errors import ErrorCode
from odradek.coordinator.group.coordinator import GroupCoordinator
from odradek.coordinator.group.loading import replay_batches
from odradek.coordinator.group.messages import GroupConfig, OffsetCommit, Write
from odradek.coordinator.group.records import OffsetKey, decode
from odradek.protocol.records import ATTR_TRANSACTIONAL, encode_batch
from odradek.storage.fileio import OsFileIO
from odradek.storage.log import Log, LogConfig
from odradek.storage.producer_state import AppendOrigin
from odradek.storage.txn_index import ControlRecordType, encode_end_transaction_marker

GROUP = "g"
PID = 7000
EPOCH = 0
TP = ("t", 0)


@dataclass
class Entry:
    """One batch of the simulated partition: records of a write, or a marker."""

    records: tuple[tuple[bytes, bytes | None], ...] = ()
    producer_id: int = -1
    producer_epoch: int = -1
    marker: bool | None = None  # commit (True) or abort (False) for a control batch


@dataclass
class Driver:
    config: GroupConfig = field(default_factory=lambda: GroupConfig(offsets_partitions=1))
    now: int = 1_000_000
    next_offset: int = 0
    log: list[Entry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.core = GroupCoordinator(self.config)

    def settle(self) -> None:
        while self.core.writes:
            writes, self.core.writes = self.core.writes, []
            for write in writes:
                self._append(write)

    def _append(self, write: Write) -> None:
        if write.on_appended is not None:
            write.on_appended(self.next_offset)
        self.next_offset += len(write.records)
        self.log.append(Entry(write.records, write.producer_id, write.producer_epoch))
        write.on_done(ErrorCode.NONE)

    def commit(self, offsets: dict[tuple[str, int], int], group: str = GROUP) -> list[ErrorCode]:
        out: list[list[ErrorCode]] = []
        self.core.commit_offsets(group, -1, "", None, _commits(offsets), self.now, out.append)
        self.settle()
        return out[0]

    def txn_commit(
        self,
        offsets: dict[tuple[str, int], int],
        *,
        group: str = GROUP,
        producer_id: int = PID,
        generation: int = -1,
        member_id: str = "",
    ) -> list[ErrorCode]:
        out: list[list[ErrorCode]] = []
        self.core.commit_transactional_offsets(
            group, producer_id, EPOCH, generation, member_id, None, _commits(offsets), self.now,
            out.append,
        )  # fmt: skip
        self.settle()
        return out[0]

    def marker(self, commit: bool, producer_id: int = PID) -> None:
        self.next_offset += 1
        self.log.append(Entry(producer_id=producer_id, producer_epoch=EPOCH, marker=commit))
        self.core.replay_end_transaction_marker(producer_id, commit)
        self.settle()

    def offset(self, position: tuple[str, int] = TP, group: str = GROUP) -> int:
        return self.core.fetch_offsets(group, [position])[0].offset

    def written_to(self, directory: Path) -> Log:
        """The simulated partition as a real log: the same batches at the same offsets."""
        log = Log.open(directory, LogConfig(), fileio=OsFileIO(), clock=FakeClock(self.now))
        for entry in self.log:
            if entry.marker is not None:
                batch = encode_end_transaction_marker(
                    ControlRecordType.COMMIT if entry.marker else ControlRecordType.ABORT,
                    0,
                    producer_id=entry.producer_id,
                    producer_epoch=entry.producer_epoch,
                    timestamp_ms=self.now,
                )
            else:
                transactional = entry.producer_id >= 0
                batch = bytearray(
                    encode_batch(
                        [(key, value, []) for key, value in entry.records],
                        timestamp_ms=self.now,
                        producer_id=entry.producer_id,
                        producer_epoch=entry.producer_epoch,
                        base_sequence=0 if transactional else -1,
                        attributes=ATTR_TRANSACTIONAL if transactional else 0,
                    )
                )
            log.append_as_leader(memoryview(batch), leader_epoch=0, origin=AppendOrigin.COORDINATOR)
        return log


def _commits(offsets: dict[tuple[str, int], int]) -> list[OffsetCommit]:
    return [OffsetCommit(topic, partition, o, -1, "") for (topic, partition), o in offsets.items()]


def reloaded(driver: Driver, tmp_path: Path) -> GroupCoordinator:
    log = driver.written_to(tmp_path / "__consumer_offsets-0")
    fresh = GroupCoordinator(driver.config)
    replay_batches(fresh, log.replay_batches())
    fresh.finish_loading(driver.now)
    log.close()
    return fresh


# --- pending until the marker -----------------------------------------------------------------


def test_transactional_offsets_stay_pending_until_the_commit_marker() -> None:
    driver = Driver()
    driver.commit({TP: 5})
    assert driver.txn_commit({TP: 9}) == [ErrorCode.NONE]
    assert driver.offset() == 5
    assert driver.core.has_pending_offsets(GROUP, TP)
    assert driver.core.pending_positions(GROUP) == {TP}
    driver.marker(commit=True)
    assert driver.offset() == 9
    assert not driver.core.has_pending_offsets(GROUP, TP)
    assert driver.core.open_transactions == {}


def test_an_abort_marker_drops_pending_offsets() -> None:
    driver = Driver()
    driver.commit({TP: 5})
    driver.txn_commit({TP: 9, ("t", 1): 3})
    driver.marker(commit=False)
    assert driver.offset() == 5
    assert driver.offset(("t", 1)) == -1
    assert driver.core.pending_positions(GROUP) == set()


def test_a_marker_of_another_producer_leaves_pending_offsets_alone() -> None:
    driver = Driver()
    driver.txn_commit({TP: 9})
    driver.marker(commit=True, producer_id=PID + 1)
    assert driver.offset() == -1
    assert driver.core.has_pending_offsets(GROUP, TP)


def test_a_plain_commit_written_after_the_transactional_one_wins_at_commit() -> None:
    driver = Driver()
    driver.txn_commit({TP: 9})
    driver.commit({TP: 12})  # a later record in the log
    driver.marker(commit=True)
    assert driver.offset() == 12


def test_a_transactional_commit_written_after_the_plain_one_wins_at_commit() -> None:
    driver = Driver()
    driver.commit({TP: 12})
    driver.txn_commit({TP: 9})
    driver.marker(commit=True)
    assert driver.offset() == 9


def test_an_offset_tombstone_drops_the_pending_offset_of_its_position() -> None:
    driver = Driver()
    driver.txn_commit({TP: 9, ("t", 1): 4})
    out: list[tuple[ErrorCode, list[ErrorCode]]] = []
    driver.core.delete_offsets(GROUP, [TP], driver.now, lambda e, es: out.append((e, es)))
    driver.settle()
    assert out == [(ErrorCode.NONE, [ErrorCode.NONE])]  # a tombstone though nothing committed
    driver.marker(commit=True)
    assert driver.offset() == -1
    assert driver.offset(("t", 1)) == 4


def test_pending_offsets_keep_offsets_and_group_from_expiring() -> None:
    driver = Driver(GroupConfig(offsets_partitions=1, offsets_retention_ms=1_000))
    driver.commit({TP: 5})
    driver.txn_commit({TP: 9})
    driver.now += 10_000
    driver.core.expire_offsets(driver.now)
    driver.settle()
    assert driver.offset() == 5 and GROUP in driver.core.groups
    driver.marker(commit=False)
    driver.core.expire_offsets(driver.now)
    driver.settle()
    assert GROUP not in driver.core.groups  # nothing holds it any more


def test_deleting_a_group_writes_tombstones_for_pending_only_positions() -> None:
    driver = Driver()
    driver.txn_commit({TP: 9})
    out: list[list[ErrorCode]] = []
    driver.core.delete_groups([GROUP], driver.now, out.append)
    driver.settle()
    assert out == [[ErrorCode.NONE]]
    deleted = [
        decode(key, value)
        for key, value in driver.log[-1].records
        if key is not None and value is None
    ]
    assert any(d is not None and d[0] == OffsetKey(GROUP, *TP) for d in deleted)
    driver.marker(commit=True)
    assert driver.offset() == -1


# --- who may commit ---------------------------------------------------------------------------


def test_a_group_that_does_not_exist_takes_commits_only_without_a_generation() -> None:
    driver = Driver()
    assert driver.txn_commit({TP: 1}, group="other", generation=3) == [ErrorCode.ILLEGAL_GENERATION]
    assert driver.txn_commit({TP: 1}, group="simple") == [ErrorCode.NONE]
    assert driver.txn_commit({TP: 1}, group="") == [ErrorCode.INVALID_GROUP_ID]


def test_a_classic_group_checks_member_and_generation_when_given() -> None:
    driver = Driver()
    driver.commit({TP: 1})  # a simple (empty) group
    assert driver.txn_commit({TP: 2}, member_id="nobody", generation=0) == [
        ErrorCode.UNKNOWN_MEMBER_ID
    ]
    assert driver.txn_commit({TP: 2}) == [ErrorCode.NONE]


def test_too_long_metadata_is_refused_per_partition() -> None:
    driver = Driver(GroupConfig(offsets_partitions=1, offset_metadata_max_bytes=3))
    out: list[list[ErrorCode]] = []
    commits = [OffsetCommit("t", 0, 1, -1, "long"), OffsetCommit("t", 1, 1, -1, "ok")]
    driver.core.commit_transactional_offsets(
        GROUP, PID, EPOCH, -1, "", None, commits, driver.now, out.append
    )
    driver.settle()
    assert out == [[ErrorCode.OFFSET_METADATA_TOO_LARGE, ErrorCode.NONE]]


# --- loading ----------------------------------------------------------------------------------


def test_loading_settles_transactions_by_their_markers_in_log_order(tmp_path: Path) -> None:
    driver = Driver()
    driver.commit({TP: 5, ("t", 1): 1})
    driver.txn_commit({TP: 9})  # committed below
    driver.commit({("t", 1): 2})
    driver.marker(commit=True)
    driver.txn_commit({("t", 1): 50}, producer_id=PID + 1)  # aborted below
    driver.marker(commit=False, producer_id=PID + 1)
    driver.txn_commit({TP: 70})
    driver.commit({TP: 80})  # later than the pending 70: wins when it commits
    driver.txn_commit({("t", 2): 3}, producer_id=PID + 2)  # still open at the end
    fresh = reloaded(driver, tmp_path)
    assert fresh.fetch_offsets(GROUP, [TP, ("t", 1), ("t", 2)]) == driver.core.fetch_offsets(
        GROUP, [TP, ("t", 1), ("t", 2)]
    )
    assert [o.offset for o in fresh.fetch_offsets(GROUP, [TP, ("t", 1), ("t", 2)])] == [80, 2, -1]
    assert fresh.pending_positions(GROUP) == {TP, ("t", 2)}
    fresh.replay_end_transaction_marker(PID, True)
    assert fresh.fetch_offsets(GROUP, [TP])[0].offset == 80
    fresh.replay_end_transaction_marker(PID + 2, True)
    assert fresh.fetch_offsets(GROUP, [("t", 2)])[0].offset == 3


def test_loading_a_superseded_plain_commit_does_not_change_what_a_marker_settles(
    tmp_path: Path,
) -> None:
    driver = Driver()
    driver.commit({TP: 1})
    driver.txn_commit({TP: 9})
    driver.commit({TP: 4})  # supersedes 1 and is later than the pending 9
    driver.marker(commit=True)
    assert driver.offset() == 4
    assert reloaded(driver, tmp_path).fetch_offsets(GROUP, [TP])[0].offset == 4
