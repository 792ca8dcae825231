"""`odradek consume TOPIC`: read records and write them to stdout, as Kafka's
kafka-console-consumer.sh and `kcat -C` do.

Where reading starts, per partition:

- `--from-beginning`: the log start offset (in a group: where the group has no commit, as
  Kafka's tool does; a committed offset wins).
- `--offset N`: offset N; `--offset -N`: N records before the log end (kcat's `-o -N`).
  These override a group's committed offsets.
- `--from-time ISO8601`: the first record with a timestamp at or after it (no zone: UTC); the
  log end where there is none. Overrides committed offsets.
- none of them: a group resumes from its committed offsets; otherwise (no group, or no commit)
  reading starts at the log start offset, or at the log end with `--follow`.

Where it stops: after `-n COUNT` records; without `--follow`, when every partition read has
been read to its end (its log end offset when reached); with `--follow`, only at `-n` or on
Ctrl-C (SIGINT) or SIGTERM, which end the command cleanly with exit 0.

`--group G` joins consumer group G (subscribe, partitions assigned by the group; with
`--partition` the partition is assigned directly and the group only holds the commits) and
commits the offsets of the records written, when the command ends (Ctrl-C included) and every
5 s on the way. Records read past `-n` are not counted as consumed. Without `--group` nothing
is committed. `--isolation-level read_committed` hides aborted transactional records and reads
up to the last stable offset; the default is read_uncommitted, as in Kafka's tools.

Output: records as `--format` renders them (default: the value and a newline), or with
`--output json` one JSON object per record per line; both are described in
`odradek.cli.record_format`. A summary goes to stderr at the end: a line of text, or with
`--output json` one line holding

    {"records": int, "bytes": int,
     "partitions": [{"topic": str, "partition": int, "records": int, "last_offset": int}]}

`bytes` counts keys and values. Exit codes: 0 done, 1 the broker refused a read (the error is
printed), 2 bad usage, unreachable broker or no such topic/partition.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from odradek.cli.client_options import (
    EXIT_OK,
    ClientError,
    add_client_options,
    add_properties_option,
    connect_client,
    error_message,
    paragraph,
    parse_properties_option,
    print_error,
    run_client_command,
    topic_partitions,
)
from odradek.cli.group_reset import parse_datetime_ms
from odradek.cli.record_format import DEFAULT_FORMAT, Summary, compile_template, render_json

CLIENT_ID = "odradek-consume"
COMMAND = "consume"
BATCH = 1000
POLL_S = 0.2

# librdkafka's logical offsets (confluent_kafka.OFFSET_*, and RD_KAFKA_OFFSET_TAIL_BASE)
OFFSET_BEGINNING = -2
OFFSET_END = -1
OFFSET_STORED = -1000
OFFSET_TAIL_BASE = -2000

EXAMPLES = """examples:
  odradek consume orders                                  # everything, then exit
  odradek consume orders --follow                         # new records until Ctrl-C
  odradek consume orders --group billing --follow         # resume, commit on the way and at Ctrl-C
  odradek consume orders --partition 0 --offset 42 -n 10
  odradek consume orders --offset -5                      # the last 5 records of each partition
  odradek consume orders --from-time 2024-05-01T12:00:00Z
  odradek consume orders --format '{partition}:{offset} {key}={value} [{headers}]\\n'
  odradek consume orders --output json | jq .value
"""


def start_offset(args: argparse.Namespace) -> int | None:
    """The librdkafka offset every partition starts at (not for --from-time), or None for a
    group's committed offsets, falling back to auto.offset.reset."""
    if args.offset is not None:
        offset: int = args.offset
        return offset if offset >= 0 else OFFSET_TAIL_BASE + offset
    if args.group:
        return None
    return OFFSET_BEGINNING if args.from_beginning or not args.follow else OFFSET_END


def consumer_config(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """(defaults, overrides) of the consumer's librdkafka configuration."""
    from_start = args.from_beginning or not args.follow
    defaults = {
        "auto.offset.reset": "earliest" if from_start else "latest",
        "isolation.level": args.isolation_level,
        "fetch.queue.backoff.ms": 1,
        "auto.commit.interval.ms": 5000,
    }
    overrides: dict[str, Any] = {
        # a group id is required by the client; without --group it is never used
        "group.id": args.group or f"odradek-consume-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": bool(args.group),
        "enable.auto.offset.store": False,  # only what was written counts as consumed
        "enable.partition.eof": True,
    }
    overrides.update(parse_properties_option(args.properties))
    return defaults, overrides


class Stop:
    """Set by SIGINT/SIGTERM: the read loop ends at its next turn, so the consumer is closed
    (and a group's offsets committed) instead of being torn down mid-call."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: Any) -> None:
        self.requested = True


@contextmanager
def stop_on_signals() -> Iterator[Stop]:
    stop = Stop()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def time_offsets(
    consumer: Any, topic: str, partitions: list[int], text: str, timeout_s: float
) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    try:
        timestamp_ms = parse_datetime_ms(text)
    except ClientError:
        raise ClientError(
            f"--from-time {text!r} is not an ISO 8601 date-time such as 2024-05-01T12:00:00Z"
        ) from None
    wanted = [TopicPartition(topic, p, timestamp_ms) for p in partitions]
    found = consumer.offsets_for_times(wanted, timeout=timeout_s)
    out: dict[int, int] = {}
    for tp in found:
        if tp.error is not None:
            raise ClientError(
                f"cannot look up offsets by time for {topic}-{tp.partition}:"
                f" {error_message(tp.error)}"
            )
        out[tp.partition] = tp.offset if tp.offset >= 0 else OFFSET_END
    return out


class Reader:
    """The read loop: writes records, tracks the partitions at their end, stores offsets."""

    def __init__(self, consumer: Any, args: argparse.Namespace, stop: Stop) -> None:
        self.consumer = consumer
        self.args = args
        self.stop = stop
        self.render = render_json if args.output == "json" else compile_template(args.format)
        self.summary = Summary()
        self.assigned: set[tuple[str, int]] = set()
        self.at_end: set[tuple[str, int]] = set()
        self.starts: dict[int, int] = {}
        self.ever_assigned = False
        self.out = sys.stdout.buffer

    def on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            # an explicit start applies once: a partition that comes back after a rebalance
            # resumes from what this member committed, not from the start again
            if tp.partition in self.starts:
                tp.offset = self.starts.pop(tp.partition)
        self.assigned.update((tp.topic, tp.partition) for tp in partitions)
        self.ever_assigned = True
        consumer.assign(partitions)

    def on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            self.assigned.discard((tp.topic, tp.partition))
            self.at_end.discard((tp.topic, tp.partition))

    def done(self) -> bool:
        if self.stop.requested:
            return True
        if self.args.count is not None and self.summary.records >= self.args.count:
            return True
        return not self.args.follow and self.ever_assigned and self.assigned <= self.at_end

    def run(self, deadline_for_assignment: float) -> None:
        from confluent_kafka import KafkaError, TopicPartition

        consumer = self.consumer
        while not self.done():
            want = BATCH
            if self.args.count is not None:
                want = min(want, self.args.count - self.summary.records)
            messages = consumer.consume(num_messages=want, timeout=POLL_S)
            chunk: list[bytes] = []
            last: dict[tuple[str, int], int] = {}
            for msg in messages:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        self.at_end.add((msg.topic(), msg.partition()))
                        continue
                    self._read_error(err)
                    continue
                key = (msg.topic(), msg.partition())
                self.at_end.discard(key)
                chunk.append(self.render(msg))
                self.summary.add(msg)
                last[key] = msg.offset()
            if chunk:
                self.out.write(b"".join(chunk))
                self.out.flush()
                if self.args.group:
                    consumer.store_offsets(
                        offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
                    )
            if (
                not self.ever_assigned
                and not self.args.follow
                and time.monotonic() > deadline_for_assignment
            ):
                raise ClientError(
                    f"no partition of '{self.args.topic}' was assigned to this member of group"
                    f" '{self.args.group}' within {self.args.timeout:g} s"
                )

    def _read_error(self, err: Any) -> None:
        from confluent_kafka import KafkaException

        if err.fatal() or err.code() in _stopping_errors():
            raise KafkaException(err)
        print_error(COMMAND, error_message(err))


def _stopping_errors() -> set[int]:
    from confluent_kafka import KafkaError

    return {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError._UNKNOWN_TOPIC,
    }


def cmd_consume(args: argparse.Namespace) -> int:
    from confluent_kafka import Consumer, TopicPartition

    if args.count is not None and args.count < 1:
        raise ClientError(f"-n {args.count}: the count must be at least 1")
    if args.output != "json":
        compile_template(args.format)  # a bad template is a usage error before connecting
    defaults, overrides = consumer_config(args)
    consumer, metadata, _ = connect_client(Consumer, args, CLIENT_ID, defaults, overrides)
    partitions = topic_partitions(metadata, args.topic, args.partition)
    with stop_on_signals() as stop:
        reader = Reader(consumer, args, stop)
        try:
            if args.from_time is not None:
                reader.starts = time_offsets(
                    consumer, args.topic, partitions, args.from_time, args.timeout
                )
            elif (start := start_offset(args)) is not None:
                reader.starts = dict.fromkeys(partitions, start)
            if args.group and args.partition is None:
                consumer.subscribe(
                    [args.topic], on_assign=reader.on_assign, on_revoke=reader.on_revoke
                )
            else:
                reader.on_assign(
                    consumer,
                    [
                        TopicPartition(args.topic, p, reader.starts.get(p, OFFSET_STORED))
                        for p in partitions
                    ],
                )
            reader.run(time.monotonic() + args.timeout)
        finally:
            _close(consumer, args)
    _print_summary(reader.summary, args)
    return EXIT_OK


def _close(consumer: Any, args: argparse.Namespace) -> None:
    """Close the consumer: in a group, librdkafka commits the stored offsets and leaves."""
    try:
        consumer.close()
    except Exception as exc:  # a failed final commit is worth a line, not a traceback
        if args.group:
            print_error(COMMAND, f"closing the consumer failed: {error_message(exc)}")


def _print_summary(summary: Summary, args: argparse.Namespace) -> None:
    import json

    if args.output == "json":
        print(json.dumps(summary.to_json()), file=sys.stderr)
    else:
        print(f"odradek {COMMAND}: {summary.text()}", file=sys.stderr)


# -- command line ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    code: int = run_client_command(COMMAND, cmd_consume, args)
    return code


def add_parser(subcommands: Any) -> None:
    parser: argparse.ArgumentParser = subcommands.add_parser(
        COMMAND,
        help="read records from a topic and write them to stdout",
        description=paragraph(
            "Read records from a topic, like kafka-console-consumer.sh and kcat -C, and write"
            " them to stdout; a summary goes to stderr at the end. Without --follow the"
            " command ends at the end of every partition. Exit codes: 0 done, 1 a read was"
            " refused, 2 bad usage, broker unreachable or no such topic."
        ),
        epilog=EXAMPLES + _FORMAT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("topic", metavar="TOPIC")
    where = parser.add_argument_group("what to read")
    where.add_argument("--group", metavar="GROUP", help="join GROUP and commit what was read")
    where.add_argument("--partition", type=int, metavar="N", help="read only partition N")
    start = where.add_mutually_exclusive_group()
    start.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the log start offset (in a group: where it has no commit)",
    )
    start.add_argument(
        "--offset",
        type=int,
        metavar="N",
        help="start at offset N, or with -N at N records before the log end",
    )
    start.add_argument(
        "--from-time",
        metavar="ISO8601",
        help="start at the first record at or after this time (no zone: UTC)",
    )
    where.add_argument(
        "-n",
        "--count",
        "--max-messages",
        dest="count",
        type=int,
        metavar="COUNT",
        help="stop after COUNT records",
    )
    where.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep waiting for new records until -n COUNT or Ctrl-C",
    )
    where.add_argument(
        "--isolation-level",
        choices=("read_uncommitted", "read_committed"),
        default="read_uncommitted",
        help="read_committed: only committed transactional records (default read_uncommitted)",
    )
    add_properties_option(where, "consumer-property", "consumer", "fetch.min.bytes=1024")
    shown = parser.add_argument_group("how records are written")
    shown.add_argument(
        "--format",
        default=DEFAULT_FORMAT,
        metavar="TEMPLATE",
        help="how each record is written, see below (default '{value}\\n')",
    )
    add_client_options(
        parser, output_help="text as --format says, or json: one object per record per line"
    )
    parser.set_defaults(run=run)


_FORMAT_HELP = """
--format placeholders:
  {topic} {partition} {offset}   where the record is
  {key} {value}                  raw bytes (nothing for null)
  {key_size} {value_size}        sizes in bytes (-1 for null)
  {headers}                      KEY=VALUE,KEY=VALUE
  {header:NAME}                  value of the first header NAME
  {timestamp} {time}             epoch milliseconds; ISO 8601 UTC
  {timestamp_type}               CreateTime, LogAppendTime or NoTimestamp
  {{ }}  \\n \\t \\r \\0 \\\\            literal braces and escapes
--output json writes one JSON object per record per line instead.
"""
