"""`odradek transactions`: list and describe the transactions of a cluster, as Kafka's
kafka-transactions.sh does.

confluent-kafka's AdminClient has no ListTransactions or DescribeTransactions, so these verbs
send them with kio over a plain socket (`broker_requests.py`); they work against any
Kafka-compatible broker with a PLAINTEXT listener. The options shared with every client command
(`--bootstrap-server`, `--command-config`, `--output`, `--timeout`) and the exit codes (0 done,
1 refused, 2 bad usage / unreachable / no such transactional id) are described in
`odradek.cli.client_options`.

- `list [--state STATE...] [--producer-id ID...] [--min-duration-ms MS]`: ListTransactions to
  every broker (each coordinates the transactional ids of its `__transaction_state`
  partitions), merged and sorted by transactional id. The filters are the request's: states
  (Kafka's names: Empty, Ongoing, PrepareCommit, PrepareAbort, CompleteCommit, CompleteAbort,
  Dead, PrepareEpochFence; any case, comma-separated works), producer ids, and transactions
  open longer than a duration (ListTransactions v1, KIP-994).
- `describe TRANSACTIONAL_ID...`: FindCoordinator (key type 1) then DescribeTransactions to the
  coordinator: state, producer id and epoch, timeout, start time and duration of the open
  transaction (unknown when none is open), and its partitions. An id the coordinator does not
  know (TRANSACTIONAL_ID_NOT_FOUND) is "Transactional id 'x' does not exist.", exit 2; the
  other ids are still shown.

JSON output (`--output json`), one object on stdout:

    list:     {"transactions": [{"transactional_id": str, "coordinator": int,
                                 "producer_id": int, "state": str}]}
    describe: {"transactions": [{"transactional_id": str,
                                 "coordinator": {"id": int, "host": str, "port": int},
                                 "state": str, "producer_id": int, "producer_epoch": int,
                                 "transaction_timeout_ms": int,
                                 "transaction_start_time_ms": int | null,
                                 "transaction_duration_ms": int | null,
                                 "partitions": [{"topic": str, "partition": int}]}]}
              (ids that do not exist are left out and reported on stderr)
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from odradek.cli.broker_requests import (
    DESCRIBE_TRANSACTIONS,
    LIST_TRANSACTIONS,
    BrokerConnection,
    Node,
    brokers,
    check_plaintext,
    connect_bootstrap,
    decode_describe_transactions,
    find_coordinator,
    request,
)
from odradek.cli.client_options import (
    EXIT_ERROR,
    EXIT_OK,
    ClientError,
    add_client_options,
    add_noun_parser,
    client_config,
    console,
    paragraph,
    print_error,
    print_json,
)
from odradek.cli.transaction_views import (
    TransactionDescription,
    TransactionListing,
    describe_values,
    parse_states,
    render_describe,
    render_list,
)
from odradek.common.errors import ErrorCode

CLIENT_ID = "odradek-transactions"
TRANSACTION_KEY_TYPE = 1
RETRY_PAUSE_S = 0.2
# Errors that go away by themselves: the coordinator is being elected or is loading.
RETRIABLE = frozenset(
    {
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
    }
)

EXAMPLES = """examples:
  odradek transactions list
  odradek transactions list --state Ongoing --min-duration-ms 60000
  odradek transactions list --producer-id 4001 --output json
  odradek transactions describe payments-copier
  odradek transactions describe payments-copier --output json
"""


def _error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error {code}"


def _bootstrap(args: argparse.Namespace) -> BrokerConnection:
    config = client_config(args)
    check_plaintext(config)
    return connect_bootstrap(config["bootstrap.servers"], args.timeout, CLIENT_ID)


# -- list --------------------------------------------------------------------------------------


def _list_on(
    node: Node, args: argparse.Namespace, states: list[str], deadline: float
) -> list[TransactionListing]:
    with BrokerConnection(node.host, node.port, args.timeout, CLIENT_ID) as connection:
        wanted = (0, 1) if args.min_duration_ms is None else (1,)
        version = connection.version(LIST_TRANSACTIONS, wanted)
        if version is None:
            needs = " with --min-duration-ms (v1)" if args.min_duration_ms is not None else ""
            raise ClientError(f"broker {node.address} does not support ListTransactions{needs}")
        body = request(
            "list_transactions",
            version,
            "ListTransactionsRequest",
            state_filters=tuple(states),
            producer_id_filters=tuple(args.producer_id or ()),
            duration_filter=-1 if args.min_duration_ms is None else args.min_duration_ms,
        )
        while True:
            response = connection.call(body)
            error = int(response.error_code)
            if error == 0:
                break
            if error not in RETRIABLE or time.monotonic() > deadline:
                raise ClientError(
                    f"cannot list the transactions of broker {node.node_id}: {_error_name(error)}"
                )
            time.sleep(RETRY_PAUSE_S)
    return [
        TransactionListing(
            str(item.transactional_id),
            node.node_id,
            int(item.producer_id),
            str(item.transaction_state),
        )
        for item in response.transaction_states
    ]


def cmd_list(args: argparse.Namespace) -> int:
    states = parse_states(args.state or ())
    if args.min_duration_ms is not None and args.min_duration_ms < 0:
        raise ClientError("--min-duration-ms must be 0 or more")
    deadline = time.monotonic() + args.timeout
    with _bootstrap(args) as connection:
        nodes = brokers(connection)
    listings: list[TransactionListing] = []
    for node in nodes:
        listings += _list_on(node, args, states, deadline)
    # Also here, in case a broker ignores a filter.
    if states:
        listings = [item for item in listings if item.state in states]
    if args.producer_id:
        listings = [item for item in listings if item.producer_id in args.producer_id]
    listings.sort(key=lambda item: (item.transactional_id, item.coordinator))
    if args.output == "json":
        print_json({"transactions": [item.to_json() for item in listings]})
    else:
        render_list(listings, console())
    return EXIT_OK


# -- describe ----------------------------------------------------------------------------------


def _describe_one(
    bootstrap: BrokerConnection, transactional_id: str, args: argparse.Namespace
) -> TransactionDescription:
    deadline = time.monotonic() + args.timeout
    last = ""
    while True:
        answer = find_coordinator(bootstrap, transactional_id, TRANSACTION_KEY_TYPE)
        if answer.node is not None:
            item = _describe_at(answer.node, transactional_id, args)
            if isinstance(item, TransactionDescription):
                return item
            last = item
        elif answer.error_code not in RETRIABLE:
            raise ClientError(
                f"cannot find the coordinator of transactional id '{transactional_id}':"
                f" {_error_name(answer.error_code)}"
            )
        else:
            last = _error_name(answer.error_code)
        if time.monotonic() > deadline:
            raise ClientError(
                f"cannot describe transactional id '{transactional_id}' within"
                f" {args.timeout:g} s: {last}"
            )
        time.sleep(RETRY_PAUSE_S)


def _describe_at(
    node: Node, transactional_id: str, args: argparse.Namespace
) -> TransactionDescription | str:
    """The description, or the name of a retriable error."""
    with BrokerConnection(node.host, node.port, args.timeout, CLIENT_ID) as connection:
        if connection.version(DESCRIBE_TRANSACTIONS, (0,)) is None:
            raise ClientError(f"broker {node.address} does not support DescribeTransactions")
        frame = connection.call_raw(
            request(
                "describe_transactions",
                0,
                "DescribeTransactionsRequest",
                transactional_ids=(transactional_id,),
            )
        )
    now_ms = int(time.time() * 1000)
    found = [
        d for d in decode_describe_transactions(frame) if d.transactional_id == transactional_id
    ]
    if not found:
        raise ClientError(f"broker {node.address} did not describe '{transactional_id}'")
    d = found[0]
    if d.error_code == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND:
        raise ClientError(f"Transactional id '{transactional_id}' does not exist.")
    if d.error_code in RETRIABLE:
        return _error_name(d.error_code)
    if d.error_code != 0:
        raise ClientError(
            f"cannot describe transactional id '{transactional_id}': {_error_name(d.error_code)}"
        )
    start_time_ms, duration_ms = describe_values(d.start_time_ms, now_ms)
    return TransactionDescription(
        transactional_id=transactional_id,
        coordinator_id=node.node_id,
        coordinator_host=node.host,
        coordinator_port=node.port,
        state=d.state,
        producer_id=d.producer_id,
        producer_epoch=d.producer_epoch,
        timeout_ms=d.timeout_ms,
        start_time_ms=start_time_ms,
        duration_ms=duration_ms,
        partitions=d.partitions,
    )


def cmd_describe(args: argparse.Namespace) -> int:
    ids = list(dict.fromkeys(args.transactional_ids))
    descriptions: list[TransactionDescription] = []
    failures: list[ClientError] = []
    with _bootstrap(args) as bootstrap:
        for transactional_id in ids:
            try:
                descriptions.append(_describe_one(bootstrap, transactional_id, args))
            except ClientError as exc:
                if not exc.message.startswith("Transactional id '"):
                    raise
                failures.append(exc)
    if args.output == "json":
        print_json({"transactions": [d.to_json() for d in descriptions]})
    else:
        render_describe(descriptions, console())
    for failure in failures:
        print_error("transactions", failure.message)
    return EXIT_ERROR if failures else EXIT_OK


# -- command line ------------------------------------------------------------------------------


def add_parser(subcommands: Any) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    verbs = add_noun_parser(
        subcommands,
        "transactions",
        help="list and describe transactions",
        description=paragraph(
            "Show the transactions of any Kafka-compatible cluster, like"
            " kafka-transactions.sh (PLAINTEXT listeners only). Exit codes: 0 done, 2 bad"
            " usage, broker unreachable or no such transactional id."
        ),
        examples=EXAMPLES,
    )

    listing = verbs.add_parser(
        "list",
        help="list transactional ids with their coordinator, producer id and state",
        description=(
            "List the transactional ids every broker coordinates, with their producer id"
            " and transaction state (ListTransactions)."
        ),
        epilog=(
            "examples:\n  odradek transactions list\n"
            "  odradek transactions list --state Ongoing,PrepareCommit --min-duration-ms 60000\n"
        ),
        formatter_class=formatter,
    )
    listing.add_argument(
        "--state",
        nargs="+",
        metavar="STATE",
        help="only transactions in these states (Ongoing, PrepareCommit, CompleteCommit, ...)",
    )
    listing.add_argument(
        "--producer-id",
        type=int,
        action="append",
        metavar="ID",
        help="only transactions of this producer id (repeatable)",
    )
    listing.add_argument(
        "--min-duration-ms",
        type=int,
        metavar="MS",
        help="only transactions open for longer than MS milliseconds",
    )
    add_client_options(listing)
    listing.set_defaults(verb_run=cmd_list)

    describe = verbs.add_parser(
        "describe",
        help="state, producer, start time and partitions of transactional ids",
        description=(
            "Describe transactional ids (DescribeTransactions at their coordinator): state,"
            " producer id and epoch, timeout, start time and duration of the open"
            " transaction, and its partitions."
        ),
        epilog=(
            "examples:\n  odradek transactions describe payments-copier\n"
            "  odradek transactions describe payments-copier --output json\n"
        ),
        formatter_class=formatter,
    )
    describe.add_argument("transactional_ids", nargs="+", metavar="TRANSACTIONAL_ID")
    add_client_options(describe)
    describe.set_defaults(verb_run=cmd_describe)
