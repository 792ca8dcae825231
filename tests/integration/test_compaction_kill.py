"""A broker SIGKILLed while its log cleaner is rewriting a compacted topic (`.cleaned` or `.swap`
files on disk) comes back with the same latest value for every key, no offset twice, and goes
on to finish the cleaning. The data is written with the cleaner off and the broker restarted
with it on, so the kill lands in the first cleaning of a 40 MB log."""

from __future__ import annotations

import time

import pytest
from kafka_helpers import consume_all, create_topic, produce, unique_topic

KEYS = 100
RECORDS = 400_000


def cleaning_files(directory) -> list[str]:
    if not directory.exists():
        return []
    return [p.name for p in directory.iterdir() if p.name.endswith((".cleaned", ".swap"))]


@pytest.mark.slow
def test_a_kill_in_the_middle_of_a_cleaning_loses_nothing(broker_factory) -> None:
    broker = broker_factory(
        overrides={
            "log.cleaner.enable": "false",
            "log.cleaner.backoff.ms": 50,
            "log.segment.delete.delay.ms": 0,
        }
    )
    topic = unique_topic("kill-cleaning")
    create_topic(
        broker.bootstrap,
        topic,
        1,
        **{
            "cleanup.policy": "compact",
            "segment.bytes": "1048576",
            "min.cleanable.dirty.ratio": "0.01",
        },
    )
    writes = [
        {"key": b"key-%03d" % (i % KEYS), "value": b"%07d" % i + b"." * 90, "partition": 0}
        for i in range(RECORDS)
    ]
    produce(broker.bootstrap, topic, writes).ok()
    expected = {w["key"]: w["value"] for w in writes}
    broker.stop()

    broker.overrides["log.cleaner.enable"] = "true"
    directory = broker.data_dir / f"{topic}-0"
    broker.start()
    deadline = time.monotonic() + 30
    while not cleaning_files(directory):
        assert time.monotonic() < deadline, "no cleaning started within 30 s"
        time.sleep(0.001)
    broker.kill()

    broker.start()
    seen = consume_all(broker.bootstrap, topic)
    offsets = [r.offset for r in seen]
    assert offsets == sorted(set(offsets))
    assert {r.key: r.value for r in seen} == expected
    deadline = time.monotonic() + 60
    while len(seen) > RECORDS // 10 and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = consume_all(broker.bootstrap, topic)
    assert len(seen) <= RECORDS // 10, f"{len(seen)} records left after the restart's cleaning"
    assert {r.key: r.value for r in seen} == expected
