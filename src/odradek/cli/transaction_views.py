"""What `odradek transactions` shows: transaction listings and descriptions, and how they are
rendered as text (rich tables, as `odradek groups`). Pure: nothing here talks to a broker.

The JSON forms (`to_json`) are the schemas listed in `odradek.cli.transactions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from odradek.cli.client_options import ClientError
from odradek.cli.group_views import (
    format_assignment,
    new_table,
    print_line,
    text_cells,
)

if TYPE_CHECKING:
    from rich.console import Console

# Kafka's TransactionState names, as ListTransactions and DescribeTransactions spell them.
STATES = (
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
)


def parse_states(values: Iterable[str]) -> list[str]:
    """`--state` values (space- or comma-separated, any case) as Kafka's state names."""
    by_lower = {name.lower(): name for name in STATES}
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip()
            if not name:
                continue
            if name.lower() not in by_lower:
                raise ClientError(
                    f"unknown transaction state {name!r}; one of: {', '.join(STATES)}"
                )
            if by_lower[name.lower()] not in out:
                out.append(by_lower[name.lower()])
    return out


class TransactionListing(NamedTuple):
    transactional_id: str
    coordinator: int
    producer_id: int
    state: str

    def to_json(self) -> dict[str, Any]:
        return {
            "transactional_id": self.transactional_id,
            "coordinator": self.coordinator,
            "producer_id": self.producer_id,
            "state": self.state,
        }


class TransactionDescription(NamedTuple):
    transactional_id: str
    coordinator_id: int
    coordinator_host: str
    coordinator_port: int
    state: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    start_time_ms: int | None  # None: no transaction open
    duration_ms: int | None
    partitions: tuple[tuple[str, int], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "transactional_id": self.transactional_id,
            "coordinator": {
                "id": self.coordinator_id,
                "host": self.coordinator_host,
                "port": self.coordinator_port,
            },
            "state": self.state,
            "producer_id": self.producer_id,
            "producer_epoch": self.producer_epoch,
            "transaction_timeout_ms": self.timeout_ms,
            "transaction_start_time_ms": self.start_time_ms,
            "transaction_duration_ms": self.duration_ms,
            "partitions": [{"topic": t, "partition": p} for t, p in self.partitions],
        }


def describe_values(start_time_ms: int, now_ms: int) -> tuple[int | None, int | None]:
    """(start time, duration) as Kafka's tool shows them: unknown when no transaction is open
    (a start time below 0), else the duration is now minus the start time."""
    if start_time_ms < 0:
        return None, None
    return start_time_ms, max(0, now_ms - start_time_ms)


def render_list(listings: Sequence[TransactionListing], out: Console) -> None:
    if not listings:
        print_line(out, "No transactions.")
        return
    table = new_table(
        "TRANSACTIONAL-ID",
        "COORDINATOR",
        "PRODUCER-ID",
        "STATE",
        right=("COORDINATOR", "PRODUCER-ID"),
    )
    for item in listings:
        table.add_row(
            *text_cells(item.transactional_id, item.coordinator, item.producer_id, item.state)
        )
    out.print(table)


def render_describe(descriptions: Sequence[TransactionDescription], out: Console) -> None:
    if not descriptions:
        return
    right = ("COORDINATOR", "PRODUCER-ID", "EPOCH", "TIMEOUT-MS", "START-TIME-MS", "DURATION-MS")
    table = new_table(
        "TRANSACTIONAL-ID",
        "COORDINATOR",
        "PRODUCER-ID",
        "EPOCH",
        "STATE",
        "TIMEOUT-MS",
        "START-TIME-MS",
        "DURATION-MS",
        "PARTITIONS",
        right=right,
    )
    for d in descriptions:
        table.add_row(
            *text_cells(
                d.transactional_id,
                d.coordinator_id,
                d.producer_id,
                d.producer_epoch,
                d.state,
                d.timeout_ms,
                d.start_time_ms,
                d.duration_ms,
                format_assignment(d.partitions),
            )
        )
    out.print(table)
