"""How long odradek.testing's kafka_broker takes from fixture start to the first served request.

What the fixture does is timed, not more: create the data dir, start the broker
(`InProcessBroker.start()` or `ProcessBroker.start()`), then a raw socket sends ApiVersions v0
(the first request of every client) and Metadata v1; the times to both answers are reported.
No client library start-up is counted.

- in-process, warm: the broker's modules are already imported (every fixture after the first
  in a test process). Median of --runs starts, each on a fresh dir, each stopped after.
- in-process, cold: the first fixture of a fresh interpreter, imports included. Each run is a
  new `python` process; --cold-runs of them. By default hypothesis is importable, as in a test
  environment (kio then registers its strategies on import); --no-hypothesis hides it.
- subprocess, fork: a child forked from the fork server (--odradek-mode=process, the default
  start method); the server itself is started once, before the timed runs, and its own start
  is reported as "fork server start". Median of --runs.
- subprocess, spawn: `python -m odradek.testing.serve` launched afresh (odradek_process_start =
  spawn). Median of --runs.

    python benchmarks/fixture_start.py
    python benchmarks/fixture_start.py --runs 50 --cold-runs 10 --output json
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLIENT_ID = b"fixture-start"


def _exchange(sock: socket.socket, frame: bytes) -> bytes:
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    size = struct.unpack(">i", _read(sock, 4))[0]
    return _read(sock, size)


def _read(sock: socket.socket, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return bytes(data)


def first_requests(port: int) -> tuple[float, float]:
    """perf_counter() at the ApiVersions answer and at the Metadata answer."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        header = struct.pack(">hhih", 18, 0, 1, len(CLIENT_ID)) + CLIENT_ID
        _exchange(sock, header)
        api_versions = time.perf_counter()
        header = struct.pack(">hhih", 3, 1, 2, len(CLIENT_ID)) + CLIENT_ID
        _exchange(sock, header + struct.pack(">i", -1))
        return api_versions, time.perf_counter()


def measure(mode: str, root: Path) -> tuple[float, float]:
    """Milliseconds from fixture start to the first ApiVersions and Metadata answers.

    `mode`: "inprocess", "fork" or "spawn".
    """
    from odradek.testing.broker import InProcessBroker, KafkaBroker, ProcessBroker

    started = time.perf_counter()
    data_dir = Path(tempfile.mkdtemp(dir=root))
    broker: KafkaBroker
    if mode == "inprocess":
        broker = InProcessBroker(data_dir)
    else:
        broker = ProcessBroker(data_dir, start_method=mode)
    broker.start()
    try:
        api_versions, metadata = first_requests(broker.port)
    finally:
        broker.close()
    return (api_versions - started) * 1000, (metadata - started) * 1000


def _cold_child(hide_hypothesis: bool) -> None:
    if hide_hypothesis:
        sys.modules["hypothesis"] = None  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as root:
        print(json.dumps(measure("inprocess", Path(root))))


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "p90": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))],
        "max": ordered[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="warm in-process and subprocess")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh interpreters")
    parser.add_argument("--no-hypothesis", action="store_true", help="cold runs hide it")
    parser.add_argument("--output", choices=("text", "json"), default="text")
    parser.add_argument("--cold-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_child:
        _cold_child(args.no_hypothesis)
        return 0

    results: dict[str, dict[str, dict[str, float]]] = {}
    cold: list[tuple[float, float]] = []
    command = [sys.executable, __file__, "--cold-child"]
    if args.no_hypothesis:
        command.append("--no-hypothesis")
    subprocess.run(command, check=True, capture_output=True)  # fills the bytecode cache
    for _ in range(args.cold_runs):
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        first, second = json.loads(out.strip().splitlines()[-1])
        cold.append((first, second))
    results["inprocess-cold"] = _pair(cold)

    with tempfile.TemporaryDirectory() as root:
        measure("inprocess", Path(root))  # imports
        warm = [measure("inprocess", Path(root)) for _ in range(args.runs)]
        results["inprocess-warm"] = _pair(warm)
        from odradek.testing.broker import child_environment
        from odradek.testing.forkserver import fork_server

        server_started = time.perf_counter()
        fork_server(child_environment())
        server_ms = (time.perf_counter() - server_started) * 1000
        forked = [measure("fork", Path(root)) for _ in range(args.runs)]
        results["subprocess-fork"] = _pair(forked)
        measure("spawn", Path(root))
        spawned = [measure("spawn", Path(root)) for _ in range(args.runs)]
        results["subprocess-spawn"] = _pair(spawned)

    if args.output == "json":
        print(json.dumps({**results, "fork_server_start_ms": server_ms}, indent=2))
        return 0
    print(f"{'mode':<16} {'to ApiVersions (ms)':<34} {'to Metadata (ms)':<34}")
    for mode, pair in results.items():
        cells = [
            f"{s['median']:6.1f} (min {s['min']:.1f}, p90 {s['p90']:.1f}, max {s['max']:.1f})"
            for s in (pair["api_versions"], pair["metadata"])
        ]
        print(f"{mode:<16} {cells[0]:<34} {cells[1]:<34}")
    print(f"fork server start: {server_ms:.0f} ms (once per test process)")
    return 0


def _pair(samples: list[tuple[float, float]]) -> dict[str, dict[str, float]]:
    return {
        "api_versions": _summary([a for a, _ in samples]),
        "metadata": _summary([m for _, m in samples]),
    }


if __name__ == "__main__":
    sys.exit(main())
