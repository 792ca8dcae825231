"""What `odradek groups` shows: group listings, descriptions and lag, delete results, and
how they are rendered as text (rich tables). Pure: nothing here talks to a broker.

The JSON forms (`to_json`) are the schemas listed in `odradek.cli.groups`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from odradek.cli.client_options import EXIT_ERROR, EXIT_OK, EXIT_REFUSED, ClientError

if TYPE_CHECKING:
    from rich.console import Console

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
                committed_or_none(committed.get(key)),
                log_end.get(key),
                member.member_id,
                member.client_id,
                member.host,
            )
    for key, offset in committed.items():
        if key not in rows and committed_or_none(offset) is not None:
            rows[key] = PartitionOffsets(key[0], key[1], offset, log_end.get(key))
    return [rows[key] for key in sorted(rows)]


def committed_or_none(offset: int | None) -> int | None:
    """A committed offset, or None for 'no commit' (librdkafka: -1001, Kafka: -1)."""
    return offset if offset is not None and offset >= 0 else None


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


# -- text output -------------------------------------------------------------------------------


def new_table(*headers: str, right: Sequence[str] = ()) -> Any:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, justify="right" if header in right else "left", no_wrap=True)
    return table


def text_cells(*values: object) -> list[Any]:
    """Table cells as plain Text, so '[' in an id is not read as markup."""
    from rich.text import Text

    return [Text(MISSING if value is None or value == "" else str(value)) for value in values]


def print_line(out: Console, text: str) -> None:
    out.print(text, markup=False, highlight=False)


def format_assignment(assignment: Iterable[TopicPartitionKey]) -> str:
    """`orders:0,1 payments:2`, the same syntax as --topic."""
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(assignment):
        by_topic.setdefault(topic, []).append(partition)
    return " ".join(f"{topic}:{','.join(map(str, parts))}" for topic, parts in by_topic.items())


def render_list(listings: Sequence[GroupListing], out: Console) -> None:
    if not listings:
        print_line(out, "No consumer groups.")
        return
    table = new_table("GROUP", "STATE", "TYPE")
    for listing in listings:
        kind = f"{listing.type} (simple)" if listing.simple else listing.type
        table.add_row(*text_cells(listing.group, listing.state, kind))
    out.print(table)


def render_describe(description: GroupDescription, out: Console) -> None:
    d = description
    print_line(
        out,
        f"Group {d.group}  state: {d.state}  assignor: {d.assignor or MISSING}"
        f"  coordinator: {d.coordinator or MISSING}  members: {len(d.members)}",
    )
    if d.state == "Empty":
        print_line(out, f"Consumer group '{d.group}' has no active members.")
    elif d.state in ("PreparingRebalance", "CompletingRebalance"):
        print_line(out, f"Warning: consumer group '{d.group}' is rebalancing.")
    print_line(out, "")
    if d.partitions:
        right = ("PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG")
        table = new_table(
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
                *text_cells(
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
        print_line(out, f"Total lag: {d.total_lag}")
    else:
        print_line(out, "No committed offsets and no assigned partitions.")
    if d.members:
        print_line(out, "")
        table = new_table(
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
                *text_cells(
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
        table = new_table(
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "NEW-OFFSET",
            right=("PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"),
        )
        for row in rows:
            table.add_row(*text_cells(row.topic, row.partition, row.current_offset, row.new_offset))
        out.print(table)
    else:
        print_line(out, f"No partitions to reset for group '{group}'.")
    if executed:
        print_line(out, f"Reset the offsets of group '{group}' on {len(rows)} partition(s).")
    else:
        print_line(out, "Dry run: nothing was changed. Add --execute to reset these offsets.")


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
            print_line(out, f"Deleted consumer group '{item.group}'.")


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
