"""`odradek cluster up | status | down`: real `odradek serve` processes on free ports, driven
through the command line as a user would, with confluent-kafka as the client.

What a user would check: `up` prints a bootstrap that clients produce to and consume from, and
writes a cluster file whose pids are running `odradek serve`; `status` (text and json) shows
every node and one active controller; after SIGKILL of the quorum's leader, `status` shows a new
leader, the dead node unreachable and behind in the quorum (while the live follower catches
up, the control that lag is not always reported); `down` leaves no process and no data, and
SIGKILLs a node that does not stop; a second `up` on a running dir is refused, and one with a
node that cannot start stops the others; bad arguments get one clear line and exit 2.

Until brokers register with the controller, each node's Metadata lists only itself, so a
client reaches every partition only through the node that leads the metadata quorum (the one
that created them). The produce/consume check therefore goes through the active controller
`status` names; the check through the whole printed bootstrap runs once Metadata lists every
node, and is skipped, saying so, before.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kafka_helpers import consume_all, produce, unique_topic

TIMEOUT_S = 30.0
LEADER_WAIT_S = 30.0


def odradek(*args: str | Path, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "odradek", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def up(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    done = odradek("cluster", "up", "--base-port", "0", "--dir", directory, *extra)
    assert done.returncode == 0, done.stderr
    return done


def cluster_file(directory: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((directory / "cluster.json").read_text())
    return document


def status_json(directory: Path) -> dict[str, Any]:
    done = odradek("cluster", "status", "--dir", directory, "--output", "json")
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def running(pid: int) -> bool:
    """The pid exists and has not exited (a zombie waiting to be reaped has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 1 :].split()[0] != "Z"


def serves(pid: int, directory: Path) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return running(pid) and b"serve" in argv and any(str(directory).encode() in a for a in argv)


@pytest.fixture
def cluster_dir(tmp_path: Path) -> Iterator[Path]:
    """A dir for `cluster up`; whatever the test leaves running there is stopped afterwards,
    by `cluster down` and then, should that fail, by SIGKILL of the file's pids."""
    directory = tmp_path / "cluster"
    yield directory
    if not (directory / "cluster.json").exists():
        return
    pids = [n["pid"] for n in cluster_file(directory)["nodes"]]
    odradek("cluster", "down", "--dir", directory, "--timeout", "10")
    for pid in pids:
        if serves(pid, directory):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A 3-node cluster with replication factor 1, shared by the client tests; `up`'s
    stdout."""
    directory = tmp_path_factory.mktemp("three") / "cluster"
    done = up(directory, "-n", "3", "--replication-factor", "1")
    try:
        yield directory, done.stdout
    finally:
        pids = [n["pid"] for n in cluster_file(directory)["nodes"]]
        odradek("cluster", "down", "--dir", directory, "--timeout", "10")
        for pid in pids:
            if serves(pid, directory):
                os.kill(pid, signal.SIGKILL)


def address_of(document: dict[str, Any], node_id: int) -> str:
    (broker,) = [b for b in document["brokers"] if b["node_id"] == node_id]
    return f"{broker['host']}:{broker['port']}"


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    client = AdminClient({"bootstrap.servers": bootstrap})
    futures = client.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=TIMEOUT_S,
        request_timeout=TIMEOUT_S,
    )
    futures[topic].result(TIMEOUT_S)


def produce_and_consume(bootstrap: str) -> None:
    topic = unique_topic("cluster")
    create_topic(bootstrap, topic, partitions=2)
    records = [{"key": f"k{i}".encode(), "value": f"v{i}".encode()} for i in range(20)]
    produce(bootstrap, topic, records).ok()
    consumed = consume_all(bootstrap, topic, partitions=(0, 1), expected=20)
    assert sorted(c.value or b"" for c in consumed) == sorted(r["value"] for r in records)


def test_up_serves_clients_and_status_shows_every_node(three_nodes: tuple[Path, str]) -> None:
    cluster_dir, printed = three_nodes
    file = cluster_file(cluster_dir)
    nodes = file["nodes"]
    assert [n["node_id"] for n in nodes] == [1, 2, 3]
    assert all(n["roles"] == "broker,controller" for n in nodes)
    assert len({n["port"] for n in nodes}) == 3
    assert all(serves(n["pid"], cluster_dir) for n in nodes)
    assert all(" ready: PLAINTEXT://" in Path(n["log_file"]).read_text() for n in nodes)
    assert file["configs"]["default.replication.factor"] == "1"
    assert file["configs"]["min.insync.replicas"] == "1"
    bootstrap = file["bootstrap_servers"]
    assert f"bootstrap servers: {bootstrap}\n" in printed
    assert f"stop with: odradek cluster down --dir {cluster_dir}" in printed

    status = status_json(cluster_dir)
    assert status["cluster_id"] == file["cluster_id"]
    assert [b["node_id"] for b in status["brokers"]] == [1, 2, 3]
    assert all(b["reachable"] and b["process"] == "running" for b in status["brokers"])
    leader = status["active_controller"]
    assert leader in (1, 2, 3)
    assert status["controller_source"] == "DescribeQuorum"
    assert status["quorum"]["leader_id"] == leader
    replicas = {r["node_id"]: r["status"] for r in status["quorum"]["replicas"]}
    assert replicas == {n: "Leader" if n == leader else "Follower" for n in (1, 2, 3)}

    text = odradek("cluster", "status", "--dir", cluster_dir)
    assert text.returncode == 0, text.stderr
    assert f"Active controller: {leader} (metadata quorum leader" in text.stdout
    for node in nodes:
        assert f"127.0.0.1:{node['port']}" in text.stdout
    assert "0 under-replicated, 0 offline" in text.stdout

    produce_and_consume(address_of(status, leader))
    after = status_json(cluster_dir)
    assert after["topics"] >= 1 and after["partitions"] >= 2
    assert after["offline_partitions"] == []


def test_clients_use_the_whole_printed_bootstrap(three_nodes: tuple[Path, str]) -> None:
    cluster_dir, _ = three_nodes
    status = status_json(cluster_dir)
    not_leader = status["active_controller"] % 3 + 1
    listed = AdminClient({"bootstrap.servers": address_of(status, not_leader)}).list_topics(
        timeout=10
    )
    if len(listed.brokers) < 3:
        pytest.skip(
            "a node's Metadata lists only itself (brokers do not register with the controller"
            " yet), so clients cannot use the whole printed bootstrap"
        )
    produce_and_consume(cluster_file(cluster_dir)["bootstrap_servers"])


def test_status_after_the_quorum_leader_is_killed_then_down(cluster_dir: Path) -> None:
    up(cluster_dir, "-n", "3")
    file = cluster_file(cluster_dir)
    assert file["configs"]["default.replication.factor"] == "3"
    assert file["configs"]["min.insync.replicas"] == "2"
    pids = {n["node_id"]: n["pid"] for n in file["nodes"]}
    old = status_json(cluster_dir)["active_controller"]
    os.kill(pids[old], signal.SIGKILL)

    deadline = time.monotonic() + LEADER_WAIT_S
    while True:
        status = status_json(cluster_dir)
        leader = status["active_controller"]
        if status["quorum"] is not None and leader != old:
            break
        assert time.monotonic() < deadline, f"no new quorum leader: {status}"
        time.sleep(0.2)
    dead = {b["node_id"]: b for b in status["brokers"]}[old]
    assert dead["state"] == "unreachable" and dead["process"] == "stopped"
    assert {b["state"] for b in status["brokers"] if b["node_id"] != old} <= {
        "alive",
        "unregistered",
    }

    # a record committed after the death: the dead voter cannot have it, the live one must
    create_topic(address_of(status, leader), unique_topic("after-kill"), partitions=1)
    (follower,) = {1, 2, 3} - {old, leader}
    while True:
        lag = {r["node_id"]: r for r in status_json(cluster_dir)["quorum"]["replicas"]}
        if lag[follower]["lag"] == 0 and lag[old]["lag"] > 0:
            break
        assert time.monotonic() < deadline, f"lags never settled: {lag}"
        time.sleep(0.2)
    assert lag[old]["status"] == "Follower"

    down = odradek("cluster", "down", "--dir", cluster_dir)
    assert down.returncode == 0, down.stderr
    assert f"node {old} (pid {pids[old]}): not running" in down.stdout
    assert not any(running(pid) for pid in pids.values())
    assert not cluster_dir.exists()

    gone = odradek("cluster", "status", "--bootstrap-server", file["bootstrap_servers"])
    assert gone.returncode == 2
    assert gone.stderr.startswith("odradek cluster: error: cannot reach a broker")


def test_up_on_a_running_dir_is_refused_and_kept_data_comes_back(cluster_dir: Path) -> None:
    up(cluster_dir, "-n", "1")
    first = cluster_file(cluster_dir)
    again = odradek("cluster", "up", "-n", "1", "--base-port", "0", "--dir", cluster_dir)
    assert again.returncode == 1
    assert "a cluster is already running in" in again.stderr
    assert cluster_file(cluster_dir) == first
    assert serves(first["nodes"][0]["pid"], cluster_dir)

    kept = odradek("cluster", "down", "--dir", cluster_dir, "--keep-data")
    assert kept.returncode == 0, kept.stderr
    assert not running(first["nodes"][0]["pid"])
    assert (cluster_dir / "node-1" / "data" / "meta.properties").exists()
    assert not (cluster_dir / "cluster.json").exists()

    up(cluster_dir, "-n", "1")
    assert cluster_file(cluster_dir)["cluster_id"] == first["cluster_id"]
    assert odradek("cluster", "down", "--dir", cluster_dir).returncode == 0
    assert not cluster_dir.exists()


def test_down_kills_a_node_that_does_not_stop(cluster_dir: Path) -> None:
    up(cluster_dir, "-n", "1")
    (node,) = cluster_file(cluster_dir)["nodes"]
    os.kill(node["pid"], signal.SIGSTOP)  # a stopped process leaves SIGTERM pending
    try:
        done = odradek(
            "cluster", "down", "--dir", cluster_dir, "--timeout", "1", "--output", "json"
        )
    finally:
        if serves(node["pid"], cluster_dir):
            os.kill(node["pid"], signal.SIGCONT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "nodes": [{"node_id": 1, "pid": node["pid"], "outcome": "killed"}],
        "data_removed": True,
    }
    assert not running(node["pid"])
    assert not cluster_dir.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("up", "-n", "0"), "-n 0: a local cluster has 1 to 32 nodes"),
        (("up", "--config", "no.such.property=1"), "Unknown broker configuration"),
        (("up", "--config", "num.partitions=many"), "num.partitions"),
        (("up", "--config", "num.partitions"), "expected KEY=VALUE"),
        (("up", "--config", "log.dirs=/tmp/x"), "set by `cluster up` itself"),
        (("up", "-n", "2", "--replication-factor", "3"), "--replication-factor 3"),
        (("up", "--min-insync-replicas", "4"), "--min-insync-replicas 4"),
        (("status",), "no cluster file in"),
        (("down",), "no cluster file in"),
    ],
)
def test_bad_arguments_get_one_clear_line(
    cluster_dir: Path, args: tuple[str, ...], message: str
) -> None:
    done = odradek("cluster", *args, "--dir", cluster_dir)
    assert done.returncode == 2
    assert done.stderr.startswith("odradek cluster: error: ")
    assert message in done.stderr
    assert done.stderr.count("\n") == 1
    assert not cluster_dir.exists()


def test_a_port_in_use_is_named(cluster_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        done = odradek("cluster", "up", "-n", "1", "--base-port", str(port), "--dir", cluster_dir)
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr
    assert not cluster_dir.exists()


def serving_in(directory: Path) -> list[int]:
    """Pids of the running processes whose command line names `directory` (read-only scan)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and serves(int(entry.name), directory):
            found.append(int(entry.name))
    return found


def test_a_node_that_cannot_start_fails_up_and_stops_the_others(cluster_dir: Path) -> None:
    # node 2's data dir belongs to another node: it refuses to start
    foreign = cluster_dir / "node-2" / "data"
    foreign.mkdir(parents=True)
    (foreign / "meta.properties").write_text("version=1\nnode.id=7\ncluster.id=someoneelse\n")

    done = odradek("cluster", "up", "-n", "3", "--base-port", "0", "--dir", cluster_dir)
    assert done.returncode == 2
    assert done.stderr.startswith("odradek cluster: error: node 2 exited with code 2")
    assert str(cluster_dir / "node-2" / "serve.log") in done.stderr
    assert not (cluster_dir / "cluster.json").exists()
    assert serving_in(cluster_dir) == []
    # the control: the same scan sees a cluster that does run
    (foreign / "meta.properties").unlink()
    up(cluster_dir, "-n", "3")
    assert len(serving_in(cluster_dir)) == 3


def test_status_of_any_bootstrap_without_a_cluster_file(broker: Any) -> None:
    topic = unique_topic("status")
    create_topic(broker.bootstrap, topic, partitions=3)
    done = odradek("cluster", "status", "--bootstrap-server", broker.bootstrap, "--output", "json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    (only,) = status["brokers"]
    assert f"{only['host']}:{only['port']}" == broker.bootstrap
    assert (only["state"], only["pid"], only["process"]) == ("alive", None, None)
    assert status["active_controller"] == only["node_id"]
    assert status["partitions"] >= 3
    assert status["under_replicated_partitions"] == status["offline_partitions"] == []
