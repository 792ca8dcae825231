"""The CLI reference, docs/reference/cli.md, generated from the argparse definitions:

    python -m odradek.cli.reference > docs/reference/cli.md

Each command gets a section with its one-line summary and its full `--help` text, rendered at
a fixed width so the file does not depend on the terminal it was made in. A unit test fails
when the committed file differs from what this prints.
"""

from __future__ import annotations

import os
import sys

from odradek.cli.command_tree import walk

WIDTH = 100

HEADER = """\
# CLI reference

Every `odradek` command with its `--help` text. Generated from the command definitions by
`python -m odradek.cli.reference > docs/reference/cli.md`; do not edit by hand.

Commands that talk to a broker share `--bootstrap-server` (default `$ODRADEK_BOOTSTRAP_SERVER`,
else `localhost:9092`), `--command-config FILE`, `--output text|json` and `--timeout`, and exit
with 0 when done, 1 when the broker or the tool refused something, 2 on bad usage, an
unreachable broker or a topic or group that does not exist. `odradek completion bash|zsh`
prints a shell completion script.
"""


def render() -> str:
    from odradek.cli.main import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)  # argparse wraps help text at the terminal's width
    try:
        parser = build_parser()
        sections = [HEADER]
        commands = list(walk(parser))
        sections.append("## Commands\n")
        sections.append(
            "\n".join(
                f"- [`{c.name}`](#{c.name.replace(' ', '-')}){f': {c.help}' if c.help else ''}"
                for c in commands
            )
            + "\n"
        )
        for command in commands:
            sections.append(
                f"## {command.name}\n\n```text\n{command.parser.format_help().rstrip()}\n```\n"
            )
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    return "\n".join(sections)


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
