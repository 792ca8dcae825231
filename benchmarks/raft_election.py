"""Election time of the metadata quorum after its leader is SIGKILLed, over real processes.

Not a test: pytest never collects it and nothing asserts on timings. Three `odradek serve`
processes on 127.0.0.1 form a quorum (`--controller-quorum-voters`); each round finds the
leader with DescribeQuorum, SIGKILLs it and times, from the kill, until a survivor answers
DescribeQuorum as leader of a newer epoch (the election) and until a CreateTopics sent to it
succeeds (the quorum serves writes again); then the killed node restarts and catches up before
the next round. Run with two timeout settings side by side, the second being Kafka's defaults,
so the ratio shows how election time follows `controller.quorum.fetch.timeout.ms`.

    python benchmarks/raft_election.py --rounds 10
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from odradek.metadata.raft import wire
from odradek.metadata.raft.messages import DescribeQuorumRequest, DescribeQuorumResponse
from odradek.transport.client import decode_response, encode_request

TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def describe(port: int) -> DescribeQuorumResponse | None:
    request = wire.to_kio(DescribeQuorumRequest(), 1)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(encode_request(request, 1, "raft-bench"))
            header = sock.recv(4, socket.MSG_WAITALL)
            (size,) = struct.unpack(">i", header)
            _, response = decode_response(
                wire.DESCRIBE_QUORUM, 1, sock.recv(size, socket.MSG_WAITALL)
            )
    except (OSError, struct.error):
        return None
    described = wire.from_kio(response)
    assert isinstance(described, DescribeQuorumResponse)
    return described


@dataclass
class Node:
    node_id: int
    port: int
    data_dir: str
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "odradek", "serve", "--port", str(self.port)]
        cmd += ["--data-dir", self.data_dir, "--node-id", str(self.node_id), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def leader(nodes: list[Node], newer_than: int) -> tuple[Node, int] | None:
    for node in nodes:
        if node.alive():
            answer = describe(node.port)
            if answer is not None and answer.error_code == 0 and answer.leader_epoch > newer_than:
                return node, answer.leader_epoch
    return None


def wait_leader(nodes: list[Node], newer_than: int, caught_up: bool) -> tuple[Node, int]:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        found = leader(nodes, newer_than)
        if found is not None:
            if not caught_up:
                return found
            answer = describe(found[0].port)
            if answer is not None and all(
                v.log_end_offset >= answer.high_watermark for v in answer.current_voters
            ):
                return found
        time.sleep(0.005)
    raise TimeoutError("no leader")


def create_topic(node: Node, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{node.port}", "log_level": 3})
    futures = admin.create_topics([NewTopic(name, 1, 1)], request_timeout=10)
    futures[name].result(timeout=TIMEOUT_S)


def run(rounds: int, election_ms: int, fetch_ms: int) -> tuple[list[float], list[float]]:
    ports = {i: free_port() for i in (1, 2, 3)}
    voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in ports.items())
    base = tempfile.mkdtemp(prefix="raft-election-")
    args = [
        "--controller-quorum-voters",
        voters,
        "--override",
        f"controller.quorum.election.timeout.ms={election_ms}",
        "--override",
        f"controller.quorum.fetch.timeout.ms={fetch_ms}",
        "--override",
        "cluster.id=raft-bench-cluster-000000",
    ]
    nodes = [Node(i, p, os.path.join(base, str(i)), args) for i, p in ports.items()]
    elections: list[float] = []
    writes: list[float] = []
    try:
        for node in nodes:
            node.start()
        current, epoch = wait_leader(nodes, -1, caught_up=True)
        for round_ in range(rounds):
            started = time.monotonic()
            current.kill()
            new, new_epoch = wait_leader(nodes, epoch, caught_up=False)
            elected = time.monotonic()
            create_topic(new, f"bench-{election_ms}-{round_}")
            written = time.monotonic()
            elections.append((elected - started) * 1000)
            writes.append((written - started) * 1000)
            current.start()
            current, epoch = wait_leader(nodes, new_epoch - 1, caught_up=True)
    finally:
        for node in nodes:
            node.kill()
    return elections, writes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="leader kills per setting (10)")
    args = parser.parse_args()
    results = {}
    for election_ms, fetch_ms in ((500, 1000), (1000, 2000)):
        elections, writes = run(args.rounds, election_ms, fetch_ms)
        results[(election_ms, fetch_ms)] = statistics.median(elections)
        print(
            f"election.timeout={election_ms} ms fetch.timeout={fetch_ms} ms:"
            f" elected median {statistics.median(elections):.0f} ms,"
            f" worst {max(elections):.0f} ms;"
            f" first write median {statistics.median(writes):.0f} ms, worst {max(writes):.0f} ms"
            f" ({args.rounds} kills)"
        )
    fast, default = results[(500, 1000)], results[(1000, 2000)]
    print(f"ratio of median elections, defaults / halved timeouts: {default / fast:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
