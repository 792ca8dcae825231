"""`cluster up`'s plan (roles, ports, configs), its cluster file, and the pid guard of `down`."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from odradek.cli.client_options import ClientError
from odradek.cli.cluster_file import (
    ClusterFile,
    existing_cluster_id,
    new_cluster_id,
    owned_pid_alive,
    plan_cluster,
    read_cluster_file,
    settings,
    write_cluster_file,
)


def test_defaults_follow_the_node_count(tmp_path: Path) -> None:
    one = settings(1, None, None, 9092, tmp_path, [])
    assert (one.replication_factor, one.min_insync_replicas) == (1, 1)
    two = settings(2, None, None, 9092, tmp_path, [])
    assert (two.replication_factor, two.min_insync_replicas) == (2, 2)
    five = settings(5, None, None, 9092, tmp_path, [])
    assert (five.replication_factor, five.min_insync_replicas) == (3, 2)
    assert five.broker_configs() == {
        "default.replication.factor": "3",
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "min.insync.replicas": "2",
    }


def test_config_items_come_last_and_are_checked(tmp_path: Path) -> None:
    chosen = settings(3, 1, None, 0, tmp_path, ["num.partitions=6", "min.insync.replicas=1"])
    assert chosen.broker_configs()["num.partitions"] == "6"
    with pytest.raises(ClientError, match="Unknown broker configuration 'nope'"):
        settings(3, None, None, 0, tmp_path, ["nope=1"])
    with pytest.raises(ClientError, match=r"--config node\.id: set by `cluster up` itself"):
        settings(3, None, None, 0, tmp_path, ["node.id=4"])


@pytest.mark.parametrize(
    ("nodes", "replicas", "min_isr", "base_port", "message"),
    [
        (0, None, None, 9092, "-n 0"),
        (33, None, None, 9092, "-n 33"),
        (3, 0, None, 9092, "--replication-factor 0"),
        (3, 4, None, 9092, "--replication-factor 4"),
        (3, 2, 3, 9092, "--min-insync-replicas 3"),
        (3, None, None, 65534, "--base-port 65534"),
        (3, None, None, -1, "--base-port -1"),
    ],
)
def test_bad_settings_are_refused(
    tmp_path: Path,
    nodes: int,
    replicas: int | None,
    min_isr: int | None,
    base_port: int,
    message: str,
) -> None:
    with pytest.raises(ClientError, match=message):
        settings(nodes, replicas, min_isr, base_port, tmp_path, [])


def test_the_first_three_nodes_vote_the_rest_observe(tmp_path: Path) -> None:
    chosen = settings(5, None, None, 19092, tmp_path, [])
    voters, nodes = plan_cluster(chosen, [19092, 19093, 19094, 19095, 19096], "cid")
    assert voters == "1@127.0.0.1:19092,2@127.0.0.1:19093,3@127.0.0.1:19094"
    assert [n.roles for n in nodes] == ["broker,controller"] * 3 + ["broker"] * 2
    fourth = nodes[3]
    assert fourth.log_dir == str(tmp_path.resolve() / "node-4" / "data")
    assert fourth.log_file == str(tmp_path.resolve() / "node-4" / "serve.log")
    argv = list(fourth.argv)
    assert argv[argv.index("--port") + 1] == "19095"
    assert argv[argv.index("--process-roles") + 1] == "broker"
    assert argv[argv.index("--controller-quorum-voters") + 1] == voters
    assert "cluster.id=cid" in argv and "min.insync.replicas=2" in argv


def test_cluster_file_round_trips(tmp_path: Path) -> None:
    chosen = settings(2, None, None, 0, tmp_path, [])
    voters, nodes = plan_cluster(chosen, [1111, 2222], new_cluster_id())
    cluster = ClusterFile("cid", "127.0.0.1:1111,127.0.0.1:2222", voters, {"a": "b"}, tuple(nodes))
    assert read_cluster_file(tmp_path) is None
    write_cluster_file(tmp_path, cluster)
    assert read_cluster_file(tmp_path) == cluster
    (tmp_path / "cluster.json").write_text("{}")
    with pytest.raises(ClientError, match="not a cluster file"):
        read_cluster_file(tmp_path)


def test_kept_data_gives_the_cluster_id(tmp_path: Path) -> None:
    assert existing_cluster_id(tmp_path, 3) is None
    data = tmp_path / "node-2" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("version=1\nnode.id=2\ncluster.id=kept-id\n")
    assert existing_cluster_id(tmp_path, 3) == "kept-id"
    assert len(new_cluster_id()) == 22


def test_only_the_node_s_own_serve_process_counts(tmp_path: Path) -> None:
    chosen = settings(1, None, None, 0, tmp_path, [])
    _, (planned,) = plan_cluster(chosen, [1111], "cid")
    # a stand-in with the words `down` looks for on its command line; it serves nothing
    stand_in = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "serve", planned.log_dir, "1"]
    )
    try:
        node = replace(planned, pid=stand_in.pid)
        assert owned_pid_alive(node)
        # the control: the same pid recorded for another node's dir is not ours
        assert not owned_pid_alive(replace(node, log_dir=str(tmp_path / "node-9" / "data")))
    finally:
        stand_in.kill()
        stand_in.wait()
    assert not owned_pid_alive(node)
    assert not owned_pid_alive(replace(node, pid=0))
