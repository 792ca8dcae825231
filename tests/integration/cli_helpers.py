"""Running `odradek <noun> <verb>` as a subprocess against a test broker, and checking what a
user sees: exit code, one json document on stdout, or exactly one error line on stderr."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from typing import Any


def odradek(broker: Any, *args: str, bootstrap: str | None = None) -> subprocess.CompletedProcess:
    address = bootstrap or broker.bootstrap
    return subprocess.run(
        [sys.executable, "-m", "odradek", *args, "--bootstrap-server", address, "--timeout", "20"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def json_out(proc: subprocess.CompletedProcess) -> Any:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


def one_error_line(proc: subprocess.CompletedProcess, code: int, noun: str = "topics") -> str:
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"odradek {noun}: error: "), proc.stderr
    return proc.stderr.strip().removeprefix(f"odradek {noun}: error: ")


def unused_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"
