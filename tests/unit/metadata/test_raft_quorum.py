"""`RaftQuorum` and its `RaftDriver` over real files: a quorum of one, the files it leaves
(quorum-state, snapshots, the log), restarts, a data dir of the single-node quorum, and three
quorums in one event loop whose messages go through kio (an in-memory network, so no ports).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from odradek.common.clock import SystemClock
from odradek.metadata.quorum import SingleNodeQuorum, parse_quorum_voters
from odradek.metadata.raft import wire
from odradek.metadata.raft.core import RaftConfig
from odradek.metadata.raft.driver import NoNetwork
from odradek.metadata.raft.files import parse_snapshot_file_name
from odradek.metadata.raft_quorum import METADATA_DIR, NotControllerError, RaftQuorum
from odradek.metadata.records import ConfigRecord, MetadataRecord, TopicRecord, encode
from odradek.protocol.records import encode_batch
from odradek.storage.fileio import OsFileIO
from odradek.storage.log import Log, LogConfig


def topic(name: str) -> TopicRecord:
    return TopicRecord(name, name.encode().ljust(16, b"\0")[:16])


def one(tmp_path: Path, **kwargs: Any) -> RaftQuorum:
    return RaftQuorum(
        tmp_path,
        RaftConfig(node_id=1, voters=(1,)),
        fileio=OsFileIO(),
        clock=SystemClock(),
        network=NoNetwork(),
        **kwargs,
    )


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))  # type: ignore[arg-type]


def test_a_quorum_of_one_elects_itself_at_start_and_commits(tmp_path: Path) -> None:
    async def main() -> None:
        quorum = one(tmp_path)
        quorum.load()
        await quorum.start()
        assert quorum.is_active_controller and quorum.leader_epoch == 1
        image = await quorum.commit([topic("a"), topic("b")])
        assert set(image.topics) == {"a", "b"} and quorum.image is image
        await quorum.stop()

    run(main())
    state = json.loads((tmp_path / METADATA_DIR / "quorum-state").read_text())
    assert state["leaderId"] == 1 and state["leaderEpoch"] == 1 and state["votedId"] == 1
    assert state["currentVoters"] == [{"voterId": 1}] and state["data_version"] == 0


def test_a_restart_replays_the_committed_log_in_a_new_epoch(tmp_path: Path) -> None:
    async def first() -> None:
        quorum = one(tmp_path)
        quorum.load()
        await quorum.start()
        await quorum.commit([topic("a")])
        await quorum.commit([ConfigRecord(2, "a", "retention.ms", "5")])
        await quorum.stop()

    async def second() -> None:
        quorum = one(tmp_path)
        assert quorum.load().topics == {}  # nothing is applied before it is committed again
        await quorum.start()
        assert quorum.leader_epoch == 2
        assert dict(quorum.image.topics["a"].configs) == {"retention.ms": "5"}
        await quorum.commit([topic("b")])
        await quorum.stop()

    run(first())
    run(second())
    log = tmp_path / METADATA_DIR / "00000000000000000000.log"
    assert log.stat().st_size > 0


def test_a_data_dir_of_the_single_node_quorum_loads(tmp_path: Path) -> None:
    def legacy() -> None:
        """What the single-node quorum wrote before the Raft one: one plain v2 batch per
        commit at leader epoch 0, no LeaderChange, no quorum-state."""
        clock = SystemClock()
        log = Log.open(tmp_path / METADATA_DIR, LogConfig(), fileio=OsFileIO(), clock=clock)
        for name in ("kept", "also"):
            batch = encode_batch([(None, encode(topic(name)), [])], timestamp_ms=clock.wall_ms())
            log.append_as_leader(bytearray(batch), leader_epoch=0)
        log.close()

    async def raft() -> None:
        quorum = one(tmp_path)
        quorum.load()
        await quorum.start()
        assert set(quorum.image.topics) == {"kept", "also"}
        await quorum.commit([topic("new")])
        await quorum.stop()

    legacy()
    assert not (tmp_path / METADATA_DIR / "quorum-state").exists()
    run(raft())


def test_snapshots_are_written_named_as_kafka_and_restore_the_image(tmp_path: Path) -> None:
    async def first() -> None:
        quorum = one(tmp_path, snapshot_bytes=1)
        quorum.load()
        await quorum.start()
        for i in range(5):
            await quorum.commit([topic(f"t{i}")])
            await asyncio.sleep(0)  # the snapshot is taken in a step of its own
        await quorum.stop()

    run(first())
    directory = tmp_path / METADATA_DIR
    snapshots = [n for n in (p.name for p in directory.iterdir()) if n.endswith(".checkpoint")]
    assert len(snapshots) == 1  # older ones are deleted
    snapshot_id = parse_snapshot_file_name(snapshots[0])
    assert snapshot_id is not None and snapshot_id.offset > 1 and snapshot_id.epoch == 1
    assert len(snapshots[0]) == len("00000000000000000000-0000000000.checkpoint")

    async def second() -> None:
        quorum = one(tmp_path)
        image = quorum.load()
        assert set(image.topics) <= {f"t{i}" for i in range(5)} and image.topics
        await quorum.start()
        assert set(quorum.image.topics) == {f"t{i}" for i in range(5)}
        await quorum.stop()

    run(second())


# -- three quorums, one loop ------------------------------------------------------------------


class MemoryNetwork:
    """Requests of node `source` reach the target quorum's `handle_request` through kio: the
    same entities the sockets carry, without the sockets. `down` nodes do not answer."""

    def __init__(self, source: int, nodes: dict[int, RaftQuorum], down: set[int]) -> None:
        self.source = source
        self.nodes = nodes
        self.down = down

    async def send(self, node_id: int, request: Any, *, timeout_ms: int | None = None) -> Any:
        if node_id in self.down or self.source in self.down:
            raise ConnectionError(f"node {node_id} is down")
        target = self.nodes[node_id]
        message = wire.from_kio(request)
        response = await target.handle_request(self.source, message, timeout_ms or 2000)
        if node_id in self.down or self.source in self.down:
            raise ConnectionError(f"node {node_id} went down")
        return wire.to_kio(response, request.__version__)


def three(tmp_path: Path, down: set[int], snapshot_bytes: int = 1 << 20) -> dict[int, RaftQuorum]:
    """Voters 1, 2 and 3, and node 4, an observer (process.roles=broker)."""
    nodes: dict[int, RaftQuorum] = {}
    for node_id in (1, 2, 3, 4):
        nodes[node_id] = RaftQuorum(
            tmp_path / str(node_id),
            RaftConfig(
                node_id=node_id,
                voters=(1, 2, 3),
                election_timeout_ms=150,
                fetch_timeout_ms=300,
                request_timeout_ms=300,
                fetch_max_wait_ms=50,
            ),
            fileio=OsFileIO(),
            clock=SystemClock(),
            network=MemoryNetwork(node_id, nodes, down),
            snapshot_bytes=snapshot_bytes,
        )
    return nodes


async def leader_of(nodes: dict[int, RaftQuorum], down: set[int]) -> RaftQuorum:
    for _ in range(500):
        leaders = [q for i, q in nodes.items() if q.is_active_controller and i not in down]
        if len(leaders) == 1:
            return leaders[0]
        await asyncio.sleep(0.01)
    raise AssertionError("no single leader")


async def applied_everywhere(nodes: dict[int, RaftQuorum], names: set[str], skip: set[int]) -> None:
    for _ in range(500):
        if all(set(q.image.topics) >= names for i, q in nodes.items() if i not in skip):
            return
        await asyncio.sleep(0.01)
    raise AssertionError({i: set(q.image.topics) for i, q in nodes.items()})


def test_three_quorums_elect_one_leader_replicate_and_survive_its_loss(tmp_path: Path) -> None:
    down: set[int] = set()

    async def main() -> None:
        nodes = three(tmp_path, down)
        for quorum in nodes.values():
            quorum.load()
            await quorum.start()
        leader = await leader_of(nodes, down)
        assert not nodes[4].is_active_controller
        follower = next(q for q in nodes.values() if q is not leader)
        with pytest.raises(NotControllerError):
            await follower.commit([topic("refused")])
        with pytest.raises(NotControllerError):
            await nodes[4].commit([topic("refused")])
        await leader.commit([topic("first")])
        await applied_everywhere(nodes, {"first"}, set())
        described = leader.describe_quorum()
        assert {v.replica_id for v in described.current_voters} == {1, 2, 3}
        assert [o.replica_id for o in described.observers] == [4]
        down.add(leader.config.node_id)
        survivor = await leader_of(nodes, down)
        assert survivor is not leader and survivor.leader_epoch > leader.leader_epoch
        records: list[MetadataRecord] = [topic("second")]
        await survivor.commit(records)
        await applied_everywhere(nodes, {"first", "second"}, down)
        down.clear()  # the old leader comes back and catches up
        await applied_everywhere(nodes, {"first", "second"}, set())
        assert "refused" not in leader.image.topics
        for quorum in nodes.values():
            await quorum.stop()

    run(main())


def test_a_voter_that_fell_behind_the_leader_s_snapshot_fetches_it(tmp_path: Path) -> None:
    down: set[int] = set()

    async def main() -> None:
        nodes = three(tmp_path, down, snapshot_bytes=1)
        for quorum in nodes.values():
            quorum.load()
            await quorum.start()
        leader = await leader_of(nodes, down)
        behind = next(i for i in (1, 2, 3) if i != leader.config.node_id)
        down.add(behind)
        names = {f"s{i}" for i in range(6)}
        for name in sorted(names):
            await leader.commit([topic(name)])
            await asyncio.sleep(0)  # each commit is followed by a snapshot
        behind_core, leader_core = nodes[behind].driver.core, leader.driver.core
        assert behind_core is not None and leader_core is not None
        # What it lacks is gone from the leader's log: only the snapshot can bring it.
        assert leader_core.log.log_start_offset > behind_core.log.end_offset
        down.clear()
        await applied_everywhere(nodes, names, set())
        assert behind_core.log.snapshot is not None
        for quorum in nodes.values():
            await quorum.stop()

        again = three(tmp_path, down)  # restarted from their snapshots and logs
        for quorum in again.values():
            quorum.load()
            await quorum.start()
        await leader_of(again, down)
        await applied_everywhere(again, names, set())
        for quorum in again.values():
            await quorum.stop()

    run(main())


def test_the_single_node_quorum_and_the_raft_one_read_each_other_s_data_dir(
    tmp_path: Path,
) -> None:
    async def raft(name: str) -> set[str]:
        quorum = one(tmp_path)
        quorum.load()
        await quorum.start()
        await quorum.commit([topic(name)])
        names = set(quorum.image.topics)
        await quorum.stop()
        return names

    async def single(name: str) -> set[str]:
        quorum = SingleNodeQuorum(tmp_path, fileio=OsFileIO(), clock=SystemClock())
        before = set(quorum.load().topics)
        await quorum.start()
        await quorum.commit([topic(name)])
        await quorum.stop()
        return before

    async def main() -> None:
        assert await raft("r1") == {"r1"}
        assert await single("s1") == {"r1"}  # its LeaderChange batch is skipped
        # s1 went in at the log's epoch (1), not 0: the epochs Raft reads back never decrease.
        assert await raft("r2") == {"r1", "s1", "r2"}

    run(main())


def test_controller_quorum_voters_are_parsed_as_kafka_writes_them() -> None:
    voters = parse_quorum_voters(["1@127.0.0.1:9093", " 2@[::1]:9094", "3@broker-3:9095", ""])
    assert voters == {1: ("127.0.0.1", 9093), 2: ("::1", 9094), 3: ("broker-3", 9095)}
    assert parse_quorum_voters([]) == {}
    for bad in (["1@host"], ["host:9093"], ["x@host:9093"], ["1@:9093"], ["1@h:1", "1@h:2"]):
        with pytest.raises(ValueError):
            parse_quorum_voters(bad)
