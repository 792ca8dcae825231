"""Throughput, latency, start-up and memory of a Kafka-compatible broker, with confluent-kafka.

Not a test: pytest never collects it and nothing asserts on timings. Method and results are in
docs/benchmarks.md.

    python benchmarks/perf.py --spawn                    # start `odradek serve` and measure it
    python benchmarks/perf.py --spawn --preset large     # 200,000 x 1 KiB
    python benchmarks/perf.py --bootstrap 127.0.0.1:9092 # any running broker, Kafka included

Scenarios, each on a fresh topic with 1 partition and replication factor 1 (or
--replication-factor, against a cluster: `odradek cluster up -n 3`, then --bootstrap):

- produce-acks1 / produce-acksall: N records of S bytes, linger.ms=5, batch.size=1 MiB,
  socket.nagle.disable=true, produce() + poll(0) in a tight loop, flush at the end.
- consume: the topic produce-acks1 filled, from offset 0 (assign, fetch.queue.backoff.ms=1)
  until N records are read.
- latency: acks=1, linger.ms=0, paced at --latency-rate msgs/s; the time from produce() to the
  delivery callback of each message, p50/p99.

With --spawn the broker is started here: cold start is the time from launching the process to
the first answered Metadata request (raw socket: connect retry loop, ApiVersions v0, Metadata),
RSS idle is VmRSS one second after that, RSS peak is the largest VmRSS sampled every 50 ms during
the run and the kernel's VmHWM at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

PRESETS = {"default": (1_000_000, 100), "large": (200_000, 1024)}
SCENARIOS = ("produce-acks1", "produce-acksall", "consume", "latency")
MB = 1_000_000


# --- the spawned broker ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        data += chunk
    return bytes(data)


def _request(sock: socket.socket, frame: bytes, correlation_id: int) -> bytes:
    sock.sendall(struct.pack(">i", len(frame)) + frame)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    body = _recv_exact(sock, size)
    (answered,) = struct.unpack_from(">i", body)
    if answered != correlation_id:
        raise ConnectionError(f"correlation id {answered}, expected {correlation_id}")
    return body[4:]


_CLIENT_ID = b"perf"


def _api_versions(sock: socket.socket) -> dict[int, tuple[int, int]]:
    """ApiVersions v0 (every broker answers it): {api_key: (min, max)}."""
    header = struct.pack(">hhih", 18, 0, 1, len(_CLIENT_ID)) + _CLIENT_ID
    body = _request(sock, header, 1)
    _error, count = struct.unpack_from(">hi", body)
    versions = {}
    for i in range(count):
        key, low, high = struct.unpack_from(">hhh", body, 6 + 6 * i)
        versions[key] = (low, high)
    return versions


def _metadata_request(version: int) -> bytes:
    """Metadata for all topics, no auto-creation, at `version` (1..12)."""
    if version <= 8:
        header = struct.pack(">hhih", 3, version, 2, len(_CLIENT_ID)) + _CLIENT_ID
        body = struct.pack(">i", -1)  # null: all topics
        if version >= 4:
            body += b"\x00"  # allow_auto_topic_creation
        if version >= 8:
            body += b"\x00\x00"  # include cluster / topic authorized operations
        return header + body
    # flexible versions: request header v2 (tagged fields), compact arrays
    header = struct.pack(">hhih", 3, version, 2, len(_CLIENT_ID)) + _CLIENT_ID + b"\x00"
    body = b"\x00" + b"\x00"  # topics: null; allow_auto_topic_creation
    body += b"\x00\x00" if version <= 10 else b"\x00"  # authorized operations flags
    return header + body + b"\x00"


def _first_metadata(port: int, deadline: float) -> float:
    """Connect (retrying) and get one Metadata response; returns the time it arrived."""
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                low, high = _api_versions(sock).get(3, (1, 1))
                version = max(low, min(high, 1))
                _request(sock, _metadata_request(version), 2)
                return time.perf_counter()
        except OSError:
            if time.perf_counter() > deadline:
                raise
            time.sleep(0.002)


def _rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of `pid` in KiB, (0, 0) once it is gone."""
    values = {"VmRSS:": 0, "VmHWM:": 0}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                fields = line.split()  # "VmRSS:\t   12345 kB"
                if fields and fields[0] in values:
                    values[fields[0]] = int(fields[1])
    except OSError:
        pass
    return values["VmRSS:"], values["VmHWM:"]


class RssSampler:
    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_kib = max(self.peak_kib, _rss_kib(self.pid)[0])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class SpawnedBroker:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: str
    cold_start_ms: float
    ready_line_ms: float | None
    output: list[str] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        return self.process.returncode


def spawn_broker(
    serve_args: list[str], env: dict[str, str] | None = None, timeout_s: float = 30.0
) -> SpawnedBroker:
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="odradek-perf-")
    command = [sys.executable, "-m", "odradek", "serve", "--port", str(port)]
    command += ["--data-dir", data_dir, *serve_args]
    output: list[str] = []
    ready_at: list[float] = []
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)

    def drain() -> None:  # keep the pipe from filling up; note when "ready" is printed
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            if not ready_at and "ready" in line:
                ready_at.append(time.perf_counter())
            if len(output) < 1000:
                output.append(line)

    threading.Thread(target=drain, name="broker-output", daemon=True).start()
    try:
        answered = _first_metadata(port, started + timeout_s)
    except OSError as exc:
        process.kill()
        process.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
        tail = "\n".join(output[-20:])
        message = f"broker did not answer Metadata within {timeout_s} s: {exc}\n{tail}"
        raise SystemExit(message) from exc
    ready_ms = (ready_at[0] - started) * 1000 if ready_at else None
    return SpawnedBroker(process, port, data_dir, (answered - started) * 1000, ready_ms, output)


# --- scenarios -------------------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    records: int
    record_bytes: int
    seconds: float
    records_per_s: float
    mb_per_s: float
    errors: int = 0
    complete: bool = True  # False when --max-seconds cut the scenario short
    latency_ms: dict[str, float] | None = None
    note: str = ""


def _throughput(scenario: str, records: int, size: int, seconds: float, **extra: Any) -> Result:
    seconds = max(seconds, 1e-9)
    return Result(
        scenario, records, size, seconds, records / seconds, records * size / seconds / MB, **extra
    )


_ADMINS: dict[str, AdminClient] = {}


def create_topic(bootstrap: str, name: str, replication_factor: int = 1) -> None:
    # one AdminClient for the whole run: a client destroyed right after its request completes
    # leaves librdkafka logging about purged background events
    admin = _ADMINS.get(bootstrap)
    if admin is None:
        admin = _ADMINS[bootstrap] = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(name, num_partitions=1, replication_factor=replication_factor)
    future = admin.create_topics([new])[name]
    future.result(timeout=30)


def _payload(size: int) -> bytes:
    # random letters, like Kafka's producer perf tool: not compressible into nothing
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return bytes(alphabet[b % len(alphabet)] for b in os.urandom(size))


def produce(
    bootstrap: str, topic: str, acks: str, records: int, size: int, max_seconds: float
) -> Result:
    errors: list[str] = []

    def on_error(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "linger.ms": 5,
            "batch.size": 1_048_576,
            "socket.nagle.disable": True,
            "compression.type": "none",
            "queue.buffering.max.messages": 1_000_000,
            "delivery.report.only.error": True,
            "on_delivery": on_error,
        }
    )
    value = _payload(size)
    send = producer.produce
    poll = producer.poll
    sent = 0
    complete = True
    started = time.perf_counter()
    deadline = started + max_seconds
    while sent < records:
        try:
            send(topic, value)
        except BufferError:
            poll(0.01)
            if time.perf_counter() > deadline:
                complete = False
                break
            continue
        sent += 1
        poll(0)
        if not sent & 0x3FFF and time.perf_counter() > deadline:
            complete = False
            break
    left = producer.flush(max(1.0, deadline - time.perf_counter() + 30))
    elapsed = time.perf_counter() - started
    note = f"{left} records not delivered at the end" if left else ""
    if errors:
        note = (note + "; " if note else "") + f"first error: {errors[0]}"
    name = "produce-acks1" if acks == "1" else "produce-acksall"
    return _throughput(
        name,
        sent - left - len(errors),
        size,
        elapsed,
        errors=len(errors) + left,
        complete=complete,
        note=note,
    )


def consume(bootstrap: str, topic: str, records: int, max_seconds: float) -> Result:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"perf-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 1,
            "auto.offset.reset": "earliest",
        }
    )
    # Not timed: fetch the topic's metadata first. Otherwise librdkafka starts the offset query
    # before it knows the leader and retries it on a 500 ms timer, which would be counted.
    consumer.list_topics(topic, timeout=30)
    read = 0
    read_bytes = 0
    errors: list[str] = []
    first_record_at: float | None = None
    started = time.perf_counter()
    deadline = started + max_seconds
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    take = consumer.consume
    try:
        while read < records and time.perf_counter() < deadline:
            for message in take(num_messages=10_000, timeout=1.0):
                if message.error():
                    errors.append(str(message.error()))
                    continue
                read += 1
                read_bytes += len(message.value() or b"")
            if first_record_at is None and read:
                first_record_at = time.perf_counter()
    finally:
        elapsed = time.perf_counter() - started
        consumer.close()
    size = read_bytes // read if read else 0
    notes = []
    if first_record_at is not None:
        notes.append(f"first records after {(first_record_at - started) * 1000:.0f} ms")
    if errors:
        notes.append(f"first error: {errors[0]}")
    note = "; ".join(notes)
    result = _throughput(
        "consume",
        read,
        size,
        elapsed,
        errors=len(errors),
        complete=read >= records,
        note=note,
    )
    result.mb_per_s = read_bytes / max(elapsed, 1e-9) / MB
    return result


def latency(
    bootstrap: str, topic: str, rate: int, count: int, size: int, max_seconds: float
) -> Result:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "1",
            "linger.ms": 0,
            "socket.nagle.disable": True,
        }
    )
    value = _payload(size)
    producer.produce(topic, value)  # warm-up: connection and metadata are not measured
    producer.flush(30)
    samples: list[float] = []
    errors: list[str] = []

    def callback(sent_at: float) -> Callable[[Any, Any], None]:
        def done(err: Any, _msg: Any) -> None:
            if err is None:
                samples.append(time.perf_counter() - sent_at)
            else:
                errors.append(str(err))

        return done

    interval = 1.0 / rate
    started = time.perf_counter()
    deadline = started + max_seconds
    sent = 0
    while sent < count:
        due = started + sent * interval
        now = time.perf_counter()
        while now < due:
            producer.poll(due - now)
            now = time.perf_counter()
        if now > deadline:
            break
        producer.produce(topic, value, on_delivery=callback(time.perf_counter()))
        producer.poll(0)
        sent += 1
    producer.flush(30)
    elapsed = time.perf_counter() - started
    samples.sort()
    stats: dict[str, float] = {}
    if samples:
        stats = {
            "p50": statistics.median(samples) * 1000,
            "p99": samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000,
            "p999": samples[min(len(samples) - 1, int(len(samples) * 0.999))] * 1000,
            "max": samples[-1] * 1000,
        }
    return _throughput(
        "latency",
        len(samples),
        size,
        elapsed,
        errors=len(errors),
        complete=sent == count,
        latency_ms=stats,
        note=f"paced at {rate} msgs/s",
    )


# --- profile ---------------------------------------------------------------------------------


def start_profiler(pid: int, output: str) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` into `output` (collapsed stacks) until SIGINT or the broker exits."""
    py_spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    command = [py_spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw"]
    command += ["--nonblocking", "--output", output]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(timeout=60)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait()


def profile_top(path: str, limit: int = 15) -> list[dict[str, Any]]:
    """The functions with the most samples of their own in a collapsed-stack file, and their
    inclusive share (samples with the function anywhere on the stack)."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    with open(path) as stacks:
        for line in stacks:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            # "function (file.py:line)": group by function and file, not by line
            frames = [frame.rsplit(":", 1)[0] + ")" for frame in stack.split(";")]
            own[frames[-1]] = own.get(frames[-1], 0) + count
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + count
    top = sorted(own.items(), key=lambda item: item[1], reverse=True)[:limit]
    return [
        {
            "function": frame,
            "own_pct": round(100 * samples / max(total, 1), 1),
            "inclusive_pct": round(100 * inclusive[frame] / max(total, 1), 1),
        }
        for frame, samples in top
    ]


# --- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    records, size = PRESETS[args.preset]
    records = args.records or records
    size = args.size or size
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for scenario in scenarios:
        if scenario not in SCENARIOS:
            raise SystemExit(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
    report: dict[str, Any] = {
        "records": records,
        "record_bytes": size,
        "preset": args.preset,
        "client": "confluent-kafka (librdkafka)",
        "broker": {},
        "results": [],
    }
    broker: SpawnedBroker | None = None
    sampler: RssSampler | None = None
    profiler: subprocess.Popen[bytes] | None = None
    pid = args.broker_pid
    pycache: str | None = None
    if args.spawn:
        # An installed package has its bytecode compiled; a checkout run with
        # PYTHONDONTWRITEBYTECODE compiles every module on every start. So: a fresh bytecode
        # cache, one launch that fills it (reported, not the result), then the measured one.
        pycache = tempfile.mkdtemp(prefix="odradek-perf-pycache-")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = pycache
        first = spawn_broker(args.serve_arg or [], env)
        first.stop()
        report["broker"]["start_without_bytecode_ms"] = round(first.cold_start_ms, 1)
        samples = []
        for _ in range(args.start_runs - 1):
            extra = spawn_broker(args.serve_arg or [], env)
            extra.stop()
            samples.append(extra.cold_start_ms)
        broker = spawn_broker(args.serve_arg or [], env)
        samples.append(broker.cold_start_ms)
        bootstrap = broker.bootstrap
        pid = broker.process.pid
        report["broker"]["cold_start_ms"] = round(statistics.median(samples), 1)
        report["broker"]["cold_start_samples_ms"] = [round(ms, 1) for ms in samples]
        if broker.ready_line_ms is not None:
            report["broker"]["ready_line_ms"] = round(broker.ready_line_ms, 1)
    else:
        bootstrap = args.bootstrap
    report["broker"]["bootstrap"] = bootstrap
    try:
        if pid:
            time.sleep(1.0)
            report["broker"]["rss_idle_mib"] = round(_rss_kib(pid)[0] / 1024, 1)
            sampler = RssSampler(pid)
            sampler.start()
            if args.py_spy:
                profiler = start_profiler(pid, args.py_spy)
        filled_topic: str | None = None
        for scenario in scenarios:
            topic = f"perf-{scenario}-{uuid.uuid4().hex[:8]}"
            if scenario.startswith("produce"):
                create_topic(bootstrap, topic, args.replication_factor)
                acks = "1" if scenario == "produce-acks1" else "all"
                result = produce(bootstrap, topic, acks, records, size, args.max_seconds)
                if acks == "1" or filled_topic is None:
                    filled_topic = topic
            elif scenario == "consume":
                if filled_topic is None:  # consume alone: fill a topic first, untimed
                    filled_topic = topic
                    create_topic(bootstrap, topic, args.replication_factor)
                    produce(bootstrap, topic, "1", records, size, args.max_seconds)
                result = consume(bootstrap, filled_topic, records, args.max_seconds)
            else:
                create_topic(bootstrap, topic, args.replication_factor)
                result = latency(
                    bootstrap,
                    topic,
                    args.latency_rate,
                    args.latency_count,
                    args.latency_size or size,
                    args.max_seconds,
                )
            report["results"].append(asdict(result))
            if args.output != "json":
                print(_result_line(result), flush=True)
    finally:
        if profiler is not None:
            stop_profiler(profiler)
        if sampler is not None and pid:
            sampler.stop()
            hwm = _rss_kib(pid)[1]
            report["broker"]["rss_peak_mib"] = round(max(sampler.peak_kib, hwm) / 1024, 1)
        _ADMINS.clear()  # close before the broker goes, or librdkafka logs the disconnect
        if broker is not None:
            report["broker"]["exit_code"] = broker.stop()
            if args.broker_log:
                report["broker"]["log_tail"] = broker.output[-30:]
        if pycache is not None:
            shutil.rmtree(pycache, ignore_errors=True)
    if profiler is not None:
        report["profile_top"] = profile_top(args.py_spy)
    return report


def _result_line(result: Result) -> str:
    line = f"{result.scenario:16} {result.records:>9} x {result.record_bytes} B"
    if result.latency_ms is not None:
        parts = " ".join(f"{k} {v:.2f} ms" for k, v in result.latency_ms.items())
        line += f"  latency {parts}"
    else:
        line += (
            f"  {result.records_per_s:>11,.0f} rec/s  {result.mb_per_s:8.1f} MB/s"
            f"  in {result.seconds:.2f} s"
        )
    if result.errors:
        line += f"  errors {result.errors}"
    if not result.complete:
        line += "  (cut short by --max-seconds)"
    if result.note and result.latency_ms is None:
        line += f"  [{result.note}]"
    return line


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--bootstrap", metavar="HOST:PORT", help="a running broker")
    where.add_argument("--spawn", action="store_true", help="start `odradek serve` and measure it")
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="default",
        help="default: 1,000,000 x 100 B; large: 200,000 x 1024 B",
    )
    parser.add_argument("--records", type=int, help="records per scenario (overrides preset)")
    parser.add_argument(
        "--replication-factor", type=int, default=1, help="of each scenario's topic (1)"
    )
    parser.add_argument("--size", type=int, help="record value bytes (overrides preset)")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=120.0,
        help="upper bound on each scenario's duration (120)",
    )
    parser.add_argument("--latency-rate", type=int, default=2000, help="msgs/s (2000)")
    parser.add_argument(
        "--latency-count",
        type=int,
        default=20_000,
        help="messages in the latency scenario (20,000: 10 s at 2,000/s)",
    )
    parser.add_argument("--latency-size", type=int, help="bytes per latency message (--size)")
    parser.add_argument(
        "--start-runs",
        type=int,
        default=5,
        help="with --spawn: launches timed for cold start, median reported (5)",
    )
    parser.add_argument(
        "--broker-pid", type=int, help="with --bootstrap: sample this process's RSS"
    )
    parser.add_argument(
        "--serve-arg",
        action="append",
        metavar="ARG",
        help="extra argument for `odradek serve` (repeatable), e.g. --override=...",
    )
    parser.add_argument(
        "--py-spy",
        metavar="FILE",
        help="profile the broker with py-spy during the scenarios (collapsed stacks to FILE)",
    )
    parser.add_argument(
        "--broker-log",
        action="store_true",
        help="include the spawned broker's last output lines in the report",
    )
    parser.add_argument("--output", choices=("text", "json"), default="text")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = run(args)
    except (KafkaException, TimeoutError) as exc:
        print(f"perf: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    if args.output == "json":
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        broker = report["broker"]
        keys = ("start_without_bytecode_ms", "cold_start_ms", "ready_line_ms")
        for key in (*keys, "rss_idle_mib", "rss_peak_mib"):
            if key in broker:
                print(f"{key:16} {broker[key]}")
        for line in broker.get("log_tail", []):
            print(f"  broker| {line}")
        for entry in report.get("profile_top", []):
            print(
                f"{entry['own_pct']:5.1f}% own {entry['inclusive_pct']:5.1f}% incl"
                f"  {entry['function']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
