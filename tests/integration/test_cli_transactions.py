"""`odradek transactions list|describe` against a real broker, with a confluent-kafka
transaction open and then committed: what a user sees in json and text, the filters of
`list`, and one clear error line with exit code 2 for an id the coordinator does not know, an
unknown state name and an unreachable broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from cli_helpers import json_out, odradek, one_error_line, unused_address
from confluent_kafka import Producer
from kafka_helpers import TIMEOUT_S, create_topic, unique_topic

TIMEOUT_MS = 45_000


@pytest.fixture
def open_transaction(broker: Any) -> Iterator[tuple[str, str, Producer]]:
    """(transactional id, topic, producer) with a transaction open on partitions 0 and 1."""
    topic = unique_topic("cli-txn")
    create_topic(broker.bootstrap, topic, 3)
    transactional_id = unique_topic("cli-txn-id")
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "transactional.id": transactional_id,
            "transaction.timeout.ms": TIMEOUT_MS,
        }
    )
    producer.init_transactions(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce(topic, b"a", partition=0)
    producer.produce(topic, b"b", partition=1)
    assert producer.flush(TIMEOUT_S) == 0  # the partitions are in the transaction by now
    yield transactional_id, topic, producer


def listed(broker: Any, *args: str) -> dict[str, dict[str, Any]]:
    document = json_out(odradek(broker, "transactions", "list", "--output", "json", *args))
    return {item["transactional_id"]: item for item in document["transactions"]}


def described(broker: Any, transactional_id: str) -> dict[str, Any]:
    proc = odradek(broker, "transactions", "describe", transactional_id, "--output", "json")
    (item,) = json_out(proc)["transactions"]
    assert item["transactional_id"] == transactional_id
    return item  # type: ignore[no-any-return]


def test_list_and_describe_an_open_then_committed_transaction(
    broker: Any, open_transaction: tuple[str, str, Producer]
) -> None:
    transactional_id, topic, producer = open_transaction
    item = described(broker, transactional_id)
    assert item["state"] == "Ongoing"
    assert item["transaction_timeout_ms"] == TIMEOUT_MS
    assert item["partitions"] == [
        {"topic": topic, "partition": 0},
        {"topic": topic, "partition": 1},
    ]
    assert item["transaction_start_time_ms"] > 0 and item["transaction_duration_ms"] >= 0
    assert item["coordinator"]["port"] == broker.port
    producer_id = item["producer_id"]
    assert producer_id >= 0 and item["producer_epoch"] >= 0

    everything = listed(broker)
    assert everything[transactional_id] == {
        "transactional_id": transactional_id,
        "coordinator": item["coordinator"]["id"],
        "producer_id": producer_id,
        "state": "Ongoing",
    }
    assert transactional_id in listed(broker, "--state", "ongoing,PrepareCommit")
    assert transactional_id not in listed(broker, "--state", "CompleteCommit")
    assert list(listed(broker, "--producer-id", str(producer_id))) == [transactional_id]
    assert listed(broker, "--producer-id", str(producer_id + 100_000)) == {}
    assert transactional_id in listed(broker, "--min-duration-ms", "0")
    assert transactional_id not in listed(broker, "--min-duration-ms", "3600000")

    text = odradek(broker, "transactions", "describe", transactional_id)
    assert text.returncode == 0, text.stderr
    assert "TRANSACTIONAL-ID" in text.stdout and "Ongoing" in text.stdout
    assert f"{topic}:0,1" in text.stdout
    text = odradek(broker, "transactions", "list", "--producer-id", str(producer_id))
    assert text.returncode == 0, text.stderr
    (row,) = [line for line in text.stdout.splitlines() if transactional_id in line]
    coordinator = str(item["coordinator"]["id"])
    assert row.split() == [transactional_id, coordinator, str(producer_id), "Ongoing"]

    producer.commit_transaction(TIMEOUT_S)
    after = described(broker, transactional_id)
    assert (after["state"], after["producer_id"], after["partitions"]) == (
        "CompleteCommit",
        producer_id,
        [],
    )
    assert listed(broker, "--state", "CompleteCommit")[transactional_id]["state"] == (
        "CompleteCommit"
    )
    assert transactional_id not in listed(broker, "--state", "Ongoing")


def test_describe_a_transactional_id_with_no_transaction_yet(broker: Any) -> None:
    """After InitProducerId alone the id is Empty and has no start time (Kafka sends -1)."""
    transactional_id = unique_topic("cli-txn-empty")
    producer = Producer(
        {"bootstrap.servers": broker.bootstrap, "transactional.id": transactional_id}
    )
    producer.init_transactions(TIMEOUT_S)
    item = described(broker, transactional_id)
    assert (item["state"], item["partitions"]) == ("Empty", [])
    assert item["transaction_start_time_ms"] is None and item["transaction_duration_ms"] is None
    assert listed(broker, "--state", "Empty")[transactional_id]["state"] == "Empty"


def test_describe_an_unknown_transactional_id(broker: Any) -> None:
    proc = odradek(broker, "transactions", "describe", "no-such-txn-id", "--output", "json")
    message = one_error_line(proc, 2, noun="transactions")
    assert message == "Transactional id 'no-such-txn-id' does not exist."
    assert proc.stdout.strip() in ("", '{\n  "transactions": []\n}')


def test_describe_several_ids_shows_the_known_and_reports_the_unknown(
    broker: Any, open_transaction: tuple[str, str, Producer]
) -> None:
    transactional_id, _, producer = open_transaction
    proc = odradek(
        broker, "transactions", "describe", transactional_id, "missing-id", "--output", "json"
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "odradek transactions: error: Transactional id 'missing-id' does not exist.\n"
    )
    (item,) = json.loads(proc.stdout)["transactions"]
    assert item["transactional_id"] == transactional_id
    producer.abort_transaction(TIMEOUT_S)


def test_bad_state_and_unreachable_broker(broker: Any) -> None:
    proc = odradek(broker, "transactions", "list", "--state", "Stable")
    assert "unknown transaction state 'Stable'" in one_error_line(proc, 2, noun="transactions")
    proc = odradek(broker, "transactions", "list", bootstrap=unused_address())
    assert "cannot reach a broker" in one_error_line(proc, 2, noun="transactions")
