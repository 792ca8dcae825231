"""`odradek transactions` without a broker: the hand-written DescribeTransactions reader agrees
with kio's encoding and reads the -1 start time kio cannot, states parse as Kafka names them,
and the views render what the JSON schema promises."""

from __future__ import annotations

import io
import json
import struct

import pytest
from kio.schema.describe_transactions.v0.response import (
    DescribeTransactionsResponse,
    TopicData,
    TransactionState,
)
from kio.serial import entity_writer
from rich.console import Console

from odradek.cli.broker_requests import (
    check_plaintext,
    decode_describe_transactions,
    parse_bootstrap,
)
from odradek.cli.client_options import ClientError
from odradek.cli.transaction_views import (
    TransactionDescription,
    TransactionListing,
    describe_values,
    parse_states,
    render_describe,
    render_list,
)
from odradek.protocol.codec import build

START_MS = 1_700_000_000_123


def frame(response: DescribeTransactionsResponse) -> memoryview:
    buffer = io.BytesIO()
    buffer.write(struct.pack(">i", 7) + b"\x00")  # response header v1: correlation id, no tags
    entity_writer(DescribeTransactionsResponse)(buffer, response)
    return memoryview(buffer.getvalue())


def state(transactional_id: str, error: int = 0, **fields: object) -> TransactionState:
    values: dict[str, object] = {
        "error_code": error,
        "transactional_id": transactional_id,
        "transaction_state": "Ongoing",
        "transaction_timeout": 60_000,
        "transaction_start_time": START_MS,
        "producer_id": 4001,
        "producer_epoch": 3,
        "topics": (
            build(TopicData, topic="payments", partitions=(2, 0)),
            build(TopicData, topic="orders", partitions=(1,)),
        ),
    }
    values.update(fields)
    return build(TransactionState, **values)  # type: ignore[no-any-return]


def test_decode_describe_transactions_reads_what_kio_writes() -> None:
    response = build(
        DescribeTransactionsResponse,
        throttle_time=0,
        transaction_states=(state("copier"), state("gone", error=105, topics=())),
    )
    first, second = decode_describe_transactions(frame(response))
    assert first.transactional_id == "copier"
    assert (first.error_code, first.state, first.timeout_ms) == (0, "Ongoing", 60_000)
    assert (first.start_time_ms, first.producer_id, first.producer_epoch) == (START_MS, 4001, 3)
    assert first.partitions == (("orders", 1), ("payments", 0), ("payments", 2))
    assert (second.transactional_id, second.error_code, second.partitions) == ("gone", 105, ())


def test_decode_describe_transactions_reads_a_start_time_of_minus_one() -> None:
    response = build(
        DescribeTransactionsResponse,
        throttle_time=0,
        transaction_states=(state("idle", topics=()),),
    )
    data = bytearray(frame(response))
    at = bytes(data).index(struct.pack(">q", START_MS))
    data[at : at + 8] = struct.pack(">q", -1)
    (idle,) = decode_describe_transactions(memoryview(bytes(data)))
    assert (idle.transactional_id, idle.start_time_ms) == ("idle", -1)
    assert describe_values(idle.start_time_ms, START_MS) == (None, None)
    assert describe_values(START_MS, START_MS + 250) == (START_MS, 250)


def test_a_truncated_answer_is_a_client_error() -> None:
    response = build(
        DescribeTransactionsResponse, throttle_time=0, transaction_states=(state("x"),)
    )
    whole = bytes(frame(response))
    with pytest.raises(ClientError):
        decode_describe_transactions(memoryview(whole[: len(whole) - 12]))


def test_states_are_kafkas_names_in_any_case() -> None:
    assert parse_states(["ongoing,PREPARECOMMIT", "Ongoing", "completeabort"]) == [
        "Ongoing",
        "PrepareCommit",
        "CompleteAbort",
    ]
    with pytest.raises(ClientError, match="unknown transaction state 'Stable'"):
        parse_states(["Stable"])


def test_bootstrap_servers_parse() -> None:
    assert parse_bootstrap("a:1, [::1]:9092") == [("a", 1), ("::1", 9092)]
    with pytest.raises(ClientError):
        parse_bootstrap("no-port")


def test_only_plaintext_listeners() -> None:
    check_plaintext({})
    check_plaintext({"security.protocol": "PLAINTEXT"})
    with pytest.raises(ClientError, match="SASL_SSL is not supported"):
        check_plaintext({"security.protocol": "sasl_ssl"})


def test_views_render_rows_and_json() -> None:
    listing = TransactionListing("copier[1]", 1, 4001, "Ongoing")
    description = TransactionDescription(
        "copier[1]", 1, "127.0.0.1", 9092, "Ongoing", 4001, 3, 60_000, START_MS, 250,
        (("orders", 1), ("payments", 0), ("payments", 2)),
    )  # fmt: skip
    out = io.StringIO()
    terminal = Console(file=out, no_color=True, width=300)
    render_list([listing], terminal)
    render_describe([description], terminal)
    text = out.getvalue()
    assert "copier[1]" in text  # not eaten as rich markup
    assert "orders:1 payments:0,2" in text
    document = json.loads(json.dumps(description.to_json()))
    assert document["coordinator"] == {"id": 1, "host": "127.0.0.1", "port": 9092}
    assert document["transaction_start_time_ms"] == START_MS
    assert document["partitions"][0] == {"topic": "orders", "partition": 1}
    assert listing.to_json() == {
        "transactional_id": "copier[1]",
        "coordinator": 1,
        "producer_id": 4001,
        "state": "Ongoing",
    }


def test_kio_cannot_read_the_minus_one_start_time_itself() -> None:
    """Why the reader is hand-written: if kio learns to read it, this fails and the reader can
    go."""
    from kio.serial.readers import read_datetime_i64

    with pytest.raises(Exception, match="negative"):
        read_datetime_i64(memoryview(struct.pack(">q", -1)), 0)
