"""A broker process with everything imported, forking one child per subprocess broker.

Starting `python -m odradek.testing.serve` costs about 200 ms, nearly all of it importing Python
modules; the broker itself starts in a few milliseconds. The fork server pays the imports once:
it is a single-threaded process that has imported the broker, its handlers and the codecs of
every API version the broker speaks, and that forks a child for each broker a test starts. A
child is a real process of its own (SIGKILL, SIGSTOP and a lost page cache act on it alone) that
runs exactly what `odradek.testing.serve` runs.

Protocol, one JSON object per line. The test process writes commands to the server's stdin:
`{"token": 1, "argv": [...], "env": {...}, "output_port": 40123}`; the child connects to that
port on 127.0.0.1 and uses the connection as its stdout and stderr. The server answers on its
stdout `{"ready": true}` once, `{"token": 1, "pid": 4242}` per fork, and
`{"exited": 4242, "code": -9}` when a child ends (it reaps them on SIGCHLD). When its stdin
closes (the test process ended), it kills the children it still has and exits.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import IO, Any

START_TIMEOUT_S = 30.0


class ForkedProcess:
    """A child of the fork server, with the parts of `subprocess.Popen` the brokers use."""

    def __init__(self, pid: int, stdout: IO[str]) -> None:
        self.pid = pid
        self.stdout: IO[str] | None = stdout
        self.returncode: int | None = None
        self._exited = threading.Event()

    def _set_exit(self, code: int) -> None:
        self.returncode = code
        self._exited.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(f"forked broker {self.pid}", timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """The test process's handle on one fork server process."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "odradek.testing.forkserver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(env),
        )
        self._tokens = itertools.count(1)
        self._started: dict[int, Future[int]] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._lock = threading.Lock()
        self._ready: Future[None] = Future()
        self._reader = threading.Thread(target=self._read, name="odradek-forkserver", daemon=True)
        self._reader.start()
        self._ready.result(START_TIMEOUT_S)

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            message = json.loads(line)
            with self._lock:
                if "ready" in message:
                    self._ready.set_result(None)
                elif "token" in message:
                    self._started.pop(message["token"]).set_result(message["pid"])
                elif "exited" in message:
                    child = self._children.pop(message["exited"], None)
                    if child is None:
                        self._early_exits[message["exited"]] = message["code"]
                    else:
                        child._set_exit(message["code"])
        ended = RuntimeError(f"the fork server exited with code {self._proc.wait()}")
        with self._lock:
            if not self._ready.done():
                self._ready.set_exception(ended)
            for waiting in self._started.values():
                waiting.set_exception(ended)
            for child in self._children.values():
                child._set_exit(-int(signal.SIGKILL))  # the server killed them on its way out

    def spawn(self, argv: Sequence[str], env: Mapping[str, str]) -> ForkedProcess:
        """Fork a broker child running `odradek.testing.serve` with `argv`."""
        assert self._proc.stdin is not None
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(START_TIMEOUT_S)
            token = next(self._tokens)
            started: Future[int] = Future()
            with self._lock:
                self._started[token] = started
            command = {
                "token": token,
                "argv": list(argv),
                "env": dict(env),
                "output_port": listener.getsockname()[1],
            }
            with self._lock:
                self._proc.stdin.write(json.dumps(command) + "\n")
                self._proc.stdin.flush()
            pid = started.result(START_TIMEOUT_S)
            connection, _ = listener.accept()
        connection.settimeout(None)
        child = ForkedProcess(pid, connection.makefile("r", encoding="utf-8", errors="replace"))
        connection.close()  # the file keeps the socket open
        with self._lock:
            if pid in self._early_exits:
                child._set_exit(self._early_exits.pop(pid))
            else:
                self._children[pid] = child
        return child

    def close(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)


_server: ForkServer | None = None
_server_lock = threading.Lock()


def fork_server(env: Mapping[str, str]) -> ForkServer:
    """This process's fork server, started on first use (and again if it died)."""
    global _server
    with _server_lock:
        if _server is None or not _server.alive:
            _server = ForkServer(env)
            atexit.register(_server.close)
        return _server


# --- the server process ------------------------------------------------------------------------


def _preload() -> None:
    """Import the broker and the codec of every API version it speaks, for the children."""
    if "hypothesis" not in sys.modules:  # as `odradek serve`: kio would import it for nothing
        sys.modules["hypothesis"] = None  # type: ignore[assignment]
    import odradek.server.control
    import odradek.server.disk_faults
    import odradek.server.fault_hook
    import odradek.server.node
    import odradek.server.virtual_clock
    import odradek.testing.serve  # noqa: F401
    from odradek.protocol.codec import request_is_flexible, response_is_flexible
    from odradek.server.registry import HANDLERS

    for spec in HANDLERS.values():
        for version in range(spec.min_version, spec.max_version + 1):
            request_is_flexible(spec.api_key, version)
            response_is_flexible(spec.api_key, version)
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401


def _child(command: dict[str, Any], fds_to_close: Sequence[int]) -> None:
    """In the forked child: become a broker whose output goes to the test process. No return."""
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        for fd in fds_to_close:
            os.close(fd)
        os.environ.clear()
        os.environ.update(command["env"])
        output = socket.create_connection(("127.0.0.1", command["output_port"]))
        os.dup2(output.fileno(), 1)
        os.dup2(output.fileno(), 2)
        output.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        from odradek.testing.serve import main

        code = main(command["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _serve() -> None:
    _preload()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes select through the pipe
    children: set[int] = set()

    def send(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            children.discard(pid)
            send({"exited": pid, "code": os.waitstatus_to_exitcode(status)})

    send({"ready": True})
    pending = b""
    while True:
        readable, _, _ = select.select([0, wake_read], [], [])
        if wake_read in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 4096)
            reap()
        if 0 not in readable:
            continue
        data = os.read(0, 65536)
        if not data:
            break
        pending += data
        *lines, pending = pending.split(b"\n")
        for line in lines:
            command = json.loads(line)
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(command, (wake_read, wake_write))
            children.add(pid)
            send({"token": command["token"], "pid": pid})
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in list(children):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


if __name__ == "__main__":
    _serve()
