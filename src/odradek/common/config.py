"""The configuration table: every broker and topic property is defined here, once.

Names and defaults are Kafka's. A broker's values come, lowest to highest precedence, from the
defaults below, a `server.properties` file, `ODRADEK_*` environment variables
(`ODRADEK_NUM_PARTITIONS=3` sets `num.partitions`) and `--override key=value`. Topic configs
fall back to their broker synonym (`retention.ms` -> `log.retention.ms`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from odradek.common.errors import InvalidConfigError

LONG_MAX = 9223372036854775807
INT_MAX = 2147483647


class ConfigType(StrEnum):
    BOOLEAN = "BOOLEAN"
    STRING = "STRING"
    INT = "INT"
    SHORT = "SHORT"
    LONG = "LONG"
    DOUBLE = "DOUBLE"
    LIST = "LIST"
    PASSWORD = "PASSWORD"


# DescribeConfigs type ids (KIP-569)
CONFIG_TYPE_IDS = {
    ConfigType.BOOLEAN: 1,
    ConfigType.STRING: 2,
    ConfigType.INT: 3,
    ConfigType.SHORT: 4,
    ConfigType.LONG: 5,
    ConfigType.DOUBLE: 6,
    ConfigType.LIST: 7,
    ConfigType.PASSWORD: 9,
}


@dataclass(frozen=True, slots=True)
class ConfigDef:
    name: str
    type: ConfigType
    default: Any
    doc: str
    minimum: float | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = True

    def parse(self, raw: Any) -> Any:
        """Turn a string (or a value of the right type) into this property's value, checked."""
        if raw is None:
            return None
        value: Any
        try:
            if self.type is ConfigType.BOOLEAN:
                if isinstance(raw, bool):
                    value = raw
                elif str(raw).strip().lower() in ("true", "false"):
                    value = str(raw).strip().lower() == "true"
                else:
                    raise ValueError("expected true or false")
            elif self.type in (ConfigType.INT, ConfigType.SHORT, ConfigType.LONG):
                try:
                    value = int(str(raw).strip())
                except ValueError:
                    raise ValueError(f"Not a number of type {self.type}") from None
                bound = LONG_MAX if self.type is ConfigType.LONG else INT_MAX
                if not -bound - 1 <= value <= bound:
                    raise ValueError("out of range")
            elif self.type is ConfigType.DOUBLE:
                try:
                    value = float(str(raw).strip())
                except ValueError:
                    raise ValueError(f"Not a number of type {self.type}") from None
            elif self.type is ConfigType.LIST:
                value = (
                    raw
                    if isinstance(raw, list)
                    else [item.strip() for item in str(raw).split(",") if item.strip()]
                )
            else:
                value = str(raw).strip()
        except ValueError as exc:
            raise InvalidConfigError(
                f"Invalid value {raw!r} for configuration {self.name}: {exc}"
            ) from None
        if self.minimum is not None and value < self.minimum:
            raise InvalidConfigError(
                f"Invalid value {value} for configuration {self.name}:"
                f" Value must be at least {self.minimum:g}"
            )
        if self.choices is not None:
            items = value if isinstance(value, list) else [value]
            for item in items:
                if item not in self.choices:
                    raise InvalidConfigError(
                        f"Invalid value {item} for configuration {self.name}:"
                        f" String must be one of: {', '.join(self.choices)}"
                    )
        return value


def render(value: Any) -> str | None:
    """A value as DescribeConfigs and server.properties spell it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return str(value)


_T = ConfigType
_COMPRESSION = ("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")

BROKER_CONFIGS: tuple[ConfigDef, ...] = (
    ConfigDef("node.id", _T.INT, 1, "The node id of this server.", minimum=0),
    ConfigDef("broker.rack", _T.STRING, None, "Rack of this broker, for replica placement."),
    ConfigDef(
        "broker.session.timeout.ms",
        _T.INT,
        9000,
        "How long a broker may go without a heartbeat before the controller fences it.",
        minimum=1,
    ),
    ConfigDef(
        "broker.heartbeat.interval.ms",
        _T.INT,
        2000,
        "How often a broker heartbeats to the controller.",
        minimum=1,
    ),
    ConfigDef(
        "auto.leader.rebalance.enable",
        _T.BOOLEAN,
        True,
        "Move leadership back to preferred replicas when leaders are imbalanced.",
    ),
    ConfigDef(
        "leader.imbalance.per.broker.percentage",
        _T.INT,
        10,
        "Share of a broker's partitions led by another broker that triggers a rebalance.",
        minimum=0,
    ),
    ConfigDef(
        "leader.imbalance.check.interval.seconds",
        _T.LONG,
        300,
        "How often the controller checks leader imbalance.",
        minimum=1,
    ),
    ConfigDef(
        "unclean.leader.election.interval.ms",
        _T.LONG,
        300000,
        "How often the controller checks whether it should perform an unclean leader election"
        " for leaderless partitions.",
        minimum=1,
    ),
    ConfigDef(
        "process.roles",
        _T.LIST,
        ["broker", "controller"],
        "Roles of this node.",
        choices=("broker", "controller"),
    ),
    ConfigDef("cluster.id", _T.STRING, None, "Cluster id; generated and stored on first start."),
    ConfigDef(
        "controller.quorum.voters",
        _T.LIST,
        [],
        "The metadata quorum's voters as `id@host:port,...`; empty: this node alone, no quorum.",
    ),
    ConfigDef(
        "controller.quorum.election.timeout.ms",
        _T.INT,
        1000,
        "How long a voter waits without a leader before it starts an election (plus a random"
        " jitter of up to as much again).",
        minimum=1,
    ),
    ConfigDef(
        "controller.quorum.fetch.timeout.ms",
        _T.INT,
        2000,
        "How long a follower goes without a successful fetch before it starts an election.",
        minimum=1,
    ),
    ConfigDef(
        "controller.quorum.election.backoff.max.ms",
        _T.INT,
        1000,
        "Kafka's cap on the backoff before a candidate that lost an election tries again;"
        " accepted, but a losing candidate here waits out its randomized election timeout.",
        minimum=0,
    ),
    ConfigDef(
        "controller.quorum.request.timeout.ms",
        _T.INT,
        2000,
        "How long a quorum request waits for its answer.",
        minimum=0,
    ),
    ConfigDef(
        "controller.quorum.retry.backoff.ms",
        _T.INT,
        20,
        "The backoff before a failed quorum request is retried.",
        minimum=0,
    ),
    ConfigDef(
        "metadata.log.max.record.bytes.between.snapshots",
        _T.LONG,
        20971520,
        "Committed metadata record bytes after which the image is written as a snapshot.",
        minimum=1,
    ),
    ConfigDef("listeners", _T.LIST, ["PLAINTEXT://127.0.0.1:9092"], "Listener URIs to bind."),
    ConfigDef(
        "advertised.listeners",
        _T.LIST,
        None,
        "Listeners published to clients; `listeners` when unset.",
    ),
    ConfigDef("log.dirs", _T.LIST, None, "Directories holding the log data; log.dir when unset."),
    ConfigDef("log.dir", _T.STRING, "./odradek-data", "The directory holding the log data."),
    ConfigDef("num.partitions", _T.INT, 1, "Default partition count of new topics.", minimum=1),
    ConfigDef("default.replication.factor", _T.INT, 1, "Default replication factor.", minimum=1),
    ConfigDef(
        "auto.create.topics.enable",
        _T.BOOLEAN,
        True,
        "Create a topic when a client asks for its metadata.",
    ),
    ConfigDef("delete.topic.enable", _T.BOOLEAN, True, "Allow topics to be deleted."),
    ConfigDef(
        "message.max.bytes",
        _T.INT,
        1048588,
        "Largest record batch size allowed.",
        minimum=0,
        read_only=False,
    ),
    ConfigDef(
        "log.segment.bytes",
        _T.INT,
        1073741824,
        "Maximum size of a segment file.",
        minimum=14,
        read_only=False,
    ),
    ConfigDef(
        "log.roll.ms",
        _T.LONG,
        None,
        "Maximum segment age before a roll (ms).",
        minimum=1,
        read_only=False,
    ),
    ConfigDef(
        "log.roll.hours", _T.INT, 168, "Maximum segment age before a roll (hours).", minimum=1
    ),
    ConfigDef(
        "log.index.interval.bytes",
        _T.INT,
        4096,
        "Bytes between offset index entries.",
        minimum=0,
        read_only=False,
    ),
    ConfigDef(
        "log.index.size.max.bytes",
        _T.INT,
        10485760,
        "Maximum offset index size.",
        minimum=4,
        read_only=False,
    ),
    ConfigDef("log.retention.ms", _T.LONG, None, "Time to keep a segment (ms).", read_only=False),
    ConfigDef(
        "log.retention.check.interval.ms",
        _T.LONG,
        300000,
        "How often segments past retention.ms or retention.bytes are deleted.",
        minimum=1,
    ),
    ConfigDef("log.retention.minutes", _T.INT, None, "Time to keep a segment (minutes)."),
    ConfigDef("log.retention.hours", _T.INT, 168, "Time to keep a segment (hours)."),
    ConfigDef(
        "log.retention.bytes",
        _T.LONG,
        -1,
        "Maximum partition size before deleting.",
        read_only=False,
    ),
    ConfigDef(
        "log.cleanup.policy",
        _T.LIST,
        ["delete"],
        "Default cleanup policy.",
        choices=("delete", "compact"),
        read_only=False,
    ),
    ConfigDef(
        "log.message.timestamp.type",
        _T.STRING,
        "CreateTime",
        "CreateTime or LogAppendTime.",
        choices=("CreateTime", "LogAppendTime"),
        read_only=False,
    ),
    ConfigDef(
        "log.flush.interval.messages",
        _T.LONG,
        LONG_MAX,
        "Messages accumulated before a forced fsync.",
        minimum=1,
        read_only=False,
    ),
    ConfigDef(
        "log.flush.interval.ms",
        _T.LONG,
        None,
        "Maximum time before a forced fsync.",
        read_only=False,
    ),
    ConfigDef(
        "log.flush.scheduler.interval.ms",
        _T.LONG,
        LONG_MAX,
        "How often logs are checked against flush.ms (Kafka's default: never).",
        minimum=1,
    ),
    ConfigDef(
        "log.segment.delete.delay.ms",
        _T.LONG,
        60000,
        "Delay before deleting files.",
        minimum=0,
        read_only=False,
    ),
    ConfigDef("log.cleaner.enable", _T.BOOLEAN, True, "Run the log cleaner (compaction)."),
    ConfigDef("log.cleaner.threads", _T.INT, 1, "Log cleaner threads.", minimum=0),
    ConfigDef(
        "log.cleaner.backoff.ms",
        _T.LONG,
        15000,
        "How long a cleaner thread waits when no log is due.",
        minimum=0,
    ),
    ConfigDef(
        "log.cleaner.dedupe.buffer.size",
        _T.LONG,
        134217728,
        "Memory for the offset maps of all cleaner threads (24 bytes per key).",
    ),
    ConfigDef(
        "log.cleaner.io.buffer.size",
        _T.INT,
        524288,
        "Read buffer of a cleaner thread.",
        minimum=0,
    ),
    ConfigDef(
        "log.cleaner.io.buffer.load.factor",
        _T.DOUBLE,
        0.9,
        "How full an offset map may get.",
    ),
    ConfigDef(
        "log.cleaner.delete.retention.ms",
        _T.LONG,
        86400000,
        "Tombstone retention.",
        minimum=0,
        read_only=False,
    ),
    ConfigDef(
        "log.cleaner.min.cleanable.ratio",
        _T.DOUBLE,
        0.5,
        "Minimum dirty ratio.",
        minimum=0,
        read_only=False,
    ),
    ConfigDef(
        "log.cleaner.min.compaction.lag.ms",
        _T.LONG,
        0,
        "Minimum compaction lag.",
        minimum=0,
        read_only=False,
    ),
    ConfigDef(
        "log.cleaner.max.compaction.lag.ms",
        _T.LONG,
        LONG_MAX,
        "Maximum compaction lag.",
        minimum=1,
        read_only=False,
    ),
    ConfigDef(
        "min.insync.replicas",
        _T.INT,
        1,
        "Minimum ISR size for acks=all.",
        minimum=1,
        read_only=False,
    ),
    ConfigDef(
        "compression.type",
        _T.STRING,
        "producer",
        "Final compression of topics.",
        choices=_COMPRESSION,
        read_only=False,
    ),
    ConfigDef(
        "unclean.leader.election.enable",
        _T.BOOLEAN,
        False,
        "Allow out-of-sync replicas to lead.",
        read_only=False,
    ),
    ConfigDef("socket.request.max.bytes", _T.INT, 104857600, "Maximum request size.", minimum=1),
    ConfigDef("connections.max.idle.ms", _T.LONG, 600000, "Idle connection timeout."),
    ConfigDef("fetch.max.bytes", _T.INT, 57671680, "Maximum bytes of a fetch response.", minimum=0),
    ConfigDef(
        "max.incremental.fetch.session.cache.slots",
        _T.INT,
        1000,
        "Maximum number of incremental fetch sessions.",
        minimum=0,
    ),
    # --- replication (followers fetching from leaders) ---
    ConfigDef(
        "replica.lag.time.max.ms",
        _T.LONG,
        30000,
        "A follower that has not caught up with the leader for this long leaves the ISR.",
        minimum=1,
    ),
    ConfigDef("num.replica.fetchers", _T.INT, 1, "Fetch loops per source broker.", minimum=1),
    ConfigDef(
        "replica.fetch.max.bytes",
        _T.INT,
        1048576,
        "Bytes a follower asks per partition.",
        minimum=0,
    ),
    ConfigDef(
        "replica.fetch.response.max.bytes",
        _T.INT,
        10485760,
        "Bytes a follower asks per fetch response.",
        minimum=0,
    ),
    ConfigDef(
        "replica.fetch.wait.max.ms", _T.INT, 500, "Max wait of a follower's fetch.", minimum=0
    ),
    ConfigDef("replica.fetch.min.bytes", _T.INT, 1, "Min bytes of a follower's fetch.", minimum=1),
    ConfigDef(
        "replica.fetch.backoff.ms",
        _T.INT,
        1000,
        "How long a follower waits after a failed fetch before the next.",
        minimum=0,
    ),
    # --- producers ---
    ConfigDef(
        "producer.id.expiration.ms",
        _T.INT,
        86400000,
        "How long a partition remembers an idle idempotent producer (its last batch's age).",
        minimum=1,
    ),
    ConfigDef(
        "producer.id.expiration.check.interval.ms",
        _T.INT,
        600000,
        "How often partitions forget producers past producer.id.expiration.ms.",
        minimum=1,
    ),
    # --- group coordinator ---
    ConfigDef(
        "group.initial.rebalance.delay.ms",
        _T.INT,
        3000,
        "How long the first rebalance of an empty group waits for more members to join.",
        minimum=0,
    ),
    ConfigDef(
        "group.min.session.timeout.ms", _T.INT, 6000, "Smallest session timeout a member may ask."
    ),
    ConfigDef(
        "group.max.session.timeout.ms", _T.INT, 1800000, "Largest session timeout a member may ask."
    ),
    ConfigDef("group.max.size", _T.INT, INT_MAX, "Most members one group may hold.", minimum=1),
    ConfigDef(
        "group.consumer.session.timeout.ms",
        _T.INT,
        45000,
        "How long a consumer group (KIP-848) member may go without a heartbeat.",
        minimum=1,
    ),
    ConfigDef(
        "group.consumer.heartbeat.interval.ms",
        _T.INT,
        5000,
        "How often consumer group (KIP-848) members are told to heartbeat.",
        minimum=1,
    ),
    ConfigDef(
        "group.consumer.max.size",
        _T.INT,
        INT_MAX,
        "Most members one consumer group (KIP-848) may hold.",
        minimum=1,
    ),
    ConfigDef(
        "group.consumer.assignors",
        _T.LIST,
        ["uniform", "range"],
        "Server-side assignors of consumer groups (KIP-848); the first is the default.",
        choices=("uniform", "range"),
    ),
    ConfigDef(
        "offsets.topic.num.partitions",
        _T.INT,
        50,
        "Partitions of __consumer_offsets (fixed once the topic exists).",
        minimum=1,
    ),
    ConfigDef(
        "offsets.topic.replication.factor",
        _T.SHORT,
        3,
        "Replication factor of __consumer_offsets, capped at the number of brokers.",
        minimum=1,
    ),
    ConfigDef(
        "offsets.topic.segment.bytes",
        _T.INT,
        104857600,
        "Segment size of __consumer_offsets.",
        minimum=1,
    ),
    ConfigDef(
        "offsets.retention.minutes",
        _T.INT,
        10080,
        "How long the offsets of a group stay after it became empty.",
        minimum=1,
    ),
    ConfigDef(
        "offsets.retention.check.interval.ms",
        _T.LONG,
        600000,
        "How often expired offsets are looked for.",
        minimum=1,
    ),
    ConfigDef(
        "offset.metadata.max.bytes",
        _T.INT,
        4096,
        "Longest metadata string an offset commit may carry.",
    ),
    ConfigDef(
        "transaction.max.timeout.ms",
        _T.INT,
        900000,
        "Largest transaction timeout a producer may ask for.",
        minimum=1,
    ),
    ConfigDef(
        "transactional.id.expiration.ms",
        _T.INT,
        604800000,
        "How long a transactional id may stay idle before its state is deleted.",
        minimum=1,
    ),
    ConfigDef(
        "transaction.state.log.num.partitions",
        _T.INT,
        50,
        "Partitions of __transaction_state (fixed once the topic exists).",
        minimum=1,
    ),
    ConfigDef(
        "transaction.state.log.replication.factor",
        _T.SHORT,
        3,
        "Replication factor of __transaction_state, capped at the number of brokers.",
        minimum=1,
    ),
    ConfigDef(
        "transaction.state.log.min.isr",
        _T.INT,
        2,
        "min.insync.replicas of __transaction_state, capped at its replication factor.",
        minimum=1,
    ),
    ConfigDef(
        "transaction.partition.verification.enable",
        _T.BOOLEAN,
        True,
        "Before a transactional producer's first batch opens its transaction on a partition,"
        " ask the transaction coordinator whether the partition is in the transaction"
        " (KIP-890); a batch for a partition that is not is refused.",
    ),
    ConfigDef(
        "request.timeout.ms",
        _T.INT,
        30000,
        "How long a request from this broker to another broker (transaction markers,"
        " transaction verification) waits for its answer.",
        minimum=0,
    ),
    ConfigDef(
        "transaction.state.log.segment.bytes",
        _T.INT,
        104857600,
        "Segment size of __transaction_state.",
        minimum=1,
    ),
    ConfigDef(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        _T.INT,
        10000,
        "How often transactions open past their timeout are looked for and aborted.",
        minimum=1,
    ),
    ConfigDef(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        _T.INT,
        3600000,
        "How often transactional ids idle past their expiration are looked for and deleted.",
        minimum=1,
    ),
)

# topic config name -> (broker synonym, definition with Kafka's topic-level type)
TOPIC_CONFIGS: dict[str, tuple[str, ConfigDef]] = {}


def _topic(name: str, synonym: str, type_: ConfigType, doc: str, **kw: Any) -> None:
    base = next(d for d in BROKER_CONFIGS if d.name == synonym)
    TOPIC_CONFIGS[name] = (
        synonym,
        ConfigDef(
            name,
            type_,
            None,
            doc,
            minimum=kw.get("minimum", base.minimum),
            choices=kw.get("choices", base.choices),
            read_only=False,
        ),
    )


_topic("cleanup.policy", "log.cleanup.policy", _T.LIST, "delete and/or compact")
_topic("compression.type", "compression.type", _T.STRING, "Final compression of the topic.")
_topic("retention.ms", "log.retention.ms", _T.LONG, "Time to keep a segment (ms).", minimum=-1)
_topic("retention.bytes", "log.retention.bytes", _T.LONG, "Maximum partition size.")
_topic("segment.bytes", "log.segment.bytes", _T.INT, "Segment file size.")
_topic("segment.ms", "log.roll.ms", _T.LONG, "Segment age before a roll.")
_topic("segment.index.bytes", "log.index.size.max.bytes", _T.INT, "Offset index size.")
_topic("index.interval.bytes", "log.index.interval.bytes", _T.INT, "Bytes between entries.")
_topic("max.message.bytes", "message.max.bytes", _T.INT, "Largest record batch size.")
_topic("message.timestamp.type", "log.message.timestamp.type", _T.STRING, "Timestamp type.")
_topic("min.insync.replicas", "min.insync.replicas", _T.INT, "Minimum ISR for acks=all.")
_topic("flush.messages", "log.flush.interval.messages", _T.LONG, "Messages before fsync.")
_topic("flush.ms", "log.flush.interval.ms", _T.LONG, "Time before fsync.")
_topic("file.delete.delay.ms", "log.segment.delete.delay.ms", _T.LONG, "File delete delay.")
_topic("delete.retention.ms", "log.cleaner.delete.retention.ms", _T.LONG, "Tombstone retention.")
_topic("min.cleanable.dirty.ratio", "log.cleaner.min.cleanable.ratio", _T.DOUBLE, "Dirty ratio.")
_topic("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", _T.LONG, "Compaction lag.")
_topic("max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", _T.LONG, "Compaction lag.")
_topic(
    "unclean.leader.election.enable",
    "unclean.leader.election.enable",
    _T.BOOLEAN,
    "Allow out-of-sync replicas to lead.",
)

BROKER_CONFIG_DEFS: dict[str, ConfigDef] = {d.name: d for d in BROKER_CONFIGS}


class ConfigSource(StrEnum):
    DEFAULT = "DEFAULT_CONFIG"
    STATIC_BROKER = "STATIC_BROKER_CONFIG"
    TOPIC = "TOPIC_CONFIG"
    DYNAMIC_BROKER = "DYNAMIC_BROKER_CONFIG"
    DYNAMIC_DEFAULT_BROKER = "DYNAMIC_DEFAULT_BROKER_CONFIG"


# DescribeConfigs config_source ids
CONFIG_SOURCE_IDS = {
    ConfigSource.TOPIC: 1,
    ConfigSource.DYNAMIC_BROKER: 2,
    ConfigSource.DYNAMIC_DEFAULT_BROKER: 3,
    ConfigSource.STATIC_BROKER: 4,
    ConfigSource.DEFAULT: 5,
}


class BrokerConfig:
    """A broker's resolved configuration: `config["num.partitions"]` or `config.num_partitions`.

    Dynamic configs (set through AlterConfigs, kept in the metadata log) sit above the static
    ones, as in Kafka: this broker's own, then the cluster-wide default, then the static value,
    then the built-in default. `set_dynamic` replaces both dynamic layers in place, so every
    holder of this object sees a change; only the replay of the metadata image calls it.
    """

    def __init__(self, explicit: Mapping[str, str] | None = None) -> None:
        self._explicit: dict[str, Any] = {}
        self._dynamic_broker: dict[str, Any] = {}
        self._dynamic_default: dict[str, Any] = {}
        for name, raw in (explicit or {}).items():
            definition = BROKER_CONFIG_DEFS.get(name)
            if definition is None:
                raise InvalidConfigError(f"Unknown broker configuration {name!r}")
            self._explicit[name] = definition.parse(raw)

    def __getitem__(self, name: str) -> Any:
        for layer in (self._dynamic_broker, self._dynamic_default, self._explicit):
            if name in layer:
                return layer[name]
        return BROKER_CONFIG_DEFS[name].default

    def set_dynamic(
        self, cluster_default: Mapping[str, str], this_broker: Mapping[str, str]
    ) -> None:
        """Install the dynamic layers. Values that do not parse, or name a property that is
        unknown or not dynamic, are skipped: the controller refuses them, so they can only
        come from an older or newer version's metadata log."""

        def parsed(raw: Mapping[str, str]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for name, value in raw.items():
                definition = BROKER_CONFIG_DEFS.get(name)
                if definition is None or definition.read_only:
                    continue
                try:
                    out[name] = definition.parse(value)
                except InvalidConfigError:
                    continue
            return out

        self._dynamic_default = parsed(cluster_default)
        self._dynamic_broker = parsed(this_broker)

    def layers(self, name: str) -> list[tuple[ConfigSource, Any]]:
        """Every layer that sets `name`, highest precedence first, ending with the default
        when there is one: DescribeConfigs' synonyms of a broker config."""
        out = [
            (source, layer[name])
            for source, layer in (
                (ConfigSource.DYNAMIC_BROKER, self._dynamic_broker),
                (ConfigSource.DYNAMIC_DEFAULT_BROKER, self._dynamic_default),
                (ConfigSource.STATIC_BROKER, self._explicit),
            )
            if name in layer
        ]
        default = BROKER_CONFIG_DEFS[name].default
        if default is not None:
            out.append((ConfigSource.DEFAULT, default))
        return out

    def __getattr__(self, attribute: str) -> Any:
        name = attribute.replace("_", ".")
        if name in BROKER_CONFIG_DEFS:
            return self[name]
        raise AttributeError(attribute)

    def source(self, name: str) -> ConfigSource:
        if name in self._dynamic_broker:
            return ConfigSource.DYNAMIC_BROKER
        if name in self._dynamic_default:
            return ConfigSource.DYNAMIC_DEFAULT_BROKER
        return ConfigSource.STATIC_BROKER if name in self._explicit else ConfigSource.DEFAULT

    @property
    def explicit(self) -> Mapping[str, Any]:
        return dict(self._explicit)

    def log_dirs(self) -> list[Path]:
        dirs = self["log.dirs"] or [self["log.dir"]]
        return [Path(d) for d in dirs]

    def roll_ms(self) -> int:
        roll_ms = self["log.roll.ms"]
        return int(roll_ms) if roll_ms is not None else int(self["log.roll.hours"]) * 3_600_000

    def retention_ms(self) -> int:
        if self["log.retention.ms"] is not None:
            return int(self["log.retention.ms"])
        if self["log.retention.minutes"] is not None:
            return int(self["log.retention.minutes"]) * 60_000
        return int(self["log.retention.hours"]) * 3_600_000

    def flush_ms(self) -> int:
        value = self["log.flush.interval.ms"]
        return LONG_MAX if value is None else int(value)

    def topic_default(self, topic_config: str) -> Any:
        """The broker-level value a topic config falls back to."""
        synonym, _ = TOPIC_CONFIGS[topic_config]
        if synonym == "log.roll.ms":
            return self.roll_ms()
        if synonym == "log.retention.ms":
            return self.retention_ms()
        if synonym == "log.flush.interval.ms":
            return self.flush_ms()
        return self[synonym]


def parse_properties(text: str) -> dict[str, str]:
    """Java .properties, the subset server.properties files use: key=value or key: value."""
    result: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line[0] in "#!":
            continue
        for separator in ("=", ":"):
            if separator in line:
                key, value = line.split(separator, 1)
                result[key.strip()] = value.strip()
                break
        else:
            result[line] = ""
    return result


def from_environment(environ: Mapping[str, str], prefix: str = "ODRADEK_") -> dict[str, str]:
    """`ODRADEK_NUM_PARTITIONS=3` -> {"num.partitions": "3"}; unknown names are refused."""
    result: dict[str, str] = {}
    for key, value in environ.items():
        if not key.startswith(prefix) or key == "ODRADEK_BOOTSTRAP_SERVER":
            continue
        name = key[len(prefix) :].lower().replace("_", ".")
        if name not in BROKER_CONFIG_DEFS:
            raise InvalidConfigError(f"{key} does not name a broker configuration")
        result[name] = value
    return result


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise InvalidConfigError(f"--override expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        result[key.strip()] = value.strip()
    return result


def validate_topic_configs(configs: Mapping[str, str | None]) -> dict[str, Any]:
    """Check topic configs by name and value; raises InvalidConfigError with the reason."""
    parsed: dict[str, Any] = {}
    for name, raw in configs.items():
        entry = TOPIC_CONFIGS.get(name)
        if entry is None:
            raise InvalidConfigError(f"Unknown topic config name: {name}")
        parsed[name] = entry[1].parse(raw)
    return parsed
