"""`odradek partitions reassign`: move partitions to other brokers, as kafka-reassign-partitions.sh.

A plan is Kafka's reassignment JSON, `{"version": 1, "partitions": [{"topic": T, "partition":
P, "replicas": [B, ...], "log_dirs": ["any", ...]}]}` (log_dirs optional; only "any"). It is
checked before anything is sent, with kafka-reassign-partitions.sh's messages (exit 2): not
empty, every replica list non-empty, no partition twice, no broker twice in a list, and (for
--execute) every broker listed in Metadata, i.e. registered and not fenced.

- `--generate --topics T1,T2 --broker-list 1,2,3,4`: print the topics' current assignment and
  a proposed one over the brokers listed (the replica placement the controller uses,
  `metadata/placement.py`: racks honoured unless `--disable-rack-aware`), each as a plan.
  Nothing is changed.
- `--execute --plan FILE`: print the current assignment of the partitions in the plan (keep it
  to roll back), then start the reassignments (AlterPartitionReassignments). Refused while
  other reassignments are in progress, unless `--additional`; with
  `--disallow-replication-factor-change` a plan that changes a partition's replica count is
  refused by the controller. A partition the controller refuses is listed in the error (exit 1).
- `--verify --plan FILE`: for each partition of the plan, whether its reassignment is still in
  progress or completed (or, with none in progress, that its replicas differ from the plan's).
- `--cancel --plan FILE`: cancel the reassignments in progress among the plan's partitions;
  their replicas go back to what they were before.
- `--list`: every reassignment in progress: its replicas, the replicas being added and removed.

JSON output (`--output json`):

    generate:  {"current": PLAN, "proposed": PLAN}
    execute:   {"current": PLAN, "started": ["T-P", ...]}
    verify:    {"partitions": [{"topic": str, "partition": int,
                                "state": "in_progress" | "completed" | "differs"}]}
    cancel:    {"cancelled": ["T-P", ...]}
    list:      {"reassignments": [{"topic": str, "partition": int, "replicas": [int],
                                   "adding_replicas": [int], "removing_replicas": [int]}]}
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from odradek.cli.broker_requests import BrokerConnection, request
from odradek.cli.client_options import (
    EXIT_OK,
    EXIT_REFUSED,
    ClientError,
    add_client_options,
    paragraph,
    print_json,
)
from odradek.cli.partitions import (
    ClusterMetadata,
    cluster_metadata,
    connect,
    error_name,
    int_field,
    partition_name,
    read_json_file,
    str_field,
)
from odradek.common.errors import ErrorCode, KafkaError

ALTER_PARTITION_REASSIGNMENTS = 45
LIST_PARTITION_REASSIGNMENTS = 46
ROLLBACK_HINT = "Save this to use as the --plan option during rollback"
CANNOT_EXECUTE_BECAUSE_OF_EXISTING = (
    "Cannot execute because there is an existing partition assignment. Use --additional to"
    " override this and create a new partition assignment in addition to the existing one."
)

Assignment = dict[tuple[str, int], list[int]]


# -- plans -------------------------------------------------------------------------------------


def plan_json(assignment: Assignment) -> str:
    """Kafka's reassignment JSON (compact, partitions sorted)."""
    partitions = [
        {
            "topic": topic,
            "partition": partition,
            "replicas": replicas,
            "log_dirs": ["any"] * len(replicas),
        }
        for (topic, partition), replicas in sorted(assignment.items())
    ]
    return json.dumps({"version": 1, "partitions": partitions}, separators=(",", ":"))


def plan_document(assignment: Assignment) -> Any:
    loaded: Any = json.loads(plan_json(assignment))
    return loaded


def parse_plan(document: Any, where: str) -> Assignment:
    """A reassignment plan, checked as kafka-reassign-partitions.sh checks it."""
    if not isinstance(document, dict) or not isinstance(document.get("partitions"), list):
        raise ClientError(f'{where}: expected {{"version": 1, "partitions": [...]}}')
    version = document.get("version", 1)
    if version != 1:
        raise ClientError(f"{where}: Not supported version field value {version}")
    entries: list[tuple[tuple[str, int], list[int]]] = []
    for entry in document["partitions"]:
        topic = str_field(entry, "topic", where)
        partition = int_field(entry, "partition", where)
        replicas = entry.get("replicas")
        if not isinstance(replicas, list) or not all(
            isinstance(r, int) and not isinstance(r, bool) for r in replicas
        ):
            raise ClientError(f"{where}: each entry needs a 'replicas' list of broker ids")
        log_dirs = entry.get("log_dirs")
        if log_dirs is not None:
            if not isinstance(log_dirs, list) or len(log_dirs) != len(replicas):
                raise ClientError(
                    f"{where}: log_dirs of {partition_name(topic, partition)} must name one"
                    " directory per replica"
                )
            if any(d != "any" for d in log_dirs):
                raise ClientError(f'{where}: log_dirs other than "any" are not supported')
        entries.append(((topic, partition), replicas))
    if not entries:
        raise ClientError("Partition reassignment list cannot be empty")
    if any(not replicas for _, replicas in entries):
        raise ClientError("Partition replica list cannot be empty")
    counts = Counter(key for key, _ in entries)
    twice = sorted(key for key, n in counts.items() if n > 1)
    if twice:
        raise ClientError(
            "Partition reassignment contains duplicate topic partitions: "
            + ",".join(partition_name(*key) for key in twice)
        )
    duplicates = []
    for key, replicas in entries:
        again = sorted(b for b, n in Counter(replicas).items() if n > 1)
        if again:
            duplicates.append(
                f"{partition_name(*key)} contains multiple entries for {','.join(map(str, again))}"
            )
    if duplicates:
        raise ClientError(
            "Partition replica lists may not contain duplicate entries: " + ". ".join(duplicates)
        )
    return dict(entries)


def load_plan(args: argparse.Namespace) -> Assignment:
    if args.plan is None:
        raise ClientError(f"--{args.action} needs --plan FILE")
    return parse_plan(read_json_file(args.plan, "--plan"), f"--plan {args.plan}")


def current_assignment(metadata: ClusterMetadata, keys: Any) -> Assignment:
    return {
        (topic, partition): metadata.assignments[topic][partition]
        for topic, partition in keys
        if partition in metadata.assignments.get(topic, {})
    }


# -- requests ----------------------------------------------------------------------------------


def list_reassignments(
    connection: BrokerConnection, keys: Any, timeout_s: float
) -> dict[tuple[str, int], tuple[list[int], list[int], list[int]]]:
    """(replicas, adding, removing) of the reassignments in progress (of `keys`, or all)."""
    version = connection.version(LIST_PARTITION_REASSIGNMENTS, (0,))
    if version is None:
        raise ClientError(f"{connection.address} does not support ListPartitionReassignments")
    topics = None
    if keys is not None:
        by_topic: dict[str, list[int]] = {}
        for topic, partition in keys:
            by_topic.setdefault(topic, []).append(partition)
        topics = tuple(
            request(
                "list_partition_reassignments",
                version,
                "ListPartitionReassignmentsTopics",
                name=name,
                partition_indexes=tuple(ids),
            )
            for name, ids in sorted(by_topic.items())
        )
    response = connection.call(
        request(
            "list_partition_reassignments",
            version,
            "ListPartitionReassignmentsRequest",
            timeout=datetime.timedelta(seconds=timeout_s),
            topics=topics,
        )
    )
    if response.error_code != ErrorCode.NONE:
        raise ClientError(
            "listing the reassignments failed: "
            + (response.error_message or error_name(response.error_code)),
            EXIT_REFUSED,
        )
    return {
        (str(t.name), int(p.partition_index)): (
            [int(b) for b in p.replicas],
            [int(b) for b in p.adding_replicas],
            [int(b) for b in p.removing_replicas],
        )
        for t in response.topics
        for p in t.partitions
    }


def alter_reassignments(
    connection: BrokerConnection,
    targets: dict[tuple[str, int], list[int] | None],
    timeout_s: float,
    allow_replication_factor_change: bool = True,
) -> dict[tuple[str, int], str]:
    """Start (or, replicas None, cancel) reassignments; the refused ones with why."""
    versions = (0, 1) if allow_replication_factor_change else (1,)
    version = connection.version(ALTER_PARTITION_REASSIGNMENTS, versions)
    if version is None:
        raise ClientError(
            f"{connection.address} does not support AlterPartitionReassignments"
            + ("" if allow_replication_factor_change else " v1 (needed to disallow a change)")
        )
    by_topic: dict[str, list[Any]] = {}
    for (topic, partition), replicas in sorted(targets.items()):
        by_topic.setdefault(topic, []).append(
            request(
                "alter_partition_reassignments",
                version,
                "ReassignablePartition",
                partition_index=partition,
                replicas=None if replicas is None else tuple(replicas),
            )
        )
    response = connection.call(
        request(
            "alter_partition_reassignments",
            version,
            "AlterPartitionReassignmentsRequest",
            timeout=datetime.timedelta(seconds=timeout_s),
            allow_replication_factor_change=allow_replication_factor_change,
            topics=tuple(
                request(
                    "alter_partition_reassignments",
                    version,
                    "ReassignableTopic",
                    name=name,
                    partitions=tuple(parts),
                )
                for name, parts in by_topic.items()
            ),
        )
    )
    if response.error_code != ErrorCode.NONE:
        raise ClientError(
            "the reassignment request failed: "
            + (response.error_message or error_name(response.error_code)),
            EXIT_REFUSED,
        )
    return {
        (str(t.name), int(p.partition_index)): (
            f"{p.error_message} ({error_name(p.error_code)})"
            if p.error_message
            else error_name(p.error_code)
        )
        for t in response.responses
        for p in t.partitions
        if p.error_code != ErrorCode.NONE
    }


def refused(what: str, errors: dict[tuple[str, int], str]) -> ClientError:
    details = "; ".join(f"{partition_name(*key)}: {why}" for key, why in sorted(errors.items()))
    return ClientError(f"{what} {details}", EXIT_REFUSED)


# -- actions -----------------------------------------------------------------------------------


ALLOWED = {  # the options each action takes, as kafka-reassign-partitions.sh checks them
    "generate": {"topics", "broker_list", "disable_rack_aware"},
    "execute": {"plan", "additional", "disallow_replication_factor_change"},
    "verify": {"plan"},
    "cancel": {"plan"},
    "list": set(),
}


def check_options(args: argparse.Namespace) -> None:
    for option in ALLOWED["generate"] | ALLOWED["execute"]:
        value = getattr(args, option)
        if value not in (None, False) and option not in ALLOWED[args.action]:
            flag = "--" + option.replace("_", "-")
            raise ClientError(f'Option "{flag}" can\'t be used with action "--{args.action}"')


def cmd_reassign(args: argparse.Namespace) -> int:
    check_options(args)
    action = args.action
    if action == "generate":
        return generate(args)
    if action == "list":
        return list_action(args)
    plan = load_plan(args)
    if action == "execute":
        return execute(args, plan)
    if action == "verify":
        return verify(args, plan)
    return cancel(args, plan)


def _comma_list(text: str | None, flag: str) -> list[str]:
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    if not items:
        raise ClientError(f"--generate needs {flag}")
    return items


def generate(args: argparse.Namespace) -> int:
    from odradek.metadata.placement import StripedReplicaPlacer, UsableBroker

    topics = _comma_list(args.topics, "--topics T1,T2")
    broker_texts = _comma_list(args.broker_list, "--broker-list 1,2,3")
    if not all(b.lstrip("-").isdigit() for b in broker_texts):
        raise ClientError(f"--broker-list {args.broker_list}: expected broker ids like 1,2,3")
    brokers = [int(b) for b in broker_texts]
    twice = sorted(b for b, n in Counter(brokers).items() if n > 1)
    if twice:
        raise ClientError(f"Broker list contains duplicate entries: {','.join(map(str, twice))}")
    twice_topics = sorted(t for t, n in Counter(topics).items() if n > 1)
    if twice_topics:
        raise ClientError(
            f"List of topics to reassign contains duplicate entries: {','.join(twice_topics)}"
        )
    with connect(args) as connection:
        metadata = cluster_metadata(connection)
    unknown = [b for b in brokers if b not in metadata.racks]
    if unknown:
        raise ClientError(f"Unknown broker id {unknown[0]}")
    current: Assignment = {}
    for topic in topics:
        partitions = metadata.assignments.get(topic)
        if not partitions:
            raise ClientError(f"Topic '{topic}' does not exist.")
        for partition, replicas in partitions.items():
            current[(topic, partition)] = replicas
    placer = StripedReplicaPlacer(
        [
            UsableBroker(b, None if args.disable_rack_aware else metadata.racks[b], False)
            for b in brokers
        ],
        random.Random(),
    )
    proposed: Assignment = {}
    try:
        for topic in topics:
            ids = sorted(metadata.assignments[topic])
            factor = len(metadata.assignments[topic][ids[0]])
            for partition, placed in zip(ids, placer.place(len(ids), factor), strict=True):
                proposed[(topic, partition)] = list(placed)
    except KafkaError as exc:
        raise ClientError(str(exc)) from None
    if args.output == "json":
        print_json({"current": plan_document(current), "proposed": plan_document(proposed)})
    else:
        print(f"Current partition replica assignment\n{plan_json(current)}\n")
        print(f"Proposed partition reassignment configuration\n{plan_json(proposed)}")
    return EXIT_OK


def execute(args: argparse.Namespace, plan: Assignment) -> int:
    with connect(args) as connection:
        if not args.additional and list_reassignments(connection, None, args.timeout):
            raise ClientError(CANNOT_EXECUTE_BECAUSE_OF_EXISTING, EXIT_REFUSED)
        metadata = cluster_metadata(connection)
        unknown = sorted({b for replicas in plan.values() for b in replicas} - set(metadata.racks))
        if unknown:
            raise ClientError(f"Unknown broker id {unknown[0]}")
        current = current_assignment(metadata, plan)
        if args.output != "json":
            print(f"Current partition replica assignment\n\n{plan_json(current)}\n")
            print(ROLLBACK_HINT, flush=True)
        errors = alter_reassignments(
            connection,
            dict(plan),
            args.timeout,
            allow_replication_factor_change=not args.disallow_replication_factor_change,
        )
    if errors:
        raise refused("Error reassigning partition(s):", errors)
    started = [partition_name(*key) for key in sorted(plan)]
    if args.output == "json":
        print_json({"current": plan_document(current), "started": started})
    else:
        plural = "" if len(started) == 1 else "s"
        print(f"Successfully started partition reassignment{plural} for {','.join(started)}")
    return EXIT_OK


def verify(args: argparse.Namespace, plan: Assignment) -> int:
    with connect(args) as connection:
        in_progress = list_reassignments(connection, plan, args.timeout)
        metadata = cluster_metadata(connection)
    current = current_assignment(metadata, plan)
    rows: list[tuple[tuple[str, int], str]] = []
    for key, target in sorted(plan.items()):
        if key in in_progress:
            rows.append((key, "in_progress"))
        elif current.get(key) == target:
            rows.append((key, "completed"))
        else:
            rows.append((key, "differs"))
    if args.output == "json":
        print_json(
            {
                "partitions": [
                    {"topic": topic, "partition": partition, "state": state}
                    for (topic, partition), state in rows
                ]
            }
        )
        return EXIT_OK
    print("Status of partition reassignment:")
    for key, state in rows:
        name = partition_name(*key)
        if state == "in_progress":
            print(f"Reassignment of partition {name} is still in progress.")
        elif state == "completed":
            print(f"Reassignment of partition {name} is completed.")
        else:
            have = ",".join(map(str, current.get(key, [])))
            want = ",".join(map(str, plan[key]))
            print(
                f"There is no active reassignment of partition {name}, but replica set is"
                f" {have} rather than {want}."
            )
    return EXIT_OK


def cancel(args: argparse.Namespace, plan: Assignment) -> int:
    with connect(args) as connection:
        active = sorted(list_reassignments(connection, plan, args.timeout))
        errors = (
            alter_reassignments(connection, dict.fromkeys(active), args.timeout) if active else {}
        )
    if errors:
        plural = "" if len(errors) == 1 else "s"
        raise refused(f"Error cancelling partition reassignment{plural} for:", errors)
    cancelled = [partition_name(*key) for key in active]
    if args.output == "json":
        print_json({"cancelled": cancelled})
    elif cancelled:
        plural = "" if len(cancelled) == 1 else "s"
        print(f"Successfully cancelled partition reassignment{plural} for: {','.join(cancelled)}")
    else:
        print("None of the specified partition reassignments are active.")
    return EXIT_OK


def list_action(args: argparse.Namespace) -> int:
    with connect(args) as connection:
        ongoing = list_reassignments(connection, None, args.timeout)
    if args.output == "json":
        print_json(
            {
                "reassignments": [
                    {
                        "topic": topic,
                        "partition": partition,
                        "replicas": replicas,
                        "adding_replicas": adding,
                        "removing_replicas": removing,
                    }
                    for (topic, partition), (replicas, adding, removing) in sorted(ongoing.items())
                ]
            }
        )
        return EXIT_OK
    if not ongoing:
        print("No partition reassignments found.")
        return EXIT_OK
    print("Current partition reassignments:")
    for key, (replicas, adding, removing) in sorted(ongoing.items()):
        line = f"{partition_name(*key)}: replicas: {','.join(map(str, replicas))}."
        if adding:
            line += f" adding: {','.join(map(str, adding))}."
        if removing:
            line += f" removing: {','.join(map(str, removing))}."
        print(line)
    return EXIT_OK


# -- the verb ----------------------------------------------------------------------------------


def add_verb(verbs: Any) -> None:
    reassign = verbs.add_parser(
        "reassign",
        help="move partitions to other brokers (generate, execute, verify, cancel, list)",
        description=paragraph(
            "Move partitions to other replica sets, as kafka-reassign-partitions.sh does. A"
            ' plan is Kafka\'s reassignment JSON: {"version": 1, "partitions": [{"topic": T,'
            ' "partition": P, "replicas": [B, ...]}]}. The new replicas copy the partition'
            " and join the ISR; then the reassignment completes and the replicas left out"
            " are dropped."
        ),
        epilog=(
            "examples:\n"
            "  odradek partitions reassign --generate --topics orders,payments"
            " --broker-list 1,2,3,4 > proposal.txt\n"
            "  odradek partitions reassign --execute --plan plan.json\n"
            "  odradek partitions reassign --verify --plan plan.json\n"
            "  odradek partitions reassign --list\n"
            "  odradek partitions reassign --cancel --plan plan.json\n"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = reassign.add_mutually_exclusive_group(required=True)
    for name, text in (
        ("generate", "propose a plan moving --topics over --broker-list (changes nothing)"),
        ("execute", "start the reassignments of --plan"),
        ("verify", "whether the reassignments of --plan are done"),
        ("cancel", "cancel the reassignments of --plan still in progress"),
        ("list", "list every reassignment in progress"),
    ):
        actions.add_argument(
            f"--{name}", dest="action", action="store_const", const=name, help=text
        )
    reassign.add_argument(
        "--plan",
        "--reassignment-json-file",
        type=Path,
        metavar="FILE",
        help="the plan, in Kafka's reassignment JSON",
    )
    reassign.add_argument("--topics", metavar="T1,T2", help="with --generate: the topics to move")
    reassign.add_argument(
        "--broker-list", metavar="1,2,3", help="with --generate: the brokers to move them to"
    )
    reassign.add_argument(
        "--disable-rack-aware",
        action="store_true",
        help="with --generate: ignore the brokers' racks",
    )
    reassign.add_argument(
        "--additional",
        action="store_true",
        help="with --execute: go ahead although other reassignments are in progress",
    )
    reassign.add_argument(
        "--disallow-replication-factor-change",
        action="store_true",
        help="with --execute: refuse plans that change a partition's replica count",
    )
    add_client_options(reassign)
    reassign.set_defaults(verb_run=cmd_reassign)
