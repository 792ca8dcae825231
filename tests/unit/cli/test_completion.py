"""The generated bash completion, run in a real bash: it completes what argparse defines."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from odradek.cli.command_tree import walk
from odradek.cli.completion import bash_script, zsh_script
from odradek.cli.main import build_parser

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def complete(*words: str) -> list[str]:
    """COMPREPLY for a command line whose last word is being completed."""
    script = bash_script(build_parser())
    words_array = " ".join(shlex.quote(w) for w in ("odradek", *words))
    probe = (
        f"{script}\nCOMP_WORDS=({words_array}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ));"
        ' _odradek; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    proc = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


def test_commands_and_subcommands() -> None:
    top = {c.path[0] for c in walk(build_parser()) if len(c.path) == 1}
    assert {"produce", "consume", "groups", "completion", "serve"} <= top
    assert set(complete("")) == top
    assert complete("pro") == ["produce"]
    assert complete("groups", "") == ["list", "describe", "reset-offsets", "delete"]
    assert complete("completion", "") == ["bash", "zsh"]


def test_options_and_their_values() -> None:
    assert complete("consume", "orders", "--from") == ["--from-beginning", "--from-time"]
    assert complete("produce", "orders", "--acks", "") == ["all", "-1", "0", "1"]
    assert complete("consume", "orders", "--isolation-level", "read_c") == ["read_committed"]
    assert complete("groups", "reset-offsets", "app", "--to-e") == ["--to-earliest"]
    assert complete("produce", "orders", "--header", "") == []  # a free value: nothing offered
    # options of one command are not offered for another
    assert complete("consume", "orders", "--key") == []


def test_zsh_script_wraps_the_bash_one() -> None:
    parser = build_parser()
    assert zsh_script(parser).endswith(bash_script(parser))
    assert "bashcompinit" in zsh_script(parser)


def test_file_arguments_complete_paths(tmp_path: Path) -> None:
    (tmp_path / "records.txt").write_text("x\n")
    prefix = str(tmp_path / "rec")
    assert complete("produce", "orders", "--file", prefix) == [str(tmp_path / "records.txt")]
