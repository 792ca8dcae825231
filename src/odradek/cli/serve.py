"""`odradek serve`: run a single-node cluster (broker and controller in one process).

Configuration, lowest precedence first: Kafka's defaults, `--config server.properties`,
`ODRADEK_*` environment variables, `--override key=value`, then `--port` / `--data-dir` /
`--node-id` / `--process-roles` / `--controller-quorum-voters`. With voters named, nodes form a
replicated metadata quorum (KRaft): controllers vote, `--process-roles broker` nodes observe;
without, the node keeps its metadata log alone.
SIGINT and SIGTERM shut down gracefully.

`--control-port` also opens the test control endpoint (HTTP+JSON, `server/control.py`): request
and disk faults, pause/resume and a clock that tests move forward, for tests written in any
language (see docs/how-to/testing.md). The broker then runs on that virtual clock and a FileIO
that can fail on demand; the ready line ends with `control=http://host:port`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from odradek import __version__
from odradek.common.config import (
    BrokerConfig,
    from_environment,
    parse_overrides,
    parse_properties,
)
from odradek.common.errors import KafkaError

EXAMPLES = """examples:
  odradek serve                                  # 127.0.0.1:9092, data in ./odradek-data
  odradek serve --port 19092 --data-dir /tmp/kafka
  odradek serve --config server.properties --override num.partitions=3
  ODRADEK_AUTO_CREATE_TOPICS_ENABLE=false odradek serve
  odradek serve --port 0 --control-port 0           # for tests: faults and a virtual clock
  odradek serve --node-id 2 --port 9094 --data-dir /tmp/n2 \
      --controller-quorum-voters 1@127.0.0.1:9092,2@127.0.0.1:9094,3@127.0.0.1:9096
"""


def add_parser(subcommands: Any) -> None:
    parser = subcommands.add_parser(
        "serve",
        help="run a node (broker, controller or both)",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, help="listener port (default 9092)")
    parser.add_argument("--host", help="listener host (default 127.0.0.1)")
    parser.add_argument("--data-dir", type=Path, help="log directory (default ./odradek-data)")
    parser.add_argument("--config", type=Path, help="a server.properties file")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a broker property (repeatable)",
    )
    parser.add_argument("--node-id", type=int, help="this node's id (node.id, default 1)")
    parser.add_argument(
        "--process-roles",
        help="broker, controller or broker,controller (process.roles, the default)",
    )
    parser.add_argument(
        "--controller-quorum-voters",
        metavar="ID@HOST:PORT,...",
        help="the metadata quorum's voters (controller.quorum.voters; default: none)",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    parser.add_argument(
        "--control-port",
        type=int,
        help="open the test control endpoint (faults, virtual clock) on this port (0: any)",
    )
    parser.set_defaults(run=run)


def build_config(args: argparse.Namespace, environ: dict[str, str]) -> BrokerConfig:
    values: dict[str, str] = {}
    if args.config is not None:
        values.update(parse_properties(args.config.read_text()))
    values.update(from_environment(environ))
    values.update(parse_overrides(args.override))
    if args.port is not None or args.host is not None:
        listeners = values.get("listeners", "PLAINTEXT://127.0.0.1:9092").split(",")[0]
        scheme, _, rest = listeners.partition("://")
        host, _, port = rest.rpartition(":")
        host = args.host if args.host is not None else host
        port = str(args.port) if args.port is not None else port
        values["listeners"] = f"{scheme}://{host}:{port}"
    if args.data_dir is not None:
        values["log.dirs"] = str(args.data_dir)
    for option, key in (
        ("node_id", "node.id"),
        ("process_roles", "process.roles"),
        ("controller_quorum_voters", "controller.quorum.voters"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            values[key] = str(value)
    return BrokerConfig(values)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    # kio registers hypothesis strategies when hypothesis is importable (a test dependency);
    # a broker never needs them, and importing hypothesis costs ~150 ms and ~20 MiB.
    if "hypothesis" not in sys.modules:
        sys.modules["hypothesis"] = None  # type: ignore[assignment]
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        config = build_config(args, dict(os.environ))
    except (KafkaError, OSError, ValueError) as exc:
        print(f"odradek serve: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        return int(runner(_serve(config, started, getattr(args, "control_port", None))))
    except KeyboardInterrupt:
        return 0


async def _serve(config: BrokerConfig, started: float, control_port: int | None = None) -> int:
    from odradek.server.node import Node

    control: Any = None
    if control_port is None:
        node = Node(config)
    else:
        from odradek.server.control import ControlServer
        from odradek.server.disk_faults import FaultyFileIO
        from odradek.server.virtual_clock import VirtualClock
        from odradek.storage.fileio import OsFileIO

        disk, clock = FaultyFileIO(OsFileIO()), VirtualClock()
        node = Node(config, fileio=disk, clock=clock)
        control = ControlServer(node, disk, clock)
    try:
        await node.start()
        if control is not None:
            await control.start(node.advertised_endpoint[0], control_port)
    except (KafkaError, OSError, ValueError) as exc:
        print(f"odradek serve: cannot start: {exc}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    host, port = node.advertised_endpoint
    elapsed_ms = (time.perf_counter() - started) * 1000
    print(
        f"odradek {__version__} ready: PLAINTEXT://{host}:{port}"
        f" data={','.join(str(d) for d in node.log_dirs)} node={node.node_id}"
        f" cluster={node.cluster_id}"
        + (f" control=http://{host}:{control.port}" if control is not None else "")
        + f" (started in {elapsed_ms:.0f} ms)",
        flush=True,
    )
    await stop.wait()
    print("odradek: shutting down", flush=True)
    if control is not None:
        await control.stop()
    await node.stop()
    print("odradek: stopped", flush=True)
    return 0
