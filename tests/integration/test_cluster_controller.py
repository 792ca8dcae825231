"""Three `odradek serve` processes (broker,controller) whose brokers register with the active
controller: what a user sees of the controller's cluster duties, over real sockets.

- Every broker registers and heartbeats: Metadata and DescribeCluster on any node list all
  three, and topics created on a node that is not the controller (the request is forwarded)
  get replicas on all three, visible at once on that node.
- A broker killed with SIGKILL is fenced once its session expires: it drops out of Metadata,
  every leadership it held moves to another replica of the ISR, and it leaves every ISR;
  restarted, it registers again and is listed again.
- A broker stopped with SIGTERM first moves its leaderships away (controlled shutdown).
- Killing the active controller fences nobody: the new one gives every broker a fresh session.
- Producer id blocks come from the controller: InitProducerId on different brokers never
  hands out the same id.
- Bad input: a registration for another cluster, a heartbeat with a stale epoch, and
  controller requests sent to a node that is not the controller get Kafka's error codes.
Negative control for the fencing checks: with a session timeout longer than the test waits, the
killed broker stays listed, so the checks see fencing and not something else.
"""

from __future__ import annotations

import datetime
import socket
import struct
import time
import uuid
from collections.abc import Callable
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


def start_cluster(make: Callable[..., Any], session_timeout_ms: int) -> dict[int, Any]:
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


def create_topic(port: int, name: str, partitions: int, replication: int) -> None:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"})
    future = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=replication)],
        request_timeout=15,
    )[name]
    future.result(timeout=20)


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


def test_brokers_register_fence_and_come_back(unstarted_broker: Callable[..., Any]) -> None:
    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS)
    controller = active_controller(nodes)
    assert controller in VOTERS
    other = next(i for i in VOTERS if i != controller)

    # DescribeCluster v2 shows the three, none fenced
    from kio.schema.describe_cluster.v2.request import DescribeClusterRequest

    described = raw(
        nodes[other].port,
        DescribeClusterRequest(
            include_cluster_authorized_operations=False, include_fenced_brokers=True
        ),
    )
    assert {int(b.broker_id) for b in described.brokers} == set(VOTERS)
    assert not any(b.is_fenced for b in described.brokers)
    assert {b.port for b in described.brokers} == {n.port for n in nodes.values()}

    # created on a broker that is not the controller (clients send it to the controller
    # Metadata names; a raw request goes where it is sent): forwarded, placed over all three,
    # and that broker's own Metadata shows it as soon as it is answered
    assert create_topic_raw(nodes[other].port, "orders", partitions=6, replication=3) == 0
    placed = partitions_of(nodes[other].port, "orders")
    assert len(placed) == 6
    for p in placed.values():
        assert set(p.replica_nodes) == set(VOTERS) and set(p.isr_nodes) == set(VOTERS)
    leaders = {int(p.leader_id) for p in placed.values()}
    assert leaders == set(VOTERS)  # striped: every broker leads some

    # SIGKILL a broker that is not the controller: fenced after its session, leaderships move
    victim = other
    led_before = {i for i, p in placed.items() if p.leader_id == victim}
    assert led_before
    nodes[victim].kill()
    observer = nodes[controller].port
    wait_until(lambda: victim not in listed_brokers(observer), "the killed broker fenced")
    after = partitions_of(observer, "orders")
    for index, p in after.items():
        assert p.leader_id != victim and p.leader_id in VOTERS, (index, p)
        assert victim not in p.isr_nodes
        assert victim in p.offline_replicas
        if index in led_before:
            assert p.leader_epoch > placed[index].leader_epoch

    # restarted: registers again, unfenced, listed everywhere
    nodes[victim].start()
    wait_until(
        lambda: all(listed_brokers(n.port) == set(VOTERS) for n in nodes.values()),
        "the restarted broker listed again",
    )


def test_killing_the_active_controller_fences_nobody(unstarted_broker: Callable[..., Any]) -> None:
    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS)
    controller = active_controller(nodes)
    nodes[controller].kill()
    survivors = {i: n for i, n in nodes.items() if i != controller}
    wait_until(lambda: active_controller(survivors) in survivors, "a new active controller")
    # the dead one is fenced in time; the survivors never are, well past a session timeout
    port = next(iter(survivors.values())).port
    wait_until(lambda: listed_brokers(port) == set(survivors), "the old controller fenced")
    time.sleep(SESSION_TIMEOUT_MS * 2 / 1000)
    assert listed_brokers(port) == set(survivors)
    create_topic(port, "after-failover", partitions=2, replication=2)
    assert len(partitions_of(port, "after-failover")) == 2


def test_controlled_shutdown_moves_leaderships_first(
    unstarted_broker: Callable[..., Any],
) -> None:
    nodes = start_cluster(unstarted_broker, 30_000)  # only the controlled shutdown fences here
    controller = active_controller(nodes)
    leaving = next(i for i in VOTERS if i != controller)
    create_topic(nodes[controller].port, "rolling", partitions=6, replication=3)
    assert any(
        p.leader_id == leaving for p in partitions_of(nodes[controller].port, "rolling").values()
    )
    assert nodes[leaving].stop() == 0  # SIGTERM
    after = partitions_of(nodes[controller].port, "rolling")
    assert all(p.leader_id not in (leaving, -1) for p in after.values()), after
    assert leaving not in listed_brokers(nodes[controller].port)


def test_negative_control_a_long_session_keeps_a_dead_broker_listed(
    unstarted_broker: Callable[..., Any],
) -> None:
    nodes = start_cluster(unstarted_broker, 60_000)
    controller = active_controller(nodes)
    victim = next(i for i in VOTERS if i != controller)
    nodes[victim].kill()
    time.sleep(SESSION_TIMEOUT_MS * 3 / 1000)
    assert victim in listed_brokers(nodes[controller].port)


def test_producer_ids_are_unique_across_brokers(unstarted_broker: Callable[..., Any]) -> None:
    from kio.schema.init_producer_id.v4.request import InitProducerIdRequest

    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS)
    seen: list[int] = []
    for node in nodes.values():
        for _ in range(3):
            answer = raw(
                node.port,
                InitProducerIdRequest(
                    transactional_id=None,
                    transaction_timeout=datetime.timedelta(seconds=60),
                    producer_id=-1,  # type: ignore[arg-type]
                    producer_epoch=-1,  # type: ignore[arg-type]
                ),
            )
            assert answer.error_code == 0
            seen.append(int(answer.producer_id))
    assert len(set(seen)) == len(seen)


def test_controller_requests_get_kafka_s_errors(unstarted_broker: Callable[..., Any]) -> None:
    from kio.schema.broker_heartbeat.v1.request import BrokerHeartbeatRequest
    from kio.schema.broker_registration.v4.request import BrokerRegistrationRequest

    nodes = start_cluster(unstarted_broker, SESSION_TIMEOUT_MS)
    controller = active_controller(nodes)
    other = next(i for i in VOTERS if i != controller)

    def register(port: int, cluster_id: str) -> Any:
        return raw(
            port,
            BrokerRegistrationRequest(
                broker_id=7,  # type: ignore[arg-type]
                cluster_id=cluster_id,
                incarnation_id=uuid.uuid4(),
                listeners=(),
                features=(),
                rack=None,
            ),
        )

    assert register(nodes[controller].port, "some-other-cluster").error_code == 104
    assert register(nodes[other].port, CLUSTER_ID).error_code == 41  # NOT_CONTROLLER

    heartbeat = BrokerHeartbeatRequest(
        broker_id=other,  # type: ignore[arg-type]
        broker_epoch=123456789,  # type: ignore[arg-type]
        current_metadata_offset=0,  # type: ignore[arg-type]
        want_fence=False,
        want_shut_down=False,
    )
    assert raw(nodes[controller].port, heartbeat).error_code == 77  # STALE_BROKER_EPOCH
    # the cluster goes on: the real broker was not disturbed
    time.sleep(SESSION_TIMEOUT_MS * 2 / 1000)
    assert listed_brokers(nodes[controller].port) == set(VOTERS)
