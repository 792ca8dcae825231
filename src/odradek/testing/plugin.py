"""The pytest plugin: a real Kafka-compatible broker per test, registered as `odradek`.

Fixtures:

- `kafka_broker`: a broker of this test (function scope) on 127.0.0.1 and a port the kernel
  picks, with a fresh data dir. `--odradek-scope=session` (ini `odradek_scope`) shares one per
  session instead; `kafka_broker_session` is always the shared one.
  `--odradek-mode=process` (ini `odradek_mode`) runs it as `odradek serve` in a subprocess
  (with a control endpoint); the default runs it in the test process. Either offers
  `kill()`, `restart()`, `pause()`, `resume()`, request faults (`faults`) and disk faults
  (`disk`).
- `kafka_broker_factory`: start more brokers, `kafka_broker_factory(overrides={...})`.
- `bootstrap_servers`: the broker's address, for any client library.
- `kafka_admin`: a confluent-kafka AdminClient.
- `kafka_producer_factory` / `kafka_consumer_factory`: confluent-kafka clients built with the
  bootstrap address and the config given; all closed at teardown.
- `kafka_topic`: `kafka_topic(partitions=3)` creates a topic of a unique name and returns it.
- `kafka_clock`: the broker's virtual clock, `kafka_clock.advance(seconds)`.
- `kafka_cluster`: a replicated cluster of three broker processes (`cluster.KafkaCluster`):
  `bootstrap_servers`, `brokers[id]` (each with `kill()`, `restart()`, `pause()`, ...),
  `leader_of(topic, partition)`, `isr_of(...)`, `active_controller()`, `create_topic(...)`,
  `wait_for_isr(...)`, `wait_healthy()`. Every process is killed at teardown.
- `kafka_cluster_factory`: clusters of other shapes, `kafka_cluster_factory(5, controllers=3,
  overrides={...}, node_overrides={2: {...}})`.

Broker properties for every broker of the session (cluster nodes too): ini
`odradek_overrides`, one `key=value` per line. Process-mode brokers and cluster nodes are forked
from a fork server that has imported the broker once (ini `odradek_process_start = fork`, the
default) or launched afresh (`spawn`).

Safe under pytest-xdist: ports come from the kernel, data dirs from `tmp_path_factory`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from odradek.testing.broker import START_METHODS, InProcessBroker, KafkaBroker, ProcessBroker
from odradek.testing.cluster import KafkaCluster

MODES = ("inprocess", "process")
SCOPES = ("function", "module", "session")
CLUSTER_FIXTURES = ("kafka_cluster", "kafka_cluster_factory")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("odradek", "Kafka-compatible brokers for tests (odradek.testing)")
    group.addoption(
        "--odradek-mode",
        choices=MODES,
        default=None,
        help="run kafka_broker in the test process (default) or as a subprocess",
    )
    group.addoption(
        "--odradek-scope",
        choices=SCOPES,
        default=None,
        help="how long one kafka_broker lives: function (default), module or session",
    )
    parser.addini("odradek_mode", "default for --odradek-mode", default="inprocess")
    parser.addini("odradek_scope", "default for --odradek-scope", default="function")
    parser.addini(
        "odradek_process_start",
        "how process-mode brokers start: fork (from a pre-imported fork server) or spawn",
        default="fork",
    )
    parser.addini(
        "odradek_overrides",
        "broker properties for every test broker, one key=value per line",
        type="linelist",
        default=[],
    )


def _setting(config: pytest.Config, name: str, choices: tuple[str, ...]) -> str:
    value = config.getoption(f"--odradek-{name}") or config.getini(f"odradek_{name}")
    if value not in choices:
        raise pytest.UsageError(f"odradek_{name} must be one of {', '.join(choices)}: {value!r}")
    return str(value)


def _overrides(config: pytest.Config) -> dict[str, object]:
    values: dict[str, object] = {}
    for line in config.getini("odradek_overrides"):
        key, sep, value = str(line).partition("=")
        if not sep:
            raise pytest.UsageError(f"odradek_overrides: {line!r} is not key=value")
        values[key.strip()] = value.strip()
    return values


def new_broker(
    config: pytest.Config, data_dir: Path, overrides: Mapping[str, object] | None = None
) -> KafkaBroker:
    """A broker (not started) of the mode the session asks for."""
    merged = {**_overrides(config), **(overrides or {})}
    if _setting(config, "mode", MODES) == "process":
        return ProcessBroker(data_dir, merged, start_method=_start_method(config))
    return InProcessBroker(data_dir, merged)


def _start_method(config: pytest.Config) -> str:
    value = str(config.getini("odradek_process_start"))
    if value not in START_METHODS:
        raise pytest.UsageError(f"odradek_process_start must be one of {START_METHODS}: {value!r}")
    if value == "fork" and not hasattr(os, "fork"):
        return "spawn"
    return value


def pytest_configure(config: pytest.Config) -> None:
    """In process mode, start the fork server while pytest collects (it takes ~0.3-0.8 s)."""
    if _setting(config, "mode", MODES) == "process" and _start_method(config) == "fork":
        _start_fork_server()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Cluster nodes are processes: when a collected test uses a cluster, start the fork server
    now, while the tests before it run."""
    if _start_method(config) != "fork" or _setting(config, "mode", MODES) == "process":
        return  # spawn, or started already by pytest_configure
    if any(
        name in CLUSTER_FIXTURES for item in items for name in getattr(item, "fixturenames", ())
    ):
        _start_fork_server()


def _start_fork_server() -> None:
    from odradek.testing.broker import child_environment
    from odradek.testing.forkserver import fork_server

    env = child_environment()
    threading.Thread(
        target=lambda: fork_server(env), name="odradek-forkserver-start", daemon=True
    ).start()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """On a failure, show what the subprocess brokers of the test printed."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if isinstance(value, ProcessBroker):
                report.sections.append((f"odradek broker {value.bootstrap_servers}", value.log()))
        clusters = [v for v in funcargs.values() if isinstance(v, KafkaCluster)]
        clusters += getattr(funcargs.get("kafka_cluster_factory"), "started", [])
        for cluster in dict.fromkeys(clusters):
            for node_id, node in cluster.brokers.items():
                report.sections.append((f"odradek cluster node {node_id}", node.log()))
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """After each test, lift the faults it left on the brokers it used (shared ones too)."""
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, (InProcessBroker, ProcessBroker)) and value.running:
            value.lift_faults()


def _broker_scope(fixture_name: str, config: pytest.Config) -> str:
    return _setting(config, "scope", SCOPES)


def _started(config: pytest.Config, factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    broker = new_broker(config, factory.mktemp("kafka-broker"))
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope=_broker_scope)  # type: ignore[arg-type]  # pytest accepts a callable
def kafka_broker(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaBroker]:
    """A running broker; stopped and its process (if any) gone at teardown."""
    yield from _started(pytestconfig, tmp_path_factory)


@pytest.fixture(scope="session")
def kafka_broker_session(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaBroker]:
    """One broker for the whole session (per xdist worker); use topics of your own."""
    yield from _started(pytestconfig, tmp_path_factory)


@pytest.fixture
def kafka_broker_factory(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., KafkaBroker]]:
    """`kafka_broker_factory(overrides={"num.partitions": 3})` starts another broker."""
    started: list[KafkaBroker] = []

    def start(overrides: Mapping[str, object] | None = None) -> KafkaBroker:
        broker = new_broker(pytestconfig, tmp_path_factory.mktemp("kafka-broker"), overrides)
        started.append(broker)
        broker.start()
        return broker

    try:
        yield start
    finally:
        for broker in reversed(started):
            broker.close()


@pytest.fixture
def kafka_cluster_factory(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., KafkaCluster]]:
    """`kafka_cluster_factory(5, controllers=3, overrides={...}, node_overrides={1: {...}})`
    starts a cluster (arguments: `KafkaCluster`'s); every process of each is killed at
    teardown."""
    started: list[KafkaCluster] = []

    def start(
        nodes: int = 3,
        *,
        overrides: Mapping[str, object] | None = None,
        **options: Any,
    ) -> KafkaCluster:
        cluster = KafkaCluster(
            tmp_path_factory.mktemp("kafka-cluster"),
            nodes,
            overrides={**_overrides(pytestconfig), **(overrides or {})},
            start_method=_start_method(pytestconfig),
            **options,
        )
        started.append(cluster)
        return cluster.start()

    start.started = started  # type: ignore[attr-defined]  # read by pytest_runtest_makereport
    try:
        yield start
    finally:
        for cluster in reversed(started):
            cluster.close()


@pytest.fixture
def kafka_cluster(kafka_cluster_factory: Callable[..., KafkaCluster]) -> KafkaCluster:
    """A running cluster of three broker,controller processes; all killed at teardown."""
    return kafka_cluster_factory()


@pytest.fixture
def kafka_clock(kafka_broker: KafkaBroker) -> Any:
    """The broker's clock: `kafka_clock.advance(45)` fires session timeouts without sleeping.

    It is system time until advanced. A jump fires group session and rebalance timeouts and
    offset retention at once; a shared (session-scoped) broker's clock jumps for every test.
    """
    return kafka_broker.clock


@pytest.fixture
def bootstrap_servers(kafka_broker: KafkaBroker) -> str:
    return kafka_broker.bootstrap_servers


@pytest.fixture
def kafka_admin(bootstrap_servers: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap_servers})


@pytest.fixture
def kafka_producer_factory(
    kafka_broker: KafkaBroker, bootstrap_servers: str
) -> Iterator[Callable[..., Any]]:
    """`kafka_producer_factory(**{"linger.ms": 0})`: a confluent-kafka Producer."""
    from confluent_kafka import Producer

    producers: list[Any] = []

    def make(config: Mapping[str, Any] | None = None, /, **settings: Any) -> Any:
        producer = Producer({"bootstrap.servers": bootstrap_servers, **(config or {}), **settings})
        producers.append(producer)
        return producer

    try:
        yield make
    finally:
        kafka_broker.resume()  # a paused broker would hold the clients' teardown
        for producer in producers:
            producer.purge()
            producer.flush(0)
        producers.clear()  # the last reference: librdkafka's handle goes before the broker


@pytest.fixture
def kafka_consumer_factory(
    kafka_broker: KafkaBroker, bootstrap_servers: str
) -> Iterator[Callable[..., Any]]:
    """`kafka_consumer_factory(group="g", topics=["t"])`: a confluent-kafka Consumer.

    It reads from the earliest offset when the group has none committed (`auto.offset.reset`
    can be given like any other setting) and is closed at teardown.
    """
    from confluent_kafka import Consumer

    consumers: list[Any] = []

    def make(
        config: Mapping[str, Any] | None = None,
        /,
        *,
        group: str | None = None,
        topics: list[str] | None = None,
        **settings: Any,
    ) -> Any:
        merged: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group or f"test-group-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            **(config or {}),
            **settings,
        }
        consumer = Consumer(merged)
        consumers.append(consumer)
        if topics:
            consumer.subscribe(topics)
        return consumer

    try:
        yield make
    finally:
        kafka_broker.resume()
        for consumer in consumers:
            with contextlib.suppress(RuntimeError):  # closed by the test already
                consumer.close()
        consumers.clear()


@pytest.fixture
def kafka_topic(kafka_admin: Any) -> Callable[..., str]:
    """`kafka_topic(partitions=3, prefix="orders", **configs)`: a fresh topic's name."""

    def create(partitions: int = 1, *, prefix: str = "topic", **configs: str) -> str:
        from odradek.testing.admin import create_topic

        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        create_topic(kafka_admin, name, partitions, configs)
        return name

    return create
