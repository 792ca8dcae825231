"""A TCP proxy for Kafka connections that can lose responses: the request reaches the broker and
is applied, but the client never hears back and its connection drops, so it must retry what the
broker already has. This is how the tests force retries of applied produce requests.

The proxy reads whole frames (4-byte size, then the request) from the client; `drop(api_key)`
decides per request. It runs in a thread of its own and binds to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Callable

PRODUCE = 0


def _read_exactly(sock: socket.socket, count: int) -> bytes | None:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _read_frame(sock: socket.socket) -> bytes | None:
    head = _read_exactly(sock, 4)
    if head is None:
        return None
    body = _read_exactly(sock, struct.unpack(">i", head)[0])
    return None if body is None else head + body


class LossyProxy:
    """Forwards 127.0.0.1:`port` to the broker; each request for which `drop(api_key)` is true
    is sent on and its response swallowed, and the client's connection is closed."""

    def __init__(self, broker_port: int, drop: Callable[[int], bool]) -> None:
        self.broker_port = broker_port
        self.drop = drop
        self.dropped = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._closed = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        """One client connection: requests are relayed one at a time, in order (a client's
        responses come back in request order, so this keeps the protocol intact)."""
        try:
            broker = socket.create_connection(("127.0.0.1", self.broker_port))
        except OSError:
            client.close()
            return
        pending: list[bool] = []  # per request in flight: swallow its response?
        cond = threading.Condition()

        def responses() -> None:
            while True:
                frame = _read_frame(broker)
                with cond:
                    swallow = pending.pop(0) if pending else False
                if frame is None:
                    break
                if swallow:
                    with self._lock:
                        self.dropped += 1
                    break
                try:
                    client.sendall(frame)
                except OSError:
                    break
            # shutdown (not just close): it wakes the thread blocked reading the client and
            # sends the client its FIN at once.
            for sock in (client, broker):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

        threading.Thread(target=responses, daemon=True).start()
        try:
            while True:
                frame = _read_frame(client)
                if frame is None:
                    break
                api_key = struct.unpack_from(">h", frame, 4)[0]
                with cond:
                    pending.append(self.drop(api_key))
                broker.sendall(frame)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                broker.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self._server.close()
