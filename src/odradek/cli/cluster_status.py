"""What `odradek cluster status` reports, gathered over the wire from any Kafka-compatible
cluster, and how it is shown.

- brokers: DescribeCluster (v2 with fenced brokers included, else v0/v1, else Metadata's
  broker list) from the first bootstrap server that answers, joined with the nodes of the
  cluster file when there is one. Every broker is then asked ApiVersions on its own address:
  `alive` (listed, not fenced, answers), `fenced`, `unregistered` (answers but the cluster
  does not list it), `unreachable` (does not answer).
- the active controller: the leader of the metadata quorum (DescribeQuorum, asked of every
  known address until the leader answers, as `metadata-quorum describe`), with each voter's
  and observer's lag; when no node describes the quorum, DescribeCluster's controller id.
- partitions from Metadata (all topics): under-replicated (fewer in-sync replicas than
  replicas) and offline (no leader).

JSON (`--output json`), one object:

    {"cluster_id": str | null, "bootstrap_servers": str,
     "brokers": [{"node_id": int, "host": str, "port": int, "state": str,
                  "registered": bool, "fenced": bool, "reachable": bool,
                  "roles": str | null, "pid": int | null, "process": str | null}],
     "active_controller": int | null, "controller_source": "DescribeQuorum" | "DescribeCluster"
                                                          | null,
     "quorum": {"leader_id": int, "leader_epoch": int, "high_watermark": int,
                "replicas": [{"node_id": int, "log_end_offset": int, "lag": int,
                              "last_fetch_timestamp": int, "last_caught_up_timestamp": int,
                              "status": "Leader" | "Follower" | "Observer"}]} | null,
     "quorum_error": str | null,
     "topics": int, "partitions": int,
     "under_replicated_partitions": [{"topic": str, "partition": int, "leader": int,
                                      "replicas": [int], "isr": [int]}],
     "offline_partitions": [same]}

`pid` and `process` (`running` / `stopped`) come from the cluster file; null without one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from odradek.cli.broker_requests import (
    BrokerConnection,
    connect_bootstrap,
    parse_bootstrap,
    request,
)
from odradek.cli.broker_requests import metadata as all_metadata
from odradek.cli.client_options import ClientError, console
from odradek.cli.cluster_file import ClusterFile, owned_pid_alive

CLIENT_ID = "odradek-cluster"
DESCRIBE_CLUSTER = 60
# Each broker is asked ApiVersions on its own; a local refusal is instant, a silent host is
# not, so the probe gets at most this long whatever --timeout says.
PROBE_TIMEOUT_S = 2.0


@dataclass(slots=True)
class BrokerRow:
    node_id: int
    host: str
    port: int
    registered: bool = False
    fenced: bool = False
    reachable: bool = False
    roles: str | None = None
    pid: int | None = None
    process: str | None = None

    @property
    def state(self) -> str:
        if not self.reachable:
            return "unreachable"
        if not self.registered:
            return "unregistered"
        return "fenced" if self.fenced else "alive"

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "host": self.host,
            "port": self.port,
            "state": self.state,
            "registered": self.registered,
            "fenced": self.fenced,
            "reachable": self.reachable,
            "roles": self.roles,
            "pid": self.pid,
            "process": self.process,
        }


@dataclass(slots=True)
class ClusterStatus:
    cluster_id: str | None
    bootstrap_servers: str
    brokers: list[BrokerRow]
    active_controller: int | None
    controller_source: str | None
    quorum: dict[str, Any] | None
    quorum_error: str | None
    topics: int
    partitions: int
    under_replicated: list[dict[str, Any]] = field(default_factory=list)
    offline: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "cluster_id": self.cluster_id,
            "bootstrap_servers": self.bootstrap_servers,
            "brokers": [b.to_json() for b in self.brokers],
            "active_controller": self.active_controller,
            "controller_source": self.controller_source,
            "quorum": self.quorum,
            "quorum_error": self.quorum_error,
            "topics": self.topics,
            "partitions": self.partitions,
            "under_replicated_partitions": self.under_replicated,
            "offline_partitions": self.offline,
        }


def gather(bootstrap: str, timeout_s: float, cluster: ClusterFile | None) -> ClusterStatus:
    """Ask the cluster; ClientError (exit 2) when no bootstrap server answers."""
    from odradek.cli.metadata_quorum import describe_at_leader, replication

    with connect_bootstrap(bootstrap, timeout_s, CLIENT_ID) as connection:
        described = _describe_cluster(connection)
        metadata = all_metadata(connection)
    cluster_id, controller_id, listed = described if described else _from_metadata(metadata)

    rows: dict[int, BrokerRow] = {}
    for node_id, host, port, fenced in listed:
        rows[node_id] = BrokerRow(node_id, host, port, registered=True, fenced=fenced)
    if cluster is not None:
        for node in cluster.nodes:
            row = rows.setdefault(node.node_id, BrokerRow(node.node_id, node.host, node.port))
            row.roles = node.roles
            row.pid = node.pid
            row.process = "running" if owned_pid_alive(node) else "stopped"
    for row in rows.values():
        row.reachable = _answers(row.host, row.port, min(timeout_s, PROBE_TIMEOUT_S))

    # Only the quorum's leader describes it: ask every address known, reachable ones first.
    addresses = [f"{h}:{p}" for h, p in parse_bootstrap(bootstrap)]
    addresses += [f"{r.host}:{r.port}" for r in sorted(rows.values(), key=lambda r: r.node_id)]
    reachable = [a for a in dict.fromkeys(addresses) if _reachable_address(a, rows)]
    quorum: dict[str, Any] | None = None
    quorum_error: str | None = None
    try:
        if not reachable:
            raise ClientError("no node answers")
        partition = describe_at_leader(",".join(reachable), timeout_s)
        quorum = {
            "leader_id": int(partition.leader_id),
            "leader_epoch": int(partition.leader_epoch),
            "high_watermark": int(partition.high_watermark),
            "replicas": replication(partition),
        }
    except ClientError as exc:
        quorum_error = exc.message
    if quorum is not None:
        active, source = quorum["leader_id"], "DescribeQuorum"
    elif controller_id is not None and controller_id >= 0:
        active, source = controller_id, "DescribeCluster"
    else:
        active, source = None, None

    under, offline, topic_count, partition_count = _partitions(metadata)
    return ClusterStatus(
        cluster_id=cluster_id,
        bootstrap_servers=bootstrap,
        brokers=sorted(rows.values(), key=lambda r: r.node_id),
        active_controller=active,
        controller_source=source,
        quorum=quorum,
        quorum_error=quorum_error,
        topics=topic_count,
        partitions=partition_count,
        under_replicated=under,
        offline=offline,
    )


def _reachable_address(address: str, rows: dict[int, BrokerRow]) -> bool:
    for row in rows.values():
        if f"{row.host}:{row.port}" == address:
            return row.reachable
    return True  # a bootstrap address that is no listed broker: let the request find out


def _answers(host: str, port: int, timeout_s: float) -> bool:
    try:
        with BrokerConnection(host, port, timeout_s, CLIENT_ID):
            return True
    except ClientError:
        return False


Listed = list[tuple[int, str, int, bool]]


def _describe_cluster(connection: BrokerConnection) -> tuple[str | None, int, Listed] | None:
    version = connection.version(DESCRIBE_CLUSTER, (0, 1, 2))
    if version is None:
        return None
    fields: dict[str, Any] = {"include_cluster_authorized_operations": False}
    if version >= 2:
        fields["include_fenced_brokers"] = True
    answer = connection.call(
        request("describe_cluster", version, "DescribeClusterRequest", **fields)
    )
    if answer.error_code != 0:
        return None
    listed = [
        (int(b.broker_id), str(b.host), int(b.port), bool(getattr(b, "is_fenced", False)))
        for b in answer.brokers
    ]
    return answer.cluster_id, int(answer.controller_id), listed


def _from_metadata(metadata: Any) -> tuple[str | None, int, Listed]:
    listed = [(int(b.node_id), str(b.host), int(b.port), False) for b in metadata.brokers]
    cluster_id = getattr(metadata, "cluster_id", None)
    return cluster_id, int(getattr(metadata, "controller_id", -1)), listed


def _partitions(metadata: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int, int]:
    under: list[dict[str, Any]] = []
    offline: list[dict[str, Any]] = []
    topics = 0
    count = 0
    for topic in sorted(metadata.topics, key=lambda t: str(t.name)):
        if topic.error_code != 0:
            continue
        topics += 1
        for partition in sorted(topic.partitions, key=lambda p: int(p.partition_index)):
            count += 1
            row: dict[str, Any] = {
                "topic": str(topic.name),
                "partition": int(partition.partition_index),
                "leader": int(partition.leader_id),
                "replicas": [int(r) for r in partition.replica_nodes],
                "isr": [int(r) for r in partition.isr_nodes],
            }
            if row["leader"] < 0:
                offline.append(row)
            if len(row["isr"]) < len(row["replicas"]):
                under.append(row)
    return under, offline, topics, count


# -- text --------------------------------------------------------------------------------------


def render(status: ClusterStatus, now_ms: int | None = None) -> None:
    from odradek.cli.group_views import new_table, print_line, text_cells

    now = int(time.time() * 1000) if now_ms is None else now_ms
    out = console()
    print_line(out, f"Cluster id:        {status.cluster_id or '-'}")
    print_line(out, f"Bootstrap servers: {status.bootstrap_servers}")
    if status.active_controller is None:
        print_line(out, f"Active controller: none ({status.quorum_error})")
    elif status.quorum is not None:
        q = status.quorum
        print_line(
            out,
            f"Active controller: {status.active_controller} (metadata quorum leader, epoch"
            f" {q['leader_epoch']}, high watermark {q['high_watermark']})",
        )
    else:
        print_line(
            out,
            f"Active controller: {status.active_controller} (from DescribeCluster; the quorum"
            f" could not be described: {status.quorum_error})",
        )

    print_line(out, "")
    print_line(out, "Brokers")
    table = new_table("ID", "HOST:PORT", "STATE", "ROLES", "PID", "PROCESS", right=("ID", "PID"))
    for b in status.brokers:
        table.add_row(
            *text_cells(b.node_id, f"{b.host}:{b.port}", b.state, b.roles, b.pid, b.process)
        )
    out.print(table)

    if status.quorum is not None:
        print_line(out, "")
        print_line(out, "Metadata quorum")
        headers = ("NODE-ID", "STATUS", "LOG-END-OFFSET", "LAG", "LAST-FETCH", "LAST-CAUGHT-UP")
        table = new_table(*headers, right=("NODE-ID", "LOG-END-OFFSET", "LAG"))
        for r in status.quorum["replicas"]:
            table.add_row(
                *text_cells(
                    r["node_id"],
                    r["status"],
                    r["log_end_offset"],
                    r["lag"],
                    _ago(r["last_fetch_timestamp"], now),
                    _ago(r["last_caught_up_timestamp"], now),
                )
            )
        out.print(table)

    print_line(out, "")
    print_line(
        out,
        f"Partitions: {status.partitions} in {status.topics} topics;"
        f" {len(status.under_replicated)} under-replicated, {len(status.offline)} offline",
    )
    problems = [("offline", p) for p in status.offline]
    problems += [("under-replicated", p) for p in status.under_replicated if p["leader"] >= 0]
    if problems:
        table = new_table("TOPIC", "PARTITION", "PROBLEM", "LEADER", "REPLICAS", "ISR")
        for problem, p in problems:
            table.add_row(
                *text_cells(
                    p["topic"],
                    p["partition"],
                    problem,
                    p["leader"],
                    ",".join(map(str, p["replicas"])),
                    ",".join(map(str, p["isr"])),
                )
            )
        out.print(table)


def _ago(timestamp_ms: int, now_ms: int) -> str:
    if timestamp_ms < 0:
        return "-"
    return f"{max(0, now_ms - timestamp_ms)} ms ago"
