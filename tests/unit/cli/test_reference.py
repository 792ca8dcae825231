"""docs/reference/cli.md is what `python -m odradek.cli.reference` prints for this code."""

from __future__ import annotations

from pathlib import Path

from odradek.cli.command_tree import walk
from odradek.cli.main import build_parser
from odradek.cli.reference import render

REFERENCE = Path(__file__).resolve().parents[3] / "docs" / "reference" / "cli.md"


def test_committed_reference_is_up_to_date() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == render(), (
        "docs/reference/cli.md is stale: run"
        " `python -m odradek.cli.reference > docs/reference/cli.md`"
    )


def test_every_command_has_a_section() -> None:
    text = render()
    for command in walk(build_parser()):
        assert f"\n## {command.name}\n" in text
        assert f"usage: {command.name}" in text


def test_client_commands_show_examples_in_their_help() -> None:
    for command in walk(build_parser()):
        if command.path[:1] in (
            ("topics",),
            ("produce",),
            ("consume",),
            ("groups",),
            ("configs",),
            ("transactions",),
            ("metadata-quorum",),
            ("partitions",),
            ("cluster",),
            ("perf",),
            ("completion",),
        ):
            text = command.parser.format_help()
            assert "\nexamples:\n" in text, command.name
            assert f"{command.name} " in text.split("\nexamples:\n")[1], command.name
