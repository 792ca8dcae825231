"""The transaction coordinator's broker SIGKILLed, in a cluster of three `odradek serve` processes.

Topics and `__transaction_state` have replication factor 3 and min.insync.replicas 2. Each test
picks a broker that leads some `__transaction_state` partitions as the coordinator, transactional
ids it coordinates (checked with FindCoordinator on every broker), and data partitions led by the
two other brokers, so the kill takes the coordinator and no partition leader:

- killed in the middle of a transaction (records acknowledged, not committed): the producer's
  commit either succeeds once the coordinator moved (a new leader of the id's
  `__transaction_state` partition) or fails with an abortable or fatal error; a fresh producer of
  the same transactional.id then initializes; read_committed ends with exactly the committed
  transactions, the interrupted one all or nothing across the partitions, and no transaction is
  left open (the last stable offset reaches the log end). Its records are in the logs
  (read_uncommitted sees them), so a reader that showed them would be seen to.
- killed right after a commit was acknowledged: the commit completes anyway, the new coordinator
  writing the markers the old one may not have written to partitions on other brokers.
- a transactional consume-transform-produce copier (tests/fault/txn_copier.py) of 6,000 records
  while the coordinator's broker is killed once and restarted: the read_committed output equals
  the input, partition by partition. (That the same copier without transactions duplicates
  under kills is shown on one broker in test_transactions_copier.py.)

Every test restarts the broker it killed and waits for full ISRs, so the module shares one
cluster.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException, Producer

sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))  # the shared client helpers
from test_cluster_transactions import read_all
from test_transactions_copier import Copier

from cluster_processes import (
    SESSION_TIMEOUT_MS,
    TRANSACTION_OVERRIDES,
    TRANSACTION_STATE_TOPIC,
    VOTERS,
    create_led_topic,
    group_coordinated_by,
    ids_coordinated_by,
    listed_brokers,
    live_port,
    module_cluster_nodes,
    partitions_of,
    stable_offsets,
    start_cluster,
    start_transaction_state,
    transaction_coordinator,
    transaction_state_leaders,
    wait_full_isr,
    wait_until,
)

TIMEOUT_S = 60.0
RECORDS = 20  # per partition and transaction
COPIED = 6_000
COPIER_PARTITIONS = 4
COPIER_EVERY = 250


@pytest.fixture(scope="module")
def unstarted_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    yield from module_cluster_nodes(tmp_path_factory)


@pytest.fixture(scope="module")
def cluster(unstarted_broker: Callable[..., Any]) -> dict[int, Any]:
    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS, TRANSACTION_OVERRIDES)
    leaders = start_transaction_state(nodes)
    assert len(set(leaders.values())) > 1, leaders  # the coordinators are spread
    return nodes


@pytest.fixture
def restarted(cluster: dict[int, Any]) -> Iterator[list[int]]:
    """Brokers the test killed: started again at its end, with the ISRs made whole again, for
    the next test."""
    killed: list[int] = []
    yield killed
    internal = [TRANSACTION_STATE_TOPIC]
    if partitions_of(live_port(cluster), "__consumer_offsets"):  # asked of a node never killed
        internal.append("__consumer_offsets")
    for node_id in killed:
        if not cluster[node_id].running:
            cluster[node_id].start()

    def caught_up() -> bool:  # a restarted node serves metadata once it has replayed it
        try:
            return all(
                listed_brokers(n.port) == set(VOTERS)
                and all(partitions_of(n.port, topic) for topic in internal)
                for n in cluster.values()
            )
        except OSError:
            return False

    wait_until(caught_up, "the restarted brokers caught up with the metadata")
    for topic in internal:
        wait_full_isr(cluster, topic, 3)


def pick_coordinator(
    nodes: dict[int, Any], prefix: str, partitions: int
) -> tuple[int, str, list[tuple[str, int]]]:
    """(coordinator, a transactional id it coordinates, data partitions of two topics all led
    by the other two brokers, both of which lead some)."""
    coordinator = sorted(set(transaction_state_leaders(nodes).values()))[-1]
    first, second = (b for b in VOTERS if b != coordinator)
    (tid,) = ids_coordinated_by(nodes, coordinator, f"{prefix}-txn")
    data: list[tuple[str, int]] = []
    for base in ("orders", "payments"):
        topic = f"{prefix}-{base}-{uuid.uuid4().hex[:6]}"
        assignment = [
            [first, second, coordinator] if i % 2 == 0 else [second, coordinator, first]
            for i in range(partitions)
        ]
        create_led_topic(nodes, topic, assignment)
        data += [(topic, i) for i in range(partitions)]
    return coordinator, tid, data


def kill_coordinator(nodes: dict[int, Any], coordinator: int, tid: str, killed: list[int]) -> None:
    """SIGKILL the coordinator's broker; wait until the survivors name a new coordinator."""
    assert transaction_coordinator(nodes, tid) == coordinator
    nodes[coordinator].kill()
    killed.append(coordinator)
    survivors = {i: n for i, n in nodes.items() if i != coordinator}
    wait_until(
        lambda: transaction_coordinator(survivors, tid) in survivors,
        "a new transaction coordinator",
    )


def values(tag: str, topic: str, index: int) -> list[bytes]:
    return [f"{tag}-{topic}-{index}-{i}".encode() for i in range(RECORDS)]


def produce_all(producer: Producer, tag: str, partitions: list[tuple[str, int]]) -> None:
    for topic, index in partitions:
        for value in values(tag, topic, index):
            producer.produce(topic, value=value, partition=index)


def read(bootstrap: str, partitions: list[tuple[str, int]], isolation: str) -> Any:
    """The values a consumer of `isolation` reads of each partition, up to its end."""
    found = read_all(bootstrap, partitions, isolation, TIMEOUT_S)
    return {position: [value for _, value in records] for position, records in found.items()}


def wait_nothing_open(nodes: dict[int, Any], partitions: list[tuple[str, int]]) -> None:
    """Every partition's last stable offset reaches its log end: no transaction hangs."""
    for topic, index in partitions:
        seen: list[tuple[int, int]] = []

        def settled(topic: str = topic, index: int = index, seen: list[Any] = seen) -> bool:
            try:
                seen.append(stable_offsets(nodes, topic, index))
            except OSError:
                return False
            return seen[-1][0] == seen[-1][1] > 0

        try:
            wait_until(settled, f"{topic}-{index} with nothing open")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: (stable, end) {seen[-1:]}") from None


def test_coordinator_killed_in_the_middle_of_a_transaction(
    cluster: dict[int, Any], restarted: list[int]
) -> None:
    nodes = cluster
    bootstrap = ",".join(n.bootstrap for n in nodes.values())
    coordinator, tid, partitions = pick_coordinator(nodes, "mid", 2)
    config = {"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5}
    producer = Producer(config)
    producer.init_transactions(TIMEOUT_S)
    producer.begin_transaction()
    produce_all(producer, "first", partitions)
    producer.commit_transaction(TIMEOUT_S)
    producer.begin_transaction()
    produce_all(producer, "second", partitions)
    assert producer.flush(TIMEOUT_S) == 0
    for topic, index in partitions:  # the second transaction is open in every partition
        assert stable_offsets(nodes, topic, index) == (RECORDS + 1, 2 * RECORDS + 1)

    kill_coordinator(nodes, coordinator, tid, restarted)
    try:
        producer.commit_transaction(TIMEOUT_S)
        outcome = "committed"
    except KafkaException as exc:
        error = exc.args[0]
        print(f"commit failed: {error}")
        outcome = "unknown"  # a fatal error: the fresh producer's init settles it
        if error.txn_requires_abort():
            producer.abort_transaction(TIMEOUT_S)
            outcome = "aborted"
    print(f"the interrupted transaction: {outcome}")
    del producer
    fresh = Producer(config)
    fresh.init_transactions(TIMEOUT_S)  # completes: the new coordinator answers
    fresh.begin_transaction()
    produce_all(fresh, "third", partitions)
    fresh.commit_transaction(TIMEOUT_S)

    wait_nothing_open(nodes, partitions)
    committed = read(bootstrap, partitions, "read_committed")
    everything = read(bootstrap, partitions, "read_uncommitted")
    second_seen = set()
    for topic, index in partitions:
        first, second, third = (values(t, topic, index) for t in ("first", "second", "third"))
        assert second[0] in everything[(topic, index)]  # its records were written
        got = committed[(topic, index)]
        assert got in (first + second + third, first + third), (topic, index, got)
        second_seen.add(got == first + second + third)
    assert len(second_seen) == 1, "the interrupted transaction is in some partitions only"
    if outcome != "unknown":
        assert second_seen == {outcome == "committed"}, outcome


def test_a_commit_acknowledged_before_the_coordinator_dies_completes(
    cluster: dict[int, Any], restarted: list[int]
) -> None:
    nodes = cluster
    bootstrap = ",".join(n.bootstrap for n in nodes.values())
    coordinator, tid, partitions = pick_coordinator(nodes, "acked", 2)
    config = {"bootstrap.servers": bootstrap, "transactional.id": tid, "linger.ms": 5}
    producer = Producer(config)
    producer.init_transactions(TIMEOUT_S)
    producer.begin_transaction()
    produce_all(producer, "acked", partitions)
    producer.commit_transaction(TIMEOUT_S)
    nodes[coordinator].kill()  # at once: its markers may not all be written yet
    restarted.append(coordinator)
    pending = [p for p in partitions if len(set(stable_offsets(nodes, *p))) > 1]
    print(f"partitions still open at the kill: {pending}")
    survivors = {i: n for i, n in nodes.items() if i != coordinator}
    wait_until(lambda: transaction_coordinator(survivors, tid) in survivors, "a new coordinator")

    wait_nothing_open(nodes, partitions)
    committed = read(bootstrap, partitions, "read_committed")
    for topic, index in partitions:
        assert committed[(topic, index)] == values("acked", topic, index), (topic, index)
    del producer
    Producer(config).init_transactions(TIMEOUT_S)  # the id goes on at the new coordinator


def fill(nodes: dict[int, Any], topic: str) -> dict[int, list[bytes]]:
    """COPIED keyed records spread over the partitions; what each partition holds, in order."""
    bootstrap = ",".join(n.bootstrap for n in nodes.values())
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    written: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(COPIER_PARTITIONS)}
    failures: list[Any] = []

    def delivered(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(error)
        else:
            written[message.partition()].append((message.offset(), message.value()))

    for i in range(COPIED):
        producer.produce(topic, key=b"k%d" % (i % 97), value=b"%d" % i, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(TIMEOUT_S) == 0 and not failures, failures
    return {p: [v for _, v in sorted(records)] for p, records in written.items()}


@pytest.fixture
def copiers() -> Iterator[list[Copier]]:
    started: list[Copier] = []
    try:
        yield started
    finally:
        for copier in started:
            copier.close()


def test_a_copier_copies_exactly_once_across_a_coordinator_kill(
    cluster: dict[int, Any], restarted: list[int], copiers: list[Copier]
) -> None:
    nodes = cluster
    bootstrap = ",".join(n.bootstrap for n in nodes.values())
    coordinator, tid, partitions = pick_coordinator(nodes, "copy", COPIER_PARTITIONS)
    source, target = dict.fromkeys(t for t, _ in partitions)
    expected = fill(nodes, source)
    # the group's coordinator is another broker: the transaction's offsets and their marker
    # are written there
    others = [b for b in VOTERS if b != coordinator]
    group, group_coordinator = group_coordinated_by(nodes, others, "copy")
    print(f"transaction coordinator {coordinator}, group coordinator {group_coordinator}")
    args = [bootstrap, source, target, str(COPIER_PARTITIONS), group, tid, "txn"]
    copier = Copier([*args, str(COPIER_EVERY)])
    copiers.append(copier)
    deadline = time.monotonic() + 2 * TIMEOUT_S
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")
    copier.wait_for("committed", random.Random(seed).randint(2, 6), deadline)
    # the kill lands while the copier is copying: it commits more afterwards
    commits_before = sum(e["event"] == "committed" for e in copier.events)
    assert commits_before * COPIER_EVERY < COPIED, commits_before
    kill_coordinator(nodes, coordinator, tid, restarted)
    nodes[coordinator].start()
    copier.finish(max(1.0, deadline - time.monotonic()))
    assert sum(e["event"] == "committed" for e in copier.events) > commits_before
    aborted = [e for e in copier.events if e["event"] == "aborted"]
    print(f"transactions the copier aborted and copied again: {aborted}")

    wait_nothing_open(nodes, [(target, p) for p in range(COPIER_PARTITIONS)])
    output = read(bootstrap, [(target, p) for p in range(COPIER_PARTITIONS)], "read_committed")
    for index in range(COPIER_PARTITIONS):
        got, want = output[(target, index)], expected[index]
        assert len(got) == len(want), (index, len(got), len(want))
        assert got == want, f"partition {index} differs from the input"
