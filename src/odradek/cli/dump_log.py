"""`odradek dump-log FILE...`: decode Kafka segment files, like Kafka's kafka-dump-log.sh.

The file type comes from the extension:

- `.log`: record batches (magic v2) exactly as stored; one line per batch, and with
  `--print-data` one line per record. Bytes at the end that do not form a whole batch (a torn
  write, a preallocated tail, garbage) are reported, never fatal.
- `.index`: 8-byte entries (int32 offset relative to the segment's base offset, int32 file
  position); `.timeindex`: 12-byte entries (int64 timestamp, int32 relative offset). The base
  offset is the segment's 20-digit file name. Kafka preallocates index files and fills them with
  zeros, so an entry after the first whose relative offset is 0 ends the list, as in Kafka.
- `.txnindex`: 34-byte entries, one per aborted transaction (int16 version, int64 producer id,
  int64 first offset, int64 last offset = the abort marker's, int64 last stable offset).

Control records (transaction markers) are shown with their type (COMMIT, ABORT) and the
coordinator epoch, as kafka-dump-log.sh shows them.

Files are read through mmap and never written. This tool looks only at files; it does not talk to
a broker and does not import the storage layer, so it also reads segments written by Kafka.

`odradek.cli.main` imports this module for every command, `serve` included, so importing it must
stay cheap: NamedTuples rather than dataclasses; json, mmap and the record codec are imported
where they are used.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

if TYPE_CHECKING:
    from odradek.cli.dump_log_decoders import Decoder
    from odradek.protocol.records import BatchHeader

SUFFIXES = {".log": "log", ".index": "index", ".timeindex": "timeindex", ".txnindex": "txnindex"}
_INDEX_ENTRY = struct.Struct(">ii")
_TIME_INDEX_ENTRY = struct.Struct(">qi")
_TXN_INDEX_ENTRY = struct.Struct(">hqqqq")
_CONTROL_KEY = struct.Struct(">hh")
_CONTROL_VALUE = struct.Struct(">hi")
_INT32_MAX = 2**31 - 1
_CONTROL_TYPES = {0: "ABORT", 1: "COMMIT"}


class DumpLogError(Exception):
    """A problem with the command line or a file that ends the command with exit code 2."""


class RecordDump(NamedTuple):
    offset: int
    timestamp_type: str
    timestamp: int
    key_size: int
    value_size: int
    sequence: int
    headers: tuple[tuple[str, bytes | None], ...]
    key: bytes | None
    payload: bytes | None
    control: tuple[str, int] | None = None  # (endTxnMarker, coordinatorEpoch) of a control record
    decoded: tuple[str, str] | None = None  # key and payload as JSON text, with a decoder

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "offset": self.offset,
            "timestampType": self.timestamp_type,
            "timestamp": self.timestamp,
            "keySize": self.key_size,
            "valueSize": self.value_size,
            "sequence": self.sequence,
            "headerKeys": [name for name, _ in self.headers],
            "headers": [{"key": name, "value": _text(value)} for name, value in self.headers],
            "key": _text(self.key),
            "payload": _text(self.payload),
        }
        if self.decoded is not None:
            import json

            out["key"], out["payload"] = (json.loads(text) for text in self.decoded)
        if self.control is not None:
            out["endTxnMarker"], out["coordinatorEpoch"] = self.control
        return out

    def to_text(self) -> str:
        line = (
            f"| offset: {self.offset} {self.timestamp_type}: {self.timestamp}"
            f" keySize: {self.key_size} valueSize: {self.value_size}"
            f" sequence: {self.sequence}"
            f" headerKeys: [{','.join(name for name, _ in self.headers)}]"
        )
        if self.control is not None:
            return f"{line} endTxnMarker: {self.control[0]} coordinatorEpoch: {self.control[1]}"
        if self.decoded is not None:
            return f"{line} key: {self.decoded[0]} payload: {self.decoded[1]}"
        if self.key is not None:
            line += f" key: {_text(self.key)}"
        if self.payload is not None:
            line += f" payload: {_text(self.payload)}"
        return line


class BatchDump(NamedTuple):
    position: int
    header: BatchHeader
    is_valid: bool
    records: list[RecordDump] | None = None  # only with --print-data
    records_error: str | None = None  # why the records could not be decoded

    @property
    def last_sequence(self) -> int:
        base = self.header.base_sequence
        if base < 0:
            return -1
        # sequences wrap at Int32.MAX, as Kafka's DefaultRecordBatch.incrementSequence does
        last = base + self.header.last_offset_delta
        return last - _INT32_MAX - 1 if last > _INT32_MAX else last

    @property
    def timestamp_type(self) -> str:
        return "LogAppendTime" if self.header.timestamp_type == 1 else "CreateTime"

    @property
    def codec(self) -> str:
        try:
            from odradek.protocol.compression import CompressionType

            return CompressionType(self.header.compression).name.lower()
        except ValueError:
            return f"unknown({self.header.compression})"

    def to_json(self) -> dict[str, Any]:
        h = self.header
        out: dict[str, Any] = {
            "baseOffset": h.base_offset,
            "lastOffset": h.last_offset,
            "count": h.records_count,
            "baseSequence": h.base_sequence,
            "lastSequence": self.last_sequence,
            "producerId": h.producer_id,
            "producerEpoch": h.producer_epoch,
            "partitionLeaderEpoch": h.partition_leader_epoch,
            "isTransactional": h.is_transactional,
            "isControl": h.is_control,
            "position": self.position,
            "timestampType": self.timestamp_type,
            "timestamp": h.max_timestamp,
            "size": h.size,
            "magic": h.magic,
            "compresscodec": self.codec,
            "crc": h.crc,
            "isvalid": self.is_valid,
        }
        if self.records is not None:
            out["records"] = [record.to_json() for record in self.records]
        if self.records_error is not None:
            out["recordsError"] = self.records_error
        return out

    def to_text(self) -> Iterator[str]:
        h = self.header
        yield (
            f"baseOffset: {h.base_offset} lastOffset: {h.last_offset} count: {h.records_count}"
            f" baseSequence: {h.base_sequence} lastSequence: {self.last_sequence}"
            f" producerId: {h.producer_id} producerEpoch: {h.producer_epoch}"
            f" partitionLeaderEpoch: {h.partition_leader_epoch}"
            f" isTransactional: {_bool(h.is_transactional)} isControl: {_bool(h.is_control)}"
            f" position: {self.position} {self.timestamp_type}: {h.max_timestamp}"
            f" size: {h.size} magic: {h.magic} compresscodec: {self.codec} crc: {h.crc}"
            f" isvalid: {_bool(self.is_valid)}"
        )
        for record in self.records or ():
            yield record.to_text()
        if self.records_error is not None:
            yield f"| cannot decode records: {self.records_error}"


class TrailingBytes(NamedTuple):
    """Bytes at the end of a file that are not a whole entry or a whole, readable batch."""

    position: int
    size: int
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position, "size": self.size, "reason": self.reason}


class FileDump:
    __slots__ = ("base_offset", "items", "path", "trailing", "type")

    def __init__(self, path: str, type: str, base_offset: int | None) -> None:
        self.path = path
        self.type = type
        self.base_offset = base_offset
        self.items: list[dict[str, Any]] = []
        self.trailing: TrailingBytes | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "type": self.type,
            "baseOffset": self.base_offset,
            ("batches" if self.type == "log" else "entries"): self.items,
            "trailingBytes": None if self.trailing is None else self.trailing.to_json(),
        }


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


def _bool(value: bool) -> str:
    return "true" if value else "false"


# --- decoding --------------------------------------------------------------------------------


def iter_log(
    data: bytes | memoryview, print_data: bool = False, decoder: Decoder | None = None
) -> Iterator[BatchDump | TrailingBytes]:
    """Each whole batch of a .log file's bytes, then at most one TrailingBytes for the rest.

    A batch whose CRC does not match is still shown (isvalid: false) when its length fits the
    file, as Kafka does; scanning stops at a length that cannot be a batch or runs past the end.
    """
    from odradek.common.errors import KafkaError
    from odradek.protocol.records import (
        ATTRIBUTES_OFFSET,
        HEADER_SIZE,
        LOG_OVERHEAD,
        MAGIC_OFFSET,
        crc32c,
        read_header,
    )

    view = memoryview(data)
    end = len(view)
    position = 0
    while position < end:
        remaining = end - position
        if remaining < HEADER_SIZE:
            yield TrailingBytes(position, remaining, "shorter than a batch header")
            return
        magic = view[position + MAGIC_OFFSET]
        if magic != 2:
            yield TrailingBytes(position, remaining, f"unsupported magic {magic}")
            return
        header = read_header(view, position)
        if header.batch_length < HEADER_SIZE - LOG_OVERHEAD:
            yield TrailingBytes(position, remaining, f"invalid batch length {header.batch_length}")
            return
        if header.size > remaining:
            yield TrailingBytes(
                position, remaining, f"batch of {header.size} bytes runs past the end of the file"
            )
            return
        batch = view[position : position + header.size]
        is_valid = crc32c(batch[ATTRIBUTES_OFFSET:]) == header.crc
        records: list[RecordDump] | None = None
        records_error: str | None = None
        if print_data:
            try:
                records = _record_dumps(batch, decoder)
            except (KafkaError, struct.error, ValueError) as exc:
                records_error = str(exc) or type(exc).__name__
        yield BatchDump(position, header, is_valid, records, records_error)
        position += header.size


def _record_dumps(batch: memoryview, decoder: Decoder | None = None) -> list[RecordDump]:
    from odradek.protocol.records import decode_records

    header, records = decode_records(batch)
    timestamp_type = "LogAppendTime" if header.timestamp_type == 1 else "CreateTime"
    dumps: list[RecordDump] = []
    for record in records:
        sequence = -1
        if header.base_sequence >= 0:
            sequence = header.base_sequence + record.offset - header.base_offset
            if sequence > _INT32_MAX:
                sequence -= _INT32_MAX + 1
        control: tuple[str, int] | None = None
        if header.is_control and record.key is not None and len(record.key) >= 4:
            _, control_type = _CONTROL_KEY.unpack_from(record.key)
            coordinator_epoch = -1
            if record.value is not None and len(record.value) >= 6:
                _, coordinator_epoch = _CONTROL_VALUE.unpack_from(record.value)
            control = (
                _CONTROL_TYPES.get(control_type, f"UNKNOWN({control_type})"),
                coordinator_epoch,
            )
        dumps.append(
            RecordDump(
                offset=record.offset,
                timestamp_type=timestamp_type,
                timestamp=record.timestamp,
                key_size=-1 if record.key is None else len(record.key),
                value_size=-1 if record.value is None else len(record.value),
                sequence=sequence,
                headers=record.headers,
                key=record.key,
                payload=record.value,
                control=control,
                decoded=None
                if decoder is None or header.is_control
                else decoder(record.key, record.value),
            )
        )
    return dumps


def iter_index(
    data: bytes | memoryview, base_offset: int
) -> Iterator[tuple[int, int] | TrailingBytes]:
    """(offset, position) of each entry of an .index file; zero-filled preallocation ends it."""
    view = memoryview(data)
    whole = len(view) - len(view) % _INDEX_ENTRY.size
    for number, start in enumerate(range(0, whole, _INDEX_ENTRY.size)):
        relative, position = _INDEX_ENTRY.unpack_from(view, start)
        if number > 0 and relative == 0:
            return
        yield base_offset + relative, position
    if whole < len(view):
        yield TrailingBytes(whole, len(view) - whole, "shorter than an index entry")


def iter_time_index(
    data: bytes | memoryview, base_offset: int
) -> Iterator[tuple[int, int] | TrailingBytes]:
    """(timestamp, offset) of each entry of a .timeindex file; zero-filled preallocation ends it."""
    view = memoryview(data)
    whole = len(view) - len(view) % _TIME_INDEX_ENTRY.size
    for number, start in enumerate(range(0, whole, _TIME_INDEX_ENTRY.size)):
        timestamp, relative = _TIME_INDEX_ENTRY.unpack_from(view, start)
        if number > 0 and timestamp == 0 and relative == 0:
            return
        yield timestamp, base_offset + relative
    if whole < len(view):
        yield TrailingBytes(whole, len(view) - whole, "shorter than a time index entry")


class AbortedTxnDump(NamedTuple):
    version: int
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "producerId": self.producer_id,
            "firstOffset": self.first_offset,
            "lastOffset": self.last_offset,
            "lastStableOffset": self.last_stable_offset,
        }

    def to_text(self) -> str:
        return (
            f"version: {self.version} producerId: {self.producer_id}"
            f" firstOffset: {self.first_offset} lastOffset: {self.last_offset}"
            f" lastStableOffset: {self.last_stable_offset}"
        )


def iter_txn_index(data: bytes | memoryview) -> Iterator[AbortedTxnDump | TrailingBytes]:
    """The aborted transactions of a .txnindex file (it has no preallocation)."""
    view = memoryview(data)
    whole = len(view) - len(view) % _TXN_INDEX_ENTRY.size
    for start in range(0, whole, _TXN_INDEX_ENTRY.size):
        yield AbortedTxnDump(*_TXN_INDEX_ENTRY.unpack_from(view, start))
    if whole < len(view):
        yield TrailingBytes(whole, len(view) - whole, "shorter than a transaction index entry")


def file_type(path: Path) -> str:
    kind = SUFFIXES.get(path.suffix)
    if kind is None:
        supported = ", ".join(SUFFIXES)
        raise DumpLogError(
            f"{path}: unknown file type {path.suffix or '(none)'!r} (supported: {supported})"
        )
    return kind


def base_offset_of(path: Path) -> int | None:
    """The segment's base offset from its 20-digit file name, or None if it has none."""
    stem = path.stem
    return int(stem) if stem.isdigit() else None


def _check(path: Path) -> str:
    kind = file_type(path)
    if not path.exists():
        raise DumpLogError(f"{path}: no such file")
    if not path.is_file():
        raise DumpLogError(f"{path}: not a regular file")
    if kind != "log" and base_offset_of(path) is None:
        raise DumpLogError(
            f"{path}: cannot take the base offset from the file name"
            " (expected <20-digit offset>.index, .timeindex or .txnindex)"
        )
    return kind


# --- output ----------------------------------------------------------------------------------


def _dump_file(
    path: Path, kind: str, print_data: bool, out: TextIO | None, decoder: Decoder | None = None
) -> FileDump:
    """Decode one file. With `out` the text form is written as it goes; else items are kept."""
    base_offset = base_offset_of(path)
    file_dump = FileDump(str(path), kind, base_offset)
    if out is not None:
        out.write(f"Dumping {path}\n")
        if kind == "log":
            out.write(f"Log starting offset: {base_offset if base_offset is not None else 0}\n")
    import mmap

    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        if size == 0:
            return file_dump
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                _fill(file_dump, view, print_data, out, decoder)
            finally:
                view.release()
    return file_dump


def _fill(
    dump: FileDump,
    view: memoryview,
    print_data: bool,
    out: TextIO | None,
    decoder: Decoder | None = None,
) -> None:
    base_offset = dump.base_offset or 0
    if dump.type == "log":
        for item in iter_log(view, print_data, decoder):
            if isinstance(item, TrailingBytes):
                dump.trailing = item
            elif out is not None:
                for line in item.to_text():
                    out.write(line + "\n")
            else:
                dump.items.append(item.to_json())
    elif dump.type == "txnindex":
        for aborted in iter_txn_index(view):
            if isinstance(aborted, TrailingBytes):
                dump.trailing = aborted
            elif out is not None:
                out.write(aborted.to_text() + "\n")
            else:
                dump.items.append(aborted.to_json())
    else:
        entries = (
            iter_index(view, base_offset)
            if dump.type == "index"
            else iter_time_index(view, base_offset)
        )
        for entry in entries:
            if isinstance(entry, TrailingBytes):
                dump.trailing = entry
            elif dump.type == "index":
                offset, position = entry
                if out is not None:
                    out.write(f"offset: {offset} position: {position}\n")
                else:
                    dump.items.append({"offset": offset, "position": position})
            else:
                timestamp, offset = entry
                if out is not None:
                    out.write(f"timestamp: {timestamp} offset: {offset}\n")
                else:
                    dump.items.append({"timestamp": timestamp, "offset": offset})
    if out is not None and dump.trailing is not None:
        trailing = dump.trailing
        out.write(
            f"Found {trailing.size} invalid bytes at the end of {dump.path}"
            f" (position {trailing.position}: {trailing.reason})\n"
        )


def dump(
    paths: list[Path],
    print_data: bool,
    output: str,
    out: TextIO,
    decoder: Decoder | None = None,
) -> None:
    """Write the dump of `paths` to `out`; raises DumpLogError before writing anything.
    A `decoder` shows each record's key and value decoded (it implies `print_data`)."""
    print_data = print_data or decoder is not None
    kinds = [_check(path) for path in paths]
    if output == "json":
        import json

        files = [
            _dump_file(path, kind, print_data, None, decoder).to_json()
            for path, kind in zip(paths, kinds, strict=True)
        ]
        json.dump({"files": files}, out, indent=2)
        out.write("\n")
        return
    for path, kind in zip(paths, kinds, strict=True):
        _dump_file(path, kind, print_data, out, decoder)


def run(args: argparse.Namespace) -> int:
    try:
        decoder = None
        if args.offsets_decoder or args.transaction_log_decoder:
            from odradek.cli.dump_log_decoders import DECODERS

            decoder = DECODERS["offsets" if args.offsets_decoder else "transaction-log"]
        dump(
            [Path(name) for name in args.files],
            args.print_data,
            args.output,
            sys.stdout,
            decoder,
        )
        sys.stdout.flush()
    except DumpLogError as exc:
        print(f"odradek dump-log: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly, and keep the interpreter's final
        # flush of stdout from failing again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"odradek dump-log: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dump-log",
        help="decode Kafka .log, .index, .timeindex and .txnindex segment files",
        description=(
            "Decode Kafka segment files, like kafka-dump-log.sh: record batches of .log files"
            " (and their records with --print-data, transaction markers included), entries of"
            " .index and .timeindex files, aborted transactions of .txnindex files."
        ),
    )
    parser.add_argument(
        "files", nargs="+", metavar="FILE", help=".log, .index, .timeindex or .txnindex"
    )
    parser.add_argument(
        "--print-data", action="store_true", help="also print each record of a .log file"
    )
    decoders = parser.add_mutually_exclusive_group()
    decoders.add_argument(
        "--offsets-decoder",
        action="store_true",
        help="decode records as __consumer_offsets data: offset commits and group metadata"
        " (implies --print-data)",
    )
    decoders.add_argument(
        "--transaction-log-decoder",
        action="store_true",
        help="decode records as __transaction_state data: transactional ids and their state"
        " (implies --print-data)",
    )
    parser.add_argument(
        "--output", choices=("text", "json"), default="text", help="output format (text)"
    )
    parser.set_defaults(run=run)
