"""The users' scenario: topic `user_actions` (3 partitions), group `analytics` of two consumer
processes that process each record and then commit it synchronously. One process owns two
partitions, the other one; the first is killed with SIGKILL; after its session times out the
survivor owns all three and carries on from the committed offsets.

At-least-once, exactly: every record is processed by someone; nothing the dead process had
committed is processed again; what it processed after its last commit may be (and the survivor
starts precisely at the committed offset).

The consumer process is this file run as a script: `python test_groups_scenario.py BOOTSTRAP
TOPIC GROUP CLIENT_ID HOLD_FILE`, printing one JSON line per assignment change, processed record
and completed commit, until SIGTERM closes it. While HOLD_FILE exists it stops between
processing a record and committing it: that is where the test kills it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from kafka_helpers import EventProcess, admin, create_topic, produce, watermarks

TOPIC = "user_actions"
GROUP = "analytics"
PARTITIONS = 3
TIMEOUT_S = 30.0
SESSION_TIMEOUT_MS = 6000
WORK_S = 0.005  # "processing" one record


def consumer_main(bootstrap: str, topic: str, group: str, client_id: str, hold: str) -> None:
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    def say(**event: Any) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": client_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer.subscribe(
        [topic],
        on_assign=lambda c, ps: say(event="assign", partitions=sorted(p.partition for p in ps)),
        on_revoke=lambda c, ps: say(event="revoke", partitions=sorted(p.partition for p in ps)),
        on_lost=lambda c, ps: say(event="lost", partitions=sorted(p.partition for p in ps)),
    )
    while not stopping.is_set():
        msg = consumer.poll(0.1)
        if msg is None or msg.error() is not None:
            continue
        time.sleep(WORK_S)
        say(event="processed", partition=msg.partition(), offset=msg.offset())
        while os.path.exists(hold):
            time.sleep(0.01)
        position = TopicPartition(msg.topic(), msg.partition(), msg.offset() + 1)
        try:
            consumer.commit(offsets=[position], asynchronous=False)
        except Exception as exc:  # any failure is reported; the test decides what it means
            say(event="commit_failed", partition=msg.partition(), error=str(exc))
            continue
        say(event="committed", partition=msg.partition(), offset=msg.offset() + 1)
    consumer.close()
    say(event="closed")


class Worker(EventProcess):
    """One consumer process of the group and everything it printed."""

    def __init__(self, bootstrap: str, client_id: str, hold: Path) -> None:
        super().__init__([__file__, bootstrap, TOPIC, GROUP, client_id, str(hold)], TIMEOUT_S)
        self.client_id = client_id
        self.hold = hold


@pytest.fixture
def workers(broker, tmp_path: Path) -> Iterator[list[Worker]]:
    create_topic(broker.bootstrap, TOPIC, PARTITIONS)
    started = [Worker(broker.bootstrap, "worker-1", tmp_path / "worker-1.hold")]
    # The second joins once the first owns everything, so "first" means something.
    wait_until(lambda: started[0].owned() == frozenset(range(PARTITIONS)), started)
    started.append(Worker(broker.bootstrap, "worker-2", tmp_path / "worker-2.hold"))
    yield started
    for w in started:
        if w.proc.poll() is None:
            w.kill()


def wait_until(
    condition: Any, workers: list[Worker], timeout_s: float = TIMEOUT_S, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out {what}: "
                + "; ".join(f"{w.client_id}: {w.events[-20:]}" for w in workers)
            )
        time.sleep(0.05)


def committed_offsets(bootstrap: str) -> dict[int, int]:
    client = admin(bootstrap)  # must outlive its future
    result = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP)])
    offsets = result[GROUP].result(TIMEOUT_S)
    return {tp.partition: tp.offset for tp in offsets.topic_partitions if tp.topic == TOPIC}


def processed(worker: Worker, partition: int) -> list[int]:
    return [e["offset"] for e in worker.of("processed") if e["partition"] == partition]


def test_user_actions_analytics_survives_a_killed_consumer(broker, workers) -> None:
    first, second = workers

    # One process owns two partitions, the other one, and none is owned twice.
    wait_until(
        lambda: (
            first.owned() | second.owned() == frozenset(range(PARTITIONS)) and bool(second.owned())
        ),
        workers,
        what="waiting for both processes to share the partitions",
    )
    assert not first.owned() & second.owned()
    assert (len(first.owned()), len(second.owned())) == (2, 1)
    victim, survivor = first, second
    victim_partitions = victim.owned()

    actions = ["login", "view", "click", "purchase", "logout"]
    phase_one = [
        {
            "key": f"user-{i}".encode(),
            "value": json.dumps({"user": i, "action": actions[i % 5]}).encode(),
            "partition": i % PARTITIONS,
        }
        for i in range(120)
    ]
    produce(broker.bootstrap, TOPIC, phase_one).ok()

    # Kill the two-partition process in the middle of its work, once it has committed on both
    # of its partitions: right after it processed a record, before it committed it.
    def victim_busy() -> bool:
        partitions = [e["partition"] for e in victim.of("committed")]
        return len(partitions) >= 20 and set(partitions) == victim_partitions

    wait_until(victim_busy, workers, what="for the victim to commit on both partitions")
    victim.hold.touch()
    wait_until(lambda: victim.update()[-1]["event"] == "processed", workers, what="for a hold")
    time.sleep(0.2)  # it is waiting for the hold file to go: it stays put
    in_flight = victim.update()[-1]
    assert in_flight["event"] == "processed"
    victim.kill()
    committed_at_kill = committed_offsets(broker.bootstrap)

    phase_two = [
        {"key": f"user-{i}".encode(), "value": b'{"action": "late"}', "partition": i % PARTITIONS}
        for i in range(120, 180)
    ]
    produce(broker.bootstrap, TOPIC, phase_two).ok()
    ends = {p: watermarks(broker.bootstrap, TOPIC, p)[1] for p in range(PARTITIONS)}
    assert sum(ends.values()) == 180

    # After the session timeout the survivor owns all three and works through to the end.
    wait_until(
        lambda: survivor.owned() == frozenset(range(PARTITIONS)),
        workers,
        timeout_s=SESSION_TIMEOUT_MS / 1000 + TIMEOUT_S,
        what="for the survivor to take everything over",
    )
    wait_until(
        lambda: all(max(processed(survivor, p), default=-1) == ends[p] - 1 for p in ends),
        workers,
        what="for the survivor to reach the end",
    )
    survivor.stop()
    assert committed_offsets(broker.bootstrap) == ends
    assert not survivor.of("commit_failed") and not victim.of("commit_failed")

    for p in range(PARTITIONS):
        by_victim, by_survivor = processed(victim, p), processed(survivor, p)
        # At least once: every record of the partition was processed by someone.
        assert set(by_victim) | set(by_survivor) == set(range(ends[p])), f"partition {p}"
        # Neither process handled a record twice on its own.
        assert len(set(by_victim)) == len(by_victim), f"partition {p}"
        assert len(set(by_survivor)) == len(by_survivor), f"partition {p}"
        if p not in victim_partitions:
            assert not by_victim, f"the victim processed partition {p} it never owned"
            continue
        confirmed = max(
            (e["offset"] for e in victim.of("committed") if e["partition"] == p), default=0
        )
        done = max(by_victim, default=-1) + 1
        resumed = min(by_survivor)
        # The broker kept what the victim committed (at least every commit it saw confirmed,
        # at most up to what it processed) and the survivor started exactly there: nothing
        # committed is processed again; only records after the last commit may be.
        assert confirmed <= committed_at_kill[p] <= done, (p, confirmed, committed_at_kill, done)
        assert resumed == committed_at_kill[p], (p, resumed, committed_at_kill)
        assert set(by_victim) & set(by_survivor) == set(range(resumed, done)), f"partition {p}"
        if p == in_flight["partition"]:
            # The record it was holding was processed and never committed: processed again.
            assert done - 1 == in_flight["offset"] == committed_at_kill[p]
            assert in_flight["offset"] in by_survivor
        else:
            assert committed_at_kill[p] == done


if __name__ == "__main__":
    consumer_main(*sys.argv[1:6])
