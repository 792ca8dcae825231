"""The Kafka integration-test checklist, item by item, against the order and notification
services with odradek.testing: each test is a few lines."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections import Counter
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from order_checks import PARTITIONS, run_until
from orders.notification_service import DLQ_TOPIC, NotificationService, SendError
from orders.order_service import TOPIC, OrderService, PublishError

from odradek.testing import (
    assert_per_key_order,
    committed_offsets,
    consumer_lag,
    partition_for,
    read_records,
    wait_until,
)

# --- producer ------------------------------------------------------------------------------


def test_event_lands_in_its_topic_with_every_field(orders, bootstrap_servers) -> None:
    order = orders.place("ada", 1250)

    [record] = read_records(bootstrap_servers, TOPIC)
    assert record.key == order.order_id.encode()
    assert json.loads(record.value) == {
        "type": "created",
        "order_id": order.order_id,
        "customer": "ada",
        "amount_cents": 1250,
        "created_ms": order.created_ms,
    }
    assert dict(record.headers)["message-id"]


def test_key_chooses_the_partition(orders, bootstrap_servers) -> None:
    placed = [orders.place("ada", 100).order_id for _ in range(20)]

    records = read_records(bootstrap_servers, TOPIC)
    assert sorted(r.key for r in records) == sorted(key.encode() for key in placed)
    for record in records:
        assert record.partition == partition_for(record.key, PARTITIONS)


def test_send_error_is_reported_and_the_order_kept(orders, kafka_broker) -> None:
    kafka_broker.faults.error("TOPIC_AUTHORIZATION_FAILED", api="produce", topic=TOPIC)

    with pytest.raises(PublishError):
        orders.place("ada", 100, order_id="o-1")
    assert orders.status("o-1") == "publish_failed"


# --- consumer ------------------------------------------------------------------------------


def test_read_processed_and_committed_after(orders, notification_service, sent, bootstrap_servers):
    service = notification_service()
    first, second = orders.place("ada", 100), orders.place("bob", 250)

    run_until([service], lambda: len(sent) == 2)

    assert sorted(e["order_id"] for e in sent) == sorted([first.order_id, second.order_id])
    assert sorted(n[1] for n in service.notifications()) == ["ada", "bob"]
    assert sum(committed_offsets(bootstrap_servers, "notifications").values()) == 2
    assert set(consumer_lag(bootstrap_servers, "notifications", [TOPIC]).values()) == {0}


def test_poison_message_is_parked_and_the_rest_flows(
    orders, notification_service, sent, kafka_producer_factory, bootstrap_servers
) -> None:
    service = notification_service()
    producer = kafka_producer_factory()
    producer.produce(TOPIC, key=b"broken", value=b"{not json", partition=0)
    producer.flush(10)
    order = orders.place("ada", 100)

    run_until([service], lambda: sent and len(read_records(bootstrap_servers, DLQ_TOPIC)) == 1)

    [parked] = read_records(bootstrap_servers, DLQ_TOPIC)
    assert parked.value == b"{not json"
    assert dict(parked.headers)["dlq-reason"].startswith(b"unreadable")
    assert [e["order_id"] for e in sent] == [order.order_id]


def test_failed_sends_are_retried_then_parked(orders, notification_service, bootstrap_servers):
    attempts: Counter[str] = Counter()

    def flaky(event: dict[str, Any]) -> None:
        attempts[event["customer"]] += 1
        if event["customer"] == "never" or attempts[event["customer"]] < 3:
            raise SendError("mail server busy")

    service = notification_service(send=flaky)
    orders.place("ada", 100)
    orders.place("never", 100)

    run_until([service], lambda: len(read_records(bootstrap_servers, DLQ_TOPIC)) == 1)
    run_until([service], lambda: service.notifications())

    assert attempts == {"ada": 3, "never": 3}
    assert [n[1] for n in service.notifications()] == ["ada"]


def test_reprocessing_after_a_lost_commit_notifies_once(
    orders, notification_service, sent, kafka_broker
) -> None:
    service = notification_service("a")
    # The commit after processing fails: the service stops with the message processed but
    # its offset not committed, so the group's next member reads it again.
    kafka_broker.faults.error("GROUP_AUTHORIZATION_FAILED", api="offset_commit", times=1)
    orders.place("ada", 100)
    with pytest.raises(KafkaException):
        for _ in range(200):
            service.poll(0.05)
    service.consumer.close()

    again = notification_service("b")
    run_until([again], lambda: sum(committed_offsets_of(again).values()) == 1)

    assert [e["customer"] for e in sent] == ["ada"]
    assert len(again.notifications()) == 1


def committed_offsets_of(service: Any) -> dict[int, int]:
    assigned = service.consumer.assignment()
    return {
        tp.partition: tp.offset
        for tp in service.consumer.committed(assigned, timeout=5)
        if tp.offset >= 0
    }


# --- partitions ----------------------------------------------------------------------------


def test_an_orders_events_keep_their_order(orders, bootstrap_servers) -> None:
    sent_events = []
    for customer in ("ada", "bob", "cy"):
        order = orders.place(customer, 100)
        sent_events.append((order.order_id, "created-100"))
        for amount in (200, 300):
            orders.amend(order.order_id, amount)
            sent_events.append((order.order_id, f"amended-{amount}"))

    records = read_records(bootstrap_servers, TOPIC)
    summary = [dataclasses.replace(r, value=_summary(r.value)) for r in records]
    assert_per_key_order(summary, sent_events)


def _summary(value: bytes) -> bytes:
    event = json.loads(value)
    return f"{event['type']}-{event['amount_cents']}".encode()


def test_orders_spread_over_every_partition(orders, bootstrap_servers) -> None:
    for _ in range(60):
        orders.place("ada", 100)

    per_partition = Counter(r.partition for r in read_records(bootstrap_servers, TOPIC))
    assert set(per_partition) == set(range(PARTITIONS))
    assert min(per_partition.values()) >= 10


# --- fault tolerance -----------------------------------------------------------------------


def test_a_dead_consumer_s_partitions_go_to_another(
    orders, notification_service, sent, kafka_broker, kafka_clock
) -> None:
    a, b = notification_service("a"), notification_service("b")
    run_until([a, b], lambda: a.consumer.assignment() and b.consumer.assignment())

    kafka_broker.faults.drop_request(client_id="notifications-a")  # a hangs
    kafka_clock.advance(7)  # past its 6 s session: no sleeping
    run_until([b], lambda: len(b.consumer.assignment()) == PARTITIONS)
    for _ in range(6):
        orders.place("ada", 100)

    run_until([b], lambda: len(sent) == 6)
    kafka_broker.faults.clear()


def test_nothing_acknowledged_is_lost_when_the_broker_restarts(
    orders, notification_service, sent, kafka_broker
) -> None:
    placed = [orders.place("ada", 100).order_id for _ in range(5)]
    kafka_broker.kill()
    kafka_broker.restart()

    service = notification_service()
    run_until([service], lambda: len(sent) == 5)
    assert sorted(e["order_id"] for e in sent) == sorted(placed)


def test_a_replica_takes_over_when_the_leader_dies(kafka_cluster, sent, tmp_path) -> None:
    # Three broker processes; the topics get three replicas and need two in sync for acks=all.
    kafka_cluster.create_topic(TOPIC, PARTITIONS, config={"max.message.bytes": "65536"})
    kafka_cluster.create_topic(DLQ_TOPIC)
    servers = kafka_cluster.bootstrap_servers
    producer = Producer(
        {"bootstrap.servers": servers, "partitioner": "murmur2_random", "acks": "all"}
    )
    orders = OrderService(sqlite3.connect(tmp_path / "app.db"), producer, timeout_s=30)
    service = NotificationService(
        sqlite3.connect(tmp_path / "notifications.db"),
        Consumer(
            {
                "bootstrap.servers": servers,
                "group.id": "notifications",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "session.timeout.ms": 6000,
            }
        ),
        Producer({"bootstrap.servers": servers}),
        sent.append,
    )
    service.start()
    try:
        placed = [orders.place("ada", 100).order_id for _ in range(12)]
        run_until([service], lambda: len(sent) == 12, timeout_s=30)

        partition = partition_for(placed[0], PARTITIONS)
        leader = kafka_cluster.leader_of(TOPIC, partition)
        kafka_cluster.brokers[leader].kill()  # SIGKILL: nothing flushed, nothing handed over

        def a_replica_leads() -> int | None:
            found = kafka_cluster.leader_of(TOPIC, partition)
            return found if found not in (leader, -1) else None

        new_leader = wait_until(a_replica_leads, timeout=30)
        assert new_leader in kafka_cluster.replicas_of(TOPIC, partition)
        placed += [orders.place("bob", 200).order_id for _ in range(12)]

        # every acknowledged order is in the topic, those the dead leader held included
        kept = {r.key.decode() for r in read_records(servers, TOPIC) if r.key is not None}
        assert set(placed) - kept == set()
        run_until([service], lambda: len(sent) == len(placed), timeout_s=60)
        assert sorted(e["order_id"] for e in sent) == sorted(placed)
    finally:
        service.consumer.close()


# --- performance ---------------------------------------------------------------------------


def test_oversized_order_is_refused_by_the_topic_limit(orders) -> None:
    # The topic allows 64 KiB batches (max.message.bytes); the client alone would send 1 MB.
    with pytest.raises(PublishError, match=r"(?i)too large"):
        orders.place("x" * 100_000, 100)


def test_a_burst_is_consumed_to_zero_lag(
    orders, notification_service, sent, kafka_producer_factory, bootstrap_servers
) -> None:
    service = notification_service()
    producer = kafka_producer_factory({"partitioner": "murmur2_random"})
    for i in range(300):
        event = {"type": "created", "order_id": f"o-{i}", "customer": "ada", "amount_cents": 1}
        producer.produce(TOPIC, key=f"o-{i}".encode(), value=json.dumps(event).encode())
    assert producer.flush(10) == 0
    assert sum(consumer_lag(bootstrap_servers, "notifications", [TOPIC]).values()) == 300

    run_until([service], lambda: len(sent) == 300)

    wait_until(lambda: sum(consumer_lag(bootstrap_servers, "notifications", [TOPIC]).values()) == 0)
