"""`odradek dump-log`: segment files built here decode back to exactly what was written."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from odradek.cli.main import main
from odradek.protocol.compression import CompressionType
from odradek.protocol.records import (
    ATTR_CONTROL,
    ATTR_LOG_APPEND_TIME,
    ATTR_TRANSACTIONAL,
    ATTRIBUTES_OFFSET,
    CRC_OFFSET,
    crc32c,
    encode_batch,
    read_header,
)

Records = list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]]


def _with_crc(batch: bytearray) -> bytes:
    struct.pack_into(">I", batch, CRC_OFFSET, crc32c(batch[ATTRIBUTES_OFFSET:]))
    return bytes(batch)


def _segment() -> tuple[bytes, list[dict[str, Any]], bytes]:
    """A .log segment: one batch per codec, a transactional, a LogAppendTime and a control
    batch, one with a bad CRC, then a torn tail. Returns (bytes, expected batches, tail)."""
    expected: list[dict[str, Any]] = []
    out = bytearray()
    offset = 0

    def add(batch: bytes, records: Records, *, valid: bool = True, codec: str = "none") -> None:
        nonlocal offset
        header = read_header(batch)
        expected.append(
            {
                "baseOffset": offset,
                "lastOffset": offset + len(records) - 1,
                "count": len(records),
                "position": len(out),
                "size": len(batch),
                "crc": header.crc,
                "isvalid": valid,
                "compresscodec": codec,
                "baseSequence": header.base_sequence,
                "producerId": header.producer_id,
                "producerEpoch": header.producer_epoch,
                "partitionLeaderEpoch": header.partition_leader_epoch,
                "isTransactional": header.is_transactional,
                "isControl": header.is_control,
                "timestampType": "LogAppendTime" if header.timestamp_type else "CreateTime",
                "timestamp": header.max_timestamp,
                "records": records,
            }
        )
        out.extend(batch)
        offset += len(records)

    for codec in CompressionType:
        records: Records = [
            (
                f"key-{codec.name}-{i}".encode(),
                f"value {i} ünïcode".encode() * (i + 1),
                [("trace", b"t1"), ("n", str(i).encode())],
            )
            for i in range(3)
        ]
        records.append((None, b"no key", []))
        records.append((b"null value", None, [("h", None)]))
        batch = encode_batch(
            records,
            base_offset=offset,
            timestamp_ms=1_700_000_000_000 + offset,
            compression=codec,
            partition_leader_epoch=7,
        )
        add(batch, records, codec=codec.name.lower())

    idempotent: Records = [(b"k", b"v%d" % i, []) for i in range(4)]
    add(
        encode_batch(
            idempotent,
            base_offset=offset,
            timestamp_ms=1_700_000_000_100,
            producer_id=4242,
            producer_epoch=3,
            base_sequence=10,
            attributes=ATTR_TRANSACTIONAL,
            partition_leader_epoch=7,
        ),
        idempotent,
    )

    appended: Records = [(None, b"appended", [])]
    batch = bytearray(encode_batch(appended, base_offset=offset, timestamp_ms=5))
    struct.pack_into(">h", batch, ATTRIBUTES_OFFSET, ATTR_LOG_APPEND_TIME)
    struct.pack_into(">q", batch, 35, 1_800_000_000_000)  # maxTimestamp = LogAppendTime
    add(_with_crc(batch), appended)

    # COMMIT marker: key (version 0, type 1), value (version 0, coordinatorEpoch 12)
    marker: Records = [(b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x0c", [])]
    add(
        encode_batch(
            marker,
            base_offset=offset,
            timestamp_ms=1_700_000_000_200,
            producer_id=4242,
            producer_epoch=3,
            attributes=ATTR_CONTROL | ATTR_TRANSACTIONAL,
        ),
        marker,
    )

    corrupt_records: Records = [(b"\xff\xfe", b"corrupted", [])]
    corrupt = bytearray(encode_batch(corrupt_records, base_offset=offset, timestamp_ms=9))
    corrupt[corrupt.rindex(b"corrupted") + 8] ^= 0x01  # payload changes, stored CRC does not
    add(bytes(corrupt), [(b"\xff\xfe", b"corruptee", [])], valid=False)

    tail = encode_batch([(b"torn", b"x" * 100, [])], base_offset=offset)[:40]
    return bytes(out) + tail, expected, tail


def _dump(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["dump-log", *args]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


BATCH_LINE = re.compile(
    r"baseOffset: (?P<baseOffset>\d+) lastOffset: (?P<lastOffset>\d+) count: (?P<count>\d+)"
    r" baseSequence: (?P<baseSequence>-?\d+) lastSequence: (?P<lastSequence>-?\d+)"
    r" producerId: (?P<producerId>-?\d+) producerEpoch: (?P<producerEpoch>-?\d+)"
    r" partitionLeaderEpoch: (?P<partitionLeaderEpoch>-?\d+)"
    r" isTransactional: (?P<isTransactional>true|false) isControl: (?P<isControl>true|false)"
    r" position: (?P<position>\d+) (?P<timestampType>CreateTime|LogAppendTime):"
    r" (?P<timestamp>-?\d+) size: (?P<size>\d+) magic: 2 compresscodec: (?P<compresscodec>\w+)"
    r" crc: (?P<crc>\d+) isvalid: (?P<isvalid>true|false)$"
)


def test_log_text_shows_every_batch_as_written(tmp_path: Path, capsys: Any) -> None:
    data, expected, tail = _segment()
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(data)

    lines = _dump(capsys, str(path)).splitlines()

    assert lines[0] == f"Dumping {path}"
    assert lines[1] == "Log starting offset: 0"
    batch_lines = lines[2:-1]
    assert len(batch_lines) == len(expected)
    for line, want in zip(batch_lines, expected, strict=True):
        match = BATCH_LINE.match(line)
        assert match, line
        got = match.groupdict()
        for name in (
            "baseOffset",
            "lastOffset",
            "count",
            "position",
            "size",
            "crc",
            "baseSequence",
            "producerId",
            "producerEpoch",
            "partitionLeaderEpoch",
            "timestamp",
        ):
            assert int(got[name]) == want[name], (name, line)
        for name in ("isvalid", "isTransactional", "isControl"):
            assert got[name] == ("true" if want[name] else "false"), (name, line)
        assert got["compresscodec"] == want["compresscodec"]
        assert got["timestampType"] == want["timestampType"]
    assert [e["compresscodec"] for e in expected[:5]] == ["none", "gzip", "snappy", "lz4", "zstd"]
    assert "lastSequence: 13 " in batch_lines[5]  # baseSequence 10 + 3
    assert lines[-1].startswith(
        f"Found {len(tail)} invalid bytes at the end of {path} (position {len(data) - len(tail)}"
    )


RECORD_LINE = re.compile(
    r"\| offset: (?P<offset>\d+) (?P<type>CreateTime|LogAppendTime): (?P<timestamp>-?\d+)"
    r" keySize: (?P<keySize>-?\d+) valueSize: (?P<valueSize>-?\d+)"
    r" sequence: (?P<sequence>-?\d+) headerKeys: \[(?P<headerKeys>[^\]]*)\]"
    r"(?: key: (?P<key>.*?))?(?: payload: (?P<payload>.*))?"
    r"(?: endTxnMarker: (?P<marker>\w+) coordinatorEpoch: (?P<epoch>\d+))?$"
)


def test_log_text_print_data_shows_every_record(tmp_path: Path, capsys: Any) -> None:
    data, expected, _ = _segment()
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(data)

    lines = _dump(capsys, "--print-data", str(path)).splitlines()
    record_lines = [line for line in lines if line.startswith("|")]

    want_records = [(batch, i, r) for batch in expected for i, r in enumerate(batch["records"])]
    assert len(record_lines) == len(want_records)
    for line, (batch, i, (key, value, headers)) in zip(record_lines, want_records, strict=True):
        match = RECORD_LINE.match(line)
        assert match, line
        assert int(match["offset"]) == batch["baseOffset"] + i
        assert match["type"] == batch["timestampType"]
        assert int(match["timestamp"]) == batch["timestamp"]
        assert int(match["keySize"]) == (-1 if key is None else len(key))
        assert int(match["valueSize"]) == (-1 if value is None else len(value))
        seq = batch["baseSequence"]
        assert int(match["sequence"]) == (-1 if seq < 0 else seq + i)
        assert match["headerKeys"] == ",".join(name for name, _ in headers)
        if batch["isControl"]:
            assert (match["marker"], match["epoch"]) == ("COMMIT", "12")
            continue
        assert match["key"] == _text(key)
        assert match["payload"] == _text(value)
    assert "key: \ufffd\ufffd payload: corrupte" in record_lines[-1]


def test_log_json_matches_what_was_written(tmp_path: Path, capsys: Any) -> None:
    data, expected, tail = _segment()
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(data)

    doc = json.loads(_dump(capsys, "--output", "json", "--print-data", str(path)))

    (file,) = doc["files"]
    assert file["path"] == str(path)
    assert file["type"] == "log"
    assert file["baseOffset"] == 0
    assert file["trailingBytes"]["position"] == len(data) - len(tail)
    assert file["trailingBytes"]["size"] == len(tail)
    assert len(file["batches"]) == len(expected)
    for got, want in zip(file["batches"], expected, strict=True):
        for name, value in want.items():
            if name != "records":
                assert got[name] == value, name
        assert got["magic"] == 2
        assert len(got["records"]) == len(want["records"])
        for i, (record, (key, value, headers)) in enumerate(
            zip(got["records"], want["records"], strict=True)
        ):
            assert record["offset"] == want["baseOffset"] + i
            assert record["timestamp"] == want["timestamp"]
            assert record["headerKeys"] == [name for name, _ in headers]
            assert record["headers"] == [{"key": n, "value": _text(v)} for n, v in headers]
            if want["isControl"]:
                assert record["endTxnMarker"] == "COMMIT"
                assert record["coordinatorEpoch"] == 12
            else:
                assert record["key"] == _text(key)
                assert record["payload"] == _text(value)
                assert "endTxnMarker" not in record


def test_log_json_without_print_data_has_no_records(tmp_path: Path, capsys: Any) -> None:
    data, expected, _ = _segment()
    path = tmp_path / "00000000000000000042.log"
    path.write_bytes(data)

    doc = json.loads(_dump(capsys, "--output", "json", str(path)))

    (file,) = doc["files"]
    assert file["baseOffset"] == 42
    assert [b["baseOffset"] for b in file["batches"]] == [b["baseOffset"] for b in expected]
    assert all("records" not in b for b in file["batches"])


def test_undecodable_records_are_reported_not_fatal(tmp_path: Path, capsys: Any) -> None:
    batch = bytearray(encode_batch([(b"k", b"plain bytes, not gzip", [])]))
    struct.pack_into(">h", batch, ATTRIBUTES_OFFSET, int(CompressionType.GZIP))
    good = encode_batch([(b"k2", b"after", [])], base_offset=1)
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(_with_crc(batch) + good)

    lines = _dump(capsys, "--print-data", str(path)).splitlines()

    assert "compresscodec: gzip" in lines[2] and "isvalid: true" in lines[2]
    assert lines[3].startswith("| cannot decode records:")
    assert lines[4].startswith("baseOffset: 1 ")
    assert lines[5].endswith("key: k2 payload: after")
    assert len(lines) == 6


@pytest.mark.parametrize(
    ("garbage", "reason"),
    [
        (b"\x00" * 200, "unsupported magic 0"),
        (struct.pack(">qiib", 0, 3, 0, 2) + b"\x00" * 60, "invalid batch length 3"),
        (b"\x01\x02\x03", "shorter than a batch header"),
    ],
)
def test_garbage_after_batches_is_counted(
    tmp_path: Path, capsys: Any, garbage: bytes, reason: str
) -> None:
    path = tmp_path / "00000000000000000000.log"
    first = encode_batch([(b"a", b"b", [])])
    path.write_bytes(first + garbage)

    lines = _dump(capsys, str(path)).splitlines()
    assert lines[-1] == (
        f"Found {len(garbage)} invalid bytes at the end of {path} (position {len(first)}: {reason})"
    )
    doc = json.loads(_dump(capsys, "--output", "json", str(path)))
    assert doc["files"][0]["trailingBytes"] == {
        "position": len(first),
        "size": len(garbage),
        "reason": reason,
    }


def test_empty_log(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(b"")
    assert _dump(capsys, str(path)).splitlines() == [f"Dumping {path}", "Log starting offset: 0"]


def _index_files(tmp_path: Path) -> tuple[Path, Path]:
    index = tmp_path / "00000000000000000100.index"
    # Kafka preallocates: real entries, then zeros to the end of the file
    index.write_bytes(
        struct.pack(">ii", 0, 0)
        + struct.pack(">ii", 5, 4096)
        + struct.pack(">ii", 9, 8200)
        + b"\x00" * 8 * 10
    )
    time_index = tmp_path / "00000000000000000100.timeindex"
    time_index.write_bytes(
        struct.pack(">qi", 1_700_000_000_000, 0)
        + struct.pack(">qi", 1_700_000_000_500, 7)
        + b"\x00" * 12 * 10
    )
    return index, time_index


def test_index_and_time_index_text(tmp_path: Path, capsys: Any) -> None:
    index, time_index = _index_files(tmp_path)

    lines = _dump(capsys, str(index), str(time_index)).splitlines()

    assert lines == [
        f"Dumping {index}",
        "offset: 100 position: 0",
        "offset: 105 position: 4096",
        "offset: 109 position: 8200",
        f"Dumping {time_index}",
        "timestamp: 1700000000000 offset: 100",
        "timestamp: 1700000000500 offset: 107",
    ]


def test_index_and_time_index_json(tmp_path: Path, capsys: Any) -> None:
    index, time_index = _index_files(tmp_path)

    doc = json.loads(_dump(capsys, "--output", "json", str(index), str(time_index)))

    assert doc == {
        "files": [
            {
                "path": str(index),
                "type": "index",
                "baseOffset": 100,
                "entries": [
                    {"offset": 100, "position": 0},
                    {"offset": 105, "position": 4096},
                    {"offset": 109, "position": 8200},
                ],
                "trailingBytes": None,
            },
            {
                "path": str(time_index),
                "type": "timeindex",
                "baseOffset": 100,
                "entries": [
                    {"timestamp": 1_700_000_000_000, "offset": 100},
                    {"timestamp": 1_700_000_000_500, "offset": 107},
                ],
                "trailingBytes": None,
            },
        ]
    }


def test_partial_index_entry_is_reported(tmp_path: Path, capsys: Any) -> None:
    index = tmp_path / "00000000000000000000.index"
    index.write_bytes(struct.pack(">ii", 0, 0) + struct.pack(">ii", 3, 77) + b"\x00\x00\x00")

    lines = _dump(capsys, str(index)).splitlines()

    assert lines[1:] == [
        "offset: 0 position: 0",
        "offset: 3 position: 77",
        f"Found 3 invalid bytes at the end of {index} (position 16: shorter than an index entry)",
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("00000000000000000000.log", "no such file"),
        ("00000000000000000000.snapshot", "unknown file type '.snapshot'"),
        ("segment.index", "cannot take the base offset from the file name"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    tmp_path: Path, capsys: Any, name: str, message: str
) -> None:
    path = tmp_path / name
    if name == "segment.index":
        path.write_bytes(b"")
    ok = tmp_path / "00000000000000000000.timeindex"
    ok.write_bytes(b"")

    assert main(["dump-log", str(ok), str(path)]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""  # nothing is dumped when any argument is wrong
    (line,) = captured.err.splitlines()
    assert line.startswith(f"odradek dump-log: error: {path}: ")
    assert message in line


def test_a_transaction_index_written_by_the_log_and_its_abort_marker(
    tmp_path: Path, capsys: Any
) -> None:
    from odradek.common.clock import FakeClock
    from odradek.storage.fileio import OsFileIO
    from odradek.storage.log import Log, LogConfig
    from odradek.storage.producer_state import AppendOrigin
    from odradek.storage.txn_index import ControlRecordType, encode_end_transaction_marker

    directory = tmp_path / "payments-0"
    log = Log.open(directory, LogConfig(), fileio=OsFileIO(), clock=FakeClock(wall_ms=1_000))
    data = encode_batch(
        [(None, b"v", [])] * 3,
        producer_id=42,
        producer_epoch=1,
        base_sequence=0,
        attributes=ATTR_TRANSACTIONAL,
    )
    coordinator = AppendOrigin.COORDINATOR
    log.append_as_leader(bytearray(data), leader_epoch=0, origin=coordinator)
    marker = encode_end_transaction_marker(
        ControlRecordType.ABORT, 9, producer_id=42, producer_epoch=1, timestamp_ms=5
    )
    log.append_as_leader(marker, leader_epoch=0, origin=coordinator)
    log.close()
    txn_index = directory / "00000000000000000000.txnindex"
    torn = txn_index.read_bytes() + b"\x00\x01"
    txn_index.write_bytes(torn)

    lines = _dump(capsys, str(txn_index)).splitlines()
    assert lines == [
        f"Dumping {txn_index}",
        "version: 0 producerId: 42 firstOffset: 0 lastOffset: 3 lastStableOffset: 4",
        f"Found 2 invalid bytes at the end of {txn_index}"
        " (position 34: shorter than a transaction index entry)",
    ]
    doc = json.loads(_dump(capsys, "--output", "json", str(txn_index)))
    assert doc["files"][0]["entries"] == [
        {
            "version": 0,
            "producerId": 42,
            "firstOffset": 0,
            "lastOffset": 3,
            "lastStableOffset": 4,
        }
    ]
    log_lines = _dump(
        capsys, "--print-data", str(directory / "00000000000000000000.log")
    ).splitlines()
    assert log_lines[-1].endswith("endTxnMarker: ABORT coordinatorEpoch: 9")
    assert "isControl: true" in log_lines[-2]


# --- record decoders ----------------------------------------------------------------------------


def test_offsets_decoder_shows_commits_group_metadata_and_tombstones(
    tmp_path: Path, capsys: Any
) -> None:
    from odradek.coordinator.group.records import (
        GroupKey,
        GroupValue,
        OffsetKey,
        OffsetValue,
        encode_key,
        encode_value,
    )

    commit = (
        encode_key(OffsetKey("billing", "orders", 3)),
        encode_value(OffsetValue(42, 7, "m", 1000, -1)),
    )
    group = (
        encode_key(GroupKey("billing")),
        encode_value(GroupValue("consumer", 5, "range", None, 1000, ())),
    )
    tombstone = (encode_key(OffsetKey("billing", "orders", 4)), None)
    records: Records = [(k, v, []) for k, v in (commit, group, tombstone)]
    records.append((b"\x00\x63garbage", b"x", []))  # a key version no decoder knows
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(encode_batch(records, timestamp_ms=1000))

    doc = json.loads(_dump(capsys, "--offsets-decoder", "--output", "json", str(path)))
    decoded = [(r["key"], r["payload"]) for r in doc["files"][0]["batches"][0]["records"]]
    assert decoded[0] == (
        {"type": "OffsetKey", "data": {"group": "billing", "topic": "orders", "partition": 3}},
        {
            "type": "OffsetValue",
            "data": {
                "offset": 42,
                "leader_epoch": 7,
                "metadata": "m",
                "commit_timestamp": 1000,
                "expire_timestamp": -1,
            },
        },
    )
    assert decoded[1][0] == {"type": "GroupKey", "data": {"group": "billing"}}
    assert decoded[1][1]["data"]["generation"] == 5
    assert decoded[2] == (
        {"type": "OffsetKey", "data": {"group": "billing", "topic": "orders", "partition": 4}},
        None,
    )
    assert "error" in decoded[3][0]

    text = _dump(capsys, "--offsets-decoder", str(path))
    assert 'key: {"type": "OffsetKey"' in text and "payload: null" in text


def test_transaction_log_decoder_shows_each_id_and_its_state(tmp_path: Path, capsys: Any) -> None:
    from odradek.coordinator.transaction.records import (
        TransactionLogKey,
        TransactionLogValue,
        encode_key,
        encode_value,
    )

    value = TransactionLogValue(4000, 2, 60000, 1, (("orders", (0, 2)),), 1500, 1400)
    records: Records = [(encode_key(TransactionLogKey("copier")), encode_value(value), [])]
    path = tmp_path / "00000000000000000000.log"
    path.write_bytes(encode_batch(records, timestamp_ms=1000))

    doc = json.loads(_dump(capsys, "--transaction-log-decoder", "--output", "json", str(path)))
    (record,) = doc["files"][0]["batches"][0]["records"]
    assert record["key"] == {"type": "TransactionLogKey", "data": {"transactional_id": "copier"}}
    data = record["payload"]["data"]
    assert (data["producer_id"], data["producer_epoch"]) == (4000, 2)
    assert data["transaction_partitions"] == [["orders", [0, 2]]]
