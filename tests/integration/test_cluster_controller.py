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
import time
import uuid
from collections.abc import Callable
from typing import Any

from cluster_processes import (
    CLUSTER_ID,
    SESSION_TIMEOUT_MS,
    VOTERS,
    active_controller,
    create_topic,
    create_topic_raw,
    listed_brokers,
    partitions_of,
    raw,
    start_cluster,
    wait_until,
)


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
