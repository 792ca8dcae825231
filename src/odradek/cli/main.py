"""The `odradek` command: one noun or verb per module in this package."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from odradek import __version__
from odradek.cli import (
    cluster,
    completion,
    configs,
    consume,
    dump_log,
    groups,
    metadata_quorum,
    partitions,
    perf,
    produce,
    serve,
    topics,
    transactions,
)

COMMANDS = (
    serve,
    topics,
    produce,
    consume,
    groups,
    transactions,
    metadata_quorum,
    partitions,
    cluster,
    configs,
    perf,
    dump_log,
    completion,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="odradek",
        description="Odradek, a Kafka-compatible commit log. `odradek serve` starts a broker.",
    )
    parser.add_argument("--version", action="version", version=f"odradek {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
