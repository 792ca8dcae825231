"""How `odradek groups reset-offsets` plans new committed offsets, as Kafka's tool does.

Pure: the plan is computed from the committed offsets and the log start and end offsets the
command fetched; `odradek.cli.groups` fetches them and commits the plan with --execute.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from odradek.cli.client_options import ClientError

if TYPE_CHECKING:
    pass

from odradek.cli.group_views import PlanRow, TopicPartitionKey, committed_or_none

# -- reset plans -------------------------------------------------------------------------------


class PlanError(ValueError):
    """The reset cannot be planned (exit code 2)."""


class ResetSpec(NamedTuple):
    """A reset scenario: `earliest`, `latest`, `offset` (value), `shift` (value) or
    `datetime` (value: milliseconds since the epoch)."""

    kind: str
    value: int | None = None


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
        current = committed_or_none(committed.get(key))
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
