"""The code checks run as tests, so `pytest` alone tells whether a change is ready: ruff lint
and format, mypy --strict on src/odradek, and the import-linter contract for DESIGN.md's layers.
All configuration lives in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "ruff", "check", "src", "tests"],
        [sys.executable, "-m", "ruff", "format", "--check", "src", "tests"],
        [sys.executable, "-m", "mypy"],
        [str(BIN / "lint-imports")],
    ],
    ids=["ruff-check", "ruff-format", "mypy", "import-linter"],
)
def test_code_checks_pass(command: list[str]) -> None:
    proc = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=280, check=False
    )
    assert proc.returncode == 0, (
        f"`{' '.join(command)}` failed with exit code {proc.returncode}:\n"
        f"{proc.stdout}\n{proc.stderr}"
    )
