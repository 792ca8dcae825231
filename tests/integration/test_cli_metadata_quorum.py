"""`odradek metadata-quorum describe` against a real broker: status and replication views in
text and JSON, the leader found among several bootstrap servers, and one clear line (exit 2)
when no server answers. The three-node quorum is described in test_raft_quorum_cluster.py."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Any


def odradek_quorum(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "odradek",
            "metadata-quorum",
            "describe",
            *args,
            "--bootstrap-server",
            bootstrap,
            "--timeout",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def unused_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def test_status_and_replication_of_a_single_node(broker: Any) -> None:
    text = odradek_quorum(broker.bootstrap)
    assert text.returncode == 0, text.stderr
    assert "LeaderId:" in text.stdout and "CurrentVoters:        [1]" in text.stdout
    status = json.loads(odradek_quorum(broker.bootstrap, "--status", "--output", "json").stdout)
    assert status["status"]["leader_id"] == 1
    assert status["status"]["current_voters"] == [1]
    assert status["status"]["max_follower_lag"] == 0
    proc = odradek_quorum(broker.bootstrap, "--replication", "--output", "json")
    (row,) = json.loads(proc.stdout)["replication"]
    assert (row["node_id"], row["lag"], row["status"]) == (1, 0, "Leader")
    table = odradek_quorum(broker.bootstrap, "--replication")
    assert "STATUS" in table.stdout and "Leader" in table.stdout


def test_the_first_answering_bootstrap_server_is_used(broker: Any) -> None:
    proc = odradek_quorum(f"{unused_address()},{broker.bootstrap}", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"]["leader_id"] == 1


def test_no_reachable_server_is_one_line_and_exit_2() -> None:
    proc = odradek_quorum(unused_address())
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "no bootstrap server leads the metadata quorum" in proc.stderr
