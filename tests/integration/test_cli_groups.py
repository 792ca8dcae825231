"""`odradek groups` as a user runs it: a subprocess against a real broker, with groups made by
real confluent-kafka consumers (joined and committing, or committing without joining).

What is checked is what Kafka's kafka-consumer-groups.sh promises: the lag of a partition is
its log end offset minus the group's committed offset; offsets of an active group are not
reset; a dry run changes nothing; an executed reset is where a new member of the group starts;
a group with members is not deleted; and every failure is one line on stderr with exit code 1
(refused) or 2 (unreachable, no such group or topic).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from kafka_helpers import TIMEOUT_S, admin, create_topic, produce, unique_topic

BROKER_OVERRIDES = {"group.initial.rebalance.delay.ms": 0}
BASE_TIMESTAMP_MS = 1_700_000_000_000

Offsets = dict[tuple[str, int], int]


# -- helpers -----------------------------------------------------------------------------------


def odradek_groups(broker: Any, *args: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    bootstrap = ["--bootstrap-server", broker.bootstrap] if broker is not None else []
    return subprocess.run(
        [sys.executable, "-m", "odradek", "groups", *args, *bootstrap, "--timeout", "20"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def json_out(proc: subprocess.CompletedProcess) -> Any:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:{proc.stdout}\nstderr:{proc.stderr}"
    )
    return json.loads(proc.stdout)


def one_error_line(proc: subprocess.CompletedProcess, code: int) -> str:
    """The failure is exit `code` and exactly one line on stderr, no traceback."""
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("odradek groups: error: "), proc.stderr
    return proc.stderr.strip().removeprefix("odradek groups: error: ")


def unused_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"  # free again once closed: nobody listens


def fill(bootstrap: str, topic: str, counts: Mapping[int, int]) -> None:
    """Produce counts[p] records to partition p, record i stamped BASE + i seconds."""
    records = [
        {"partition": p, "value": f"{p}-{i}".encode(), "timestamp": BASE_TIMESTAMP_MS + i * 1000}
        for p, count in counts.items()
        for i in range(count)
    ]
    produce(bootstrap, topic, records).ok()


def make_topic(broker: Any, prefix: str, counts: Mapping[int, int]) -> str:
    topic = unique_topic(prefix)
    create_topic(broker.bootstrap, topic, partitions=len(counts))
    fill(broker.bootstrap, topic, counts)
    return topic


def commit_without_joining(bootstrap: str, group: str, offsets: Offsets) -> None:
    """Commit as a consumer that never joins: the group exists, Empty, with these offsets."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        answer = c.commit(offsets=tps, asynchronous=False)
        assert all(tp.error is None for tp in answer), answer
    finally:
        c.close()


def committed(bootstrap: str, group: str) -> Offsets:
    """The group's committed offsets, read with the admin client (not with the CLI)."""
    client = admin(bootstrap)
    futures = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])
    answer = futures[group].result(TIMEOUT_S)
    return {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions if tp.offset >= 0}


@contextmanager
def active_member(
    bootstrap: str, group: str, topic: str, client_id: str = "cli-test"
) -> Iterator[Consumer]:
    """A consumer subscribed to `topic` that has joined `group` and got its assignment."""
    assigned: list[TopicPartition] = []
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": client_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
        }
    )
    try:
        c.subscribe([topic], on_assign=lambda _c, parts: assigned.extend(parts))
        deadline = time.monotonic() + TIMEOUT_S
        while not assigned:
            assert time.monotonic() < deadline, f"no assignment for group {group}"
            c.poll(0.2)
        yield c
    finally:
        c.close()


def first_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The offset of the first record a new member of `group` reads from each partition."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "latest",  # a missing commit must not look like a reset
        }
    )
    seen: dict[int, int] = {}
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + TIMEOUT_S
        while len(seen) < partitions and time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is not None and msg.error() is None:
                seen.setdefault(msg.partition(), msg.offset())
    finally:
        c.close()
    return seen


# -- list --------------------------------------------------------------------------------------


def test_list_shows_groups_and_their_state(broker) -> None:
    topic = make_topic(broker, "list", {0: 3})
    active, idle = unique_topic("active"), unique_topic("idle")
    commit_without_joining(broker.bootstrap, idle, {(topic, 0): 1})
    with active_member(broker.bootstrap, active, topic):
        listed = {
            g["group"]: g
            for g in json_out(odradek_groups(broker, "list", "--output", "json"))["groups"]
        }
        assert listed[active]["state"] == "Stable"
        assert listed[active]["simple"] is False
        assert listed[idle]["state"] == "Empty"

        text = odradek_groups(broker, "list")
        assert text.returncode == 0, text.stderr
        rows = [line.split() for line in text.stdout.splitlines()]
        assert ["GROUP", "STATE", "TYPE"] in rows
        assert any(row[:2] == [active, "Stable"] for row in rows), text.stdout
        assert any(row[:2] == [idle, "Empty"] for row in rows), text.stdout

        only_empty = json_out(
            odradek_groups(broker, "list", "--state", "empty", "--output", "json")
        )
        names = {g["group"] for g in only_empty["groups"]}
        assert idle in names and active not in names
        assert {g["state"] for g in only_empty["groups"]} == {"Empty"}


# -- describe ----------------------------------------------------------------------------------


def test_describe_lag_is_log_end_offset_minus_committed(broker) -> None:
    produced = {0: 10, 1: 7, 2: 4}
    topic = make_topic(broker, "lag", produced)
    group = unique_topic("lag-group")
    with active_member(broker.bootstrap, group, topic, client_id="lag-client") as member:
        member.commit(
            offsets=[TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 7)], asynchronous=False
        )
        document = json_out(odradek_groups(broker, "describe", group, "--output", "json"))
        (described,) = document["groups"]
        assert described["group"] == group
        assert described["state"] == "Stable"
        assert described["coordinator"]["port"] == broker.port
        assert described["assignor"]  # range or roundrobin, whatever librdkafka chose

        rows = {row["partition"]: row for row in described["partitions"]}
        assert set(rows) == {0, 1, 2}
        assert (rows[0]["committed_offset"], rows[0]["log_end_offset"], rows[0]["lag"]) == (
            3,
            10,
            7,
        )
        assert (rows[1]["committed_offset"], rows[1]["log_end_offset"], rows[1]["lag"]) == (7, 7, 0)
        assert (rows[2]["committed_offset"], rows[2]["log_end_offset"], rows[2]["lag"]) == (
            None,
            4,
            None,
        )
        assert described["total_lag"] == (10 - 3) + (7 - 7)
        assert {row["member_id"] for row in rows.values()} == {member.memberid()}
        assert {row["client_id"] for row in rows.values()} == {"lag-client"}

        (listed_member,) = described["members"]
        assert listed_member["member_id"] == member.memberid()
        assert listed_member["client_id"] == "lag-client"
        assert sorted(a["partition"] for a in listed_member["assignment"]) == [0, 1, 2]

        text = odradek_groups(broker, "describe", group)
        assert text.returncode == 0, text.stderr
        lines = [line.split() for line in text.stdout.splitlines()]
        assert [topic, "0", "3", "10", "7", member.memberid()] == lines_starting(lines, topic, "0")[
            :6
        ]
        assert [topic, "2", "-", "4", "-"] == lines_starting(lines, topic, "2")[:5]
        assert ["Total", "lag:", "7"] in lines


def lines_starting(lines: list[list[str]], *prefix: str) -> list[str]:
    for line in lines:
        if line[: len(prefix)] == list(prefix):
            return line
    raise AssertionError(f"no line starting with {prefix}: {lines}")


def test_describe_group_without_members_lists_its_commits(broker) -> None:
    topic = make_topic(broker, "idle-lag", {0: 5, 1: 2})
    group = unique_topic("idle-group")
    commit_without_joining(broker.bootstrap, group, {(topic, 0): 1, (topic, 1): 2})
    (described,) = json_out(odradek_groups(broker, "describe", group, "--output", "json"))["groups"]
    assert described["state"] == "Empty"
    assert described["members"] == []
    assert [(r["partition"], r["lag"], r["member_id"]) for r in described["partitions"]] == [
        (0, 4, None),
        (1, 0, None),
    ]
    assert described["total_lag"] == 4


def test_describe_read_committed_lag_stops_at_the_last_stable_offset(broker) -> None:
    topic = make_topic(broker, "txn-lag", {0: 4})
    group = unique_topic("txn-lag-group")
    commit_without_joining(broker.bootstrap, group, {(topic, 0): 4})
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": group})
    producer.init_transactions(TIMEOUT_S)
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic, value=b"open %d" % i, partition=0)
    producer.flush(TIMEOUT_S)

    def lags(*extra: str) -> list[int]:
        proc = odradek_groups(broker, "describe", group, "--output", "json", *extra)
        (described,) = json_out(proc)["groups"]
        return [row["lag"] for row in described["partitions"]]

    assert lags() == [3]  # the open transaction's records count against the log end
    assert lags("--isolation", "read_committed") == [0]  # not yet readable
    producer.abort_transaction(TIMEOUT_S)
    assert lags("--isolation", "read_committed") == [4]  # aborted records and the marker


def test_describe_unknown_group_is_exit_2(broker) -> None:
    group = unique_topic("nobody")
    proc = odradek_groups(broker, "describe", group)
    assert one_error_line(proc, 2) == f"Consumer group '{group}' does not exist."
    assert proc.stdout == ""


# -- reset-offsets -----------------------------------------------------------------------------


def test_reset_is_refused_while_the_group_has_members(broker) -> None:
    topic = make_topic(broker, "busy", {0: 4})
    group = unique_topic("busy-group")
    with active_member(broker.bootstrap, group, topic) as member:
        member.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
        for mode in ("--dry-run", "--execute"):
            proc = odradek_groups(
                broker, "reset-offsets", group, "--all-topics", "--to-earliest", mode
            )
            assert one_error_line(proc, 1) == (
                f"Assignments can only be reset if the group '{group}' is inactive,"
                " but the current state is Stable."
            )
        assert committed(broker.bootstrap, group) == {(topic, 0): 2}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


PRODUCED = {0: 10, 1: 6}
COMMITTED = {0: 5, 1: 2}
SCENARIOS = {
    "to-earliest": (["--to-earliest"], {0: 0, 1: 0}),
    "to-latest": (["--to-latest"], {0: 10, 1: 6}),
    "to-offset": (["--to-offset", "8"], {0: 8, 1: 6}),  # clamped to the log end of 1
    "shift-back": (["--shift-by", "-3"], {0: 2, 1: 0}),  # clamped to the log start of 1
    "shift-forward": (["--shift-by", "3"], {0: 8, 1: 5}),
    "to-datetime": (["--to-datetime", _iso(BASE_TIMESTAMP_MS + 3000)], {0: 3, 1: 3}),
    "to-datetime-naive-is-utc": (
        ["--to-datetime", _iso(BASE_TIMESTAMP_MS + 4500).removesuffix("+00:00")],
        {0: 5, 1: 5},
    ),
    "to-datetime-after-the-end": (
        ["--to-datetime", _iso(BASE_TIMESTAMP_MS + 99_000)],
        {0: 10, 1: 6},
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_reset_dry_run_then_execute(broker, scenario: str) -> None:
    args, expected = SCENARIOS[scenario]
    topic = make_topic(broker, "reset", PRODUCED)
    group = unique_topic("reset-group")
    before = {(topic, p): o for p, o in COMMITTED.items()}
    commit_without_joining(broker.bootstrap, group, before)
    want = [
        {"topic": topic, "partition": p, "current_offset": COMMITTED[p], "new_offset": expected[p]}
        for p in sorted(expected)
    ]

    dry = json_out(
        odradek_groups(broker, "reset-offsets", group, "--topic", topic, *args, "--output", "json")
    )
    assert dry == {"group": group, "executed": False, "partitions": want}
    text = odradek_groups(broker, "reset-offsets", group, "--topic", topic, *args, "--dry-run")
    assert text.returncode == 0, text.stderr
    assert "Dry run: nothing was changed" in text.stdout
    for p in expected:
        assert [topic, str(p), str(COMMITTED[p]), str(expected[p])] in [
            line.split() for line in text.stdout.splitlines()
        ]
    assert committed(broker.bootstrap, group) == before

    done = json_out(
        odradek_groups(
            broker, "reset-offsets", group, "--topic", topic, *args, "--execute", "--output", "json"
        )
    )
    assert done == {"group": group, "executed": True, "partitions": want}
    assert committed(broker.bootstrap, group) == {(topic, p): o for p, o in expected.items()}

    # a new member starts where the reset put the group (one more record each, so that a
    # reset to the log end has something to read)
    fill(broker.bootstrap, topic, {0: 1, 1: 1})
    assert first_offsets(broker.bootstrap, group, topic, 2) == expected


def test_reset_some_partitions_of_a_topic(broker) -> None:
    topic = make_topic(broker, "subset", PRODUCED)
    group = unique_topic("subset-group")
    commit_without_joining(broker.bootstrap, group, {(topic, p): o for p, o in COMMITTED.items()})
    proc = odradek_groups(
        broker, "reset-offsets", group, "--topic", f"{topic}:1", "--to-offset", "4", "--execute"
    )
    assert proc.returncode == 0, proc.stderr
    assert "Reset the offsets of group" in proc.stdout
    assert committed(broker.bootstrap, group) == {(topic, 0): 5, (topic, 1): 4}


def test_reset_all_topics_covers_every_committed_partition(broker) -> None:
    first = make_topic(broker, "all-a", {0: 3})
    second = make_topic(broker, "all-b", {0: 4, 1: 5})
    group = unique_topic("all-group")
    commit_without_joining(broker.bootstrap, group, {(first, 0): 1, (second, 1): 2})
    done = json_out(
        odradek_groups(
            broker,
            "reset-offsets",
            group,
            "--all-topics",
            "--to-latest",
            "--execute",
            "--output",
            "json",
        )
    )
    assert [(r["topic"], r["partition"], r["new_offset"]) for r in done["partitions"]] == sorted(
        [(first, 0, 3), (second, 1, 5)]
    )
    assert committed(broker.bootstrap, group) == {(first, 0): 3, (second, 1): 5}


def test_reset_of_a_group_that_does_not_exist_yet_sets_its_offsets(broker) -> None:
    # Kafka allows this (state Dead): offsets can be chosen before the application first runs
    topic = make_topic(broker, "fresh", {0: 6})
    group = unique_topic("fresh-group")
    proc = odradek_groups(
        broker, "reset-offsets", group, "--topic", topic, "--to-offset", "4", "--execute"
    )
    assert proc.returncode == 0, proc.stderr
    assert committed(broker.bootstrap, group) == {(topic, 0): 4}


def test_reset_of_an_unknown_topic_is_exit_2(broker) -> None:
    group = unique_topic("no-topic-group")
    missing = unique_topic("missing")
    proc = odradek_groups(broker, "reset-offsets", group, "--topic", missing, "--to-earliest")
    assert one_error_line(proc, 2) == f"Topic '{missing}' does not exist."
    topic = make_topic(broker, "two", {0: 1, 1: 1})
    proc = odradek_groups(broker, "reset-offsets", group, "--topic", f"{topic}:5", "--to-earliest")
    assert "Partition 5 of topic" in one_error_line(proc, 2)


def test_shift_without_a_commit_is_exit_2(broker) -> None:
    topic = make_topic(broker, "noshift", {0: 3})
    group = unique_topic("noshift-group")
    proc = odradek_groups(broker, "reset-offsets", group, "--topic", topic, "--shift-by", "1")
    assert "no committed offset" in one_error_line(proc, 2)


# -- delete ------------------------------------------------------------------------------------


def test_delete_an_empty_group_and_refuse_an_active_one(broker) -> None:
    topic = make_topic(broker, "delete", {0: 2})
    idle, busy = unique_topic("idle-delete"), unique_topic("busy-delete")
    commit_without_joining(broker.bootstrap, idle, {(topic, 0): 1})
    with active_member(broker.bootstrap, busy, topic):
        proc = odradek_groups(broker, "delete", idle)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"Deleted consumer group '{idle}'."
        assert committed(broker.bootstrap, idle) == {}
        listed = json_out(odradek_groups(broker, "list", "--output", "json"))
        assert idle not in {g["group"] for g in listed["groups"]}

        refused = odradek_groups(broker, "delete", busy, "--output", "json")
        assert refused.returncode == 1
        assert json.loads(refused.stdout) == {
            "groups": [
                {
                    "group": busy,
                    "deleted": False,
                    "error": {"code": "NON_EMPTY_GROUP", "message": "The group is not empty."},
                }
            ]
        }
        assert refused.stderr == (
            f"odradek groups: error: Consumer group '{busy}' could not be deleted:"
            " The group is not empty.\n"
        )
        listed = json_out(odradek_groups(broker, "list", "--output", "json"))
        assert busy in {g["group"] for g in listed["groups"]}


def test_delete_unknown_group_is_exit_2(broker) -> None:
    group = unique_topic("never")
    proc = odradek_groups(broker, "delete", group)
    assert one_error_line(proc, 2) == f"Consumer group '{group}' does not exist."


# -- unreachable broker ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["describe", "g"],
        ["reset-offsets", "g", "--all-topics", "--to-earliest"],
        ["delete", "g"],
        ["list", "--output", "json"],
    ],
)
def test_unreachable_broker_is_one_line_and_exit_2(args: list[str]) -> None:
    address = unused_address()
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "odradek", "groups", *args, "--bootstrap-server", address],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - start
    message = one_error_line(proc, 2)
    assert message.startswith(f"cannot reach a broker at {address}"), message
    assert "Connection refused" in message
    assert proc.stdout == ""
    assert elapsed < 10, f"a refused connection took {elapsed:.1f} s to report"


def test_bootstrap_server_from_the_environment(broker) -> None:
    env = {**os.environ, "ODRADEK_BOOTSTRAP_SERVER": broker.bootstrap}
    proc = subprocess.run(
        [sys.executable, "-m", "odradek", "groups", "list", "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "groups" in json.loads(proc.stdout)


def test_command_config_file_supplies_the_client_properties(broker, tmp_path) -> None:
    config_file = tmp_path / "client.properties"
    config_file.write_text(
        f"# as a Kafka user writes it\nbootstrap.servers = {broker.bootstrap}\n"
        "security.protocol=PLAINTEXT\nclient.id=from-file\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "odradek", "groups", "list", "--command-config", str(config_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "ODRADEK_BOOTSTRAP_SERVER"},
    )
    assert proc.returncode == 0, proc.stderr

    config_file.write_text(f"bootstrap.servers={broker.bootstrap}\nsecurity.protocol=SSL_NOPE\n")
    proc = odradek_groups(broker, "list", "--command-config", str(config_file))
    message = one_error_line(proc, 2)
    assert message.startswith("invalid client configuration: ") and "security.protocol" in message
