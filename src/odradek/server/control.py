"""The control endpoint: fault injection over HTTP+JSON, for tests outside the broker's process.

A test in any language (KafkaJS, Go, Python driving a subprocess broker) installs the faults an
in-process test gets from `odradek.testing`:

    GET    /v1/status            {"node_id": 1, "bootstrap": "127.0.0.1:9092",
                                  "faults_active": false}
    POST   /v1/faults            {"action": "drop_response", "api": "produce", "times": 1}
                                 -> 201 {"id": 1}
    GET    /v1/faults/<id>       {"id": 1, "hits": 1}
    DELETE /v1/faults/<id>       remove one rule
    DELETE /v1/faults            remove every rule
    POST   /v1/disk              {"operation": "fsync", "errno": "EIO", "times": 1}
    GET    /v1/disk              {"injected": 3}
    DELETE /v1/disk              lift every disk fault
    POST   /v1/clock             {"advance_ms": 45000}: jump a virtual clock ahead, fire timers

Rule fields are those of `faults.rule_from_json`. Errors are 400/404 with {"error": "..."}.
The endpoint is HTTP/1.1 with one request per connection, bound to the address it is given
(127.0.0.1 in tests); it has no authentication and must not face a network.
"""

from __future__ import annotations

import asyncio
import errno as errno_codes
import json
import logging
from typing import TYPE_CHECKING, Any

from odradek.server.faults import FaultEngine, rule_from_json

if TYPE_CHECKING:
    from odradek.server.disk_faults import FaultyFileIO
    from odradek.server.node import Node
    from odradek.server.virtual_clock import VirtualClock

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found"}


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ControlServer:
    def __init__(
        self, node: Node, disk: FaultyFileIO | None = None, clock: VirtualClock | None = None
    ) -> None:
        self.node = node
        self.disk = disk
        self.clock = clock
        self.engine = FaultEngine()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body = await self._request(reader)
        except HttpError as exc:
            status, body = exc.status, {"error": str(exc)}
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            writer.close()
            return
        payload = b"" if status == 204 else json.dumps(body).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode() + payload)
        try:
            await writer.drain()
        finally:
            writer.close()

    async def _request(self, reader: asyncio.StreamReader) -> tuple[int, Any]:
        request_line = (await reader.readuntil(b"\r\n")).decode("latin-1").split()
        if len(request_line) != 3:
            raise HttpError(400, "malformed request line")
        method, path, _ = request_line
        length = 0
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if not 0 <= length <= MAX_BODY_BYTES:
            raise HttpError(400, "body too large")
        raw = await reader.readexactly(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            raise HttpError(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise HttpError(400, "the body must be a JSON object")
        try:
            return self._route(method, path.rstrip("/"), body)
        except (ValueError, TypeError, KeyError) as exc:
            raise HttpError(400, f"bad request: {exc}") from None

    def _route(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        parts = path.split("/")[1:]
        if parts[:1] != ["v1"]:
            raise HttpError(404, f"no such resource {path}")
        match method, parts[1:]:
            case "GET", ["status"]:
                host, port = self.node.advertised_endpoint
                return 200, {
                    "node_id": self.node.node_id,
                    "bootstrap": f"{host}:{port}",
                    "faults_active": self.engine.active(self.node.clock.monotonic_ms()),
                }
            case "POST", ["faults"]:
                rule = rule_from_json(body)
                rule_id = self.engine.add(rule, self.node.clock.monotonic_ms())
                self.node.faults = self.engine
                return 201, {"id": rule_id}
            case "GET", ["faults", rule_id]:
                return 200, {"id": int(rule_id), "hits": self.engine.hits(int(rule_id))}
            case "DELETE", ["faults", rule_id]:
                self.engine.remove(int(rule_id))
                return 204, None
            case "DELETE", ["faults"]:
                self.engine.clear()
                self.node.faults = None
                return 204, None
            case "POST", ["disk"]:
                disk = self._disk()
                disk.fail(
                    str(body["operation"]), _errno(body.get("errno", "EIO")), body.get("times")
                )
                return 204, None
            case "GET", ["disk"]:
                return 200, {"injected": self._disk().injected}
            case "DELETE", ["disk"]:
                self._disk().clear()
                return 204, None
            case "POST", ["clock"]:
                if self.clock is None:
                    raise HttpError(404, "this broker runs on the system clock")
                from odradek.server.virtual_clock import after_time_jump

                self.clock.advance_ms(int(body["advance_ms"]))
                after_time_jump(self.node)
                return 204, None
        raise HttpError(404, f"no such resource {method} {path}")

    def _disk(self) -> FaultyFileIO:
        if self.disk is None:
            raise HttpError(404, "this broker was started without disk fault injection")
        return self.disk


def _errno(value: int | str) -> int:
    if isinstance(value, int):
        return value
    code = getattr(errno_codes, str(value).upper(), None)
    if not isinstance(code, int):
        raise ValueError(f"unknown errno {value!r}")
    return code
