"""Brokers for tests: one Odradek node in this process, or `odradek serve` in a subprocess.

Both listen on 127.0.0.1 on a port the kernel picks (so parallel test processes never clash),
keep that port across restarts (clients holding the bootstrap address reconnect, as they would
to a restarted Kafka broker), and keep their data in the directory they are given.

Both offer request faults (`broker.faults`), disk faults (`broker.disk`) and a virtual clock
(`broker.clock.advance(seconds)`), and `kill()`, `restart()`, `pause()`, `resume()`.

`InProcessBroker` runs the node on an event loop of its own in a daemon thread. It starts in a
few milliseconds once the broker's modules are imported. `kill()` aborts every connection and
stops the node at once; the page cache of this process cannot be lost, so use a
`ProcessBroker` (SIGKILL) to test what survives a crash. `pause()` blocks the event loop, as
SIGSTOP does to a process: connections stay open, nothing is answered.

`ProcessBroker` runs `python -m odradek.testing.serve` (`odradek serve` plus a control endpoint,
through which faults and the clock act); `kill()` is SIGKILL, `pause()`/`resume()` are
SIGSTOP/SIGCONT.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from odradek.server.disk_faults import FaultyFileIO
    from odradek.server.node import Node
    from odradek.server.virtual_clock import VirtualClock
    from odradek.testing.faults import (
        ControlClient,
        Faults,
        LocalFaults,
        RemoteClock,
        RemoteDisk,
    )
    from odradek.testing.forkserver import ForkedProcess

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0

# What a test broker changes from Kafka's defaults, as Kafka's own test harnesses do: a group's
# first rebalance does not wait 3 s for more members, and the offsets topic has one partition
# instead of 50 (created on a group's first request, so fewer is faster).
TEST_DEFAULTS: dict[str, object] = {
    "group.initial.rebalance.delay.ms": 0,
    "offsets.topic.num.partitions": 1,
}


class BrokerError(RuntimeError):
    pass


class DiskFaults(Protocol):
    def fail(self, operation: str, errno: int = ..., times: int | None = None) -> None: ...

    def clear(self) -> None: ...

    @property
    def injected(self) -> int: ...


class AdvancingClock(Protocol):
    def advance(self, seconds: float) -> None: ...


class KafkaBroker(Protocol):
    """What every test broker offers, in process or not."""

    mode: str
    data_dir: Path

    @property
    def clock(self) -> AdvancingClock: ...

    @property
    def faults(self) -> Faults: ...

    @property
    def disk(self) -> DiskFaults: ...

    @property
    def port(self) -> int: ...

    @property
    def bootstrap_servers(self) -> str: ...

    @property
    def running(self) -> bool: ...

    def start(self) -> KafkaBroker: ...

    def stop(self) -> None: ...

    def kill(self) -> None: ...

    def restart(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def lift_faults(self) -> None: ...

    def close(self) -> None: ...


def _property_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _properties(overrides: Mapping[str, object] | None) -> dict[str, str]:
    return {k: _property_value(v) for k, v in {**TEST_DEFAULTS, **(overrides or {})}.items()}


class InProcessBroker:
    """One node on its own event loop thread in this process."""

    mode = "inprocess"

    def __init__(
        self,
        data_dir: Path,
        overrides: Mapping[str, object] | None = None,
        *,
        clock: VirtualClock | None = None,
    ) -> None:
        from odradek.server.virtual_clock import VirtualClock

        self.data_dir = Path(data_dir)
        self.overrides = _properties(overrides)
        # System time until a test advances it (broker.clock.advance(seconds)).
        self.clock = clock or VirtualClock()
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._node: Node | None = None
        self._resume: threading.Event | None = None
        self._faults: LocalFaults | None = None
        self._disk: FaultyFileIO | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self._port}"

    @property
    def running(self) -> bool:
        return self._node is not None

    @property
    def node(self) -> Node:
        """The broker itself, for tests that look inside (None-checked)."""
        if self._node is None:
            raise BrokerError("the broker is not running")
        return self._node

    @property
    def faults(self) -> Faults:
        """Request faults: `broker.faults.drop_response(api="produce", times=1)`."""
        if self._faults is None:
            from odradek.testing.faults import LocalFaults

            self._faults = LocalFaults(self)
        return self._faults

    @property
    def disk(self) -> FaultyFileIO:
        """Disk faults: `broker.disk.fail("fsync", errno.EIO)`; kept across restarts."""
        if self._disk is None:
            from odradek.server.disk_faults import FaultyFileIO
            from odradek.storage.fileio import OsFileIO

            self._disk = FaultyFileIO(OsFileIO())
        return self._disk

    def start(self) -> InProcessBroker:
        from odradek.common.config import BrokerConfig
        from odradek.server.node import Node

        if self._node is not None:
            raise BrokerError("the broker is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = BrokerConfig(
            {
                **self.overrides,
                "listeners": f"PLAINTEXT://{HOST}:{self._port}",
                "log.dirs": str(self.data_dir),
            }
        )
        self._start_loop()
        node = Node(config, fileio=self.disk, clock=self.clock)
        try:
            self._call(node.start())
        except BaseException:
            self._stop_loop()
            raise
        self._node = node
        self.clock.on_advance(self._after_time_jump)
        self._port = node.bound_port
        if self._faults is not None:
            self._faults.attach(node)
        return self

    def _start_loop(self) -> None:
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:
            loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"odradek-broker-{id(self):x}", daemon=True
        )
        self._thread.start()

    def _call(self, coro: Any, timeout_s: float = START_TIMEOUT_S) -> Any:
        assert self._loop is not None
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout_s)

    def call(self, coro: Any, timeout_s: float = START_TIMEOUT_S) -> Any:
        """Run a coroutine on the broker's event loop and return its result."""
        if self._node is None:
            raise BrokerError("the broker is not running")
        return self._call(coro, timeout_s)

    def _after_time_jump(self) -> None:
        from odradek.server.virtual_clock import after_time_jump

        node = self._node
        if node is not None and self._loop is not None and self._resume is None:

            async def fire() -> None:
                after_time_jump(node)

            self._call(fire(), STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Graceful shutdown: stop listening, close connections, flush and checkpoint."""
        self._shutdown(abort=False)

    def kill(self) -> None:
        """Reset every connection and stop the node without waiting on anything in flight."""
        self._shutdown(abort=True)

    def _shutdown(self, *, abort: bool) -> None:
        node = self._node
        if node is None:
            return
        self.resume()
        self._node = None
        self.clock.remove_listener(self._after_time_jump)
        try:
            if abort:
                self._call(_abort_connections(node), STOP_TIMEOUT_S)
            self._call(node.stop(), STOP_TIMEOUT_S)
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(STOP_TIMEOUT_S)
        if not thread.is_alive():
            loop.close()

    def restart(self) -> None:
        """Stop (if running) and start again on the same port and data dir."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """Freeze the broker's event loop: nothing is read, answered or timed out until resume."""
        if self._loop is None or self._resume is not None:
            return
        resume = threading.Event()
        frozen = threading.Event()

        def freeze() -> None:
            frozen.set()
            resume.wait()

        self._resume = resume
        self._loop.call_soon_threadsafe(freeze)
        frozen.wait(STOP_TIMEOUT_S)

    def resume(self) -> None:
        if self._resume is not None:
            self._resume.set()
            self._resume = None

    def lift_faults(self) -> None:
        """Resume, and remove every request and disk fault."""
        self.resume()
        if self._disk is not None:
            self._disk.clear()
        if self._faults is not None:
            self._faults.clear()

    def close(self) -> None:
        """Teardown: lift every fault, stop whatever is still running."""
        self.lift_faults()
        if self._node is not None:
            self.stop()

    def __repr__(self) -> str:
        return f"InProcessBroker({self.bootstrap_servers}, data_dir={self.data_dir})"


async def _abort_connections(node: Node) -> None:
    for connection in list(node.connections):
        transport = connection.transport
        if transport is not None:
            transport.abort()
    await asyncio.sleep(0)


_READY = re.compile(r"ready: PLAINTEXT://[^:\s]+:(\d+)")
_CONTROL = re.compile(r"control=(http://\S+)")


START_METHODS = ("fork", "spawn")


class ProcessBroker:
    """A broker in a process of its own, restartable on the same port and data dir.

    `start_method="fork"` (the default where the OS has fork) forks it from the fork server
    (`forkserver.py`), a process that has imported the broker once; `"spawn"` launches
    `python -m odradek.testing.serve` afresh each time.

    `port=0` (the default) lets the kernel pick the port at the first start; a fixed `port` is
    for brokers whose address others must know before it starts (the voters of a cluster).
    """

    mode = "process"

    def __init__(
        self,
        data_dir: Path,
        overrides: Mapping[str, object] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        start_method: str | None = None,
        port: int = 0,
    ) -> None:
        if start_method is None:
            start_method = "fork" if hasattr(os, "fork") else "spawn"
        if start_method not in START_METHODS:
            raise ValueError(f"start_method must be one of {START_METHODS}: {start_method!r}")
        self.data_dir = Path(data_dir)
        self.overrides = _properties(overrides)
        self.env = dict(env or {})
        self.start_method = start_method
        self._port = port
        self.control_url = ""
        self.proc: subprocess.Popen[str] | ForkedProcess | None = None
        self.output: list[str] = []  # every line the broker printed, across restarts
        self._reader: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self._port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id of the broker while it runs."""
        return self.proc.pid if self.running and self.proc is not None else None

    def _control(self) -> ControlClient:
        from odradek.testing.faults import ControlClient

        if not self.running or not self.control_url:
            raise BrokerError("the broker is not running")
        return ControlClient(self.control_url)

    @property
    def faults(self) -> Faults:
        """Request faults through the control endpoint (lost when the process ends)."""
        from odradek.testing.faults import RemoteFaults

        return RemoteFaults(self._control())

    @property
    def clock(self) -> RemoteClock:
        """The broker's virtual clock, advanced through the control endpoint."""
        from odradek.testing.faults import RemoteClock

        return RemoteClock(self._control())

    @property
    def disk(self) -> RemoteDisk:
        """Disk faults through the control endpoint (lost when the process ends)."""
        from odradek.testing.faults import RemoteDisk

        return RemoteDisk(self._control())

    def serve_args(self) -> list[str]:
        """The arguments of `python -m odradek.testing.serve` for this broker."""
        args = ["--host", HOST, "--port", str(self._port), "--data-dir", str(self.data_dir)]
        for key, value in self.overrides.items():
            args += ["--override", f"{key}={value}"]
        return args

    def command(self) -> list[str]:
        return [sys.executable, "-m", "odradek.testing.serve", *self.serve_args()]

    def start(self) -> ProcessBroker:
        if self.running:
            raise BrokerError("the broker is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ready: Future[int] = Future()
        env = {**child_environment(), **self.env}
        proc: subprocess.Popen[str] | ForkedProcess
        if self.start_method == "fork":
            from odradek.testing.forkserver import fork_server

            proc = fork_server(env).spawn(self.serve_args(), env)
        else:
            proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
        self.proc = proc
        self._reader = threading.Thread(
            target=self._drain, args=(proc, ready), name="odradek-broker-output", daemon=True
        )
        self._reader.start()
        try:
            self._port = ready.result(START_TIMEOUT_S)
        except Exception as exc:
            self.kill()
            raise BrokerError(f"the broker did not start: {exc}\n{self.log()}") from None
        return self

    def _drain(self, proc: subprocess.Popen[str] | ForkedProcess, ready: Future[int]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                self.output.append(line)
                if not ready.done() and (found := _READY.search(line)):
                    control = _CONTROL.search(line)
                    self.control_url = control.group(1) if control else ""
                    ready.set_result(int(found.group(1)))
        if not ready.done():
            ready.set_exception(BrokerError(f"exited with code {proc.wait()}"))

    def log(self) -> str:
        return "".join(self.output[-200:])

    def stop(self) -> None:
        """SIGTERM and wait for the graceful shutdown (SIGKILL if it does not come)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        self.resume()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BrokerError(f"the broker ignored SIGTERM for {STOP_TIMEOUT_S} s") from None
        self._join_reader()

    def kill(self) -> None:
        """SIGKILL: nothing is flushed or checkpointed."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait(STOP_TIMEOUT_S)
        self._join_reader()

    def restart(self) -> None:
        self.stop()
        self.start()

    def pause(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)

    def lift_faults(self) -> None:
        """Resume, and remove every request and disk fault."""
        if self.running:
            self.resume()
            control = self._control()
            control.call("DELETE", "/v1/faults")
            control.call("DELETE", "/v1/disk")

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(5)

    def close(self) -> None:
        with contextlib.suppress(BrokerError):
            self.stop()
        self.kill()

    def __repr__(self) -> str:
        return f"ProcessBroker({self.bootstrap_servers}, data_dir={self.data_dir})"


def _same_odradek() -> dict[str, str]:
    """PYTHONPATH for a child that imports the odradek this process imported (a checkout's
    `src` under a relative PYTHONPATH, say, would be lost when the child's directory differs)."""
    import odradek

    root = str(Path(odradek.__file__).resolve().parents[1])
    rest = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": root + (os.pathsep + rest if rest else "")}


def child_environment() -> dict[str, str]:
    """The environment of a broker process: this one's, unbuffered, importing the same odradek."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", **_same_odradek()}
