"""Helpers for tests of a cluster of `odradek serve` processes: start three broker,controller
nodes that know each other, send raw kio requests, read Metadata, find the active controller."""

from __future__ import annotations

import datetime
import socket
import struct
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

from confluent_kafka.admin import AdminClient, NewTopic

from odradek.transport.client import decode_response, encode_request

VOTERS = (1, 2, 3)
SESSION_TIMEOUT_MS = 1500
CLUSTER_ID = "controller-test-cluster-000"
TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def raw(port: int, request: Any) -> Any:
    """One kio request over a plain socket; its kio response."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(encode_request(request, 11, "controller-test"))
        size = struct.unpack(">i", _read(sock, 4))[0]
        _, response = decode_response(request.__api_key__, request.__version__, _read(sock, size))
    return response


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def metadata(port: int) -> Any:
    from kio.schema.metadata.v12.request import MetadataRequest

    return raw(
        port,
        MetadataRequest(
            topics=None,
            allow_auto_topic_creation=False,
            include_topic_authorized_operations=False,
        ),
    )


def listed_brokers(port: int) -> set[int]:
    try:
        return {int(b.node_id) for b in metadata(port).brokers}
    except OSError:
        return set()


def partitions_of(port: int, topic: str) -> dict[int, Any]:
    for t in metadata(port).topics:
        if t.name == topic:
            return {int(p.partition_index): p for p in t.partitions}
    return {}


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def active_controller(nodes: dict[int, Any]) -> int:
    from odradek.metadata.raft import wire
    from odradek.metadata.raft.messages import DescribeQuorumRequest

    for node in nodes.values():
        if not node.running:
            continue
        try:
            answer = raw(node.port, wire.to_kio(DescribeQuorumRequest(), 1))
        except OSError:
            continue
        if answer.error_code == 0 and answer.topics[0].partitions[0].error_code == 0:
            return int(answer.topics[0].partitions[0].leader_id)
    return -1


def start_cluster(
    make: Callable[..., Any],
    session_timeout_ms: int,
    overrides: dict[str, object] | None = None,
) -> dict[int, Any]:
    ports = {node_id: free_port() for node_id in VOTERS}
    voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in ports.items())
    nodes = {
        node_id: make(
            {
                "cluster.id": CLUSTER_ID,
                "node.id": node_id,
                "controller.quorum.voters": voters,
                "controller.quorum.election.timeout.ms": 500,
                "controller.quorum.fetch.timeout.ms": 1000,
                "broker.session.timeout.ms": session_timeout_ms,
                "broker.heartbeat.interval.ms": 200,
                "auto.create.topics.enable": "false",
                **(overrides or {}),
            },
            port=port,
        )
        for node_id, port in ports.items()
    }
    for node in nodes.values():
        node.start()
    wait_until(
        lambda: all(listed_brokers(n.port) == set(VOTERS) for n in nodes.values()),
        "every broker registered and unfenced",
    )
    return nodes


def create_topic(
    port: int,
    name: str,
    partitions: int = -1,
    replication: int = -1,
    config: dict[str, str] | None = None,
    assignment: list[list[int]] | None = None,
) -> None:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    topic = (
        NewTopic(  # confluent-kafka refuses an assignment with its default partition count
            name, len(assignment), replica_assignment=assignment, config=config or {}
        )
        if assignment is not None
        else NewTopic(
            name, num_partitions=partitions, replication_factor=replication, config=config or {}
        )
    )
    admin.create_topics([topic], request_timeout=15)[name].result(timeout=20)


def live_port(nodes: dict[int, Any]) -> int:
    """The port of some running node."""
    return next(n.port for n in nodes.values() if n.running)


def wait_full_isr(nodes: dict[int, Any], topic: str, size: int, timeout_s: float = 60) -> None:
    """Every partition of `topic` has a live leader and `size` replicas in its ISR."""

    def healthy() -> bool:
        try:
            parts = partitions_of(live_port(nodes), topic)
        except OSError:
            return False
        return bool(parts) and all(
            p.leader_id >= 0 and len(p.isr_nodes) >= size for p in parts.values()
        )

    wait_until(healthy, f"{topic} fully in sync", timeout_s)


def leader_of(nodes: dict[int, Any], topic: str, partition: int) -> int:
    return int(partitions_of(live_port(nodes), topic)[partition].leader_id)


def create_topic_raw(port: int, name: str, partitions: int, replication: int) -> int:
    from kio.schema.create_topics.v7 import request as kio

    answer = raw(
        port,
        kio.CreateTopicsRequest(
            topics=(
                kio.CreatableTopic(
                    name=name,  # type: ignore[arg-type]
                    num_partitions=partitions,  # type: ignore[arg-type]
                    replication_factor=replication,  # type: ignore[arg-type]
                    assignments=(),
                    configs=(),
                ),
            ),
            timeout=datetime.timedelta(seconds=15),
        ),
    )
    return int(answer.topics[0].error_code)


def produce_to_partition(
    bootstrap: str, topic: str, values: list[bytes], timeout_s: float = 60, **config: Any
) -> list[Any]:
    """Produce `values` to partition 0 with an idempotent acks=all confluent-kafka producer
    (`config` overrides): one delivery outcome per value, None when acknowledged."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            **config,
        }
    )
    outcomes: list[Any] = []
    for value in values:
        producer.produce(
            topic, value=value, partition=0, on_delivery=lambda e, m: outcomes.append(e)
        )
    producer.flush(timeout_s)
    assert len(outcomes) == len(values)
    return outcomes


def read_partition(bootstrap: str, topic: str, count: int) -> list[bytes]:
    """Up to `count` values of partition 0 from its start, read by kafka-python."""
    from kafka import KafkaConsumer
    from kafka import TopicPartition as KafkaPythonPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    try:
        consumer.assign([KafkaPythonPartition(topic, 0)])
        values: list[bytes] = []
        for message in consumer:
            values.append(message.value)
            if len(values) >= count:
                break
        return values
    finally:
        consumer.close()


def consume_as_group(bootstrap: str, group: str, topic: str, expected: int) -> list[bytes]:
    """What a confluent-kafka consumer of `group` reads of `topic` (from the group's committed
    offsets), committed once `expected` values came; and whatever else arrives within 2 s."""
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(values) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            values.append(message.value())
        if values:
            consumer.commit(asynchronous=False)
        quiet = time.monotonic() + 2
        while time.monotonic() < quiet:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                values.append(message.value())
    finally:
        consumer.close()
    return values


# --- transactions over a cluster -------------------------------------------------------------

TRANSACTION_STATE_TOPIC = "__transaction_state"
# RF 3 everywhere, min.insync.replicas 2; few coordinator partitions so they are created fast
TRANSACTION_OVERRIDES: dict[str, object] = {
    "default.replication.factor": 3,
    "min.insync.replicas": 2,
    "offsets.topic.replication.factor": 3,
    "offsets.topic.num.partitions": 6,
    "transaction.state.log.replication.factor": 3,
    "transaction.state.log.min.isr": 2,
    "transaction.state.log.num.partitions": 6,
}


def module_cluster_nodes(tmp_path_factory: Any) -> Iterator[Callable[..., Any]]:
    """For a module fixture named `unstarted_broker` (conftest's is per test; the failure
    report shows what the nodes printed): `yield from` it. It yields a `make(overrides, port)`
    as conftest's fixture does, and closes every broker it made at the module's end."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "cluster_conftest", Path(__file__).with_name("conftest.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    made: list[Any] = []

    def make(overrides: dict[str, object] | None = None, port: int | None = None) -> Any:
        broker = module.Broker(
            tmp_path_factory.mktemp("node") / "data", overrides=overrides, port=port
        )
        made.append(broker)
        return broker

    try:
        yield make
    finally:
        for broker in made:
            broker.close()


def find_coordinator(port: int, key: str, key_type: int) -> tuple[int, int]:
    """(error code, node id) of FindCoordinator v3; key_type 0 a group, 1 a transactional id."""
    from kio.schema.find_coordinator.v3.request import FindCoordinatorRequest

    answer = raw(port, FindCoordinatorRequest(key=key, key_type=key_type))  # type: ignore[arg-type]
    return int(answer.error_code), int(answer.node_id)


def transaction_coordinator(nodes: dict[int, Any], transactional_id: str) -> int:
    """The coordinator every running broker names for the id (-1 while they disagree or have
    none)."""
    answers = set()
    for node in nodes.values():
        if not node.running:
            continue
        try:
            answers.add(find_coordinator(node.port, transactional_id, 1))
        except OSError:
            return -1
    if len(answers) != 1:
        return -1
    ((error, node_id),) = answers
    return node_id if error == 0 else -1


def start_transaction_state(nodes: dict[int, Any]) -> dict[int, int]:
    """Create `__transaction_state` (the first FindCoordinator for a transactional id does),
    wait until every partition has its full ISR; its partition -> leader."""
    port = live_port(nodes)
    wait_until(lambda: find_coordinator(port, "first", 1)[0] == 0, TRANSACTION_STATE_TOPIC)
    wait_full_isr(nodes, TRANSACTION_STATE_TOPIC, 3)
    return transaction_state_leaders(nodes)


def transaction_state_leaders(nodes: dict[int, Any]) -> dict[int, int]:
    parts = partitions_of(live_port(nodes), TRANSACTION_STATE_TOPIC)
    return {index: int(p.leader_id) for index, p in parts.items()}


def ids_coordinated_by(
    nodes: dict[int, Any], broker: int, prefix: str, count: int = 1
) -> list[str]:
    """`count` new transactional ids whose `__transaction_state` partition `broker` leads, each
    checked with FindCoordinator on every running broker."""
    import uuid

    from odradek.coordinator.transaction.records import transaction_partition

    leaders = transaction_state_leaders(nodes)
    assert broker in leaders.values(), (broker, leaders)
    found: list[str] = []
    while len(found) < count:
        candidate = f"{prefix}-{uuid.uuid4().hex[:8]}"
        if leaders[transaction_partition(candidate, len(leaders))] == broker:
            assert transaction_coordinator(nodes, candidate) == broker, candidate
            found.append(candidate)
    return found


def list_offset(port: int, topic: str, partition: int, isolation_level: int) -> int:
    """ListOffsets v7 for the latest offset at the broker on `port`: the log end offset (high
    watermark) with isolation level 0, the last stable offset with 1; -1 on an error."""
    from kio.schema.list_offsets.v7 import request as kio

    answer = raw(
        port,
        kio.ListOffsetsRequest(
            replica_id=-1,  # type: ignore[arg-type]
            isolation_level=isolation_level,  # type: ignore[arg-type]
            topics=(
                kio.ListOffsetsTopic(
                    name=topic,  # type: ignore[arg-type]
                    partitions=(
                        kio.ListOffsetsPartition(
                            partition_index=partition,  # type: ignore[arg-type]
                            timestamp=-1,  # type: ignore[arg-type]
                        ),
                    ),
                ),
            ),
        ),
    )
    result = answer.topics[0].partitions[0]
    return int(result.offset) if int(result.error_code) == 0 else -1


def stable_offsets(nodes: dict[int, Any], topic: str, partition: int) -> tuple[int, int]:
    """(last stable offset, log end offset) of a partition, asked of its leader."""
    port = nodes[leader_of(nodes, topic, partition)].port
    return list_offset(port, topic, partition, 1), list_offset(port, topic, partition, 0)


def wait_stable(nodes: dict[int, Any], topic: str, partition: int, end: int) -> None:
    """Wait until the partition's log end offset is `end` and its last stable offset too (no
    transaction is left open in it)."""

    seen: list[tuple[int, int]] = []

    def stable() -> bool:
        try:
            seen.append(stable_offsets(nodes, topic, partition))
        except OSError:
            return False
        return seen[-1] == (end, end)

    try:
        wait_until(stable, f"{topic}-{partition} stable at {end}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last (stable, end) seen: {seen[-1:]}") from None


def create_led_topic(nodes: dict[int, Any], topic: str, assignment: list[list[int]]) -> None:
    """Create `topic` with `assignment` (replicas per partition, the first the preferred leader),
    wait for full ISRs, and check that each partition's leader is its preferred one."""
    create_topic(live_port(nodes), topic, assignment=assignment)
    wait_full_isr(nodes, topic, len(assignment[0]))
    for index, replicas in enumerate(assignment):
        led = leader_of(nodes, topic, index)
        assert led == replicas[0], (topic, index, led, replicas)

    def known_everywhere() -> bool:  # a coordinator refuses partitions its image lacks
        try:
            return all(
                len(partitions_of(n.port, topic)) == len(assignment)
                for n in nodes.values()
                if n.running
            )
        except OSError:
            return False

    wait_until(known_everywhere, f"every broker knows {topic}")


def group_coordinated_by(
    nodes: dict[int, Any], brokers: Collection[int], prefix: str
) -> tuple[str, int]:
    """A new group id whose `__consumer_offsets` partition one of `brokers` leads (the topic
    created first if need be), checked with FindCoordinator on every running broker; and that
    broker."""
    import uuid

    from odradek.coordinator.group.records import group_partition

    port = live_port(nodes)
    wait_until(lambda: find_coordinator(port, "first", 0)[0] == 0, "__consumer_offsets")
    wait_full_isr(nodes, "__consumer_offsets", 3)
    parts = partitions_of(port, "__consumer_offsets")
    leaders = {index: int(p.leader_id) for index, p in parts.items()}
    assert set(brokers) & set(leaders.values()), (brokers, leaders)
    while True:
        group = f"{prefix}-{uuid.uuid4().hex[:8]}"
        broker = leaders[group_partition(group, len(leaders))]
        if broker in brokers:
            answers = {find_coordinator(n.port, group, 0) for n in nodes.values() if n.running}
            assert answers == {(0, broker)}, (group, answers)
            return group, broker
