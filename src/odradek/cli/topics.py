"""`odradek topics`: create, list, describe, alter, delete and add partitions to topics, as
Kafka's kafka-topics.sh does.

Everything goes through confluent-kafka's AdminClient (CreateTopics, Metadata,
DescribeConfigs, IncrementalAlterConfigs, CreatePartitions, DeleteTopics), so the command
works against any Kafka-compatible broker. The options shared with every client command and
the exit codes (0 done, 1 refused, 2 bad usage / unreachable / no such topic) are described in
`odradek.cli.client_options`.

- `create TOPIC... [--partitions N] [--replication-factor N] [--config K=V]...
  [--if-not-exists]`: without --partitions / --replication-factor the broker's defaults
  (num.partitions, default.replication.factor) apply. A topic that exists is refused (exit 1)
  unless --if-not-exists.
- `list [--exclude-internal]`: topic names, one per line.
- `describe [TOPIC...]`: per topic its id, partition count, replication factor and the configs
  set on it; per partition its leader, replicas and in-sync replicas. No TOPIC: every topic.
- `alter TOPIC [--partitions N] [--config K=V]... [--delete-config K]...`: grow the partition
  count to N and set or delete topic configs (IncrementalAlterConfigs: keys not named stay).
- `delete TOPIC... [--if-exists]`: a topic that does not exist is exit 2 unless --if-exists.
- `add-partitions TOPIC --partitions N`: grow the partition count to N (the new total).
- `delete-records TOPIC [--partition P]... [--offset N]`: delete the records below offset N
  (default: all, up to the high watermark) of the partitions named (default: every one), as
  kafka-delete-records.sh does; prints each partition's new low watermark.

JSON output (`--output json`), one object on stdout:

    create:          {"topics": [{"topic": str, "created": bool}]}  (false: it existed)
    list:            {"topics": [str]}
    describe:        {"topics": [{"topic": str, "topic_id": str | null, "partition_count": int,
                                  "replication_factor": int, "configs": {str: str},
                                  "partitions": [{"partition": int, "leader": int | null,
                                                  "replicas": [int], "isr": [int]}]}]}
    alter:           {"topic": str, "partition_count": int | null,
                      "configs": [{"name": str, "operation": str, "value": str | null}]}
    delete:          {"topics": [{"topic": str, "deleted": bool}]}  (false: did not exist)
    add-partitions:  {"topic": str, "partition_count": int}
    delete-records:  {"topic": str, "partitions": [{"partition": int, "low_watermark": int}]}
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from odradek.cli import configs
from odradek.cli.client_options import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REFUSED,
    ClientError,
    add_client_options,
    add_noun_parser,
    connect_admin,
    error_message,
    error_name,
    print_json,
    result,
    topic_partitions,
)

CLIENT_ID = "odradek-topics"

EXAMPLES = """examples:
  odradek topics create orders --partitions 6 --config retention.ms=86400000
  odradek topics create orders --if-not-exists
  odradek topics list
  odradek topics describe orders --output json
  odradek topics alter orders --partitions 12 --config cleanup.policy=compact
  odradek topics add-partitions orders --partitions 12
  odradek topics delete orders --if-exists
  odradek topics delete-records orders --partition 0 --offset 1000
"""


def _no_such_topic(topic: str) -> ClientError:
    return ClientError(f"Topic '{topic}' does not exist.", EXIT_ERROR)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _existing(metadata: Any, topic: str) -> Any:
    info = metadata.topics.get(topic)
    if info is None or info.error is not None:
        raise _no_such_topic(topic)
    return info


def _topic_id(admin: Any, topic: str, timeout_s: float) -> str | None:
    """The topic's id as Kafka prints it, or None when the broker does not say."""
    from confluent_kafka import TopicCollection

    futures = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout_s)
    try:
        description = result(futures[topic], timeout_s)
    except ClientError:
        raise
    except Exception:
        return None
    topic_id = getattr(description, "topic_id", None)
    return None if topic_id is None else str(topic_id)


# -- commands ----------------------------------------------------------------------------------


def cmd_create(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    topic_configs = configs.parse_pairs(args.config, "--config")
    topics = list(dict.fromkeys(args.topics))
    admin, _ = connect_admin(args, CLIENT_ID)
    new_topics = [
        NewTopic(
            topic,
            num_partitions=args.partitions or -1,
            replication_factor=args.replication_factor or -1,
            config=topic_configs,
        )
        for topic in topics
    ]
    futures = admin.create_topics(
        new_topics, operation_timeout=args.timeout, request_timeout=args.timeout
    )
    created: list[dict[str, Any]] = []
    failure: ClientError | None = None
    for topic in topics:
        try:
            result(futures[topic], args.timeout)
        except ClientError:
            raise
        except Exception as exc:
            if error_name(exc) == "TOPIC_ALREADY_EXISTS" and args.if_not_exists:
                created.append({"topic": topic, "created": False})
                continue
            failure = failure or ClientError(
                f"cannot create topic '{topic}': {error_message(exc)}", EXIT_REFUSED
            )
            continue
        created.append({"topic": topic, "created": True})
    if args.output == "json":
        print_json({"topics": created})
    else:
        for item in created:
            state = "Created" if item["created"] else "Already exists:"
            print(f"{state} topic {item['topic']}.")
    if failure is not None:
        raise failure
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    _, metadata = connect_admin(args, CLIENT_ID)
    names = sorted(
        name
        for name, info in metadata.topics.items()
        if info.error is None and not (args.exclude_internal and name.startswith("__"))
    )
    if args.output == "json":
        print_json({"topics": names})
    else:
        for name in names:
            print(name)
    return EXIT_OK


def _describe_one(admin: Any, info: Any, timeout_s: float) -> dict[str, Any]:
    topic = str(info.topic)
    entries = configs.describe(admin, "topic", topic, timeout_s)
    partitions: list[dict[str, Any]] = [
        {
            "partition": int(p.id),
            "leader": int(p.leader) if p.leader >= 0 else None,
            "replicas": [int(r) for r in p.replicas],
            "isr": [int(r) for r in p.isrs],
        }
        for p in sorted(info.partitions.values(), key=lambda p: p.id)
    ]
    return {
        "topic": topic,
        "topic_id": _topic_id(admin, topic, timeout_s),
        "partition_count": len(partitions),
        "replication_factor": max((len(p["replicas"]) for p in partitions), default=0),
        "configs": {str(e.name): e.value for e in entries if not e.is_default},
        "partitions": partitions,
    }


def cmd_describe(args: argparse.Namespace) -> int:
    admin, metadata = connect_admin(args, CLIENT_ID)
    if args.topics:
        infos = [_existing(metadata, topic) for topic in dict.fromkeys(args.topics)]
    else:
        infos = [
            metadata.topics[name]
            for name in sorted(metadata.topics)
            if metadata.topics[name].error is None
        ]
    described = [_describe_one(admin, info, args.timeout) for info in infos]
    if args.output == "json":
        print_json({"topics": described})
        return EXIT_OK
    for topic in described:
        settings = ",".join(f"{k}={v}" for k, v in sorted(topic["configs"].items()))
        print(
            f"Topic: {topic['topic']}\tTopicId: {topic['topic_id'] or '-'}"
            f"\tPartitionCount: {topic['partition_count']}"
            f"\tReplicationFactor: {topic['replication_factor']}\tConfigs: {settings}"
        )
        for p in topic["partitions"]:
            leader = "none" if p["leader"] is None else p["leader"]
            print(
                f"\tTopic: {topic['topic']}\tPartition: {p['partition']}\tLeader: {leader}"
                f"\tReplicas: {','.join(map(str, p['replicas']))}"
                f"\tIsr: {','.join(map(str, p['isr']))}"
            )
    return EXIT_OK


def _grow(admin: Any, metadata: Any, topic: str, count: int, timeout_s: float) -> None:
    from confluent_kafka.admin import NewPartitions  # type: ignore[attr-defined]

    current = len(_existing(metadata, topic).partitions)
    if count <= current:
        raise ClientError(
            f"Topic '{topic}' has {current} partitions; --partitions must be more than that"
            " (partitions can only be added).",
            EXIT_REFUSED,
        )
    futures = admin.create_partitions(
        [NewPartitions(topic, count)], operation_timeout=timeout_s, request_timeout=timeout_s
    )
    try:
        result(futures[topic], timeout_s)
    except ClientError:
        raise
    except Exception as exc:
        if error_name(exc) == "UNKNOWN_TOPIC_OR_PART":
            raise _no_such_topic(topic) from None
        raise ClientError(
            f"cannot add partitions to topic '{topic}': {error_message(exc)}", EXIT_REFUSED
        ) from None


def _config_changes(set_items: Sequence[str], delete_keys: Sequence[str]) -> list[configs.Change]:
    changes = [
        configs.Change(key, "SET", value)
        for key, value in configs.parse_pairs(set_items, "--config").items()
    ]
    changes += [configs.Change(key, "DELETE", None) for key in dict.fromkeys(delete_keys)]
    both = {c.name for c in changes if c.operation == "SET"} & set(delete_keys)
    if both:
        raise ClientError(f"config {sorted(both)[0]!r} is both set and deleted")
    return changes


def cmd_alter(args: argparse.Namespace) -> int:
    changes = _config_changes(args.config, args.delete_config)
    if args.partitions is None and not changes:
        raise ClientError("nothing to alter: give --partitions, --config or --delete-config")
    admin, metadata = connect_admin(args, CLIENT_ID)
    _existing(metadata, args.topic)
    if changes:
        configs.alter(admin, "topic", args.topic, changes, args.timeout)
    if args.partitions is not None:
        _grow(admin, metadata, args.topic, args.partitions, args.timeout)
    if args.output == "json":
        print_json(
            {
                "topic": args.topic,
                "partition_count": args.partitions,
                "configs": [c.to_json() for c in changes],
            }
        )
        return EXIT_OK
    print(f"Altered topic {args.topic}:")
    if args.partitions is not None:
        print(f"  partitions: {args.partitions}")
    for change in changes:
        shown = "deleted" if change.operation == "DELETE" else f"= {change.value}"
        print(f"  {change.name} {shown}")
    return EXIT_OK


def cmd_add_partitions(args: argparse.Namespace) -> int:
    admin, metadata = connect_admin(args, CLIENT_ID)
    _grow(admin, metadata, args.topic, args.partitions, args.timeout)
    if args.output == "json":
        print_json({"topic": args.topic, "partition_count": args.partitions})
    else:
        print(f"Topic {args.topic} now has {args.partitions} partitions.")
    return EXIT_OK


def cmd_delete_records(args: argparse.Namespace) -> int:
    from confluent_kafka import TopicPartition

    admin, metadata = connect_admin(args, CLIENT_ID)
    partitions = sorted(
        {
            partition
            for wanted in args.partition or [None]
            for partition in topic_partitions(metadata, args.topic, wanted)
        }
    )
    futures = admin.delete_records(
        [TopicPartition(args.topic, p, args.offset) for p in partitions],
        request_timeout=args.timeout,
        operation_timeout=args.timeout,
    )
    rows = []
    for partition in partitions:
        future = next(f for tp, f in futures.items() if tp.partition == partition)
        try:
            deleted = result(future, args.timeout)
        except ClientError:
            raise
        except Exception as exc:
            raise ClientError(
                f"cannot delete records of {args.topic}-{partition}: {error_message(exc)}",
                EXIT_REFUSED,
            ) from None
        rows.append({"partition": partition, "low_watermark": deleted.low_watermark})
    if args.output == "json":
        print_json({"topic": args.topic, "partitions": rows})
    else:
        for row in rows:
            print(f"{args.topic}-{row['partition']}: low watermark {row['low_watermark']}")
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    topics = list(dict.fromkeys(args.topics))
    admin, metadata = connect_admin(args, CLIENT_ID)
    present = [t for t in topics if t in metadata.topics and metadata.topics[t].error is None]
    missing = [t for t in topics if t not in present]
    if missing and not args.if_exists:
        raise _no_such_topic(missing[0])
    outcome = {topic: False for topic in missing}
    failure: ClientError | None = None
    if present:
        futures = admin.delete_topics(
            present, operation_timeout=args.timeout, request_timeout=args.timeout
        )
        for topic in present:
            try:
                result(futures[topic], args.timeout)
            except ClientError:
                raise
            except Exception as exc:
                if error_name(exc) == "UNKNOWN_TOPIC_OR_PART" and args.if_exists:
                    outcome[topic] = False
                    continue
                failure = failure or ClientError(
                    f"cannot delete topic '{topic}': {error_message(exc)}", EXIT_REFUSED
                )
                continue
            outcome[topic] = True
    rows = [{"topic": t, "deleted": outcome[t]} for t in topics if t in outcome]
    if args.output == "json":
        print_json({"topics": rows})
    else:
        for row in rows:
            state = "Deleted topic" if row["deleted"] else "No such topic (skipped):"
            print(f"{state} {row['topic']}.")
    if failure is not None:
        raise failure
    return EXIT_OK


# -- command line ------------------------------------------------------------------------------


def _add_config_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a topic config {what}, e.g. retention.ms=86400000 (repeatable)",
    )


def add_parser(subcommands: Any) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    verbs = add_noun_parser(
        subcommands,
        "topics",
        help="create, list, describe, alter and delete topics",
        description=(
            "Manage topics on any Kafka-compatible cluster, like kafka-topics.sh. Exit codes:"
            " 0 done, 1 refused, 2 bad usage, broker unreachable or no such topic."
        ),
        examples=EXAMPLES,
    )

    create = verbs.add_parser(
        "create",
        help="create topics",
        description=(
            "Create topics. Without --partitions and --replication-factor the broker's"
            " num.partitions and default.replication.factor apply."
        ),
        epilog=(
            "examples:\n  odradek topics create orders --partitions 6 --replication-factor 3\n"
            "  odradek topics create audit --config cleanup.policy=compact --if-not-exists\n"
        ),
        formatter_class=formatter,
    )
    create.add_argument("topics", nargs="+", metavar="TOPIC")
    create.add_argument("--partitions", type=_positive, metavar="N", help="partition count")
    create.add_argument(
        "--replication-factor", type=_positive, metavar="N", help="replicas per partition"
    )
    _add_config_option(create, "for the new topics")
    create.add_argument(
        "--if-not-exists", action="store_true", help="a topic that exists is not an error"
    )
    add_client_options(create)
    create.set_defaults(verb_run=cmd_create)

    listing = verbs.add_parser(
        "list",
        help="topic names, one per line",
        description="List the names of every topic, one per line.",
        epilog="examples:\n  odradek topics list\n  odradek topics list --exclude-internal\n",
        formatter_class=formatter,
    )
    listing.add_argument(
        "--exclude-internal",
        action="store_true",
        help="leave out internal topics (__consumer_offsets, ...)",
    )
    add_client_options(listing)
    listing.set_defaults(verb_run=cmd_list)

    describe = verbs.add_parser(
        "describe",
        help="partitions, leaders, replicas and configs of topics",
        description=(
            "Per topic: its id, partition count, replication factor and the configs set on"
            " it; per partition: leader, replicas and in-sync replicas. No TOPIC: every topic."
        ),
        epilog=(
            "examples:\n  odradek topics describe orders\n  odradek topics describe --output json\n"
        ),
        formatter_class=formatter,
    )
    describe.add_argument("topics", nargs="*", metavar="TOPIC")
    add_client_options(describe)
    describe.set_defaults(verb_run=cmd_describe)

    alter = verbs.add_parser(
        "alter",
        help="add partitions to a topic and set or delete its configs",
        description=(
            "Grow a topic's partition count to N and set or delete its configs; configs not"
            " named stay as they are."
        ),
        epilog=(
            "examples:\n  odradek topics alter orders --partitions 12\n"
            "  odradek topics alter orders --config retention.ms=3600000"
            " --delete-config segment.bytes\n"
        ),
        formatter_class=formatter,
    )
    alter.add_argument("topic", metavar="TOPIC")
    alter.add_argument(
        "--partitions", type=_positive, metavar="N", help="the new (larger) partition count"
    )
    _add_config_option(alter, "to set")
    alter.add_argument(
        "--delete-config",
        action="append",
        default=[],
        metavar="KEY",
        help="a topic config to delete, so its default applies (repeatable)",
    )
    add_client_options(alter)
    alter.set_defaults(verb_run=cmd_alter)

    delete = verbs.add_parser(
        "delete",
        help="delete topics and their data",
        description="Delete topics with all their data.",
        epilog=(
            "examples:\n  odradek topics delete orders\n"
            "  odradek topics delete orders audit --if-exists\n"
        ),
        formatter_class=formatter,
    )
    delete.add_argument("topics", nargs="+", metavar="TOPIC")
    delete.add_argument(
        "--if-exists", action="store_true", help="a topic that does not exist is not an error"
    )
    add_client_options(delete)
    delete.set_defaults(verb_run=cmd_delete)

    grow = verbs.add_parser(
        "add-partitions",
        help="grow a topic's partition count",
        description=(
            "Grow a topic's partition count to N (the new total, as kafka-topics.sh --alter"
            " --partitions takes it). Keyed records may map to other partitions afterwards."
        ),
        epilog="examples:\n  odradek topics add-partitions orders --partitions 12\n",
        formatter_class=formatter,
    )
    grow.add_argument("topic", metavar="TOPIC")
    grow.add_argument(
        "--partitions", type=_positive, metavar="N", required=True, help="the new total"
    )
    add_client_options(grow)
    grow.set_defaults(verb_run=cmd_add_partitions)

    records = verbs.add_parser(
        "delete-records",
        help="delete the records below an offset (DeleteRecords)",
        description=(
            "Move the log start offset of partitions forward: records below OFFSET can no"
            " longer be read, and whole segments below it are deleted. The default offset -1"
            " means the high watermark (every record so far)."
        ),
        epilog=(
            "examples:\n  odradek topics delete-records orders --partition 0 --offset 1000\n"
            "  odradek topics delete-records orders            # every partition, every record\n"
        ),
        formatter_class=formatter,
    )
    records.add_argument("topic", metavar="TOPIC")
    records.add_argument(
        "--partition",
        type=int,
        action="append",
        metavar="P",
        help="a partition (repeatable; default: every partition)",
    )
    records.add_argument(
        "--offset", type=int, default=-1, metavar="N", help="delete below N (-1: all)"
    )
    add_client_options(records)
    records.set_defaults(verb_run=cmd_delete_records)
