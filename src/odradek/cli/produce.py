"""`odradek produce TOPIC`: records from stdin or a file, one per line, as Kafka's
kafka-console-producer.sh and `kcat -P` send them.

- A record is a line without its final `\\n` (a `\\r` before it is kept: the bytes are sent as
  they are). A last line without a newline is a record too; an empty line is an empty value.
- `--key-separator SEP`: the line is split at the first SEP into key and value; a line without
  SEP is an error. SEP may be written with the escapes `\\t`, `\\n`, `\\\\`.
- `--header KEY=VALUE` (repeatable): headers every record carries, in the order given. A header
  without `=` or with an empty key is a usage error (exit 2) before anything is sent.
- `--value-format json`: each value is checked to be one JSON document before it is sent; the
  first one that is not stops the command (exit 2) with its line number. Records before it have
  been sent (they are flushed first). The value is sent as written, not re-encoded.
- `--partition N` sends every record to N; otherwise the client's partitioner chooses (murmur2
  of the key for keyed records, as Java's and librdkafka's default partitioners do).
- `--acks`, `--compression`, `--idempotent`, and `-X KEY=VALUE` for any other librdkafka
  producer property (these win over `--command-config`).

Records go through librdkafka's batching (linger.ms=5 unless configured); the command never
flushes per record. A record the broker does not acknowledge within `--timeout` seconds of being
handed to the client fails. Each failed delivery is reported on stderr with its line number and
the reason (the first 10 of them, then a count), and the exit code is 1 if any record failed.
At the end a one-line summary goes to stderr; with `--output json` the summary is this object
on stdout instead:

    {"topic": str, "records": int, "delivered": int, "failed": int, "bytes": int,
     "partitions": [{"partition": int, "records": int, "last_offset": int}],
     "errors": [{"line": int, "partition": int | null, "code": str, "message": str}]}

`bytes` counts key and value bytes of the delivered records; `errors` holds at most 100
failures. Exit codes: 0 every record delivered, 1 some failed (or Ctrl-C stopped the input,
130), 2 bad usage, invalid input, unreachable broker or no such topic/partition.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

from odradek.cli.client_options import (
    EXIT_OK,
    EXIT_REFUSED,
    ClientError,
    add_client_options,
    add_properties_option,
    connect_client,
    error_message,
    kafka_error,
    paragraph,
    parse_properties_option,
    print_error,
    print_json,
    run_client_command,
    topic_partitions,
)

CLIENT_ID = "odradek-produce"
COMMAND = "produce"
FAILURES_SHOWN = 10
FAILURES_KEPT = 100
POLL_EVERY = 1000  # serve delivery reports every this many records

EXAMPLES = """examples:
  echo 'hello' | odradek produce orders
  odradek produce orders --file records.txt --key-separator ':'
  printf 'k1\\t{"id": 1}\\n' | odradek produce orders --key-separator '\\t' --value-format json
  odradek produce orders --header source=cli --header trace=42 --acks 1 --compression zstd
  odradek produce orders --partition 2 -X linger.ms=50 --output json < records.txt
"""

Header = tuple[str, bytes]


# -- input -------------------------------------------------------------------------------------


def parse_header(text: str) -> Header:
    """`KEY=VALUE` as a record header; the value may be empty or contain `=`."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ClientError(f"--header {text!r}: expected KEY=VALUE")
    if not key:
        raise ClientError(f"--header {text!r}: the header key is empty")
    return key, value.encode()


_SEPARATOR_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "\\": "\\", "0": "\0"}


def parse_separator(text: str) -> bytes:
    """A `--key-separator` with `\\t`, `\\n`, `\\r`, `\\0` and `\\\\` escapes, as bytes."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _SEPARATOR_ESCAPES:
            out.append(_SEPARATOR_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    separator = "".join(out).encode()
    if not separator:
        raise ClientError("--key-separator: the separator is empty")
    return separator


@dataclass(frozen=True, slots=True)
class LineParser:
    """Turns input lines into (key, value); raises ClientError (exit 2) on a bad line."""

    key_separator: bytes | None = None
    json_values: bool = False

    def parse(self, line: bytes, line_number: int) -> tuple[bytes | None, bytes]:
        if line.endswith(b"\n"):
            line = line[:-1]
        key: bytes | None = None
        value = line
        if self.key_separator is not None:
            key, sep, value = line.partition(self.key_separator)
            if not sep:
                raise ClientError(
                    f"line {line_number}: no key separator {self.key_separator!r} in the line"
                )
        if self.json_values:
            check_json(value, line_number)
        return key, value


def check_json(value: bytes, line_number: int) -> None:
    try:
        json.loads(value)
    except UnicodeDecodeError:
        raise ClientError(f"line {line_number}: the value is not valid JSON: not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ClientError(
            f"line {line_number}: the value is not valid JSON: {exc.msg} (column {exc.colno})"
        ) from None


def read_lines(stream: IO[bytes]) -> Iterator[bytes]:
    yield from stream


# -- delivery ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Failure:
    line: int
    partition: int | None
    code: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "partition": self.partition,
            "code": self.code,
            "message": self.message,
        }


@dataclass
class Deliveries:
    """Delivery reports of one run: counts, per-partition last offsets, the first failures."""

    delivered: int = 0
    failed: int = 0
    bytes: int = 0
    records_by_partition: dict[int, int] = field(default_factory=dict)
    last_offsets: dict[int, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)

    def on_delivery(self, line: int, err: Any, msg: Any) -> None:
        if err is not None:
            self.fail(line, msg.partition(), err)
            return
        self.delivered += 1
        self.bytes += len(msg) + len(msg.key() or b"")
        partition = msg.partition()
        self.records_by_partition[partition] = self.records_by_partition.get(partition, 0) + 1
        offset = msg.offset()
        if offset > self.last_offsets.get(partition, -1):
            self.last_offsets[partition] = offset

    def fail(self, line: int, partition: int, err: Any) -> None:
        """Count a record the client refused (`err` a KafkaError) and report the first ones."""
        self.failed += 1
        where = partition if partition >= 0 else None
        if len(self.failures) < FAILURES_KEPT:
            self.failures.append(Failure(line, where, str(err.name()), error_message(err)))
        # after a fatal error every record fails with _FATAL; the reason is reported once
        if self.failed <= FAILURES_SHOWN and err.name() != "_FATAL":
            to = "" if where is None else f" to partition {where}"
            print_error(COMMAND, f"line {line}: record{to} not delivered: {error_message(err)}")

    def to_json(self, topic: str, records: int) -> dict[str, Any]:
        return {
            "topic": topic,
            "records": records,
            "delivered": self.delivered,
            "failed": self.failed,
            "bytes": self.bytes,
            "partitions": [
                {
                    "partition": p,
                    "records": self.records_by_partition[p],
                    "last_offset": self.last_offsets.get(p, -1),
                }
                for p in sorted(self.records_by_partition)
            ],
            "errors": [f.to_json() for f in self.failures],
        }

    def summary(self, topic: str, records: int) -> str:
        parts = ", ".join(
            f"{topic}-{p} up to offset {self.last_offsets[p]}" for p in sorted(self.last_offsets)
        )
        text = f"{self.delivered} of {records} records delivered ({self.bytes} bytes)"
        if parts:
            text += f": {parts}"
        if self.failed:
            text += f"; {self.failed} failed"
            if self.failed > FAILURES_SHOWN:
                text += f" ({self.failed - FAILURES_SHOWN} not shown)"
        return text


def producer_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """librdkafka properties from the command's flags, then `-X` (which wins)."""
    out: dict[str, Any] = {}
    if args.acks is not None:
        out["acks"] = args.acks
    if args.compression is not None:
        out["compression.type"] = args.compression
    if args.idempotent:
        out["enable.idempotence"] = True
    out.update(parse_properties_option(args.properties))
    return out


def send(
    producer: Any,
    topic: str,
    lines: Iterable[bytes],
    parser: LineParser,
    headers: Sequence[Header],
    partition: int | None,
    deliveries: Deliveries,
) -> int:
    """Hand every line to the producer (batched by librdkafka); the number of records sent.

    A bad line raises ClientError after what was sent before it has been flushed."""
    from confluent_kafka import KafkaException

    extra: dict[str, Any] = {}
    if headers:
        extra["headers"] = list(headers)
    if partition is not None:
        extra["partition"] = partition
    produce = producer.produce
    sent = 0
    for line_number, line in enumerate(lines, 1):
        try:
            key, value = parser.parse(line, line_number)
        except ClientError:
            flush(producer)
            raise
        callback = partial(deliveries.on_delivery, line_number)
        while True:
            try:
                produce(topic, value, key, on_delivery=callback, **extra)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)
            except KafkaException as exc:  # refused before sending, e.g. a record too large
                if exc.args[0].fatal():  # the client cannot go on (see cmd_produce)
                    raise
                deliveries.fail(
                    line_number, partition if partition is not None else -1, exc.args[0]
                )
                break
        sent = line_number
        if sent % POLL_EVERY == 0:
            producer.poll(0)
    return sent


def flush(producer: Any) -> None:
    """Wait for every queued record's delivery report (each is bounded by message.timeout.ms)."""
    while len(producer) > 0:
        producer.flush(0.5)


def cmd_produce(args: argparse.Namespace) -> int:
    from confluent_kafka import KafkaException, Producer

    headers = [parse_header(text) for text in args.header]
    key_separator = None if args.key_separator is None else parse_separator(args.key_separator)
    parser = LineParser(key_separator, args.value_format == "json")
    defaults = {"linger.ms": 5, "message.timeout.ms": int(args.timeout * 1000)}
    producer, metadata, errors = connect_client(
        Producer, args, CLIENT_ID, defaults, producer_overrides(args)
    )
    topic_partitions(metadata, args.topic, args.partition)
    deliveries = Deliveries()
    stream = _open_input(args.file)
    interrupted = False
    try:
        try:
            records = send(
                producer,
                args.topic,
                read_lines(stream),
                parser,
                headers,
                args.partition,
                deliveries,
            )
        except KeyboardInterrupt:
            interrupted = True
            records = deliveries.delivered + deliveries.failed + len(producer)
        flush(producer)
    except KafkaException as exc:
        # a fatal error (e.g. --idempotent against a broker without InitProducerId): the
        # reason is in the error callback; the exception only says "Fatal error"
        if kafka_error(exc) is None or not kafka_error(exc).fatal():
            raise
        fatal = [e for e in errors if e.fatal()]
        reason = error_message(fatal[0] if fatal else exc)
        raise ClientError(f"the producer failed: {reason}", EXIT_REFUSED) from None
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    if args.output == "json":
        print_json(deliveries.to_json(args.topic, records))
    else:
        print(f"odradek {COMMAND}: {deliveries.summary(args.topic, records)}", file=sys.stderr)
    if interrupted:
        return 130
    return EXIT_REFUSED if deliveries.failed else EXIT_OK


def _open_input(path: Path | None) -> IO[bytes]:
    if path is None:
        return sys.stdin.buffer
    try:
        return path.open("rb")
    except OSError as exc:
        raise ClientError(f"--file {path}: {exc.strerror or exc}") from None


# -- command line ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    code: int = run_client_command(COMMAND, cmd_produce, args)
    return code


def add_parser(subcommands: Any) -> None:
    parser: argparse.ArgumentParser = subcommands.add_parser(
        COMMAND,
        help="send records to a topic, one per line of stdin or a file",
        description=paragraph(
            "Send records to a topic, one per input line, like kafka-console-producer.sh and"
            " kcat -P. Exit codes: 0 every record delivered, 1 some record failed,"
            " 2 bad usage or input, broker unreachable or no such topic."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("topic", metavar="TOPIC")
    records = parser.add_argument_group("records")
    records.add_argument(
        "--file", type=Path, metavar="FILE", help="read records from FILE instead of stdin"
    )
    records.add_argument(
        "--key-separator",
        metavar="SEP",
        help="split each line at the first SEP into key and value (escapes: \\t \\n \\\\)",
    )
    records.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a header every record carries (repeatable)",
    )
    records.add_argument(
        "--value-format",
        choices=("raw", "json"),
        default="raw",
        help="json: check each value is valid JSON before it is sent (default raw)",
    )
    delivery = parser.add_argument_group("delivery")
    delivery.add_argument(
        "--partition", type=int, metavar="N", help="send every record to partition N"
    )
    delivery.add_argument(
        "--acks",
        choices=("all", "-1", "0", "1"),
        help="acknowledgements the leader waits for (default all)",
    )
    delivery.add_argument(
        "--compression",
        choices=("none", "gzip", "snappy", "lz4", "zstd"),
        help="compression codec of the batches (default none)",
    )
    delivery.add_argument(
        "--idempotent",
        action="store_true",
        help="idempotent producer: no duplicates on retries (implies acks=all)",
    )
    add_properties_option(delivery, "producer-property", "producer", "linger.ms=10")
    add_client_options(
        parser, output_help="a summary line on stderr, or json: the summary on stdout"
    )
    parser.set_defaults(run=run)
