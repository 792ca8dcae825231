"""`odradek perf produce` and `odradek perf consume`: how fast a cluster takes and serves
records, in the manner of Kafka's kafka-producer-perf-test.sh and kafka-consumer-perf-test.sh.

produce: `--num-records N` records of `--record-size S` random letters (one payload, reused,
as Kafka's tool does) or lines of `--payload-file FILE` (picked at random per record), sent as
fast as the client goes or paced at `--throughput` records/s. The client starts from the
settings of `benchmarks/perf.py`, so the two agree: linger.ms=5, batch.size=1048576,
socket.nagle.disable=true, queue.buffering.max.messages=1000000; `--acks` and `-X` override
them. Latency of a record is librdkafka's measure from `produce()` to the broker's
acknowledgement, for every record. Time runs from the first `produce()` to the last delivery
report. A delivery report per record costs the Python client about a quarter of its send rate
at 100-byte records; `-X delivery.report.only.error=true` turns them off for successful
records, as `benchmarks/perf.py` does, and then no latency is measured (`latency_ms` null).

consume: reads `--num-records` records from the beginning of every partition (assigned, no
group; with `--group`, subscribed in that group), with fetch.queue.backoff.ms=1. The topic's
metadata is fetched before the clock starts; time runs from the assignment to the last record.
The run fails (exit 1) when no record arrives for `--timeout` seconds.

Both show a live progress bar on stderr when stderr is a terminal, and end with records/s,
MB/s (10^6 bytes of values per second; keys are not counted) and, for produce, the latency
average and percentiles. `--output json` prints one object instead:

    produce: {"topic": str, "acks": str, "throughput_limit": int, "records": int,
              "failed": int, "bytes": int, "elapsed_s": float, "records_per_s": float,
              "mb_per_s": float,
              "latency_ms": {"avg": float, "p50": float, "p95": float, "p99": float,
                             "p99_9": float, "max": float} | null}
    consume: {"topic": str, "records": int, "bytes": int, "elapsed_s": float,
              "records_per_s": float, "mb_per_s": float}

Exit codes: 0 done, 1 records failed or the run stalled, 2 bad usage, unreachable broker or no
such topic.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from odradek.cli.client_options import (
    EXIT_OK,
    EXIT_REFUSED,
    ClientError,
    add_client_options,
    add_properties_option,
    client_config,
    connect_client,
    error_message,
    paragraph,
    parse_properties_option,
    print_error,
    print_json,
    run_client_command,
    topic_partitions,
)
from odradek.cli.perf_stats import Latency, Pacer, Throughput

COMMAND = "perf"
CLIENT_ID = "odradek-perf"
PRODUCER_DEFAULTS = {
    "linger.ms": 5,
    "batch.size": 1048576,
    "socket.nagle.disable": True,
    "queue.buffering.max.messages": 1000000,
}
CONSUMER_DEFAULTS = {"fetch.queue.backoff.ms": 1}
PROGRESS_EVERY_S = 0.1
BATCH = 10000

EXAMPLES = """examples:
  odradek perf produce bench --num-records 1000000 --record-size 100
  odradek perf produce bench --num-records 100000 --record-size 1024 --throughput 20000 --acks 1
  odradek perf produce bench --num-records 50000 --payload-file payloads.txt -X linger.ms=20
  odradek perf consume bench --num-records 1000000 --output json
"""

Tick = Callable[[int], None]


# -- progress ----------------------------------------------------------------------------------


@contextmanager
def progress(description: str, total: int) -> Iterator[Tick]:
    """A callback taking the count done so far: a rich progress bar on stderr when it is a
    terminal, nothing otherwise (a pipe, a file, a test)."""
    if not sys.stderr.isatty():
        yield lambda done: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        last = [0.0]

        def tick(done: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S or done >= total:
                last[0] = now
                bar.update(task, completed=done)

        yield tick


# -- produce -----------------------------------------------------------------------------------


def payloads(args: argparse.Namespace) -> list[bytes]:
    if args.payload_file is None:
        letters = string.ascii_letters.encode()
        return [bytes(random.choice(letters) for _ in range(args.record_size))]
    try:
        data = args.payload_file.read_bytes()
    except OSError as exc:
        raise ClientError(f"--payload-file {args.payload_file}: {exc.strerror or exc}") from None
    delimiter = args.payload_delimiter.encode().decode("unicode_escape").encode()
    found = [p for p in data.split(delimiter) if p]
    if not found:
        raise ClientError(f"--payload-file {args.payload_file}: no payloads in the file")
    return found


class ProduceRun:
    """Delivery reports of a perf produce run. Records delivered = records handed to the
    client - records failed, once every report is in; bytes likewise. The latency is
    librdkafka's own measure of each message, from produce() to the broker's
    acknowledgement, so no Python-side stamp or closure is needed per record."""

    def __init__(self, only_errors: bool) -> None:
        self.only_errors = only_errors
        self.sent = 0
        self.sent_bytes = 0
        self.failed = 0
        self.failed_bytes = 0
        self.latencies_s: list[float] = []
        self.first_error: str | None = None

    def report(self, err: Any, msg: Any) -> None:
        if err is None:
            self.latencies_s.append(msg.latency())
            return
        self.failed += 1
        self.failed_bytes += len(msg)
        if self.first_error is None:
            self.first_error = error_message(err)

    @property
    def delivered(self) -> int:
        return self.sent - self.failed

    def latency(self) -> Latency | None:
        if self.only_errors:
            return None
        return Latency.of([s * 1000 for s in self.latencies_s if s is not None])


def send(
    producer: Any,
    args: argparse.Namespace,
    bodies: list[bytes],
    run: ProduceRun,
    tick: Tick,
    start_s: float,
) -> None:
    """Hand --num-records records to the producer, paced by --throughput if it is set."""
    produce = producer.produce
    poll = producer.poll
    topic = args.topic
    pacer = Pacer(args.throughput, start_s) if args.throughput > 0 else None
    choose = random.choice
    single = bodies[0] if len(bodies) == 1 else None
    # the report callback is set once for the client (on_delivery in its configuration)
    for sent in range(args.num_records):
        if pacer is not None:
            delay = pacer.delay_s(sent, time.perf_counter())
            while delay > 0:
                poll(delay)
                delay = pacer.delay_s(sent, time.perf_counter())
        value = single if single is not None else choose(bodies)
        while True:
            try:
                produce(topic, value)
                break
            except BufferError:  # the local queue is full: serve deliveries to drain it
                poll(0.01)
        if single is None:
            run.sent_bytes += len(value)
        if sent % BATCH == 0:
            poll(0)
            tick(sent - len(producer))
    run.sent = args.num_records
    if single is not None:
        run.sent_bytes = len(single) * args.num_records


def cmd_produce(args: argparse.Namespace) -> int:
    from confluent_kafka import Producer

    if args.num_records < 1:
        raise ClientError("--num-records must be at least 1")
    if args.record_size is not None and args.record_size < 0:
        raise ClientError("--record-size must not be negative")
    bodies = payloads(args)
    overrides: dict[str, Any] = {}
    if args.acks is not None:
        overrides["acks"] = args.acks
    overrides.update(parse_properties_option(args.properties, "-X"))
    configured = {**client_config(args), **overrides}
    only_errors = str(configured.get("delivery.report.only.error", "")).lower() in ("true", "1")
    run = ProduceRun(only_errors)
    overrides["on_delivery"] = run.report
    producer, metadata, _ = connect_client(Producer, args, CLIENT_ID, PRODUCER_DEFAULTS, overrides)
    topic_partitions(metadata, args.topic)
    with progress(f"produce {args.topic}", args.num_records) as tick:
        start = time.perf_counter()
        send(producer, args, bodies, run, tick, start)
        while len(producer) > 0:
            producer.poll(PROGRESS_EVERY_S)
            tick(args.num_records - len(producer))
        elapsed = time.perf_counter() - start
    throughput = Throughput(run.delivered, run.sent_bytes - run.failed_bytes, elapsed)
    latency = run.latency()
    if args.output == "json":
        print_json(
            {
                "topic": args.topic,
                "acks": str(configured.get("acks", "all")),
                "throughput_limit": args.throughput,
                "failed": run.failed,
                **throughput.to_json(),
                "latency_ms": None if latency is None else latency.to_json(),
            }
        )
    else:
        print(f"produce: {throughput.text()}")
        print(
            "latency: not measured (delivery.report.only.error)"
            if latency is None
            else latency.text()
        )
    if run.failed:
        print_error(COMMAND, f"{run.failed} records failed; the first: {run.first_error}")
        return EXIT_REFUSED
    return EXIT_OK


# -- consume -----------------------------------------------------------------------------------


def cmd_consume(args: argparse.Namespace) -> int:
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    if args.num_records < 1:
        raise ClientError("--num-records must be at least 1")
    overrides: dict[str, Any] = {
        "group.id": args.group or f"odradek-perf-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": bool(args.group),
        "auto.offset.reset": "earliest",
    }
    overrides.update(parse_properties_option(args.properties, "-X"))
    consumer, metadata, _ = connect_client(Consumer, args, CLIENT_ID, CONSUMER_DEFAULTS, overrides)
    partitions = topic_partitions(metadata, args.topic)
    records = 0
    size = 0
    stalled = False
    try:
        with progress(f"consume {args.topic}", args.num_records) as tick:
            start = time.perf_counter()
            if args.group:
                consumer.subscribe([args.topic])
            else:
                consumer.assign(
                    [TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions]
                )
            end = start
            last_record = time.monotonic()
            while records < args.num_records:
                messages = consumer.consume(
                    num_messages=min(BATCH, args.num_records - records), timeout=0.1
                )
                for msg in messages:
                    if msg.error() is None:
                        records += 1
                        size += len(msg)
                if messages:
                    end = time.perf_counter()
                    last_record = time.monotonic()
                    tick(records)
                elif time.monotonic() - last_record > args.timeout:
                    stalled = True
                    break
    finally:
        consumer.close()
    throughput = Throughput(records, size, end - start)
    if args.output == "json":
        print_json({"topic": args.topic, **throughput.to_json()})
    else:
        print(f"consume: {throughput.text()}")
    if stalled:
        print_error(
            COMMAND,
            f"no record for {args.timeout:g} s after {records} of {args.num_records} records",
        )
        return EXIT_REFUSED
    return EXIT_OK


# -- command line ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    verb = getattr(args, "verb_run", None)
    if verb is None:
        args.perf_parser.print_help()
        return 2
    code: int = run_client_command(COMMAND, verb, args)
    return code


def add_parser(subcommands: Any) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser: argparse.ArgumentParser = subcommands.add_parser(
        COMMAND,
        help="measure produce and consume throughput and latency",
        description=paragraph(
            "Measure how fast a cluster takes and serves records, like Kafka's"
            " kafka-producer-perf-test.sh and kafka-consumer-perf-test.sh."
        ),
        epilog=EXAMPLES,
        formatter_class=formatter,
    )
    parser.set_defaults(run=run, perf_parser=parser)
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    produce = verbs.add_parser(
        "produce",
        help="send N records and report records/s, MB/s and latency percentiles",
        description=paragraph(
            "Send --num-records records as fast as possible (or at --throughput records/s)"
            " and report records/s, MB/s and the latency from send to acknowledgement"
            " (avg, p50, p95, p99, p99.9, max)."
        ),
        epilog=(
            "examples:\n"
            "  odradek perf produce bench --num-records 1000000 --record-size 100\n"
            "  odradek perf produce bench --num-records 20000 --record-size 100"
            " --throughput 2000 --acks 1\n"
        ),
        formatter_class=formatter,
    )
    produce.add_argument("topic", metavar="TOPIC")
    produce.add_argument(
        "--num-records", type=int, required=True, metavar="N", help="records to send"
    )
    payload = produce.add_mutually_exclusive_group(required=True)
    payload.add_argument("--record-size", type=int, metavar="BYTES", help="size of each value")
    payload.add_argument(
        "--payload-file",
        type=Path,
        metavar="FILE",
        help="values picked at random from this file, split at --payload-delimiter",
    )
    produce.add_argument(
        "--payload-delimiter",
        default="\\n",
        metavar="DELIM",
        help="what separates payloads in --payload-file (default \\n)",
    )
    produce.add_argument(
        "--throughput",
        type=float,
        default=-1,
        metavar="RECORDS_PER_S",
        help="pace sending at this many records/s (default -1: no limit)",
    )
    produce.add_argument(
        "--acks", choices=("all", "-1", "0", "1"), help="acks the leader waits for (default all)"
    )
    add_properties_option(produce, "producer-property", "producer", "linger.ms=10")
    add_client_options(produce)
    produce.set_defaults(verb_run=cmd_produce)

    consume = verbs.add_parser(
        "consume",
        help="read N records and report records/s and MB/s",
        description=paragraph(
            "Read --num-records records from the beginning of the topic and report"
            " records/s and MB/s. Fails when no record arrives for --timeout seconds."
        ),
        epilog="examples:\n  odradek perf consume bench --num-records 1000000\n",
        formatter_class=formatter,
    )
    consume.add_argument("topic", metavar="TOPIC")
    consume.add_argument(
        "--num-records", type=int, required=True, metavar="N", help="records to read"
    )
    consume.add_argument("--group", metavar="GROUP", help="read as a member of GROUP")
    add_properties_option(consume, "consumer-property", "consumer", "fetch.min.bytes=1024")
    add_client_options(consume)
    consume.set_defaults(verb_run=cmd_consume)
