"""The plan and the record of a local cluster started by `odradek cluster up`.

`plan_cluster` turns the command's options into one `ClusterNode` per process (node id, roles,
port, directories, the `odradek serve` argv); it starts nothing. `ClusterFile` is what `up`
writes to `<dir>/cluster.json` once the processes run, and what `status` and `down` read:

    {"version": 1, "cluster_id": str, "bootstrap_servers": "host:port,...",
     "controller_quorum_voters": "1@host:port,...", "configs": {str: str},
     "nodes": [{"node_id": int, "roles": "broker,controller" | "broker", "host": str,
                "port": int, "pid": int, "dir": str, "log_dir": str, "log_file": str,
                "argv": [str]}]}

`owned_pid_alive` is the guard around every signal `down` sends: a pid counts only while
/proc/PID/cmdline still shows the `odradek serve` of that node's data dir, so a pid the kernel
has since given to another program is never touched.

Nothing here talks to a broker. `odradek.cli.main` imports this at every start, `serve`
included, so json and subprocess are imported where they are used.
"""

from __future__ import annotations

import base64
import os
import socket
import sys
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from odradek.cli.client_options import ClientError

CLUSTER_FILE = "cluster.json"
FORMAT_VERSION = 1
HOST = "127.0.0.1"
MAX_NODES = 32
MAX_VOTERS = 3


@dataclass(frozen=True, slots=True)
class ClusterNode:
    node_id: int
    roles: str
    host: str
    port: int
    pid: int
    dir: str
    log_dir: str
    log_file: str
    argv: tuple[str, ...]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ClusterFile:
    cluster_id: str
    bootstrap_servers: str
    controller_quorum_voters: str
    configs: dict[str, str]
    nodes: tuple[ClusterNode, ...]

    def to_json(self) -> dict[str, Any]:
        document = {"version": FORMAT_VERSION, **asdict(self)}
        document["nodes"] = [{**asdict(n), "argv": list(n.argv)} for n in self.nodes]
        return document

    @staticmethod
    def from_json(document: Any) -> ClusterFile:
        if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
            raise ValueError("not a version 1 cluster file")
        nodes = tuple(
            ClusterNode(
                node_id=int(n["node_id"]),
                roles=str(n["roles"]),
                host=str(n["host"]),
                port=int(n["port"]),
                pid=int(n["pid"]),
                dir=str(n["dir"]),
                log_dir=str(n["log_dir"]),
                log_file=str(n["log_file"]),
                argv=tuple(str(a) for a in n["argv"]),
            )
            for n in document["nodes"]
        )
        return ClusterFile(
            cluster_id=str(document["cluster_id"]),
            bootstrap_servers=str(document["bootstrap_servers"]),
            controller_quorum_voters=str(document["controller_quorum_voters"]),
            configs={str(k): str(v) for k, v in dict(document["configs"]).items()},
            nodes=nodes,
        )


def cluster_file_path(directory: Path) -> Path:
    return directory / CLUSTER_FILE


def read_cluster_file(directory: Path) -> ClusterFile | None:
    """The cluster file in `directory`, or None when there is none; ClientError (exit 2)
    when it cannot be read."""
    import json

    path = cluster_file_path(directory)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return ClusterFile.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise ClientError(
            f"{path} is not a cluster file written by `odradek cluster up`: {exc}"
        ) from None


def write_cluster_file(directory: Path, cluster: ClusterFile) -> Path:
    """Write the file atomically: a reader sees the old one or the whole new one."""
    import json

    path = cluster_file_path(directory)
    partial = path.with_suffix(".json.partial")
    try:
        partial.write_text(json.dumps(cluster.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(partial, path)
    except OSError as exc:
        raise ClientError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


# -- planning ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """`up`'s options, checked: see `settings`."""

    nodes: int
    replication_factor: int
    min_insync_replicas: int
    base_port: int
    directory: Path
    configs: dict[str, str]

    def broker_configs(self) -> dict[str, str]:
        """What every node is started with: the replication settings, then --config."""
        r = str(self.replication_factor)
        return {
            "default.replication.factor": r,
            "offsets.topic.replication.factor": r,
            "transaction.state.log.replication.factor": r,
            "min.insync.replicas": str(self.min_insync_replicas),
            **self.configs,
        }


# Set by `up` itself from its own options; --config may not contradict them.
_MANAGED_CONFIGS = (
    "node.id",
    "process.roles",
    "controller.quorum.voters",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "log.dir",
)


def settings(
    nodes: int,
    replication_factor: int | None,
    min_insync_replicas: int | None,
    base_port: int,
    directory: Path,
    config_items: list[str],
) -> ClusterSettings:
    """Check `up`'s options; ClientError (exit 2) says what is wrong with them."""
    from odradek.common.config import BrokerConfig
    from odradek.common.errors import KafkaError

    if not 1 <= nodes <= MAX_NODES:
        raise ClientError(f"-n {nodes}: a local cluster has 1 to {MAX_NODES} nodes")
    replicas = min(nodes, 3) if replication_factor is None else replication_factor
    if not 1 <= replicas <= nodes:
        raise ClientError(
            f"--replication-factor {replicas}: must be between 1 and the number of nodes ({nodes})"
        )
    if min_insync_replicas is None:
        min_isr = min(2, replicas) if replicas > 1 else 1
    else:
        min_isr = min_insync_replicas
    if not 1 <= min_isr <= replicas:
        raise ClientError(
            f"--min-insync-replicas {min_isr}: must be between 1 and the replication factor"
            f" ({replicas})"
        )
    if base_port != 0 and not 1 <= base_port <= 65536 - nodes:
        raise ClientError(
            f"--base-port {base_port}: ports {base_port}..{base_port + nodes - 1} are not all"
            " valid (0 picks free ports)"
        )
    configs: dict[str, str] = {}
    for item in config_items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ClientError(f"--config {item!r}: expected KEY=VALUE")
        if key in _MANAGED_CONFIGS:
            raise ClientError(f"--config {key}: set by `cluster up` itself for each node")
        configs[key] = value.strip()
    result = ClusterSettings(nodes, replicas, min_isr, base_port, directory, configs)
    try:
        BrokerConfig(result.broker_configs())
    except KafkaError as exc:
        raise ClientError(f"--config: {exc}") from None
    return result


def pick_ports(base_port: int, count: int) -> list[int]:
    """`count` ports from `base_port` on, each checked free; base 0: ports the kernel picks.

    A port found free can still be taken by another program before the node binds it; the
    node then fails to start and `up` reports its log."""
    if base_port == 0:
        sockets = []
        try:
            for _ in range(count):
                sock = socket.socket()
                sock.bind((HOST, 0))
                sockets.append(sock)
            return [int(s.getsockname()[1]) for s in sockets]
        finally:
            for sock in sockets:
                sock.close()
    ports = list(range(base_port, base_port + count))
    for port in ports:
        with socket.socket() as sock:
            try:
                sock.bind((HOST, port))
            except OSError as exc:
                raise ClientError(
                    f"port {port} on {HOST} is in use ({exc.strerror or exc});"
                    " choose another --base-port, or 0 for free ports"
                ) from None
    return ports


def existing_cluster_id(directory: Path, nodes: int) -> str | None:
    """The cluster id a node's meta.properties already holds (data kept by `down
    --keep-data`), so the nodes started again agree with it."""
    from odradek.cli.client_options import parse_properties

    for node_id in range(1, nodes + 1):
        meta = directory / f"node-{node_id}" / "data" / "meta.properties"
        try:
            cluster_id = parse_properties(meta.read_text(encoding="utf-8")).get("cluster.id")
        except (OSError, UnicodeDecodeError):
            continue
        if cluster_id:
            return cluster_id
    return None


def new_cluster_id() -> str:
    """Kafka's form: a random Uuid in base64url without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")


def plan_cluster(
    chosen: ClusterSettings, ports: list[int], cluster_id: str
) -> tuple[str, list[ClusterNode]]:
    """The voters string and one node per process (pid 0: not started yet). The first
    min(N, 3) nodes are broker,controller voters, the rest broker-only observers."""
    directory = chosen.directory.resolve()
    voter_count = min(chosen.nodes, MAX_VOTERS)
    voters = ",".join(f"{i + 1}@{HOST}:{ports[i]}" for i in range(voter_count))
    configs = {"cluster.id": cluster_id, **chosen.broker_configs()}
    nodes: list[ClusterNode] = []
    for index, port in enumerate(ports):
        node_id = index + 1
        roles = "broker,controller" if index < voter_count else "broker"
        node_dir = directory / f"node-{node_id}"
        log_dir = node_dir / "data"
        argv = [
            sys.executable,
            "-m",
            "odradek",
            "serve",
            "--node-id",
            str(node_id),
            "--process-roles",
            roles,
            "--controller-quorum-voters",
            voters,
            "--host",
            HOST,
            "--port",
            str(port),
            "--data-dir",
            str(log_dir),
        ]
        for key, value in configs.items():
            argv += ["--override", f"{key}={value}"]
        nodes.append(
            ClusterNode(
                node_id=node_id,
                roles=roles,
                host=HOST,
                port=port,
                pid=0,
                dir=str(node_dir),
                log_dir=str(log_dir),
                log_file=str(node_dir / "serve.log"),
                argv=tuple(argv),
            )
        )
    return voters, nodes


# -- processes ---------------------------------------------------------------------------------


def owned_pid_alive(node: ClusterNode) -> bool:
    """True while `node.pid` runs the `odradek serve` this node was started as: its command
    line names `serve` and the node's data dir. A zombie (exited, not yet reaped) is not
    alive; a pid reused by another program is not ours."""
    if node.pid <= 0:
        return False
    argv = _command_line(node.pid)
    if argv is None:
        return False
    return "serve" in argv and node.log_dir in argv and str(node.node_id) in argv


def _command_line(pid: int) -> list[str] | None:
    proc = Path("/proc")
    if proc.is_dir():
        try:
            stat = (proc / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
            raw = (proc / str(pid) / "cmdline").read_bytes()
        except OSError:
            return None
        # the state follows the parenthesised command name, which may hold spaces
        if stat[stat.rfind(")") + 1 :].split()[:1] == ["Z"]:
            return None
        return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]
    return _command_line_from_ps(pid)


def _command_line_from_ps(pid: int) -> list[str] | None:
    """Without /proc (macOS, the BSDs): ps's view, split on spaces, which is enough to find
    the words we look for."""
    import subprocess

    try:
        done = subprocess.run(
            ["ps", "-o", "stat=", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = done.stdout.split()
    if done.returncode != 0 or not words or words[0].startswith("Z"):
        return None
    return words[1:]
