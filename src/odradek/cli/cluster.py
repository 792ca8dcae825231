"""`odradek cluster up | status | down`: a local multi-process cluster for development.

- `up -n N`: starts N `odradek serve` processes in the background, node ids 1..N on 127.0.0.1,
  ports `--base-port`..+N-1 (0: free ports), data and log in `<dir>/node-<id>/{data,serve.log}`
  (dir default `./odradek-cluster`). The first min(N, 3) nodes are broker,controller voters of
  the metadata quorum, the others broker-only observers. Every node gets the same cluster id and
  `default.replication.factor`, `offsets.topic.replication.factor`,
  `transaction.state.log.replication.factor` = R (`--replication-factor`, default min(N, 3)),
  `min.insync.replicas` = M (default 2 when R > 1, else 1), then each `--config K=V`. It writes
  `<dir>/cluster.json` (`cluster_file.py`) and waits, at most `--timeout` seconds, until every
  node answers ApiVersions and the quorum has a leader; if it does not, or a node exits, it stops
  the processes it started and says why (exit 2). A dir whose cluster file lists running nodes
  is refused (exit 1). Data kept by `down --keep-data` is started again with its cluster id.
- `status`: brokers, the active controller, the quorum's lag, under-replicated and offline
  partitions (`cluster_status.py`) of the cluster in `--dir`, or of any cluster through
  `--bootstrap-server`. Exit 2 when no node can be reached.
- `down`: SIGTERM to each node of the cluster file whose pid still runs that node's
  `odradek serve` (checked in /proc/PID/cmdline), SIGKILL to those still running after
  `--timeout`, then removes the node dirs and the cluster file (`--keep-data`: only the file).

JSON output (`--output json`):

    up:     the cluster file (see `cluster_file.py`)
    status: see `cluster_status.py`
    down:   {"nodes": [{"node_id": int, "pid": int, "outcome": "stopped" | "killed"
                        | "not running"}], "data_removed": bool}
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odradek.cli.broker_requests import BrokerConnection, check_plaintext
from odradek.cli.client_options import (
    EXIT_OK,
    EXIT_REFUSED,
    ClientError,
    add_client_options,
    add_noun_parser,
    client_config,
    console,
    paragraph,
    positive_seconds,
    print_json,
)
from odradek.cli.cluster_file import (
    ClusterFile,
    ClusterNode,
    cluster_file_path,
    existing_cluster_id,
    new_cluster_id,
    owned_pid_alive,
    pick_ports,
    plan_cluster,
    read_cluster_file,
    settings,
    write_cluster_file,
)

if TYPE_CHECKING:
    import subprocess

CLIENT_ID = "odradek-cluster"
DEFAULT_DIR = Path("odradek-cluster")
DEFAULT_BASE_PORT = 9092
UP_TIMEOUT_S = 30.0
DOWN_TIMEOUT_S = 15.0
KILL_WAIT_S = 5.0
_POLL_S = 0.1
_LOG_TAIL_LINES = 5

EXAMPLES = """examples:
  odradek cluster up -n 3
  odradek cluster up -n 5 --replication-factor 3 --base-port 19092 --dir /tmp/kafka
  odradek cluster up -n 3 --base-port 0 --config num.partitions=6
  odradek cluster status
  odradek cluster status --output json
  odradek cluster status --bootstrap-server broker1:9092
  odradek cluster down
  odradek cluster down --keep-data
"""


# -- up ----------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    chosen = settings(
        args.nodes,
        args.replication_factor,
        args.min_insync_replicas,
        args.base_port,
        directory,
        args.config,
    )
    previous = read_cluster_file(directory)
    if previous is not None:
        running = [n for n in previous.nodes if owned_pid_alive(n)]
        if running:
            pids = ", ".join(f"node {n.node_id} pid {n.pid}" for n in running)
            raise ClientError(
                f"a cluster is already running in {directory} ({pids});"
                f" stop it with `odradek cluster down --dir {directory}`",
                EXIT_REFUSED,
            )
    ports = pick_ports(chosen.base_port, chosen.nodes)
    cluster_id = existing_cluster_id(directory, chosen.nodes) or new_cluster_id()
    voters, planned = plan_cluster(chosen, ports, cluster_id)
    processes: list[subprocess.Popen[bytes]] = []
    started: list[ClusterNode] = []
    try:
        for node in planned:
            process = _spawn(node)
            processes.append(process)
            started.append(_with_pid(node, process.pid))
        cluster = ClusterFile(
            cluster_id=cluster_id,
            bootstrap_servers=",".join(n.address for n in started),
            controller_quorum_voters=voters,
            configs=chosen.broker_configs(),
            nodes=tuple(started),
        )
        # written before the wait, so `down` finds the processes should `up` be interrupted
        write_cluster_file(directory, cluster)
        leader = _wait_until_ready(started, processes, args.timeout)
    except BaseException:
        _stop_started(processes)
        cluster_file_path(directory).unlink(missing_ok=True)
        raise
    if args.output == "json":
        print_json(cluster.to_json())
        return EXIT_OK
    out = console()
    line = out.print
    line(
        f"odradek cluster: {len(started)} nodes up in {directory} (cluster id {cluster_id});"
        f" metadata quorum leader: node {leader}",
        markup=False,
        highlight=False,
    )
    for node in started:
        line(
            f"  node {node.node_id}  {node.address}  {node.roles:<17}  pid {node.pid}"
            f"  log {node.log_file}",
            markup=False,
            highlight=False,
        )
    line(f"bootstrap servers: {cluster.bootstrap_servers}", markup=False, highlight=False)
    stop = "odradek cluster down" + ("" if directory == DEFAULT_DIR else f" --dir {directory}")
    line(f"stop with: {stop}", markup=False, highlight=False)
    return EXIT_OK


def _spawn(node: ClusterNode) -> subprocess.Popen[bytes]:
    import subprocess

    try:
        Path(node.log_dir).mkdir(parents=True, exist_ok=True)
        with open(node.log_file, "ab") as log:
            # a session of its own: Ctrl-C in the terminal that ran `up` does not reach the
            # nodes
            return subprocess.Popen(
                list(node.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=node.dir,
                start_new_session=True,
            )
    except OSError as exc:
        where = exc.filename or node.dir
        raise ClientError(
            f"cannot start node {node.node_id}: {where}: {exc.strerror or exc}"
        ) from None


def _with_pid(node: ClusterNode, pid: int) -> ClusterNode:
    from dataclasses import replace

    return replace(node, pid=pid)


def _wait_until_ready(
    nodes: list[ClusterNode], processes: list[subprocess.Popen[bytes]], timeout_s: float
) -> int:
    """Wait until every node answers ApiVersions and the quorum has a leader; its id."""
    from odradek.cli.metadata_quorum import describe_at_leader

    deadline = time.monotonic() + timeout_s
    waiting = {n.node_id for n in nodes}
    voters = ",".join(n.address for n in nodes if "controller" in n.roles)
    last = "no node answered yet"
    while True:
        for node, process in zip(nodes, processes, strict=True):
            code = process.poll()
            if code is not None:
                raise ClientError(
                    f"node {node.node_id} exited with code {code} while starting;"
                    f" its log {node.log_file} ends with: {_log_tail(node.log_file)}"
                )
        for node in nodes:
            if node.node_id in waiting and _answers(node):
                waiting.discard(node.node_id)
        if waiting:
            last = "no answer yet from node " + ", ".join(map(str, sorted(waiting)))
        else:
            try:
                partition = describe_at_leader(voters, max(_POLL_S, 1.0))
                return int(partition.leader_id)
            except ClientError as exc:
                last = f"the metadata quorum has no leader yet ({exc.message})"
        if time.monotonic() >= deadline:
            raise ClientError(
                f"the cluster did not come up within {timeout_s:g} s: {last};"
                f" see {Path(nodes[0].log_file).parent.parent}/node-*/serve.log"
            )
        time.sleep(_POLL_S)


def _answers(node: ClusterNode) -> bool:
    try:
        with BrokerConnection(node.host, node.port, 1.0, CLIENT_ID):
            return True
    except ClientError:
        return False


def _log_tail(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            lines = [line.strip() for line in log.read().splitlines() if line.strip()]
    except OSError as exc:
        return f"(cannot read it: {exc.strerror or exc})"
    return " | ".join(lines[-_LOG_TAIL_LINES:]) or "(nothing)"


def _stop_started(processes: list[subprocess.Popen[bytes]]) -> None:
    """Stop the processes this `up` started (they are its children, so no pid check)."""
    import subprocess

    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + DOWN_TIMEOUT_S
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=KILL_WAIT_S)


# -- status ------------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from odradek.cli.cluster_status import gather, render

    directory: Path = args.dir if args.dir is not None else DEFAULT_DIR
    cluster = None
    if args.dir is not None or not args.bootstrap_server:
        cluster = read_cluster_file(directory)
        if cluster is None and args.dir is not None:
            raise ClientError(f"no cluster file in {directory} (start one with `cluster up`)")
    config = client_config(args)
    check_plaintext(config)
    bootstrap = config["bootstrap.servers"]
    if cluster is not None and not args.bootstrap_server:
        bootstrap = cluster.bootstrap_servers
    status = gather(bootstrap, args.timeout, cluster)
    if args.output == "json":
        print_json(status.to_json())
    else:
        render(status)
    return EXIT_OK


# -- down --------------------------------------------------------------------------------------


def cmd_down(args: argparse.Namespace) -> int:
    directory: Path = args.dir
    cluster = read_cluster_file(directory)
    if cluster is None:
        raise ClientError(f"no cluster file in {directory}: nothing to stop")
    outcome: dict[int, str] = {}
    for node in cluster.nodes:
        if owned_pid_alive(node) and _signal(node.pid, signal.SIGTERM):
            outcome[node.node_id] = "stopped"
        else:
            outcome[node.node_id] = "not running"
    _wait_gone(cluster.nodes, args.timeout)
    for node in cluster.nodes:
        if owned_pid_alive(node) and _signal(node.pid, signal.SIGKILL):
            outcome[node.node_id] = "killed"
    survivors = _wait_gone(cluster.nodes, KILL_WAIT_S)
    if survivors:
        pids = ", ".join(str(n.pid) for n in survivors)
        raise ClientError(
            f"processes {pids} still run after SIGKILL; the data and {cluster_file_path(directory)}"
            " are kept",
            EXIT_REFUSED,
        )
    removed = False
    if not args.keep_data:
        _remove_data(directory, cluster)
        removed = True
    cluster_file_path(directory).unlink(missing_ok=True)
    if not args.keep_data:
        _remove_if_empty(directory)
    if args.output == "json":
        print_json(
            {
                "nodes": [
                    {"node_id": n.node_id, "pid": n.pid, "outcome": outcome[n.node_id]}
                    for n in cluster.nodes
                ],
                "data_removed": removed,
            }
        )
        return EXIT_OK
    out = console()
    for node in cluster.nodes:
        out.print(
            f"node {node.node_id} (pid {node.pid}): {outcome[node.node_id]}",
            markup=False,
            highlight=False,
        )
    kept = "data removed" if removed else f"data kept in {directory}"
    out.print(f"odradek cluster: down, {kept}", markup=False, highlight=False)
    return EXIT_OK


def _signal(pid: int, signum: int) -> bool:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    except PermissionError as exc:
        raise ClientError(f"cannot signal pid {pid}: {exc.strerror}") from None
    return True


def _wait_gone(nodes: tuple[ClusterNode, ...], timeout_s: float) -> list[ClusterNode]:
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [n for n in nodes if owned_pid_alive(n)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(_POLL_S)


def _remove_data(directory: Path, cluster: ClusterFile) -> None:
    """Remove each node's dir, but only one that sits directly in `directory`: a hand-edited
    cluster file cannot make `down` delete anything else."""
    import shutil

    root = directory.resolve()
    for node in cluster.nodes:
        node_dir = Path(node.dir).resolve()
        if node_dir.parent == root and node_dir.name == f"node-{node.node_id}":
            shutil.rmtree(node_dir, ignore_errors=True)


def _remove_if_empty(directory: Path) -> None:
    import contextlib

    with contextlib.suppress(OSError):  # not empty: something of the user's is in it
        directory.rmdir()


# -- parser ------------------------------------------------------------------------------------


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def add_parser(subcommands: Any) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    verbs = add_noun_parser(
        subcommands,
        "cluster",
        help="start, inspect and stop a local multi-process cluster",
        description=paragraph(
            "Run a cluster of `odradek serve` processes on this machine for development and"
            " tests (up, down), and show the health of any Kafka-compatible cluster (status)."
            " Exit codes: 0 done, 1 refused (a cluster already runs in the dir), 2 bad usage,"
            " a cluster that does not come up, or one that cannot be reached."
        ),
        examples=EXAMPLES,
    )

    up = verbs.add_parser(
        "up",
        help="start N nodes in the background",
        description=paragraph(
            "Start N `odradek serve` processes on 127.0.0.1 in the background and wait until"
            " every node answers and the metadata quorum has a leader. The first min(N, 3)"
            " nodes are broker,controller voters, the others broker-only. Each node's data and"
            " log (serve.log) are in DIR/node-ID; DIR/cluster.json records the nodes for"
            " `status` and `down`."
        ),
        epilog=(
            "examples:\n  odradek cluster up -n 3\n"
            "  odradek cluster up -n 3 --base-port 0 --dir /tmp/kafka --output json\n"
            "  odradek cluster up -n 4 --replication-factor 3 --min-insync-replicas 2"
            " --config num.partitions=6\n"
        ),
        formatter_class=formatter,
    )
    up.add_argument(
        "-n", "--nodes", type=_int, default=3, metavar="N", help="number of nodes (default 3)"
    )
    up.add_argument(
        "--replication-factor",
        type=_int,
        metavar="R",
        help="default.replication.factor, offsets.topic.replication.factor and"
        " transaction.state.log.replication.factor (default min(N, 3))",
    )
    up.add_argument(
        "--min-insync-replicas",
        type=_int,
        metavar="M",
        help="min.insync.replicas (default 2 when R > 1, else 1)",
    )
    up.add_argument(
        "--base-port",
        type=_int,
        default=DEFAULT_BASE_PORT,
        metavar="PORT",
        help=f"node N listens on PORT+N-1 (default {DEFAULT_BASE_PORT}; 0: free ports)",
    )
    up.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help=f"where the nodes' data, logs and cluster.json go (default ./{DEFAULT_DIR})",
    )
    up.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a broker property for every node (repeatable)",
    )
    up.add_argument(
        "--timeout",
        type=positive_seconds,
        default=UP_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for the cluster to come up (default {UP_TIMEOUT_S:g})",
    )
    up.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help="text for people, or the cluster file as json (default text)",
    )
    up.set_defaults(verb_run=cmd_up)

    status = verbs.add_parser(
        "status",
        help="brokers, active controller, quorum lag, unhealthy partitions",
        description=paragraph(
            "Show each broker (alive, fenced, unregistered or unreachable), the active"
            " controller (the metadata quorum's leader) with each voter's and observer's lag,"
            " and the under-replicated and offline partitions. Without --bootstrap-server it"
            " asks the cluster started by `cluster up` in --dir; with it, any cluster"
            " (PLAINTEXT listeners only)."
        ),
        epilog=(
            "examples:\n  odradek cluster status\n"
            "  odradek cluster status --dir /tmp/kafka --output json\n"
            "  odradek cluster status --bootstrap-server broker1:9092,broker2:9092\n"
        ),
        formatter_class=formatter,
    )
    status.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=f"the dir given to `cluster up` (default ./{DEFAULT_DIR} when no"
        " --bootstrap-server is given)",
    )
    add_client_options(status)
    status.set_defaults(verb_run=cmd_status)

    down = verbs.add_parser(
        "down",
        help="stop the nodes started by `up` and remove their data",
        description=paragraph(
            "SIGTERM each node of DIR/cluster.json that still runs the `odradek serve` it was"
            " started as, SIGKILL those still running after --timeout, then remove the nodes'"
            " data and the cluster file."
        ),
        epilog=(
            "examples:\n  odradek cluster down\n"
            "  odradek cluster down --dir /tmp/kafka --keep-data\n"
        ),
        formatter_class=formatter,
    )
    down.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help=f"the dir given to `up` (default ./{DEFAULT_DIR})",
    )
    down.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the nodes' data (a later `up` on the dir starts from it)",
    )
    down.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DOWN_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait after SIGTERM before SIGKILL (default {DOWN_TIMEOUT_S:g})",
    )
    down.add_argument("--output", choices=("text", "json"), default="text", help="text or json")
    down.set_defaults(verb_run=cmd_down)
