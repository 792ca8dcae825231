"""A consume-transform-produce copier, run as its own process by test_transactions_copier.py so
the test can SIGKILL it anywhere and start it again.

    python txn_copier.py BOOTSTRAP INPUT OUTPUT PARTITIONS GROUP TRANSACTIONAL_ID MODE EVERY [HOLD]

It copies every record of INPUT to the same partition of OUTPUT (key and value unchanged) and
exits 0 once it has reached the end of every input partition with nothing left uncommitted.
It resumes from the offsets GROUP has committed for INPUT (it assigns the partitions itself, so
a killed instance leaves no member behind to wait for).

MODE `txn`: exactly-once. One transaction per EVERY records holds the output records and the
input offsets (send_offsets_to_transaction); the fixed TRANSACTIONAL_ID fences and aborts what
a killed instance left open; input is read read_committed. MODE `plain` (the negative control):
produce, flush, then commit the offsets, so a kill between the two copies records twice.

HOLD (default 0): after the HOLD-th batch is acknowledged ("flushed"), wait a few seconds before
committing it, so a kill the test sends on that event surely lands before the commit.

Prints one JSON object per line: {"event": "started"}; {"event": "produced", "pending": n}
once a batch is handed to the producer and {"event": "flushed", "pending": n} once its records
are acknowledged, both before the batch is committed; {"event":
"committed", "copied": n} after each commit (n: records this process has committed);
{"event": "aborted", "error": name} when a batch could not be committed and was aborted, to
be copied again; {"event": "done"}.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer
from confluent_kafka import TopicPartition as TP

TIMEOUT_S = 60.0
HOLD_S = 5.0


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def main() -> int:
    bootstrap, source, target, partitions_arg, group, transactional_id, mode, every_arg = sys.argv[
        1:9
    ]
    hold = int(sys.argv[9]) if len(sys.argv) > 9 else 0
    flushes = 0
    partitions, every = int(partitions_arg), int(every_arg)
    transactional = mode == "txn"
    producer_config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 5,
        # When its only broker restarts, librdkafka's re-bootstrap decommissions the cached group
        # coordinator and send_offsets_to_transaction then waits forever, past its timeout
        # (confluentinc/librdkafka#5511, #5456); without it the client reconnects.
        "metadata.recovery.strategy": "none",
    }
    if transactional:
        producer_config["transactional.id"] = transactional_id
    producer = Producer(producer_config)
    if transactional:
        # Fences the killed instance and aborts its open transaction, pending offsets included.
        producer.init_transactions(TIMEOUT_S)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed" if transactional else "read_uncommitted",
        }
    )
    wanted = [TP(source, p) for p in range(partitions)]

    def rewind() -> None:
        """Read again from the committed offsets: at start, and after an aborted batch."""
        committed = consumer.committed(wanted, timeout=TIMEOUT_S)
        consumer.assign(
            [TP(source, tp.partition, max(tp.offset, OFFSET_BEGINNING)) for tp in committed]
        )

    rewind()
    emit("started")

    copied = 0
    pending = 0
    at_end: set[int] = set()

    def positions() -> list[TP]:
        return [tp for tp in consumer.position(consumer.assignment()) if tp.offset >= 0]

    def commit() -> None:
        nonlocal pending, copied, flushes
        emit("produced", pending=pending)
        remaining = producer.flush(TIMEOUT_S)  # commit_transaction would flush them too
        if remaining:
            raise RuntimeError(f"{remaining} records not delivered")
        emit("flushed", pending=pending)
        flushes += 1
        if flushes == hold:
            time.sleep(HOLD_S)  # the test kills this process meanwhile
        if transactional:
            try:
                producer.send_offsets_to_transaction(
                    positions(), consumer.consumer_group_metadata(), TIMEOUT_S
                )
                producer.commit_transaction(TIMEOUT_S)
            except KafkaException as exc:
                # A broker restart can cost the transaction: abort it and copy the batch again.
                if not exc.args[0].txn_requires_abort():
                    raise
                producer.abort_transaction(TIMEOUT_S)
                rewind()
                pending = 0
                emit("aborted", error=exc.args[0].name())
                return
        else:
            consumer.commit(offsets=positions(), asynchronous=False)
        copied += pending
        pending = 0
        emit("committed", copied=copied)

    while True:
        msg = consumer.poll(0.2)
        if msg is None:
            if pending:
                commit()
            elif len(at_end) == partitions:
                break
            continue
        error = msg.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            if error.code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
            continue  # other errors (a broker restarting) are retried by the client
        at_end.discard(msg.partition())
        if transactional and pending == 0:
            producer.begin_transaction()
        producer.produce(target, msg.value(), msg.key(), partition=msg.partition())
        producer.poll(0)
        pending += 1
        if pending >= every:
            commit()
    consumer.close()
    emit("done", copied=copied)
    return 0


if __name__ == "__main__":
    sys.exit(main())
