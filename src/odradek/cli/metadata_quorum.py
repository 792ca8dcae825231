"""`odradek metadata-quorum describe`: the state of the KRaft metadata quorum, as Kafka's
kafka-metadata-quorum.sh shows it.

One DescribeQuorum request (v0-v2, the highest the broker takes) over a plain socket
(`broker_requests.py`). Only the quorum's leader describes it (the others answer
NOT_LEADER_OR_FOLLOWER), so the bootstrap servers are asked in turn until one does: give them
all (`--bootstrap-server host1:port,host2:port,...`).
The options shared with every client command (`--bootstrap-server`, `--command-config`,
`--output`, `--timeout`) and the exit codes are described in `odradek.cli.client_options`.

- `describe --status` (the default): leader id and epoch, high watermark, the largest follower
  lag in offsets and in time since a follower was last caught up, the voters and observers.
- `describe --replication`: one row per voter and observer: log end offset, lag behind the
  leader's, when it last fetched and was last caught up (wall-clock ms; -1: unknown), and
  whether it is the Leader, a Follower or an Observer.

JSON output (`--output json`): {"status": {...}} or {"replication": [{...}]}, with the fields
named as in the text output, in snake_case.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from odradek.cli.broker_requests import (
    BrokerConnection,
    check_plaintext,
    parse_bootstrap,
    request,
)
from odradek.cli.client_options import (
    EXIT_OK,
    ClientError,
    add_client_options,
    add_noun_parser,
    client_config,
    console,
    paragraph,
    print_json,
)
from odradek.common.errors import ErrorCode

CLIENT_ID = "odradek-metadata-quorum"
DESCRIBE_QUORUM = 55
METADATA_TOPIC = "__cluster_metadata"

EXAMPLES = """examples:
  odradek metadata-quorum describe --status
  odradek metadata-quorum describe --replication
  odradek metadata-quorum describe --replication --output json
"""


def describe_at_leader(servers: str, timeout_s: float) -> Any:
    """The DescribeQuorum answer of the first bootstrap server that leads the quorum."""
    refused: list[str] = []
    for host, port in parse_bootstrap(servers):
        try:
            with BrokerConnection(host, port, timeout_s, CLIENT_ID) as connection:
                return _describe_quorum(connection)
        except NotLeader as exc:
            refused.append(f"{host}:{port} is not the leader (it knows {exc.leader_id})")
        except ClientError as exc:
            refused.append(exc.message)
    raise ClientError("no bootstrap server leads the metadata quorum: " + "; ".join(refused))


class NotLeader(Exception):
    def __init__(self, leader_id: int) -> None:
        super().__init__(leader_id)
        self.leader_id = leader_id


def _describe_quorum(connection: BrokerConnection) -> Any:
    version = connection.version(DESCRIBE_QUORUM, (0, 1, 2))
    if version is None:
        raise ClientError(f"broker {connection.address} does not support DescribeQuorum")
    body = request(
        "describe_quorum",
        version,
        "DescribeQuorumRequest",
        topics=(
            request(
                "describe_quorum",
                version,
                "TopicData",
                topic_name=METADATA_TOPIC,
                partitions=(
                    request("describe_quorum", version, "PartitionData", partition_index=0),
                ),
            ),
        ),
    )
    answer = connection.call(body)
    if answer.error_code != ErrorCode.NONE:
        raise ClientError(f"DescribeQuorum failed: {_error_name(answer.error_code)}")
    (topic,) = answer.topics
    (partition,) = topic.partitions
    if partition.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER:
        raise NotLeader(int(partition.leader_id))
    if partition.error_code != ErrorCode.NONE:
        raise ClientError(f"DescribeQuorum failed: {_error_name(partition.error_code)}")
    return partition


def _error_name(code: int) -> str:
    try:
        return ErrorCode(int(code)).name
    except ValueError:
        return f"error {int(code)}"


def status(partition: Any, now_ms: int) -> dict[str, Any]:
    """kafka-metadata-quorum.sh's --status, from a DescribeQuorum partition answer."""
    leader = partition.leader_id
    voters = list(partition.current_voters)
    leader_state = next((v for v in voters if v.replica_id == leader), None)
    leader_end = leader_state.log_end_offset if leader_state is not None else -1
    followers = [v for v in voters if v.replica_id != leader]
    max_lag = max((max(leader_end - f.log_end_offset, 0) for f in followers), default=0)
    caught_up = [f.last_caught_up_timestamp for f in followers]
    max_lag_ms = max((now_ms - t if t >= 0 else -1 for t in caught_up), default=0)
    return {
        "leader_id": int(leader),
        "leader_epoch": int(partition.leader_epoch),
        "high_watermark": int(partition.high_watermark),
        "max_follower_lag": int(max_lag),
        "max_follower_lag_time_ms": int(max_lag_ms),
        "current_voters": sorted(int(v.replica_id) for v in voters),
        "current_observers": sorted(int(o.replica_id) for o in partition.observers),
    }


def replication(partition: Any) -> list[dict[str, Any]]:
    """kafka-metadata-quorum.sh's --replication: the leader first, then followers, then
    observers, each by node id."""
    leader = partition.leader_id
    voters = list(partition.current_voters)
    leader_state = next((v for v in voters if v.replica_id == leader), None)
    leader_end = leader_state.log_end_offset if leader_state is not None else -1

    def row(replica: Any, role: str) -> dict[str, Any]:
        return {
            "node_id": int(replica.replica_id),
            "log_end_offset": int(replica.log_end_offset),
            "lag": int(max(leader_end - replica.log_end_offset, 0)),
            "last_fetch_timestamp": int(getattr(replica, "last_fetch_timestamp", -1)),
            "last_caught_up_timestamp": int(getattr(replica, "last_caught_up_timestamp", -1)),
            "status": role,
        }

    rows = [row(v, "Leader") for v in voters if v.replica_id == leader]
    rows += [
        row(v, "Follower")
        for v in sorted(voters, key=lambda v: v.replica_id)
        if v.replica_id != leader
    ]
    rows += [row(o, "Observer") for o in sorted(partition.observers, key=lambda o: o.replica_id)]
    return rows


def cmd_describe(args: argparse.Namespace) -> int:
    config = client_config(args)
    check_plaintext(config)
    partition = describe_at_leader(config["bootstrap.servers"], args.timeout)
    if args.replication:
        rows = replication(partition)
        if args.output == "json":
            print_json({"replication": rows})
        else:
            _render_replication(rows)
        return EXIT_OK
    described = status(partition, int(time.time() * 1000))
    if args.output == "json":
        print_json({"status": described})
    else:
        out = console()
        for label, key in (
            ("LeaderId", "leader_id"),
            ("LeaderEpoch", "leader_epoch"),
            ("HighWatermark", "high_watermark"),
            ("MaxFollowerLag", "max_follower_lag"),
            ("MaxFollowerLagTimeMs", "max_follower_lag_time_ms"),
            ("CurrentVoters", "current_voters"),
            ("CurrentObservers", "current_observers"),
        ):
            value = described[key]
            text = f"[{','.join(map(str, value))}]" if isinstance(value, list) else str(value)
            out.print(f"{label + ':':<22}{text}", markup=False, highlight=False)
    return EXIT_OK


def _render_replication(rows: list[dict[str, Any]]) -> None:
    from odradek.cli.group_views import new_table, text_cells

    headers = (
        "NODE-ID",
        "LOG-END-OFFSET",
        "LAG",
        "LAST-FETCH-TIMESTAMP",
        "LAST-CAUGHT-UP-TIMESTAMP",
        "STATUS",
    )
    table = new_table(*headers, right=headers[:5])
    for r in rows:
        table.add_row(
            *text_cells(
                r["node_id"],
                r["log_end_offset"],
                r["lag"],
                r["last_fetch_timestamp"],
                r["last_caught_up_timestamp"],
                r["status"],
            )
        )
    console().print(table)


def add_parser(subcommands: Any) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    verbs = add_noun_parser(
        subcommands,
        "metadata-quorum",
        help="describe the KRaft metadata quorum",
        description=paragraph(
            "Show the state of the metadata quorum of any KRaft cluster, like"
            " kafka-metadata-quorum.sh (PLAINTEXT listeners only). Exit codes: 0 done, 2 bad"
            " usage or broker unreachable."
        ),
        examples=EXAMPLES,
    )
    describe = verbs.add_parser(
        "describe",
        help="leader, epoch, high watermark and lag of the metadata quorum",
        description=(
            "Describe the metadata quorum (DescribeQuorum): with --status its leader, epoch,"
            " high watermark, largest follower lag, voters and observers; with --replication"
            " each replica's log end offset, lag and last fetch."
        ),
        epilog=(
            "examples:\n  odradek metadata-quorum describe --status\n"
            "  odradek metadata-quorum describe --replication --output json\n"
        ),
        formatter_class=formatter,
    )
    what = describe.add_mutually_exclusive_group()
    what.add_argument(
        "--status", action="store_true", help="the quorum's leader, epoch and lag (default)"
    )
    what.add_argument("--replication", action="store_true", help="one row per voter and observer")
    add_client_options(describe)
    describe.set_defaults(verb_run=cmd_describe)
