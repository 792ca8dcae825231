"""Options and plumbing shared by every command that talks to a broker as a client.

Each such command (`groups`, and later `topics`, `produce`, `consume`, ...) calls
`add_client_options(parser)` and runs through `run_client_command`, so they all take the same
options and fail the same way:

- `--bootstrap-server HOST:PORT[,HOST:PORT...]`; without it, `bootstrap.servers` from the
  `--command-config` file, then `$ODRADEK_BOOTSTRAP_SERVER`, then `localhost:9092`.
- `--command-config FILE`: a Java-properties file of librdkafka client properties
  (`security.protocol`, `sasl.mechanism`, `sasl.username`, `ssl.ca.location`, ...), the file
  Kafka's tools take under the same name. A Java `sasl.jaas.config` line with `username="..."`
  and `password="..."` is turned into `sasl.username` / `sasl.password`, so the client.properties
  a Kafka user already has for SASL/PLAIN or SCRAM works unchanged. `--bootstrap-server` wins
  over a `bootstrap.servers` line in the file, as in Kafka's tools; the file, named on this
  command line, wins over the environment.
- `--output text|json`: text is for people (rich tables); json is for programs. The json
  document is written to stdout as a single object, keys in snake_case, offsets as integers,
  absent values (no committed offset, no lag) as `null`. Each command documents its schema in
  its module docstring; fields are only ever added, never renamed or removed.
- `--timeout SECONDS` (default 10): the limit for each call to the broker.

Errors never print a stack trace. They are one line on stderr, `odradek <command>: error: ...`,
in json mode as well (stdout then holds nothing, or only what was done before the error), and
the exit code says what kind of failure it was:

- 0: done.
- 1: the broker or the tool refused the operation (a group that is not empty, not inactive).
- 2: bad usage, the broker cannot be reached, or a group or topic does not exist.

Reaching the broker: AdminClient calls against a dead address wait for the whole timeout and
then fail with a vague error, so `connect_admin` first probes with a metadata request and
watches librdkafka's error callback. When every bootstrap address refuses the connection it
gives up after a short grace period (long enough for librdkafka to try each address a name
resolves to, e.g. `::1` and `127.0.0.1` for `localhost`), and otherwise after `--timeout`.
librdkafka's own log lines are routed into a silent logger so they cannot interleave with the
output.

`odradek.cli.main` imports every command module at start, `serve` included, so this module
imports confluent_kafka, rich and json only inside the functions that need them.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

DEFAULT_BOOTSTRAP_SERVER = "localhost:9092"
BOOTSTRAP_SERVER_ENV = "ODRADEK_BOOTSTRAP_SERVER"
DEFAULT_TIMEOUT_S = 10.0

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_ERROR = 2

# How long to keep trying after librdkafka reports every broker down: it retries after
# reconnect.backoff.ms (100 ms, doubling), so in 1.5 s it has tried each resolved address.
UNREACHABLE_GRACE_S = 1.5
_PROBE_STEP_S = 0.25

# Kafka's texts (org.apache.kafka.common.protocol.Errors) for the errors group and offset
# commands meet; librdkafka's own strings for them are shorter and differ between versions.
KAFKA_ERROR_MESSAGES = {
    "UNKNOWN_TOPIC_OR_PART": "This server does not host this topic-partition.",
    "COORDINATOR_LOAD_IN_PROGRESS": "The coordinator is loading and hence can't process requests.",
    "COORDINATOR_NOT_AVAILABLE": "The coordinator is not available.",
    "NOT_COORDINATOR": "This is not the correct coordinator.",
    "ILLEGAL_GENERATION": "Specified group generation id is not valid.",
    "INVALID_GROUP_ID": "The configured groupId is invalid.",
    "UNKNOWN_MEMBER_ID": "The coordinator is not aware of this member.",
    "REBALANCE_IN_PROGRESS": "The group is rebalancing, so a rejoin is needed.",
    "GROUP_AUTHORIZATION_FAILED": "Group authorization failed.",
    "TOPIC_AUTHORIZATION_FAILED": "Topic authorization failed.",
    "NON_EMPTY_GROUP": "The group is not empty.",
    "GROUP_ID_NOT_FOUND": "The group id does not exist.",
    "UNSUPPORTED_VERSION": "The version of API is not supported.",
}


class ClientError(Exception):
    """Ends a client command: `message` goes to stderr as one line, `exit_code` is returned."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def add_client_options(
    parser: argparse.ArgumentParser,
    output_help: str = "text tables for people, or one json document for programs (default text)",
) -> None:
    """Add the options every client-side command shares (see the module docstring)."""
    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--bootstrap-server",
        metavar="HOST:PORT",
        default=None,
        help=(
            f"broker(s) to connect to (default ${BOOTSTRAP_SERVER_ENV},"
            f" else {DEFAULT_BOOTSTRAP_SERVER})"
        ),
    )
    group.add_argument(
        "--command-config",
        metavar="FILE",
        type=Path,
        help="Java-properties file of librdkafka client properties (security, SASL, TLS)",
    )
    group.add_argument(
        "--output",
        choices=("text", "json"),
        default="text",
        help=output_help,
    )
    group.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"limit for each call to the broker (default {DEFAULT_TIMEOUT_S:g})",
    )


def paragraph(text: str) -> str:
    """A command's description, wrapped for RawDescriptionHelpFormatter (which keeps the
    epilog's example lines as written but would not wrap the description either)."""
    import textwrap

    return textwrap.fill(text, 96)


def positive_seconds(text: str) -> float:
    """argparse type: a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def bootstrap_servers(
    args: argparse.Namespace,
    from_file: str | None = None,
    environ: dict[str, str] | None = None,
) -> str:
    """`--bootstrap-server`, else the command-config file's, else the environment's, else
    localhost:9092."""
    if args.bootstrap_server:
        return str(args.bootstrap_server)
    if from_file:
        return from_file
    env = os.environ if environ is None else environ
    return env.get(BOOTSTRAP_SERVER_ENV) or DEFAULT_BOOTSTRAP_SERVER


# -- Java properties ---------------------------------------------------------------------------

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def parse_properties(text: str) -> dict[str, str]:
    """Parse the text of a Java `.properties` file (java.util.Properties.load semantics):
    `#`/`!` comment lines, `key=value`, `key: value` or `key value`, backslash line
    continuation, and the escapes \\t \\n \\r \\f \\uXXXX (any other `\\c` is `c`)."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].lstrip(" \t\f")
        i += 1
        if not line or line[0] in "#!":
            continue
        # an odd number of trailing backslashes continues the logical line
        while _continues(line) and i < len(lines):
            line = line[:-1] + lines[i].lstrip(" \t\f")
            i += 1
        if _continues(line):
            line = line[:-1]
        key, value = _split_property(line)
        out[_unescape(key)] = _unescape(value)
    return out


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split_property(line: str) -> tuple[str, str]:
    j = 0
    while j < len(line):
        char = line[j]
        if char == "\\":
            j += 2
            continue
        if char in "=: \t\f":
            break
        j += 1
    key = line[:j]
    rest = line[j:].lstrip(" \t\f")
    if rest[:1] in ("=", ":"):  # one separator only: `a==b` is a -> "=b", as in Java
        rest = rest[1:].lstrip(" \t\f")
    return key, rest


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    j = 0
    while j < len(text):
        char = text[j]
        if char != "\\" or j + 1 == len(text):
            out.append(char)
            j += 1
            continue
        code = text[j + 1]
        if code == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[j + 2 : j + 6]):
            out.append(chr(int(text[j + 2 : j + 6], 16)))
            j += 6
            continue
        out.append(_ESCAPES.get(code, code))
        j += 2
    return "".join(out)


_JAAS_OPTION = re.compile(r'\b(username|password)\s*=\s*"((?:[^"\\]|\\.)*)"')


def librdkafka_properties(properties: dict[str, str]) -> dict[str, str]:
    """Turn Java-only client properties librdkafka has an equivalent for into that equivalent:
    today `sasl.jaas.config`'s username and password."""
    out = dict(properties)
    jaas = out.pop("sasl.jaas.config", None)
    if jaas is not None:
        for name, value in _JAAS_OPTION.findall(jaas):
            out.setdefault(f"sasl.{name}", value.replace('\\"', '"'))
    return out


def load_command_config(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ClientError(f"--command-config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ClientError(f"--command-config {path}: not a UTF-8 text file") from None
    return librdkafka_properties(parse_properties(text))


def client_config(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """librdkafka configuration: the command-config file, the bootstrap servers chosen by
    `bootstrap_servers`, and `extra` (the command's defaults, e.g. a client.id) where the
    file does not set them."""
    config: dict[str, Any] = {}
    if getattr(args, "command_config", None) is not None:
        config.update(load_command_config(args.command_config))
    config["bootstrap.servers"] = bootstrap_servers(args, config.get("bootstrap.servers"))
    for key, value in extra.items():
        config.setdefault(key, value)
    return config


# -- talking to the broker ---------------------------------------------------------------------

# Properties confluent-kafka handles in Python rather than passing to librdkafka; given as text
# (-X, --command-config) they would be refused.
_PYTHON_BOOLEAN_PROPERTIES = ("delivery.report.only.error",)


def _silent_logger() -> Any:
    import logging

    logger = logging.getLogger("odradek.cli.librdkafka")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger


def connect_admin(args: argparse.Namespace, client_id: str) -> tuple[Any, Any]:
    """An AdminClient for `args`, and the cluster metadata the probe fetched (all topics).

    Raises ClientError (exit 2) when the configuration is invalid or no broker answers."""
    from confluent_kafka.admin import AdminClient

    admin, metadata, _ = connect_client(AdminClient, args, client_id)
    return admin, metadata


def connect_client(
    kind: Callable[[dict[str, Any]], Any],
    args: argparse.Namespace,
    client_id: str,
    defaults: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[Any, Any, list[Any]]:
    """A confluent-kafka client of class `kind` (Producer, Consumer, AdminClient) for `args`,
    the cluster metadata the probe fetched (all topics: asking for one topic could create it
    on a broker with auto.create.topics.enable), and the list the client's error callback
    appends to.

    `defaults` give way to the command-config file; `overrides` (the command's own flags and
    `-X` properties) win over it. Raises ClientError (exit 2) when the configuration is invalid
    or no broker answers."""
    from confluent_kafka import KafkaException

    errors: list[Any] = []
    config = client_config(args, **{"client.id": client_id, **(defaults or {})})
    config.update(overrides or {})
    for key in _PYTHON_BOOLEAN_PROPERTIES:  # read by confluent-kafka itself, which wants a bool
        if isinstance(config.get(key), str):
            config[key] = config[key].strip().lower() in ("true", "1")
    config["error_cb"] = errors.append
    config["logger"] = _silent_logger()
    try:
        client = kind(config)
    except (KafkaException, ValueError, TypeError) as exc:
        raise ClientError(f"invalid client configuration: {error_message(exc)}") from None
    metadata = probe(client, errors, config["bootstrap.servers"], args.timeout)
    return client, metadata, errors


def topic_partitions(metadata: Any, topic: str, wanted: int | None = None) -> list[int]:
    """The partition ids of `topic` in `metadata` (sorted), or only `wanted` if it exists.

    Raises ClientError (exit 2) when the topic or the partition does not exist."""
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        raise ClientError(f"Topic '{topic}' does not exist.")
    partitions = sorted(info.partitions)
    if wanted is None:
        return partitions
    if wanted not in info.partitions:
        raise ClientError(
            f"Partition {wanted} of topic '{topic}' does not exist"
            f" (the topic has {len(partitions)} partitions)."
        )
    return [wanted]


def add_properties_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    long_name: str,
    what: str,
    example: str,
) -> None:
    """`-X KEY=VALUE` / `--<long_name> KEY=VALUE` (repeatable): librdkafka properties for the
    command's client, winning over the command-config file and the command's defaults."""
    parser.add_argument(
        "-X",
        f"--{long_name}",
        dest="properties",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a librdkafka {what} property, e.g. {example} (repeatable)",
    )


def parse_properties_option(items: list[str], flag: str = "-X") -> dict[str, str]:
    """`KEY=VALUE` strings as a dict; ClientError (exit 2) names the malformed one."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ClientError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


def probe(admin: Any, errors: list[Any], bootstrap: str, timeout_s: float) -> Any:
    """Fetch cluster metadata, failing fast (ClientError) when no broker can be reached."""
    from confluent_kafka import KafkaError, KafkaException

    start = time.monotonic()
    deadline = start + timeout_s
    last: Exception | None = None
    while True:
        remaining = deadline - time.monotonic()
        try:
            return admin.list_topics(timeout=max(0.05, min(_PROBE_STEP_S, remaining)))
        except KafkaException as exc:
            last = exc
        admin.poll(0)  # serve error_cb
        codes = {error.code() for error in errors}
        now = time.monotonic()
        fatal = codes & {KafkaError._AUTHENTICATION, KafkaError._SSL}
        down = KafkaError._ALL_BROKERS_DOWN in codes and now - start >= UNREACHABLE_GRACE_S
        if fatal or down or now >= deadline:
            detail = _connection_detail(errors) or (error_message(last) if last else "")
            waited = "" if fatal or down else f" within {timeout_s:g} s"
            raise ClientError(f"cannot reach a broker at {bootstrap}{waited}: {detail}")


def _connection_detail(errors: list[Any]) -> str:
    """The most telling error librdkafka reported, without its 'host:port/bootstrap: ' prefix."""
    from confluent_kafka import KafkaError

    preferred = (KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError._TRANSPORT)
    for code in preferred:
        for error in reversed(errors):
            if error.code() == code:
                text: str = error.str()
                text = re.sub(r"^\S+/(bootstrap|\d+): ", "", text)
                return re.sub(r" \(after \d+ms in state \w+\)$", "", text)
    for error in reversed(errors):
        return str(error.str())
    return ""


def kafka_error(exc: BaseException) -> Any:
    """The confluent_kafka.KafkaError inside a KafkaException, or None."""
    args = getattr(exc, "args", ())
    if args and hasattr(args[0], "code") and hasattr(args[0], "name"):
        return args[0]
    return None


def error_name(exc: BaseException) -> str | None:
    error = kafka_error(exc)
    return None if error is None else str(error.name())


def error_message(exc: Any) -> str:
    """A one-line message for a KafkaException, a KafkaError or any other exception: Kafka's
    text for broker errors it has one for, else librdkafka's."""
    error = exc if hasattr(exc, "code") and hasattr(exc, "name") else kafka_error(exc)
    if error is None:
        return " ".join(str(exc).split()) or type(exc).__name__
    name = str(error.name())
    text = KAFKA_ERROR_MESSAGES.get(name) or str(error.str())
    return " ".join(text.split())


def result(future: Any, timeout_s: float) -> Any:
    """A future's result; a future librdkafka never completes counts as a timeout (exit 2)."""
    import concurrent.futures

    try:
        return future.result(timeout=timeout_s + 5)
    except concurrent.futures.TimeoutError:
        raise ClientError(f"no answer from the broker within {timeout_s:g} s") from None


# -- output ------------------------------------------------------------------------------------


def console(file: IO[str] | None = None) -> Console:
    """A rich console for text output. Not a terminal (a pipe, a file): no colour, no
    wrapping, so every row stays on one line for grep and awk."""
    from rich.console import Console

    out = sys.stdout if file is None else file
    if out.isatty():
        return Console(file=out, highlight=False)
    return Console(file=out, highlight=False, no_color=True, width=100_000, soft_wrap=True)


def print_json(document: Any, file: IO[str] | None = None) -> None:
    import json

    out = sys.stdout if file is None else file
    json.dump(document, out, indent=2, sort_keys=False)
    out.write("\n")


def add_noun_parser(
    subcommands: Any, name: str, *, help: str, description: str, examples: str
) -> Any:
    """The parser of a noun whose verbs talk to a cluster (`odradek groups describe ...`);
    returns its verbs' subparsers. The noun alone prints its help (exit 2); a verb's
    `verb_run` runs through `run_client_command`."""
    parser: argparse.ArgumentParser = subcommands.add_parser(
        name,
        help=help,
        description=description,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    def run(args: argparse.Namespace) -> int:
        verb = getattr(args, "verb_run", None)
        if verb is None:
            parser.print_help()
            return EXIT_ERROR
        return run_client_command(name, verb, args)

    parser.set_defaults(run=run)
    return parser.add_subparsers(dest="verb", metavar="VERB")


def run_client_command(
    command: str, func: Callable[[argparse.Namespace], int], args: argparse.Namespace
) -> int:
    """Run `func(args)`, turning every expected failure into one stderr line and an exit code."""
    from confluent_kafka import KafkaException

    try:
        code = func(args)
        sys.stdout.flush()
        return code
    except ClientError as exc:
        print_error(command, exc.message)
        return exc.exit_code
    except KafkaException as exc:
        print_error(command, error_message(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`); keep the interpreter's final flush quiet
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_REFUSED


def print_error(command: str, message: str) -> None:
    sys.stdout.flush()
    print(f"odradek {command}: error: {message}", file=sys.stderr)
