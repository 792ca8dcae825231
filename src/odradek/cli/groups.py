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

The plan and output logic (`partition_offsets`, `plan_reset`, the renderers) is pure and
unit-tested; the `_fetch_*` and `cmd_*` functions are the only ones that talk to a broker.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from odradek.cli.client_options import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REFUSED,
    ClientError,
    add_client_options,
    connect_admin,
    console,
    error_message,
    error_name,
    print_error,
    print_json,
    result,
    run_client_command,
)

if TYPE_CHECKING:
    from rich.console import Console

CLIENT_ID = "odradek-groups"
MISSING = "-"

# Kafka's names for ConsumerGroupState / GroupType, keyed by confluent-kafka's enum names.
STATE_NAMES = {
    "UNKNOWN": "Unknown",
    "PREPARING_REBALANCING": "PreparingRebalance",
    "COMPLETING_REBALANCING": "CompletingRebalance",
    "STABLE": "Stable",
    "DEAD": "Dead",
    "EMPTY": "Empty",
}
TYPE_NAMES = {"UNKNOWN": "Unknown", "CONSUMER": "Consumer", "CLASSIC": "Classic"}
INACTIVE_STATES = frozenset({"Empty", "Dead"})

TopicPartitionKey = tuple[str, int]

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


def state_name(state: Any) -> str:
    """Kafka's name for a confluent-kafka ConsumerGroupState (or a string already)."""
    if state is None:
        return "Unknown"
    if isinstance(state, str):
        return state
    return STATE_NAMES.get(getattr(state, "name", ""), "Unknown")


def type_name(group_type: Any) -> str:
    if group_type is None:
        return "Unknown"
    if isinstance(group_type, str):
        return group_type
    return TYPE_NAMES.get(getattr(group_type, "name", ""), "Unknown")


def parse_states(values: Iterable[str]) -> set[str]:
    """`--state` values (space- or comma-separated, any case) as Kafka's state names."""
    by_lower = {name.lower(): name for name in STATE_NAMES.values()}
    out: set[str] = set()
    for value in values:
        for part in value.split(","):
            name = part.strip()
            if not name:
                continue
            if name.lower() not in by_lower:
                known = ", ".join(sorted(set(by_lower.values()) - {"Unknown"}))
                raise ClientError(f"unknown group state {name!r}; one of: {known}")
            out.add(by_lower[name.lower()])
    return out


# -- values ------------------------------------------------------------------------------------


def lag(committed_offset: int | None, log_end_offset: int | None) -> int | None:
    """Log end offset minus committed offset; None when either is unknown."""
    if committed_offset is None or committed_offset < 0 or log_end_offset is None:
        return None
    return log_end_offset - committed_offset


class GroupListing(NamedTuple):
    group: str
    state: str
    type: str
    simple: bool

    def to_json(self) -> dict[str, Any]:
        return {"group": self.group, "state": self.state, "type": self.type, "simple": self.simple}


class PartitionOffsets(NamedTuple):
    topic: str
    partition: int
    committed_offset: int | None
    log_end_offset: int | None
    member_id: str | None = None
    client_id: str | None = None
    host: str | None = None

    @property
    def lag(self) -> int | None:
        return lag(self.committed_offset, self.log_end_offset)

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "committed_offset": self.committed_offset,
            "log_end_offset": self.log_end_offset,
            "lag": self.lag,
            "member_id": self.member_id,
            "client_id": self.client_id,
            "host": self.host,
        }


class Member(NamedTuple):
    member_id: str
    group_instance_id: str | None
    client_id: str
    host: str
    assignment: tuple[TopicPartitionKey, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "group_instance_id": self.group_instance_id,
            "client_id": self.client_id,
            "host": self.host,
            "assignment": [{"topic": t, "partition": p} for t, p in self.assignment],
        }


class Coordinator(NamedTuple):
    id: int
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port} (id {self.id})"


class GroupDescription(NamedTuple):
    group: str
    state: str
    type: str
    assignor: str
    coordinator: Coordinator | None
    members: tuple[Member, ...]
    partitions: tuple[PartitionOffsets, ...]

    @property
    def total_lag(self) -> int:
        return sum(row.lag for row in self.partitions if row.lag is not None)

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "state": self.state,
            "type": self.type,
            "assignor": self.assignor,
            "coordinator": self.coordinator._asdict() if self.coordinator else None,
            "members": [member.to_json() for member in self.members],
            "partitions": [row.to_json() for row in self.partitions],
            "total_lag": self.total_lag,
        }


def partition_offsets(
    members: Sequence[Member],
    committed: Mapping[TopicPartitionKey, int | None],
    log_end: Mapping[TopicPartitionKey, int | None],
) -> list[PartitionOffsets]:
    """One row per partition a member is assigned or the group has a commit for, by topic and
    partition. A partition with a commit but no member gets no member columns, as in Kafka."""
    rows: dict[TopicPartitionKey, PartitionOffsets] = {}
    for member in members:
        for key in member.assignment:
            rows[key] = PartitionOffsets(
                key[0],
                key[1],
                _valid(committed.get(key)),
                log_end.get(key),
                member.member_id,
                member.client_id,
                member.host,
            )
    for key, offset in committed.items():
        if key not in rows and _valid(offset) is not None:
            rows[key] = PartitionOffsets(key[0], key[1], offset, log_end.get(key))
    return [rows[key] for key in sorted(rows)]


def _valid(offset: int | None) -> int | None:
    """A committed offset, or None for 'no commit' (librdkafka: -1001, Kafka: -1)."""
    return offset if offset is not None and offset >= 0 else None


# -- reset plans -------------------------------------------------------------------------------


class PlanError(ValueError):
    """The reset cannot be planned (exit code 2)."""


class ResetSpec(NamedTuple):
    """A reset scenario: `earliest`, `latest`, `offset` (value), `shift` (value) or
    `datetime` (value: milliseconds since the epoch)."""

    kind: str
    value: int | None = None


class PlanRow(NamedTuple):
    topic: str
    partition: int
    current_offset: int | None
    new_offset: int

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "current_offset": self.current_offset,
            "new_offset": self.new_offset,
        }


def clamp_offset(offset: int, log_start_offset: int | None, log_end_offset: int | None) -> int:
    """Kafka's checkOffsetsRange: above the log end offset becomes it, below the log start
    offset becomes that; an unknown bound does not clamp."""
    if log_end_offset is not None and offset > log_end_offset:
        return log_end_offset
    if log_start_offset is not None and offset < log_start_offset:
        return log_start_offset
    return offset


def plan_reset(
    partitions: Iterable[TopicPartitionKey],
    spec: ResetSpec,
    committed: Mapping[TopicPartitionKey, int | None],
    log_start: Mapping[TopicPartitionKey, int],
    log_end: Mapping[TopicPartitionKey, int],
    offsets_for_time: Mapping[TopicPartitionKey, int | None] | None = None,
) -> list[PlanRow]:
    """The new offset of every partition, by topic and partition. `offsets_for_time` holds
    ListOffsets-by-timestamp answers (None or -1: no record that late)."""
    rows = []
    for key in sorted(set(partitions)):
        name = f"{key[0]}-{key[1]}"
        current = _valid(committed.get(key))
        if spec.kind == "earliest":
            if key not in log_start:
                raise PlanError(f"cannot get the log start offset of partition {name}")
            new = log_start[key]
        elif spec.kind == "latest":
            if key not in log_end:
                raise PlanError(f"cannot get the log end offset of partition {name}")
            new = log_end[key]
        elif spec.kind == "offset":
            assert spec.value is not None
            new = clamp_offset(spec.value, log_start.get(key), log_end.get(key))
        elif spec.kind == "shift":
            assert spec.value is not None
            if current is None:
                raise PlanError(
                    f"cannot shift the offset of partition {name}: the group has no committed"
                    " offset for it"
                )
            new = clamp_offset(current + spec.value, log_start.get(key), log_end.get(key))
        elif spec.kind == "datetime":
            found = (offsets_for_time or {}).get(key)
            if found is not None and found >= 0:
                new = found
            elif key in log_end:
                new = log_end[key]  # no record at or after that time: Kafka takes the end
            else:
                raise PlanError(f"cannot get an offset by time for partition {name}")
        else:
            raise PlanError(f"unknown reset scenario {spec.kind!r}")
        rows.append(PlanRow(key[0], key[1], current, new))
    return rows


def parse_topic_arg(text: str) -> tuple[str, tuple[int, ...] | None]:
    """`orders` (every partition) or `orders:0,2` (those partitions), as Kafka's --topic."""
    topic, sep, partitions = text.partition(":")
    if not topic:
        raise ClientError(f"--topic {text!r}: no topic name")
    if not sep:
        return topic, None
    numbers = []
    for part in partitions.split(","):
        try:
            number = int(part)
        except ValueError:
            raise ClientError(f"--topic {text!r}: partition {part!r} is not a number") from None
        if number < 0:
            raise ClientError(f"--topic {text!r}: partition {number} is negative")
        numbers.append(number)
    return topic, tuple(sorted(set(numbers)))


def parse_datetime_ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 date-time ('2024-05-01T12:00:00',
    '...T12:00:00.250+02:00', '...Z'); without a zone it is UTC, as in Kafka's tool."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ClientError(
            f"--to-datetime {text!r} is not an ISO 8601 date-time such as 2024-05-01T12:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# -- text output -------------------------------------------------------------------------------


def _table(*headers: str, right: Sequence[str] = ()) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, justify="right" if header in right else "left", no_wrap=True)
    return table


def _cells(*values: object) -> list[Any]:
    """Table cells as plain Text, so '[' in a group or client id is not read as markup."""
    from rich.text import Text

    return [Text(MISSING if value is None or value == "" else str(value)) for value in values]


def _line(out: Console, text: str) -> None:
    out.print(text, markup=False, highlight=False)


def format_assignment(assignment: Iterable[TopicPartitionKey]) -> str:
    """`orders:0,1 payments:2`, the same syntax as --topic."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(assignment):
        by_topic.setdefault(topic, []).append(partition)
    return " ".join(f"{topic}:{','.join(map(str, parts))}" for topic, parts in by_topic.items())


def render_list(listings: Sequence[GroupListing], out: Console) -> None:
    if not listings:
        _line(out, "No consumer groups.")
        return
    table = _table("GROUP", "STATE", "TYPE")
    for listing in listings:
        kind = f"{listing.type} (simple)" if listing.simple else listing.type
        table.add_row(*_cells(listing.group, listing.state, kind))
    out.print(table)


def render_describe(description: GroupDescription, out: Console) -> None:
    d = description
    _line(
        out,
        f"Group {d.group}  state: {d.state}  assignor: {d.assignor or MISSING}"
        f"  coordinator: {d.coordinator or MISSING}  members: {len(d.members)}",
    )
    if d.state == "Empty":
        _line(out, f"Consumer group '{d.group}' has no active members.")
    elif d.state in ("PreparingRebalance", "CompletingRebalance"):
        _line(out, f"Warning: consumer group '{d.group}' is rebalancing.")
    _line(out, "")
    if d.partitions:
        right = ("PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG")
        table = _table(
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
            right=right,
        )
        for row in d.partitions:
            table.add_row(
                *_cells(
                    row.topic,
                    row.partition,
                    row.committed_offset,
                    row.log_end_offset,
                    row.lag,
                    row.member_id,
                    row.host,
                    row.client_id,
                )
            )
        out.print(table)
        _line(out, f"Total lag: {d.total_lag}")
    else:
        _line(out, "No committed offsets and no assigned partitions.")
    if d.members:
        _line(out, "")
        table = _table(
            "CONSUMER-ID",
            "GROUP-INSTANCE-ID",
            "HOST",
            "CLIENT-ID",
            "#PARTITIONS",
            "ASSIGNMENT",
            right=("#PARTITIONS",),
        )
        for member in d.members:
            table.add_row(
                *_cells(
                    member.member_id,
                    member.group_instance_id,
                    member.host,
                    member.client_id,
                    len(member.assignment),
                    format_assignment(member.assignment),
                )
            )
        out.print(table)


def render_plan(group: str, rows: Sequence[PlanRow], executed: bool, out: Console) -> None:
    if rows:
        table = _table(
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "NEW-OFFSET",
            right=("PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"),
        )
        for row in rows:
            table.add_row(*_cells(row.topic, row.partition, row.current_offset, row.new_offset))
        out.print(table)
    else:
        _line(out, f"No partitions to reset for group '{group}'.")
    if executed:
        _line(out, f"Reset the offsets of group '{group}' on {len(rows)} partition(s).")
    else:
        _line(out, "Dry run: nothing was changed. Add --execute to reset these offsets.")


class DeleteResult(NamedTuple):
    group: str
    error_code: str | None = None
    error_message: str | None = None

    @property
    def deleted(self) -> bool:
        return self.error_code is None

    def to_json(self) -> dict[str, Any]:
        error = None
        if self.error_code is not None:
            error = {"code": self.error_code, "message": self.error_message}
        return {"group": self.group, "deleted": self.deleted, "error": error}


def render_delete(results: Sequence[DeleteResult], out: Console) -> None:
    for item in results:
        if item.deleted:
            _line(out, f"Deleted consumer group '{item.group}'.")


def delete_exit_code(results: Sequence[DeleteResult]) -> int:
    if any(item.error_code == "GROUP_ID_NOT_FOUND" for item in results):
        return EXIT_ERROR
    if any(not item.deleted for item in results):
        return EXIT_REFUSED
    return EXIT_OK


def delete_error_line(item: DeleteResult) -> str:
    if item.error_code == "GROUP_ID_NOT_FOUND":
        return f"Consumer group '{item.group}' does not exist."
    return f"Consumer group '{item.group}' could not be deleted: {item.error_message}"


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
    admin: Any, partitions: Iterable[TopicPartitionKey], spec: Any, timeout_s: float
) -> dict[TopicPartitionKey, int]:
    """ListOffsets for `spec` (an OffsetSpec) per partition; partitions that fail are left out
    (a deleted topic, a partition without a leader): they show as unknown."""
    from confluent_kafka import TopicPartition

    wanted = {TopicPartition(topic, partition): spec for topic, partition in set(partitions)}
    if not wanted:
        return {}
    futures = admin.list_offsets(wanted, request_timeout=timeout_s)
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


def _describe(admin: Any, group: str, description: Any, timeout_s: float) -> GroupDescription:
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
    log_end = _fetch_offsets(admin, wanted, _offset_spec().latest(), timeout_s)
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
            descriptions.append(_describe(admin, group, item, args.timeout))
    if args.output == "json":
        print_json({"groups": [d.to_json() for d in descriptions]})
    else:
        out = console()
        for index, description in enumerate(descriptions):
            if index:
                _line(out, "")
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


def run(args: argparse.Namespace) -> int:
    verb = getattr(args, "verb_run", None)
    if verb is None:
        args.groups_parser.print_help()
        return EXIT_ERROR
    code: int = run_client_command("groups", verb, args)
    return code


def add_parser(subcommands: Any) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser: argparse.ArgumentParser = subcommands.add_parser(
        "groups",
        help="list, describe, reset the offsets of and delete consumer groups",
        description=(
            "Manage consumer groups on any Kafka-compatible cluster, like"
            " kafka-consumer-groups.sh. Exit codes: 0 done, 1 refused, 2 bad usage,"
            " broker unreachable or no such group/topic."
        ),
        epilog=EXAMPLES,
        formatter_class=formatter,
    )
    parser.set_defaults(run=run, groups_parser=parser)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

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
