"""Kafka requests over a plain socket, for the admin APIs confluent-kafka does not offer
(ListTransactions, DescribeTransactions) and the few the CLI needs around them (ApiVersions,
Metadata, FindCoordinator).

`BrokerConnection` is blocking: one request, one response, on a connection it opens itself.
It picks each API's version from the broker's ApiVersions answer, so it works against any
Kafka-compatible broker, real Kafka included. Requests are kio entities; responses are decoded
with kio too, except DescribeTransactions, whose start-time field kio cannot read when it is -1
(no transaction open), so `decode_describe_transactions` reads it by hand.

Only PLAINTEXT listeners: a `--command-config` asking for SSL or SASL is refused with a clear
error (`check_plaintext`), rather than sending requests a secured listener would drop.

Failures are `ClientError`s (exit 2): no broker reachable, a broker that closes the connection
or sends a frame that does not decode, no answer within the timeout.
"""

from __future__ import annotations

import importlib
import io
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from odradek.cli.client_options import ClientError
from odradek.protocol.codec import ProtocolError, build, read_uvarint, skip_tagged_fields

API_VERSIONS = 18
METADATA = 3
FIND_COORDINATOR = 10
DESCRIBE_TRANSACTIONS = 65
LIST_TRANSACTIONS = 66

_SIZE = struct.Struct(">i")
_MAX_RESPONSE_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Node:
    node_id: int
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_bootstrap(servers: str) -> list[tuple[str, int]]:
    """`host:port[,host:port...]` (IPv6 hosts in brackets) as (host, port) pairs."""
    out: list[tuple[str, int]] = []
    for item in servers.split(","):
        text = item.strip()
        if not text:
            continue
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            raise ClientError(f"bad bootstrap server {text!r}: expected HOST:PORT")
        out.append((host.strip("[]") or "localhost", int(port)))
    if not out:
        raise ClientError("no bootstrap server given")
    return out


def check_plaintext(config: Mapping[str, Any]) -> None:
    protocol = str(config.get("security.protocol", "plaintext")).lower()
    if protocol != "plaintext":
        raise ClientError(
            f"security.protocol={protocol.upper()} is not supported by this command yet;"
            " only PLAINTEXT listeners"
        )


def request(api: str, version: int, cls: str, /, **fields: Any) -> Any:
    """A kio request entity (or one of its nested structs) of `api` at `version`."""
    module = importlib.import_module(f"kio.schema.{api}.v{version}.request")
    return build(getattr(module, cls), **fields)


class BrokerConnection:
    """One blocking connection to one broker."""

    def __init__(self, host: str, port: int, timeout_s: float, client_id: str) -> None:
        self.address = f"{host}:{port}"
        self.client_id = client_id
        self._correlation_id = 0
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as exc:
            raise ClientError(f"cannot reach a broker at {self.address}: {_reason(exc)}") from None
        self.versions: dict[int, tuple[int, int]] = {}
        self.versions = self._api_versions()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> BrokerConnection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def version(self, api_key: int, ours: Sequence[int]) -> int | None:
        """The highest of `ours` the broker accepts for `api_key`, or None."""
        low, high = self.versions.get(api_key, (0, -1))
        usable = [v for v in ours if low <= v <= high]
        return max(usable) if usable else None

    def call(self, body: Any) -> Any:
        """Send a kio request entity and decode the response with kio."""
        from kio.index import load_response_schema
        from kio.serial import entity_reader

        view = self.call_raw(body)
        response_cls = load_response_schema(body.__api_key__, body.__version__)
        try:
            _, position = entity_reader(response_cls.__header_schema__)(view, 0)
            response, _ = entity_reader(response_cls)(view, position)
        except Exception as exc:
            raise ClientError(
                f"cannot decode the answer of {self.address} to api {body.__api_key__}"
                f" v{body.__version__}: {exc}"
            ) from None
        return response

    def call_raw(self, body: Any) -> memoryview:
        """Send a kio request entity; the response frame (header included) undecoded."""
        from kio.serial import entity_writer
        from kio.static.primitive import i32

        self._correlation_id += 1
        header_cls = body.__header_schema__
        header = header_cls(
            request_api_key=body.__api_key__,
            request_api_version=body.__version__,
            correlation_id=i32(self._correlation_id),
            client_id=self.client_id,
        )
        buffer = io.BytesIO()
        buffer.write(b"\0\0\0\0")
        entity_writer(header_cls)(buffer, header)
        entity_writer(type(body))(buffer, body)
        frame = bytearray(buffer.getbuffer())
        _SIZE.pack_into(frame, 0, len(frame) - 4)
        try:
            self._sock.sendall(frame)
            (size,) = _SIZE.unpack(self._read(4))
            if not 4 <= size <= _MAX_RESPONSE_BYTES:
                raise ClientError(f"{self.address} sent a response of {size} bytes")
            data = self._read(size)
        except TimeoutError:
            raise ClientError(f"no answer from {self.address} in time") from None
        except OSError as exc:
            raise ClientError(f"lost the connection to {self.address}: {_reason(exc)}") from None
        (correlation_id,) = _SIZE.unpack_from(data, 0)
        if correlation_id != self._correlation_id:
            raise ClientError(f"{self.address} answered another request")
        return memoryview(data).toreadonly()

    def _read(self, n: int) -> bytes:
        chunks: list[bytes] = []
        remaining = n
        while remaining:
            chunk = self._sock.recv(min(remaining, 1 << 20))
            if not chunk:
                raise ClientError(f"{self.address} closed the connection")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def _api_versions(self) -> dict[int, tuple[int, int]]:
        # v0: every broker answers it, whatever it supports.
        response = self.call(request("api_versions", 0, "ApiVersionsRequest"))
        if response.error_code != 0:
            raise ClientError(f"{self.address} refused ApiVersions: error {response.error_code}")
        return {
            int(item.api_key): (int(item.min_version), int(item.max_version))
            for item in response.api_keys
        }


def connect_bootstrap(servers: str, timeout_s: float, client_id: str) -> BrokerConnection:
    """A connection to the first bootstrap server that answers."""
    errors: list[str] = []
    for host, port in parse_bootstrap(servers):
        try:
            return BrokerConnection(host, port, timeout_s, client_id)
        except ClientError as exc:
            errors.append(exc.message)
    raise ClientError("; ".join(errors))


def metadata(connection: BrokerConnection, topics: tuple[Any, ...] | None = None) -> Any:
    """The Metadata answer (the highest version of v1-12 the broker speaks) for `topics`
    (None: every topic), creating nothing."""
    version = connection.version(METADATA, range(1, 13))
    if version is None:
        raise ClientError(f"{connection.address} does not support Metadata v1-12")
    return connection.call(
        request(
            "metadata",
            version,
            "MetadataRequest",
            topics=topics,
            allow_auto_topic_creation=False,
            include_cluster_authorized_operations=False,
            include_topic_authorized_operations=False,
        )
    )


def brokers(connection: BrokerConnection) -> list[Node]:
    """Every broker of the cluster, from a Metadata request for no topics."""
    response = metadata(connection, ())
    nodes = [Node(int(b.node_id), str(b.host), int(b.port)) for b in response.brokers]
    return sorted(nodes, key=lambda n: n.node_id)


@dataclass(frozen=True, slots=True)
class CoordinatorAnswer:
    error_code: int
    node: Node | None


def find_coordinator(connection: BrokerConnection, key: str, key_type: int) -> CoordinatorAnswer:
    """FindCoordinator for one key (key_type 0 group, 1 transaction)."""
    version = connection.version(FIND_COORDINATOR, range(1, 7))
    if version is None:
        raise ClientError(f"{connection.address} does not support FindCoordinator v1-6")
    fields: dict[str, Any] = {"key_type": key_type}
    if version >= 4:
        fields["coordinator_keys"] = (key,)
    else:
        fields["key"] = key
    response = connection.call(
        request("find_coordinator", version, "FindCoordinatorRequest", **fields)
    )
    answer: Any = response.coordinators[0] if version >= 4 else response
    error = int(answer.error_code)
    node = Node(int(answer.node_id), str(answer.host), int(answer.port)) if error == 0 else None
    return CoordinatorAnswer(error, node)


# -- DescribeTransactions v0, read by hand ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class DescribedTransaction:
    error_code: int
    transactional_id: str
    state: str
    timeout_ms: int
    start_time_ms: int  # -1: no transaction open
    producer_id: int
    producer_epoch: int
    partitions: tuple[tuple[str, int], ...]


class _Reader:
    def __init__(self, view: memoryview, position: int) -> None:
        self.view = view
        self.position = position

    def fixed(self, fmt: str) -> int:
        item = struct.Struct(fmt)
        if self.position + item.size > len(self.view):
            raise ProtocolError("response ends inside a field")
        (value,) = item.unpack_from(self.view, self.position)
        self.position += item.size
        return int(value)

    def count(self) -> int:
        """A compact array's length (-1 for null)."""
        value, self.position = read_uvarint(self.view, self.position)
        return value - 1

    def string(self) -> str:
        length = self.count()
        if length < 0:
            return ""
        end = self.position + length
        if end > len(self.view):
            raise ProtocolError("response ends inside a string")
        text = bytes(self.view[self.position : end]).decode("utf-8", "replace")
        self.position = end
        return text

    def tags(self) -> None:
        self.position = skip_tagged_fields(self.view, self.position)


def decode_describe_transactions(frame: memoryview) -> list[DescribedTransaction]:
    """A DescribeTransactions v0 response frame (response header v1: correlation id, tags)."""
    reader = _Reader(frame, 4)
    out: list[DescribedTransaction] = []
    try:
        reader.tags()
        reader.fixed(">i")  # throttle time
        for _ in range(max(0, reader.count())):
            error_code = reader.fixed(">h")
            transactional_id = reader.string()
            state = reader.string()
            timeout_ms = reader.fixed(">i")
            start_time_ms = reader.fixed(">q")
            producer_id = reader.fixed(">q")
            producer_epoch = reader.fixed(">h")
            partitions: list[tuple[str, int]] = []
            for _ in range(max(0, reader.count())):
                topic = reader.string()
                partitions += [(topic, reader.fixed(">i")) for _ in range(max(0, reader.count()))]
                reader.tags()
            reader.tags()
            out.append(
                DescribedTransaction(
                    error_code,
                    transactional_id,
                    state,
                    timeout_ms,
                    start_time_ms,
                    producer_id,
                    producer_epoch,
                    tuple(sorted(partitions)),
                )
            )
        reader.tags()
    except ProtocolError as exc:
        raise ClientError(f"cannot decode a DescribeTransactions answer: {exc}") from None
    return out


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__
