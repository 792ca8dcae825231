"""`odradek partitions`: leader elections and partition reassignment, as Kafka's
kafka-leader-election.sh and kafka-reassign-partitions.sh do.

Raw requests over a plain socket (`broker_requests.py`): confluent-kafka offers neither
ElectLeaders nor the reassignment APIs. Any broker takes them (a KRaft broker forwards them to
the active controller), so they go to the first bootstrap server that answers; PLAINTEXT
listeners only. The options shared with every client command (`--bootstrap-server`,
`--command-config`, `--output`, `--timeout`) are described in `odradek.cli.client_options`.
Exit codes: 0 done, 1 the cluster refused some of it, 2 bad usage, a bad plan, an unknown
topic or broker, or no broker reachable.

- `elect-leaders --election-type preferred|unclean (--topic T [--partition P] |
  --all-topic-partitions | --path-to-json-file FILE)`: as kafka-leader-election.sh, it prints
  "Successfully completed leader election (PREFERRED) for partitions t-0, ...", "Valid replica
  already elected for partitions ..." and one "Error completing leader election ..." line per
  partition that failed (exit 1). The json file is `{"partitions": [{"topic": T, "partition":
  P}]}`.
- `reassign ...`: see `odradek.cli.partitions_reassign`.

JSON output (`--output json`) of elect-leaders:

    {"election_type": "PREFERRED" | "UNCLEAN",
     "results": [{"topic": str, "partition": int, "error": str | null, "message": str | null}]}
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odradek.cli.broker_requests import (
    BrokerConnection,
    check_plaintext,
    connect_bootstrap,
    request,
)
from odradek.cli.client_options import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REFUSED,
    ClientError,
    add_client_options,
    add_noun_parser,
    client_config,
    paragraph,
    print_json,
)
from odradek.common.errors import ErrorCode

CLIENT_ID = "odradek-partitions"
METADATA = 3
ELECT_LEADERS = 43
ELECTION_TYPES = {"PREFERRED": 0, "UNCLEAN": 1}

EXAMPLES = """examples:
  odradek partitions elect-leaders --election-type preferred --all-topic-partitions
  odradek partitions elect-leaders --election-type preferred --topic orders --partition 0
  odradek partitions reassign --generate --topics orders --broker-list 1,2,3,4
  odradek partitions reassign --execute --plan plan.json
  odradek partitions reassign --list
"""


# -- shared plumbing ---------------------------------------------------------------------------


def connect(args: argparse.Namespace) -> BrokerConnection:
    config = client_config(args)
    check_plaintext(config)
    return connect_bootstrap(config["bootstrap.servers"], args.timeout, CLIENT_ID)


def error_name(code: int) -> str:
    try:
        return ErrorCode(int(code)).name
    except ValueError:
        return f"error {int(code)}"


def partition_name(topic: str, partition: int) -> str:
    return f"{topic}-{partition}"


@dataclass(frozen=True, slots=True)
class ClusterMetadata:
    racks: dict[int, str | None]  # broker id -> rack
    assignments: dict[str, dict[int, list[int]]]  # topic -> partition -> replicas


def cluster_metadata(connection: BrokerConnection) -> ClusterMetadata:
    """Every broker and the replicas of every partition (Metadata v1-12 for all topics)."""
    version = connection.version(METADATA, range(1, 13))
    if version is None:
        raise ClientError(f"{connection.address} does not support Metadata v1-12")
    response = connection.call(
        request(
            "metadata",
            version,
            "MetadataRequest",
            topics=None,
            allow_auto_topic_creation=False,
            include_cluster_authorized_operations=False,
            include_topic_authorized_operations=False,
        )
    )
    racks = {int(b.node_id): b.rack for b in response.brokers}
    assignments = {
        str(t.name): {
            int(p.partition_index): [int(r) for r in p.replica_nodes] for p in t.partitions
        }
        for t in response.topics
        if t.error_code == ErrorCode.NONE and t.name
    }
    return ClusterMetadata(racks, assignments)


def read_json_file(path: Path, flag: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClientError(f"{flag} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ClientError(f"{flag} {path}: not a UTF-8 text file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClientError(f"{flag} {path}: not valid JSON: {exc}") from None


def int_field(entry: Any, key: str, where: str) -> int:
    value = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ClientError(f"{where}: each entry needs an integer {key!r}")
    return value


def str_field(entry: Any, key: str, where: str) -> str:
    value = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(value, str) or not value:
        raise ClientError(f"{where}: each entry needs a {key!r} string")
    return value


# -- elect-leaders -----------------------------------------------------------------------------


def election_partitions(path: Path) -> dict[str, list[int]]:
    """kafka-leader-election.sh's --path-to-json-file: {"partitions": [{"topic", "partition"}]}."""
    flag = "--path-to-json-file"
    document = read_json_file(path, flag)
    entries = document.get("partitions") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ClientError(f'{flag} {path}: expected {{"partitions": [...]}}')
    wanted: dict[str, list[int]] = {}
    seen: set[tuple[str, int]] = set()
    for entry in entries:
        topic = str_field(entry, "topic", f"{flag} {path}")
        partition = int_field(entry, "partition", f"{flag} {path}")
        if (topic, partition) in seen:
            raise ClientError(
                f"{flag} {path}: duplicate partition {partition_name(topic, partition)}"
            )
        seen.add((topic, partition))
        wanted.setdefault(topic, []).append(partition)
    if not wanted:
        raise ClientError(f"{flag} {path}: the partition list is empty")
    return wanted


def cmd_elect_leaders(args: argparse.Namespace) -> int:
    election = args.election_type.upper()
    if args.partition is not None and args.topic is None:
        raise ClientError("--partition needs --topic")
    chosen = [args.topic is not None, args.all_topic_partitions, args.path_to_json_file is not None]
    if sum(chosen) != 1:
        raise ClientError(
            "name the partitions with exactly one of --topic, --all-topic-partitions and"
            " --path-to-json-file"
        )
    wanted: dict[str, list[int]] | None = None
    if args.path_to_json_file is not None:
        wanted = election_partitions(args.path_to_json_file)
    with connect(args) as connection:
        if args.topic is not None:
            if args.partition is not None:
                wanted = {args.topic: [args.partition]}
            else:
                partitions = cluster_metadata(connection).assignments.get(args.topic)
                if partitions is None:
                    raise ClientError(f"Topic '{args.topic}' does not exist.")
                wanted = {args.topic: sorted(partitions)}
        results = elect_leaders(connection, ELECTION_TYPES[election], wanted, args.timeout)
    return report_election(election, results, args.output)


@dataclass(frozen=True, slots=True)
class ElectionResult:
    topic: str
    partition: int
    error: int
    message: str | None


def elect_leaders(
    connection: BrokerConnection,
    election_type: int,
    wanted: dict[str, list[int]] | None,
    timeout_s: float,
) -> list[ElectionResult]:
    version = connection.version(ELECT_LEADERS, (0, 1, 2) if election_type == 0 else (1, 2))
    if version is None:
        raise ClientError(
            f"{connection.address} does not support ElectLeaders"
            + (" v1+ (needed for unclean elections)" if election_type else "")
        )
    fields: dict[str, Any] = {"election_type": election_type} if version >= 1 else {}
    topic_partitions = (
        None
        if wanted is None
        else tuple(
            request("elect_leaders", version, "TopicPartitions", topic=name, partitions=tuple(ids))
            for name, ids in wanted.items()
        )
    )
    response = connection.call(
        request(
            "elect_leaders",
            version,
            "ElectLeadersRequest",
            topic_partitions=topic_partitions,
            timeout=datetime.timedelta(seconds=timeout_s),
            **fields,
        )
    )
    top = int(getattr(response, "error_code", 0))
    if top != ErrorCode.NONE:
        raise ClientError(f"the leader election failed: {error_name(top)}", EXIT_REFUSED)
    results = [
        ElectionResult(str(t.topic), int(p.partition_id), int(p.error_code), p.error_message)
        for t in response.replica_election_results
        for p in t.partition_result
    ]
    return sorted(results, key=lambda r: (r.topic, r.partition))


def report_election(election: str, results: Iterable[ElectionResult], output: str) -> int:
    done = [r for r in results if r.error == ErrorCode.NONE]
    noop = [r for r in results if r.error == ErrorCode.ELECTION_NOT_NEEDED]
    failed = [r for r in results if r not in done and r not in noop]
    if output == "json":
        print_json(
            {
                "election_type": election,
                "results": [
                    {
                        "topic": r.topic,
                        "partition": r.partition,
                        "error": None if r.error == ErrorCode.NONE else error_name(r.error),
                        "message": r.message,
                    }
                    for r in results
                ],
            }
        )
    else:
        if done:
            names = ", ".join(partition_name(r.topic, r.partition) for r in done)
            print(f"Successfully completed leader election ({election}) for partitions {names}")
        if noop:
            names = ", ".join(partition_name(r.topic, r.partition) for r in noop)
            print(f"Valid replica already elected for partitions {names}")
        for r in failed:
            detail = error_name(r.error) + (f": {r.message}" if r.message else "")
            print(
                f"Error completing leader election ({election}) for partition:"
                f" {partition_name(r.topic, r.partition)}: {detail}"
            )
    if failed:
        raise ClientError(f"{len(failed)} replica(s) could not be elected", EXIT_REFUSED)
    return EXIT_OK


# -- the noun ----------------------------------------------------------------------------------


def add_parser(subcommands: Any) -> None:
    from odradek.cli import partitions_reassign

    formatter = argparse.RawDescriptionHelpFormatter
    verbs = add_noun_parser(
        subcommands,
        "partitions",
        help="elect partition leaders and reassign partitions",
        description=paragraph(
            "Elect partition leaders (like kafka-leader-election.sh) and move partitions to"
            " other brokers (like kafka-reassign-partitions.sh), on any KRaft cluster"
            " (PLAINTEXT listeners only). Exit codes: 0 done, 1 refused by the cluster,"
            f" {EXIT_ERROR} bad usage, bad plan or broker unreachable."
        ),
        examples=EXAMPLES,
    )
    elect = verbs.add_parser(
        "elect-leaders",
        help="elect the preferred replica (or, unclean, any live one) as leader",
        description=paragraph(
            "Elect leaders (ElectLeaders): preferred moves the leadership of each partition"
            " named to its first replica when that replica is in the ISR and alive; unclean"
            " gives a leaderless partition a leader, from outside the ISR if it must (records"
            " may be lost). Partitions already led as asked are reported as such, not as"
            " errors."
        ),
        epilog=(
            "examples:\n"
            "  odradek partitions elect-leaders --election-type preferred --all-topic-partitions\n"
            "  odradek partitions elect-leaders --election-type preferred --topic orders"
            " --partition 0\n"
            "  odradek partitions elect-leaders --election-type unclean --topic orders\n"
        ),
        formatter_class=formatter,
    )
    elect.add_argument(
        "--election-type",
        required=True,
        type=str.upper,
        choices=tuple(ELECTION_TYPES),
        metavar="preferred|unclean",
        help="the kind of election",
    )
    elect.add_argument("--topic", help="the topic whose partitions to elect leaders for")
    elect.add_argument(
        "--partition", type=int, help="only this partition of --topic (default: all of them)"
    )
    elect.add_argument(
        "--all-topic-partitions",
        action="store_true",
        help="every partition of every topic (those already led as asked are not listed)",
    )
    elect.add_argument(
        "--path-to-json-file",
        type=Path,
        metavar="FILE",
        help='the partitions, as {"partitions": [{"topic": T, "partition": P}, ...]}',
    )
    add_client_options(elect)
    elect.set_defaults(verb_run=cmd_elect_leaders)
    partitions_reassign.add_verb(verbs)
