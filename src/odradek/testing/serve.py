"""`python -m odradek.testing.serve`: `odradek serve --control-port 0` by default, for tests.

The same broker and options as `odradek serve` (`--port`, `--host`, `--data-dir`,
`--override`, `ODRADEK_*`), always with the control endpoint (`server/control.py`): request and
disk faults and a virtual clock. Only `odradek.cli.serve` is imported (not every subcommand),
which keeps a fresh start short. The ready line is `odradek serve`'s, ending with
`control=http://host:port`.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from odradek.cli import serve

    parser = argparse.ArgumentParser(prog="python -m odradek.testing.serve")
    serve.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    if args.control_port is None:
        args.control_port = 0
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
