"""Fixtures shared by every test directory: a real `odradek serve` broker in a subprocess.

`broker` is one broker per test module (a module may set `BROKER_OVERRIDES = {...}` to start
it with Kafka properties of its own); `fresh_broker` is one per test, for tests that stop,
kill or restart it; `broker_factory` starts as many as a test needs, with overrides and
environment variables. Every process started here is terminated at teardown, killed if it
does not stop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

READY_TIMEOUT_S = 20.0
# Kafka's own test harness does the same: a new group's first rebalance does not wait 3 s for
# more members. Tests of the delay set it back explicitly.
TEST_DEFAULTS: dict[str, object] = {"group.initial.rebalance.delay.ms": 0}
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    """A port nobody listens on right now (the kernel picks it; we release it at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class BrokerStartError(RuntimeError):
    pass


class Broker:
    """One `python -m odradek serve` on 127.0.0.1, restartable on the same port and data dir.

    The port stays fixed across restarts so clients that already hold `bootstrap` reconnect to
    the new process, which is what a user restarting a broker sees.
    """

    def __init__(
        self,
        data_dir: Path,
        overrides: Mapping[str, object] | None = None,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.overrides = {**TEST_DEFAULTS, **(overrides or {})}
        self.env = dict(env or {})
        self.port = port if port is not None else free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []  # every line the broker printed, across restarts
        self.ready_line = ""
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "odradek", "serve"]
        cmd += ["--port", str(self.port), "--data-dir", str(self.data_dir)]
        for key, value in self.overrides.items():
            cmd += ["--override", f"{key}={value}"]
        return cmd

    def start(self) -> Broker:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("broker already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self._ready = threading.Event()
        self.output.append(f"--- start: {' '.join(self.command())}\n")
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(
            target=self._drain, args=(self.proc, self._ready), name="broker-output", daemon=True
        )
        self._reader.start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                self._reader.join(2)
                raise BrokerStartError(
                    f"broker exited with code {self.proc.returncode} before it was ready:\n"
                    + self.log()
                )
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerStartError(
                    f"broker not ready within {READY_TIMEOUT_S:.0f} s:\n" + self.log()
                )
        return self

    def _drain(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                self.output.append(line)
                # The ready line names the advertised listener, which may not be our port.
                if not ready.is_set() and " ready: " in line:
                    self.ready_line = line.strip()
                    ready.set()

    def log(self) -> str:
        return "".join(self.output[-300:])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait: a graceful shutdown. Returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"broker did not stop within {timeout_s:.0f} s of SIGTERM:\n" + self.log()
                ) from None
        self._join_reader()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or checkpoint anything."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._join_reader()

    def restart(self) -> Broker:
        if self.running:
            self.stop()
        return self.start()

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(5)

    def close(self) -> None:
        """Teardown: terminate whatever is still running, never leave a process behind."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.stop(timeout_s=10)
        except AssertionError:
            pass  # stop() already killed it; the test result, not teardown, reports this
        finally:
            if self.proc.poll() is None:
                self.kill()

    def __repr__(self) -> str:
        return f"Broker({self.bootstrap}, data_dir={self.data_dir})"


BrokerFactory = Callable[..., Broker]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", help="also run the tests marked slow (CI does)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failure, show what the brokers this test used printed."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        brokers = [v for v in funcargs.values() if isinstance(v, Broker)]
        brokers += getattr(funcargs.get("broker_factory"), "started", [])
        brokers += getattr(funcargs.get("unstarted_broker"), "started", [])
        for b in dict.fromkeys(brokers):
            report.sections.append((f"broker {b.bootstrap} output", b.log()))
    return report


def _factory(tmp_dir: Callable[[], Path]) -> tuple[BrokerFactory, list[Broker]]:
    started: list[Broker] = []

    def start(
        overrides: Mapping[str, object] | None = None,
        env: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
    ) -> Broker:
        broker = Broker(data_dir or tmp_dir() / "data", overrides=overrides, env=env)
        started.append(broker)
        return broker.start()

    start.started = started  # type: ignore[attr-defined]  # read by pytest_runtest_makereport
    return start, started


@pytest.fixture(scope="module")
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """One broker for the whole test module; each test uses topics of its own."""
    overrides = getattr(request.module, "BROKER_OVERRIDES", None)
    start, started = _factory(lambda: tmp_path_factory.mktemp("broker"))
    try:
        yield start(overrides=overrides)
    finally:
        for b in started:
            b.close()


@pytest.fixture
def broker_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerFactory]:
    """Start brokers with `broker_factory(overrides={...}, env={...})`; all stopped at teardown."""
    start, started = _factory(lambda: tmp_path_factory.mktemp("broker"))
    try:
        yield start
    finally:
        for b in started:
            b.close()


@pytest.fixture
def fresh_broker(broker_factory: BrokerFactory) -> Broker:
    """A broker of this test's own, free to be stopped, killed and restarted."""
    return broker_factory()


@pytest.fixture
def unstarted_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Broker]]:
    """`unstarted_broker(overrides={...}, port=...)`: a broker on a port chosen now but started
    by the test (the nodes of a cluster must all know each other's ports before any starts).
    All are closed at teardown."""
    made: list[Broker] = []

    def make(overrides: Mapping[str, object] | None = None, port: int | None = None) -> Broker:
        broker = Broker(tmp_path_factory.mktemp("node") / "data", overrides=overrides, port=port)
        made.append(broker)
        return broker

    make.started = made  # type: ignore[attr-defined]  # read by pytest_runtest_makereport
    try:
        yield make
    finally:
        for b in made:
            b.close()
