"""`python -m odradek.testing.serve`: `odradek serve` with the control endpoint, for tests.

The broker is the one `odradek serve` runs, configured the same way (`--port`, `--host`,
`--data-dir`, `--override`, `ODRADEK_*`), on a virtual clock (system time until advanced), with
its FileIO wrapped for disk faults and a control
endpoint (`server/control.py`) on `--control-port` (0: the kernel picks). The ready line is
`odradek serve`'s with `control=http://host:port` appended. SIGTERM and SIGINT stop it
gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    if "hypothesis" not in sys.modules:  # as `odradek serve`: kio would import it for nothing
        sys.modules["hypothesis"] = None  # type: ignore[assignment]
    parser = argparse.ArgumentParser(prog="python -m odradek.testing.serve", description=__doc__)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--host", default=None)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--control-port", type=int, default=0)
    args = parser.parse_args(argv)
    args.config = None

    from odradek.cli.serve import build_config

    config = build_config(args, dict(os.environ))
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        return int(runner(_serve(config, args.control_port, started)))
    except KeyboardInterrupt:
        return 0


async def _serve(config: Any, control_port: int, started: float) -> int:
    from odradek import __version__
    from odradek.server.control import ControlServer
    from odradek.server.disk_faults import FaultyFileIO
    from odradek.server.node import Node
    from odradek.server.virtual_clock import VirtualClock
    from odradek.storage.fileio import OsFileIO

    disk = FaultyFileIO(OsFileIO())
    clock = VirtualClock()
    node = Node(config, fileio=disk, clock=clock)
    await node.start()
    host, port = node.advertised_endpoint
    control = ControlServer(node, disk, clock)
    await control.start(host, control_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(
        f"odradek {__version__} ready: PLAINTEXT://{host}:{port} node={node.node_id}"
        f" control=http://{host}:{control.port} (started in {elapsed_ms:.0f} ms)",
        flush=True,
    )
    await stop.wait()
    await control.stop()
    await node.stop()
    print("odradek: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
