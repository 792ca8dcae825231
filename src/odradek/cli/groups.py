"""`odradek groups`: list, describe, reset the offsets of, and delete consumer groups, as
Kafka's kafka-consumer-groups.sh does.

Everything goes through confluent-kafka's AdminClient (ListGroups, DescribeGroups,
OffsetFetch, ListOffsets, OffsetCommit, DeleteGroups), so the command works against any
Kafka-compatible broker, not only Odradek. The options shared with every client command
(`--bootstrap-server`, `--command-config`, `--output`, `--timeout`) and the exit codes
(0 done, 1 refused, 2 bad usage / unreachable / no such group or topic) are described in
`odradek.cli.client_options`.

What each verb does, and where it follows Kafka:

- `list [--state STATE...]`: every group the brokers know, with its state and type. States are
  Kafka's names (Stable, Empty, PreparingRebalance, CompletingRebalance, Dead), matched
  ignoring case; `--state Stable,Empty` works as in Kafka.
- `describe GROUP...`: per partition the committed offset, the log end offset and the lag
  (log end offset - committed offset, `-` when nothing is committed), with the member the
  partition is assigned to; partitions that have a commit but no member are listed with `-`.
  Then the members and their assignments. A group that does not exist (DescribeGroups answers
  Dead, or GROUP_ID_NOT_FOUND) is "Consumer group 'x' does not exist.", exit 2.
- `reset-offsets GROUP (--topic T[:P,P...]... | --all-topics) SCENARIO [--dry-run|--execute]`:
  only for an inactive group (Empty, or Dead: offsets may be set before a group first starts),
  as Kafka refuses otherwise. `--all-topics` means every partition the group has a commit for.
  Scenarios: `--to-earliest`, `--to-latest`, `--to-offset N` and `--shift-by N` (both clamped
  into [log start offset, log end offset]; shifting needs a committed offset),
  `--to-datetime ISO8601` (the first offset whose timestamp is at or after it, else the log end
  offset; a time without a zone is UTC, as in Kafka). Without `--execute` nothing is changed
  and the plan is printed (Kafka's dry run); with it the plan is committed and printed.
- `delete GROUP...`: each group is deleted or refused on its own (NON_EMPTY_GROUP for a group
  with members, GROUP_ID_NOT_FOUND for one that does not exist); exit 1 if one was refused,
  2 if one did not exist.

JSON output (`--output json`), one object on stdout; offsets are integers, unknown values null:

    list:          {"groups": [{"group": str, "state": str, "type": str, "simple": bool}]}
    describe:      {"groups": [{"group": str, "state": str, "type": str, "assignor": str,
                                "coordinator": {"id": int, "host": str, "port": int} | null,
                                "members": [{"member_id": str, "group_instance_id": str | null,
                                             "client_id": str, "host": str,
                                             "assignment": [{"topic": str, "partition": int}]}],
                                "partitions": [{"topic": str, "partition": int,
                                                "committed_offset": int | null,
                                                "log_end_offset": int | null,
                                                "lag": int | null, "member_id": str | null,
                                                "client_id": str | null, "host": str | null}],
                                "total_lag": int}]}
                   (groups that do not exist are left out and reported on stderr)
    reset-offsets: {"group": str, "executed": bool,
                    "partitions": [{"topic": str, "partition": int,
                                    "current_offset": int | null, "new_offset": int}]}
    delete:        {"groups": [{"group": str, "deleted": bool,
                                "error": {"code": str, "message": str} | null}]}

`type` is Kafka's group type (Classic, Consumer, or Unknown when the broker does not say);
`simple` is true for a group without a protocol type (offsets committed without joining).

What is shown and how (`group_views.py`) and how a reset is planned (`group_reset.py`) are
pure and unit-tested; the `_fetch_*` and `cmd_*` functions here are the only ones that talk to
a broker.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from odradek.cli.client_options import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REFUSED,
    ClientError,
    add_client_options,
    add_noun_parser,
    connect_admin,
    console,
    error_message,
    error_name,
    print_error,
    print_json,
    result,
)
from odradek.cli.group_reset import (
    PlanError,
    ResetSpec,
    parse_datetime_ms,
    parse_topic_arg,
    plan_reset,
)
from odradek.cli.group_views import (
    INACTIVE_STATES,
    STATE_NAMES,
    Coordinator,
    DeleteResult,
    GroupDescription,
    GroupListing,
    Member,
    TopicPartitionKey,
    delete_error_line,
    delete_exit_code,
    parse_states,
    partition_offsets,
    print_line,
    render_delete,
    render_describe,
    render_list,
    render_plan,
    state_name,
    type_name,
)

CLIENT_ID = "odradek-groups"

EXAMPLES = """examples:
  odradek groups list
  odradek groups list --state Stable --output json
  odradek groups describe orders-app
  odradek groups reset-offsets orders-app --topic orders --to-earliest            # dry run
  odradek groups reset-offsets orders-app --topic orders:0,1 --shift-by -100 --execute
  odradek groups reset-offsets orders-app --all-topics --to-datetime 2024-05-01T00:00:00Z --execute
  odradek groups delete orders-app old-app
  ODRADEK_BOOTSTRAP_SERVER=kafka:9092 odradek groups list --command-config client.properties
"""


# -- talking to the broker ---------------------------------------------------------------------


def _key(tp: Any) -> TopicPartitionKey:
    return (str(tp.topic), int(tp.partition))


def _fetch_descriptions(
    admin: Any, groups: Sequence[str], timeout_s: float
) -> dict[str, Any | ClientError]:
    """confluent-kafka ConsumerGroupDescriptions, or the error that stands for each group."""
    futures = admin.describe_consumer_groups(list(groups), request_timeout=timeout_s)
    out: dict[str, Any | ClientError] = {}
    for group in groups:
        try:
            description = result(futures[group], timeout_s)
        except ClientError as exc:
            out[group] = exc
            continue
        except Exception as exc:  # librdkafka raises KafkaException per group
            if error_name(exc) == "GROUP_ID_NOT_FOUND":
                out[group] = _no_such_group(group)
            else:
                out[group] = ClientError(f"cannot describe group '{group}': {error_message(exc)}")
            continue
        if state_name(getattr(description, "state", None)) == "Dead":
            out[group] = _no_such_group(group)
        else:
            out[group] = description
    return out


def _no_such_group(group: str) -> ClientError:
    return ClientError(f"Consumer group '{group}' does not exist.")


def _fetch_committed(admin: Any, group: str, timeout_s: float) -> dict[TopicPartitionKey, int]:
    """The group's committed offsets (partitions without a commit left out)."""
    from confluent_kafka import ConsumerGroupTopicPartitions

    request = [ConsumerGroupTopicPartitions(group)]
    futures = admin.list_consumer_group_offsets(request, request_timeout=timeout_s)
    try:
        answer = result(futures[group], timeout_s)
    except ClientError:
        raise
    except Exception as exc:
        raise ClientError(
            f"cannot fetch the committed offsets of group '{group}': {error_message(exc)}"
        ) from None
    out: dict[TopicPartitionKey, int] = {}
    for tp in answer.topic_partitions or ():
        if tp.error is None and tp.offset >= 0:
            out[_key(tp)] = int(tp.offset)
    return out


def _fetch_offsets(
    admin: Any,
    partitions: Iterable[TopicPartitionKey],
    spec: Any,
    timeout_s: float,
    read_committed: bool = False,
) -> dict[TopicPartitionKey, int]:
    """ListOffsets for `spec` (an OffsetSpec) per partition; partitions that fail are left out
    (a deleted topic, a partition without a leader): they show as unknown. `read_committed`
    asks with that isolation level: the latest offset is then the last stable offset."""
    from confluent_kafka import IsolationLevel, TopicPartition

    wanted = {TopicPartition(topic, partition): spec for topic, partition in set(partitions)}
    if not wanted:
        return {}
    isolation = IsolationLevel.READ_COMMITTED if read_committed else IsolationLevel.READ_UNCOMMITTED
    futures = admin.list_offsets(wanted, isolation_level=isolation, request_timeout=timeout_s)
    out: dict[TopicPartitionKey, int] = {}
    for tp, future in futures.items():
        try:
            info = result(future, timeout_s)
        except ClientError:
            raise
        except Exception:
            continue
        out[_key(tp)] = int(info.offset)
    return out


def _offset_spec() -> Any:
    """confluent_kafka's OffsetSpec class (its stubs do not re-export it from .admin)."""
    from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

    return OffsetSpec


def _describe(
    admin: Any, group: str, description: Any, timeout_s: float, read_committed: bool
) -> GroupDescription:
    members = tuple(
        sorted(
            (
                Member(
                    str(m.member_id),
                    m.group_instance_id or None,
                    str(m.client_id),
                    str(m.host),
                    tuple(sorted(_key(tp) for tp in m.assignment.topic_partitions)),
                )
                for m in description.members
            ),
            key=lambda m: (m.client_id, m.member_id),
        )
    )
    committed = _fetch_committed(admin, group, timeout_s)
    wanted = set(committed) | {key for m in members for key in m.assignment}
    log_end = _fetch_offsets(admin, wanted, _offset_spec().latest(), timeout_s, read_committed)
    node = description.coordinator
    coordinator = Coordinator(int(node.id), str(node.host), int(node.port)) if node else None
    return GroupDescription(
        group=group,
        state=state_name(description.state),
        type=type_name(getattr(description, "type", None)),
        assignor=str(description.partition_assignor or ""),
        coordinator=coordinator,
        members=members,
        partitions=tuple(partition_offsets(members, committed, log_end)),
    )


# -- the verbs ---------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    states = parse_states(args.state or ())
    admin, _ = connect_admin(args, CLIENT_ID)
    kwargs: dict[str, Any] = {"request_timeout": args.timeout}
    if states:
        from confluent_kafka import ConsumerGroupState

        by_name = {STATE_NAMES[s.name]: s for s in ConsumerGroupState if s.name in STATE_NAMES}
        kwargs["states"] = {by_name[name] for name in states if name in by_name}
    try:
        answer = result(admin.list_consumer_groups(**kwargs), args.timeout)
    except ClientError:
        raise
    except Exception as exc:
        raise ClientError(f"cannot list consumer groups: {error_message(exc)}") from None
    if answer.errors:
        raise ClientError(f"cannot list consumer groups: {error_message(answer.errors[0])}")
    listings = sorted(
        (
            GroupListing(
                str(item.group_id),
                state_name(getattr(item, "state", None)),
                type_name(getattr(item, "type", None)),
                bool(item.is_simple_consumer_group),
            )
            for item in answer.valid or ()
        ),
        key=lambda listing: listing.group,
    )
    if states:  # also here, in case a broker ignores the filter
        listings = [listing for listing in listings if listing.state in states]
    if args.output == "json":
        print_json({"groups": [listing.to_json() for listing in listings]})
    else:
        render_list(listings, console())
    return EXIT_OK


def cmd_describe(args: argparse.Namespace) -> int:
    groups = list(dict.fromkeys(args.groups))
    admin, _ = connect_admin(args, CLIENT_ID)
    found = _fetch_descriptions(admin, groups, args.timeout)
    descriptions: list[GroupDescription] = []
    failures: list[ClientError] = []
    for group in groups:
        item = found[group]
        if isinstance(item, ClientError):
            failures.append(item)
        else:
            descriptions.append(
                _describe(admin, group, item, args.timeout, args.isolation == "read_committed")
            )
    if args.output == "json":
        print_json({"groups": [d.to_json() for d in descriptions]})
    else:
        out = console()
        for index, description in enumerate(descriptions):
            if index:
                print_line(out, "")
            render_describe(description, out)
    for failure in failures:
        print_error("groups", failure.message)
    return EXIT_ERROR if failures else EXIT_OK


def reset_spec(args: argparse.Namespace) -> ResetSpec:
    if args.to_earliest:
        return ResetSpec("earliest")
    if args.to_latest:
        return ResetSpec("latest")
    if args.to_offset is not None:
        return ResetSpec("offset", args.to_offset)
    if args.shift_by is not None:
        return ResetSpec("shift", args.shift_by)
    return ResetSpec("datetime", parse_datetime_ms(args.to_datetime))


def _partitions_to_reset(
    args: argparse.Namespace, metadata: Any, committed: Mapping[TopicPartitionKey, int]
) -> list[TopicPartitionKey]:
    if args.all_topics:
        return sorted(committed)
    out: list[TopicPartitionKey] = []
    for text in args.topic:
        topic, partitions = parse_topic_arg(text)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            raise ClientError(f"Topic '{topic}' does not exist.")
        existing = set(info.partitions)
        for partition in partitions if partitions is not None else sorted(existing):
            if partition not in existing:
                raise ClientError(
                    f"Partition {partition} of topic '{topic}' does not exist"
                    f" (the topic has {len(existing)} partitions)."
                )
            out.append((topic, partition))
    return out


def cmd_reset(args: argparse.Namespace) -> int:
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    spec = reset_spec(args)
    group = args.group
    admin, metadata = connect_admin(args, CLIENT_ID)
    description = _fetch_descriptions(admin, [group], args.timeout)[group]
    if isinstance(description, ClientError):
        if description.message != _no_such_group(group).message:
            raise description
        state = "Dead"  # no such group yet: Kafka lets its offsets be set before it starts
    else:
        state = state_name(description.state)
    if state not in INACTIVE_STATES:
        raise ClientError(
            f"Assignments can only be reset if the group '{group}' is inactive,"
            f" but the current state is {state}.",
            EXIT_REFUSED,
        )
    committed = _fetch_committed(admin, group, args.timeout)
    partitions = _partitions_to_reset(args, metadata, committed)
    offset_spec = _offset_spec()
    log_start = _fetch_offsets(admin, partitions, offset_spec.earliest(), args.timeout)
    log_end = _fetch_offsets(admin, partitions, offset_spec.latest(), args.timeout)
    by_time = None
    if spec.kind == "datetime":
        assert spec.value is not None
        by_time = _fetch_offsets(
            admin, partitions, offset_spec.for_timestamp(spec.value), args.timeout
        )
    try:
        plan = plan_reset(partitions, spec, committed, log_start, log_end, by_time)
    except PlanError as exc:
        raise ClientError(str(exc)) from None
    if args.execute and plan:
        offsets = [TopicPartition(row.topic, row.partition, row.new_offset) for row in plan]
        request = [ConsumerGroupTopicPartitions(group, offsets)]
        futures = admin.alter_consumer_group_offsets(request, request_timeout=args.timeout)
        try:
            answer = result(futures[group], args.timeout)
        except ClientError:
            raise
        except Exception as exc:
            raise ClientError(
                f"cannot reset the offsets of group '{group}': {error_message(exc)}",
                EXIT_REFUSED,
            ) from None
        failed = [tp for tp in answer.topic_partitions or () if tp.error is not None]
        if failed:
            tp = failed[0]
            raise ClientError(
                f"cannot reset the offset of {tp.topic}-{tp.partition} for group '{group}':"
                f" {error_message(tp.error)}",
                EXIT_REFUSED,
            )
    if args.output == "json":
        print_json(
            {
                "group": group,
                "executed": bool(args.execute),
                "partitions": [row.to_json() for row in plan],
            }
        )
    else:
        render_plan(group, plan, bool(args.execute), console())
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    groups = list(dict.fromkeys(args.groups))
    admin, _ = connect_admin(args, CLIENT_ID)
    futures = admin.delete_consumer_groups(groups, request_timeout=args.timeout)
    results: list[DeleteResult] = []
    for group in groups:
        try:
            result(futures[group], args.timeout)
        except ClientError:
            raise
        except Exception as exc:
            results.append(DeleteResult(group, error_name(exc) or "UNKNOWN", error_message(exc)))
        else:
            results.append(DeleteResult(group))
    if args.output == "json":
        print_json({"groups": [item.to_json() for item in results]})
    else:
        render_delete(results, console())
    for item in results:
        if not item.deleted:
            print_error("groups", delete_error_line(item))
    return delete_exit_code(results)


# -- command line ------------------------------------------------------------------------------


def add_parser(subcommands: Any) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    verbs = add_noun_parser(
        subcommands,
        "groups",
        help="list, describe, reset the offsets of and delete consumer groups",
        description=(
            "Manage consumer groups on any Kafka-compatible cluster, like"
            " kafka-consumer-groups.sh. Exit codes: 0 done, 1 refused, 2 bad usage,"
            " broker unreachable or no such group/topic."
        ),
        examples=EXAMPLES,
    )

    listing = verbs.add_parser(
        "list",
        help="list consumer groups with their state and type",
        description="List every consumer group the cluster knows, with its state and type.",
        epilog="examples:\n  odradek groups list\n  odradek groups list --state Stable,Empty\n",
        formatter_class=formatter,
    )
    listing.add_argument(
        "--state",
        nargs="+",
        metavar="STATE",
        help="only groups in these states (Stable, Empty, PreparingRebalance, ...)",
    )
    add_client_options(listing)
    listing.set_defaults(verb_run=cmd_list)

    describe = verbs.add_parser(
        "describe",
        help="offsets, log end offsets, lag and members of groups",
        description=(
            "Per partition: committed offset, log end offset, lag (log end offset minus"
            " committed offset) and the member it is assigned to; then the members."
        ),
        epilog=(
            "examples:\n  odradek groups describe orders-app\n"
            "  odradek groups describe orders-app billing --output json\n"
        ),
        formatter_class=formatter,
    )
    describe.add_argument("groups", nargs="+", metavar="GROUP")
    describe.add_argument(
        "--isolation",
        choices=("read_uncommitted", "read_committed"),
        default="read_uncommitted",
        help=(
            "read_committed: measure lag against the last stable offset, the end a"
            " read_committed consumer can reach while transactions are open (default:"
            " read_uncommitted, against the log end offset)"
        ),
    )
    add_client_options(describe)
    describe.set_defaults(verb_run=cmd_describe)

    reset = verbs.add_parser(
        "reset-offsets",
        help="move the committed offsets of an inactive group (dry run unless --execute)",
        description=(
            "Plan new committed offsets for an inactive group (state Empty, or one that does"
            " not exist yet) and print the plan; with --execute, commit it. Offsets from"
            " --to-offset and --shift-by are clamped into [log start offset, log end offset]."
        ),
        epilog=(
            "examples:\n"
            "  odradek groups reset-offsets app --topic orders --to-earliest\n"
            "  odradek groups reset-offsets app --topic orders:0,1 --to-offset 42 --execute\n"
            "  odradek groups reset-offsets app --all-topics --shift-by -10 --execute\n"
            "  odradek groups reset-offsets app --topic orders"
            " --to-datetime 2024-05-01T12:00:00Z --execute\n"
        ),
        formatter_class=formatter,
    )
    reset.add_argument("group", metavar="GROUP")
    scope = reset.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "--topic",
        action="append",
        metavar="TOPIC[:P,P...]",
        help="a topic, or some of its partitions (repeatable)",
    )
    scope.add_argument(
        "--all-topics", action="store_true", help="every partition the group has a commit for"
    )
    scenario = reset.add_mutually_exclusive_group(required=True)
    scenario.add_argument("--to-earliest", action="store_true", help="the log start offset")
    scenario.add_argument("--to-latest", action="store_true", help="the log end offset")
    scenario.add_argument("--to-offset", type=int, metavar="N", help="offset N (clamped)")
    scenario.add_argument(
        "--shift-by", type=int, metavar="N", help="committed offset + N (clamped; N may be < 0)"
    )
    scenario.add_argument(
        "--to-datetime",
        metavar="ISO8601",
        help="first offset at or after this time (no zone: UTC), e.g. 2024-05-01T12:00:00Z",
    )
    mode = reset.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run", action="store_true", help="print the plan, change nothing (the default)"
    )
    mode.add_argument("--execute", action="store_true", help="commit the plan")
    add_client_options(reset)
    reset.set_defaults(verb_run=cmd_reset)

    delete = verbs.add_parser(
        "delete",
        help="delete groups that have no members",
        description=(
            "Delete consumer groups and their committed offsets. A group with members is"
            " refused by the broker (NON_EMPTY_GROUP)."
        ),
        epilog="examples:\n  odradek groups delete old-app\n",
        formatter_class=formatter,
    )
    delete.add_argument("groups", nargs="+", metavar="GROUP")
    add_client_options(delete)
    delete.set_defaults(verb_run=cmd_delete)
