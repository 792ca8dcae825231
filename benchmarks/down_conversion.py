"""The cost of serving old clients: message format conversion, measured side by side.

Not a test: nothing asserts on timings. Method and results are in docs/benchmarks.md.

    PYTHONPATH=src python benchmarks/down_conversion.py            # starts `odradek serve`
    PYTHONPATH=src python benchmarks/down_conversion.py --records 50000 --rounds 3

Both sides of each pair run in one process against one broker, on the same data, alternated
`--rounds` times; the best round of each is kept and reported with the ratio.

- fetch: a topic is filled once by a modern producer (confluent-kafka, batches of about
  `--batch` records of `--size` bytes); then a raw-socket consumer reads all of it from offset
  0 with Fetch v3 (every batch down-converted to magic 1 messages) and with Fetch v4 (the
  stored batches sent unchanged), 1 MiB per request. Records/s of each and v4/v3.
- produce: raw-socket producers send the same records, `--batch` per request, acks=1, one
  request at a time: Produce v2 with a magic 1 message set (up-converted to one v2 batch) and
  Produce v3 with the v2 batch itself. Records/s of each and v3/v2.

Each runs once with codec none and once with gzip (a compressed batch becomes one wrapper
message, and back). The clients parse only headers (entry offsets and sizes), so the times
are the broker's.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

sys.path.insert(0, str(Path(__file__).parent))
from perf import spawn_broker

from odradek.protocol.compression import compress
from odradek.protocol.records import encode_batch

CODECS = {"none": 0, "gzip": 1}
FETCH_BYTES = 1 << 20


def _string(value: str) -> bytes:
    return struct.pack(">h", len(value)) + value.encode()


class Wire:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.correlation_id = 0

    def call(self, api_key: int, version: int, body: bytes) -> bytes:
        self.correlation_id += 1
        header = struct.pack(">hhi", api_key, version, self.correlation_id) + _string("bench")
        payload = header + body
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", self._read(4))[0]
        return self._read(size)[4:]

    def _read(self, count: int) -> bytes:
        chunks = []
        while count:
            chunk = self.sock.recv(min(count, 1 << 20))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        self.sock.close()


def _create_topic(admin: AdminClient, topic: str) -> None:
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)


def _fill(bootstrap: str, topic: str, records: int, size: int, batch: int, codec: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # outlives its future
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=30)
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 50,
            "batch.num.messages": batch,
            "compression.type": codec,
            "queue.buffering.max.messages": records + 1,
        }
    )
    value = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    for i in range(records):
        producer.produce(topic, key=str(i).encode(), value=value)
        if i % 10000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0


def _fetch_all(port: int, topic: str, version: int, end: int, max_seconds: float) -> float:
    """Read the topic from 0 to `end`; records/s."""
    wire = Wire(port)
    offset = 0
    started = time.perf_counter()
    while offset < end and time.perf_counter() - started < max_seconds:
        body = struct.pack(">iiii", -1, 0, 1, FETCH_BYTES)
        if version >= 4:
            body += b"\x00"  # read_uncommitted
        body += struct.pack(">i", 1) + _string(topic)
        body += struct.pack(">iiqi", 1, 0, offset, FETCH_BYTES)
        response = wire.call(1, version, body)
        position = 4 + 4 + 2 + len(topic) + 4 + 4 + 2 + 8
        if version >= 4:
            position += 8  # last stable offset
            (aborted,) = struct.unpack_from(">i", response, position)
            position += 4 + max(aborted, 0) * 16
        (size,) = struct.unpack_from(">i", response, position)
        position += 4
        records_end = position + size
        last = -1
        while position + 12 <= records_end:
            base, length = struct.unpack_from(">qi", response, position)
            if position + 12 + length > records_end:
                break
            # v2 batch: base + lastOffsetDelta; v0/v1 entry: its offset (a wrapper's is its
            # last inner offset)
            last = (
                base + struct.unpack_from(">i", response, position + 23)[0]
                if version >= 4
                else base
            )
            position += 12 + length
        if last < 0:
            raise SystemExit(f"Fetch v{version} returned nothing at offset {offset}")
        offset = last + 1
    elapsed = time.perf_counter() - started
    wire.close()
    return offset / elapsed


def _message(offset: int, key: bytes, value: bytes, attributes: int = 0) -> bytes:
    body = struct.pack(">bbq", 1, attributes, 1_700_000_000_000)
    body += struct.pack(">i", len(key)) + key + struct.pack(">i", len(value)) + value
    return struct.pack(">qiI", offset, len(body) + 4, zlib.crc32(body)) + body


def _produce_all(
    port: int,
    topic: str,
    version: int,
    payload: bytes,
    batch: int,
    records: int,
    max_seconds: float,
) -> float:
    wire = Wire(port)
    requests = records // batch
    sent = 0
    started = time.perf_counter()
    while sent < requests and time.perf_counter() - started < max_seconds:
        body = b"" if version < 3 else struct.pack(">h", -1)  # transactional_id
        body += struct.pack(">hi", 1, 30000) + struct.pack(">i", 1) + _string(topic)
        body += struct.pack(">ii", 1, 0) + struct.pack(">i", len(payload)) + payload
        response = wire.call(0, version, body)
        position = 4 + 2 + len(topic) + 4 + 4
        (error_code,) = struct.unpack_from(">h", response, position)
        if error_code:
            raise SystemExit(f"Produce v{version} failed with error {error_code}")
        sent += 1
    elapsed = time.perf_counter() - started
    wire.close()
    return sent * batch / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=100, help="value bytes per record")
    parser.add_argument("--batch", type=int, default=100, help="records per batch/request")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="bound per measurement")
    parser.add_argument("--output", choices=["text", "json"], default="text")
    args = parser.parse_args()

    broker = spawn_broker([])
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    results: list[dict[str, Any]] = []
    try:
        for codec, codec_id in CODECS.items():
            topic = f"down-conversion-{codec}"
            _fill(broker.bootstrap, topic, args.records, args.size, args.batch, codec)
            best = {3: 0.0, 4: 0.0}
            for _ in range(args.rounds):
                for version in (3, 4):
                    rate = _fetch_all(broker.port, topic, version, args.records, args.max_seconds)
                    best[version] = max(best[version], rate)
            results.append(
                {
                    "scenario": f"fetch-{codec}",
                    "v3_down_converted_records_per_s": round(best[3]),
                    "v4_zero_copy_records_per_s": round(best[4]),
                    "ratio_v4_over_v3": round(best[4] / best[3], 2),
                }
            )

            value = (b"0123456789abcdef" * (args.size // 16 + 1))[: args.size]
            entries = b"".join(_message(i, str(i).encode(), value) for i in range(args.batch))
            legacy = (
                entries
                if codec_id == 0
                else _message(args.batch - 1, b"", compress(codec_id, entries), codec_id)
            )
            modern = encode_batch(
                [(str(i).encode(), value, []) for i in range(args.batch)],
                timestamp_ms=1_700_000_000_000,
                compression=codec_id,
            )
            produce_topic = f"up-conversion-{codec}"
            _create_topic(admin, produce_topic)
            best = {2: 0.0, 3: 0.0}
            for _ in range(args.rounds):
                for version, payload in ((2, legacy), (3, modern)):
                    rate = _produce_all(
                        broker.port,
                        produce_topic,
                        version,
                        payload,
                        args.batch,
                        args.records,
                        args.max_seconds,
                    )
                    best[version] = max(best[version], rate)
            results.append(
                {
                    "scenario": f"produce-{codec}",
                    "v2_up_converted_records_per_s": round(best[2]),
                    "v3_records_per_s": round(best[3]),
                    "ratio_v3_over_v2": round(best[3] / best[2], 2),
                }
            )
    finally:
        broker.stop()
    if args.output == "json":
        print(json.dumps({"args": vars(args), "results": results}, indent=2))
        return
    for result in results:
        print("  ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
