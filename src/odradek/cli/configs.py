"""`odradek configs`: describe, set and delete the configs of a topic or a broker, as Kafka's
kafka-configs.sh does.

Everything goes through confluent-kafka's AdminClient (DescribeConfigs and
IncrementalAlterConfigs), so the command works against any Kafka-compatible broker. The
options shared with every client command and the exit codes (0 done, 1 refused, 2 bad usage /
unreachable / no such topic) are described in `odradek.cli.client_options`.

- `describe (--topic T | --broker N) [--all]`: the configs set on the resource (a topic's own
  overrides; a broker's dynamic and static values), or with `--all` every config with its
  value and where that value comes from.
- `set (--topic T | --broker N) KEY=VALUE... [--append KEY=VALUE] [--subtract KEY=VALUE]`:
  SET each key, or APPEND to / SUBTRACT from a list config (items separated by commas).
- `delete (--topic T | --broker N) KEY...`: remove the keys, so the default applies again.

`set` and `delete` take `--validate-only`: the broker checks the change and keeps nothing.
A value the broker refuses (INVALID_CONFIG, a config that cannot change at run time) is exit 1
with the broker's message; a topic that does not exist is exit 2. The broker is named by its
id: the cluster-wide default (the empty broker name) cannot be sent through librdkafka.

JSON output (`--output json`), one object on stdout:

    describe:     {"resource": {"type": "topic" | "broker", "name": str},
                   "configs": [{"name": str, "value": str | null, "source": str,
                                "is_default": bool, "read_only": bool, "sensitive": bool}]}
    set, delete:  {"resource": {"type": ..., "name": str}, "validate_only": bool,
                   "changes": [{"name": str, "operation": "SET" | "APPEND" | "SUBTRACT" |
                                "DELETE", "value": str | null}]}

`source` is Kafka's name for where the value comes from (DYNAMIC_TOPIC_CONFIG,
DYNAMIC_BROKER_CONFIG, DYNAMIC_DEFAULT_BROKER_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from odradek.cli.client_options import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REFUSED,
    ClientError,
    add_client_options,
    add_noun_parser,
    connect_admin,
    console,
    error_message,
    error_name,
    parse_properties_option,
    print_json,
    result,
)

CLIENT_ID = "odradek-configs"

EXAMPLES = """examples:
  odradek configs describe --topic orders
  odradek configs describe --broker 1 --all --output json
  odradek configs set --topic orders retention.ms=86400000 max.message.bytes=2097152
  odradek configs set --topic orders --append cleanup.policy=compact
  odradek configs set --broker 1 message.max.bytes=2000000 --validate-only
  odradek configs delete --topic orders retention.ms
"""

# Errors that mean the resource is not there (exit 2) rather than a refused change (exit 1).
_MISSING = ("UNKNOWN_TOPIC_OR_PART",)


@dataclass(frozen=True, slots=True)
class Change:
    name: str
    operation: str  # SET, APPEND, SUBTRACT or DELETE (AlterConfigOpType names)
    value: str | None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "operation": self.operation, "value": self.value}


def resource_of(args: argparse.Namespace) -> tuple[str, str]:
    """("topic", name) or ("broker", id) from --topic / --broker."""
    if args.topic is not None:
        return "topic", str(args.topic)
    return "broker", str(args.broker)


def _config_resource(kind: str, name: str) -> Any:
    # the documented import path; confluent-kafka does not mark these names as re-exported
    from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

    return ConfigResource(ResourceType.TOPIC if kind == "topic" else ResourceType.BROKER, name)


def _failure(kind: str, name: str, exc: BaseException, doing: str) -> ClientError:
    if error_name(exc) in _MISSING:
        return ClientError(f"Topic '{name}' does not exist.", EXIT_ERROR)
    return ClientError(f"cannot {doing} {kind} '{name}': {error_message(exc)}", EXIT_REFUSED)


def alter(
    admin: Any,
    kind: str,
    name: str,
    changes: Sequence[Change],
    timeout_s: float,
    validate_only: bool = False,
) -> None:
    """IncrementalAlterConfigs of one resource; ClientError (exit 1, or 2 for a missing
    topic) when the broker refuses."""
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry  # type: ignore[attr-defined]

    resource = _config_resource(kind, name)
    for change in changes:
        resource.add_incremental_config(
            ConfigEntry(
                change.name,
                change.value,
                incremental_operation=AlterConfigOpType[change.operation],
            )
        )
    futures = admin.incremental_alter_configs(
        [resource], validate_only=validate_only, request_timeout=timeout_s
    )
    try:
        result(futures[resource], timeout_s)
    except ClientError:
        raise
    except Exception as exc:
        raise _failure(kind, name, exc, "change the configs of") from None


def describe(admin: Any, kind: str, name: str, timeout_s: float) -> list[Any]:
    """The confluent-kafka ConfigEntry objects of one resource, sorted by name."""
    resource = _config_resource(kind, name)
    futures = admin.describe_configs([resource], request_timeout=timeout_s)
    try:
        entries: dict[str, Any] = result(futures[resource], timeout_s)
    except ClientError:
        raise
    except Exception as exc:
        raise _failure(kind, name, exc, "describe") from None
    return [entries[key] for key in sorted(entries)]


def source_name(source: Any) -> str:
    from confluent_kafka.admin import ConfigSource  # type: ignore[attr-defined]

    try:
        return str(ConfigSource(int(source)).name)
    except ValueError:
        return "UNKNOWN_CONFIG"


def parse_changes(args: argparse.Namespace) -> list[Change]:
    """The SET, APPEND and SUBTRACT changes of `configs set`; ClientError (exit 2) names a
    malformed one or a key given twice."""
    changes: list[Change] = []
    for operation, items, flag in (
        ("SET", args.pairs, "config"),
        ("APPEND", args.append, "--append"),
        ("SUBTRACT", args.subtract, "--subtract"),
    ):
        for key, value in parse_pairs(items, flag).items():
            changes.append(Change(key, operation, value))
    if not changes:
        raise ClientError("nothing to set: give KEY=VALUE, --append or --subtract")
    _check_unique([c.name for c in changes])
    return changes


def parse_pairs(items: Sequence[str], flag: str) -> dict[str, str]:
    """KEY=VALUE strings as a dict, refusing a key given twice (exit 2)."""
    pairs = [parse_properties_option([item], flag) for item in items]
    _check_unique([key for pair in pairs for key in pair])
    return {key: value for pair in pairs for key, value in pair.items()}


def _check_unique(names: Sequence[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ClientError(f"config {name!r} is given more than once")
        seen.add(name)


# -- commands ----------------------------------------------------------------------------------


def cmd_describe(args: argparse.Namespace) -> int:
    kind, name = resource_of(args)
    admin, _ = connect_admin(args, CLIENT_ID)
    entries = describe(admin, kind, name, args.timeout)
    if not args.all:
        entries = [e for e in entries if not e.is_default]
    rows = [
        {
            "name": str(e.name),
            "value": None if e.is_sensitive else e.value,
            "source": source_name(e.source),
            "is_default": bool(e.is_default),
            "read_only": bool(e.is_read_only),
            "sensitive": bool(e.is_sensitive),
        }
        for e in entries
    ]
    if args.output == "json":
        print_json({"resource": {"type": kind, "name": name}, "configs": rows})
        return EXIT_OK
    from rich.table import Table

    out = console()
    if not rows:
        out.print(f"No configs are set on {kind} '{name}' (--all lists the defaults too).")
        return EXIT_OK
    table = Table("NAME", "VALUE", "SOURCE", box=None, pad_edge=False)
    for row in rows:
        value = "(sensitive)" if row["sensitive"] else row["value"]
        table.add_row(str(row["name"]), "" if value is None else str(value), str(row["source"]))
    out.print(table)
    return EXIT_OK


def _report(args: argparse.Namespace, kind: str, name: str, changes: Sequence[Change]) -> int:
    if args.output == "json":
        print_json(
            {
                "resource": {"type": kind, "name": name},
                "validate_only": bool(args.validate_only),
                "changes": [c.to_json() for c in changes],
            }
        )
        return EXIT_OK
    verb = "Would change" if args.validate_only else "Changed"
    print(f"{verb} the configs of {kind} '{name}':")
    for change in changes:
        if change.operation == "DELETE":
            print(f"  {change.name} deleted")
        elif change.operation == "SET":
            print(f"  {change.name}={change.value}")
        else:
            print(f"  {change.name} {change.operation.lower()} {change.value}")
    return EXIT_OK


def cmd_set(args: argparse.Namespace) -> int:
    kind, name = resource_of(args)
    changes = parse_changes(args)
    admin, _ = connect_admin(args, CLIENT_ID)
    alter(admin, kind, name, changes, args.timeout, args.validate_only)
    return _report(args, kind, name, changes)


def cmd_delete(args: argparse.Namespace) -> int:
    kind, name = resource_of(args)
    _check_unique(args.keys)
    changes = [Change(key, "DELETE", None) for key in args.keys]
    admin, _ = connect_admin(args, CLIENT_ID)
    alter(admin, kind, name, changes, args.timeout, args.validate_only)
    return _report(args, kind, name, changes)


# -- command line ------------------------------------------------------------------------------


def _broker_id(text: str) -> str:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"a broker is named by its id, not {text!r}")
    return text


def _add_resource_options(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--topic", metavar="TOPIC", help="a topic's configs")
    target.add_argument(
        "--broker", metavar="ID", type=_broker_id, help="a broker's configs, by its id"
    )


def add_parser(subcommands: Any) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    verbs = add_noun_parser(
        subcommands,
        "configs",
        help="describe, set and delete topic and broker configs",
        description=(
            "Read and change the configs of topics and brokers on any Kafka-compatible"
            " cluster, like kafka-configs.sh. Exit codes: 0 done, 1 refused, 2 bad usage,"
            " broker unreachable or no such topic."
        ),
        examples=EXAMPLES,
    )

    describe_parser = verbs.add_parser(
        "describe",
        help="the configs set on a topic or broker (--all: every config)",
        description=(
            "List the configs set on a topic (its overrides) or a broker (dynamic and static"
            " values) with where each value comes from; with --all, every config."
        ),
        epilog=(
            "examples:\n  odradek configs describe --topic orders\n"
            "  odradek configs describe --broker 1 --all\n"
        ),
        formatter_class=formatter,
    )
    _add_resource_options(describe_parser)
    describe_parser.add_argument(
        "--all", action="store_true", help="every config, defaults included"
    )
    add_client_options(describe_parser)
    describe_parser.set_defaults(verb_run=cmd_describe)

    set_parser = verbs.add_parser(
        "set",
        help="set configs, or append to / subtract from list configs",
        description=(
            "Set configs of a topic or broker (IncrementalAlterConfigs): KEY=VALUE sets a key;"
            " --append and --subtract add or remove comma-separated items of a list config"
            " such as cleanup.policy. Keys not named are left as they are."
        ),
        epilog=(
            "examples:\n  odradek configs set --topic orders retention.ms=86400000\n"
            "  odradek configs set --topic orders --append cleanup.policy=compact\n"
            "  odradek configs set --broker 1 message.max.bytes=2000000 --validate-only\n"
        ),
        formatter_class=formatter,
    )
    _add_resource_options(set_parser)
    set_parser.add_argument("pairs", nargs="*", metavar="KEY=VALUE", help="configs to set")
    set_parser.add_argument(
        "--append",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add items to a list config (repeatable)",
    )
    set_parser.add_argument(
        "--subtract",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="remove items from a list config (repeatable)",
    )
    set_parser.add_argument(
        "--validate-only", action="store_true", help="let the broker check it; change nothing"
    )
    add_client_options(set_parser)
    set_parser.set_defaults(verb_run=cmd_set)

    delete_parser = verbs.add_parser(
        "delete",
        help="delete configs so their defaults apply again",
        description="Delete configs of a topic or broker; each falls back to its default.",
        epilog="examples:\n  odradek configs delete --topic orders retention.ms segment.bytes\n",
        formatter_class=formatter,
    )
    _add_resource_options(delete_parser)
    delete_parser.add_argument("keys", nargs="+", metavar="KEY", help="configs to delete")
    delete_parser.add_argument(
        "--validate-only", action="store_true", help="let the broker check it; change nothing"
    )
    add_client_options(delete_parser)
    delete_parser.set_defaults(verb_run=cmd_delete)
