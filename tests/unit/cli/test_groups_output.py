"""`odradek groups` without a broker: lag and describe rows, reset plans, argument parsing,
text and json output, and the shared client options (properties files, bootstrap server)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from odradek.cli import client_options, group_views
from odradek.cli.client_options import (
    ClientError,
    bootstrap_servers,
    librdkafka_properties,
    parse_properties,
)
from odradek.cli.group_reset import (
    PlanError,
    ResetSpec,
    clamp_offset,
    parse_datetime_ms,
    parse_topic_arg,
    plan_reset,
)
from odradek.cli.group_views import (
    DeleteResult,
    GroupDescription,
    Member,
    PartitionOffsets,
    PlanRow,
    delete_exit_code,
    format_assignment,
    lag,
    parse_states,
    partition_offsets,
)
from odradek.cli.main import main


def _render(func: Any, *args: Any) -> str:
    buffer = io.StringIO()
    func(*args, Console(file=buffer, width=400, no_color=True, highlight=False))
    return buffer.getvalue()


# -- lag and describe rows ---------------------------------------------------------------------


def test_lag_is_log_end_offset_minus_committed_offset() -> None:
    assert lag(7, 10) == 3
    assert lag(10, 10) == 0
    assert lag(0, 0) == 0


def test_lag_is_unknown_without_a_commit_or_a_log_end_offset() -> None:
    assert lag(None, 10) is None
    assert lag(-1, 10) is None  # Kafka's "no offset"
    assert lag(-1001, 10) is None  # librdkafka's OFFSET_INVALID
    assert lag(5, None) is None


def _member(member_id: str, *assignment: tuple[str, int]) -> Member:
    return Member(member_id, None, f"client-{member_id}", "/127.0.0.1", tuple(assignment))


def test_rows_cover_assigned_and_committed_partitions_sorted() -> None:
    members = [_member("m2", ("b", 0)), _member("m1", ("a", 1), ("a", 0))]
    committed = {("a", 0): 3, ("b", 0): -1001, ("c", 2): 40}
    log_end = {("a", 0): 10, ("a", 1): 5, ("b", 0): 8, ("c", 2): 50}
    rows = partition_offsets(members, committed, log_end)
    assert [(r.topic, r.partition) for r in rows] == [("a", 0), ("a", 1), ("b", 0), ("c", 2)]
    a0, a1, b0, c2 = rows
    assert (a0.committed_offset, a0.log_end_offset, a0.lag, a0.member_id) == (3, 10, 7, "m1")
    assert (a1.committed_offset, a1.lag, a1.client_id) == (None, None, "client-m1")
    assert (b0.committed_offset, b0.lag, b0.member_id) == (None, None, "m2")
    # committed but assigned to nobody: listed without member columns, as in Kafka
    assert (c2.lag, c2.member_id, c2.client_id, c2.host) == (10, None, None, None)


def test_a_committed_partition_without_a_commit_value_is_not_listed() -> None:
    assert partition_offsets([], {("a", 0): -1001}, {("a", 0): 3}) == []


def _description() -> GroupDescription:
    members = (
        Member("m-1", "static-1", "app", "/10.0.0.1", (("orders", 0), ("orders", 1))),
        Member("m-2", None, "app", "/10.0.0.2", ()),
    )
    rows = (
        PartitionOffsets("orders", 0, 5, 12, "m-1", "app", "/10.0.0.1"),
        PartitionOffsets("orders", 1, None, 4, "m-1", "app", "/10.0.0.1"),
        PartitionOffsets("payments", 3, 9, 9),
    )
    coordinator = group_views.Coordinator(1, "127.0.0.1", 9092)
    return GroupDescription("app", "Stable", "Classic", "range", coordinator, members, rows)


def test_total_lag_sums_the_known_lags() -> None:
    assert _description().total_lag == 7 + 0


def test_describe_json_schema() -> None:
    document = json.loads(json.dumps(_description().to_json()))
    assert document == {
        "group": "app",
        "state": "Stable",
        "type": "Classic",
        "assignor": "range",
        "coordinator": {"id": 1, "host": "127.0.0.1", "port": 9092},
        "members": [
            {
                "member_id": "m-1",
                "group_instance_id": "static-1",
                "client_id": "app",
                "host": "/10.0.0.1",
                "assignment": [
                    {"topic": "orders", "partition": 0},
                    {"topic": "orders", "partition": 1},
                ],
            },
            {
                "member_id": "m-2",
                "group_instance_id": None,
                "client_id": "app",
                "host": "/10.0.0.2",
                "assignment": [],
            },
        ],
        "partitions": [
            {
                "topic": "orders",
                "partition": 0,
                "committed_offset": 5,
                "log_end_offset": 12,
                "lag": 7,
                "member_id": "m-1",
                "client_id": "app",
                "host": "/10.0.0.1",
            },
            {
                "topic": "orders",
                "partition": 1,
                "committed_offset": None,
                "log_end_offset": 4,
                "lag": None,
                "member_id": "m-1",
                "client_id": "app",
                "host": "/10.0.0.1",
            },
            {
                "topic": "payments",
                "partition": 3,
                "committed_offset": 9,
                "log_end_offset": 9,
                "lag": 0,
                "member_id": None,
                "client_id": None,
                "host": None,
            },
        ],
        "total_lag": 7,
    }


def test_describe_text_shows_rows_members_and_total() -> None:
    text = _render(group_views.render_describe, _description())
    lines = text.splitlines()
    assert "state: Stable" in lines[0] and "127.0.0.1:9092 (id 1)" in lines[0]
    header = next(line for line in lines if "LOG-END-OFFSET" in line)
    assert header.split() == [
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]
    assert ["orders", "0", "5", "12", "7", "m-1", "/10.0.0.1", "app"] in [
        line.split() for line in lines
    ]
    assert ["orders", "1", "-", "4", "-", "m-1", "/10.0.0.1", "app"] in [
        line.split() for line in lines
    ]
    assert ["payments", "3", "9", "9", "0", "-", "-", "-"] in [line.split() for line in lines]
    assert "Total lag: 7" in lines
    assert ["m-1", "static-1", "/10.0.0.1", "app", "2", "orders:0,1"] in [
        line.split() for line in lines
    ]


def test_text_cells_are_not_read_as_rich_markup() -> None:
    rows = (PartitionOffsets("t", 0, 1, 2, "[bold]m[/bold]", "[red]c", "h"),)
    description = GroupDescription("[g]", "Empty", "Classic", "", None, (), rows)
    text = _render(group_views.render_describe, description)
    assert "[bold]m[/bold]" in text and "[red]c" in text and "Group [g]" in text
    assert "has no active members" in text


def test_format_assignment_groups_partitions_by_topic() -> None:
    assert format_assignment([("b", 2), ("a", 1), ("a", 0)]) == "a:0,1 b:2"
    assert format_assignment([]) == ""


def test_list_text_and_json() -> None:
    listings = [
        group_views.GroupListing("app", "Stable", "Classic", False),
        group_views.GroupListing("tool", "Empty", "Classic", True),
    ]
    lines = [line.split() for line in _render(group_views.render_list, listings).splitlines()]
    assert ["GROUP", "STATE", "TYPE"] in lines
    assert ["app", "Stable", "Classic"] in lines
    assert ["tool", "Empty", "Classic", "(simple)"] in lines
    assert listings[1].to_json() == {
        "group": "tool",
        "state": "Empty",
        "type": "Classic",
        "simple": True,
    }
    assert _render(group_views.render_list, []).strip() == "No consumer groups."


def test_state_names_are_kafkas() -> None:
    from confluent_kafka import ConsumerGroupState, ConsumerGroupType

    assert group_views.state_name(ConsumerGroupState.STABLE) == "Stable"
    assert group_views.state_name(ConsumerGroupState.PREPARING_REBALANCING) == "PreparingRebalance"
    assert (
        group_views.state_name(ConsumerGroupState.COMPLETING_REBALANCING) == "CompletingRebalance"
    )
    assert group_views.state_name(ConsumerGroupState.EMPTY) == "Empty"
    assert group_views.state_name(ConsumerGroupState.DEAD) == "Dead"
    assert group_views.state_name(None) == "Unknown"
    assert group_views.type_name(ConsumerGroupType.CLASSIC) == "Classic"
    assert group_views.type_name(ConsumerGroupType.CONSUMER) == "Consumer"


def test_parse_states_accepts_commas_and_any_case() -> None:
    assert parse_states(["stable,EMPTY", "PreparingRebalance"]) == {
        "Stable",
        "Empty",
        "PreparingRebalance",
    }
    with pytest.raises(ClientError, match="unknown group state 'Running'"):
        parse_states(["Running"])


# -- reset plans -------------------------------------------------------------------------------

PARTS = [("t", 1), ("t", 0)]
COMMITTED = {("t", 0): 5, ("t", 1): 18}
LOG_START = {("t", 0): 2, ("t", 1): 0}
LOG_END = {("t", 0): 10, ("t", 1): 20}


def _plan(spec: ResetSpec, **kwargs: Any) -> list[tuple[str, int, int | None, int]]:
    args: dict[str, Any] = {
        "committed": COMMITTED,
        "log_start": LOG_START,
        "log_end": LOG_END,
    }
    args.update(kwargs)
    return [tuple(row) for row in plan_reset(PARTS, spec, **args)]  # type: ignore[misc]


def test_plan_to_earliest_and_latest() -> None:
    assert _plan(ResetSpec("earliest")) == [("t", 0, 5, 2), ("t", 1, 18, 0)]
    assert _plan(ResetSpec("latest")) == [("t", 0, 5, 10), ("t", 1, 18, 20)]


def test_plan_to_offset_is_clamped_into_the_log() -> None:
    assert _plan(ResetSpec("offset", 7)) == [("t", 0, 5, 7), ("t", 1, 18, 7)]
    assert _plan(ResetSpec("offset", 15)) == [("t", 0, 5, 10), ("t", 1, 18, 15)]
    assert _plan(ResetSpec("offset", 0)) == [("t", 0, 5, 2), ("t", 1, 18, 0)]
    assert _plan(ResetSpec("offset", -3)) == [("t", 0, 5, 2), ("t", 1, 18, 0)]


def test_plan_shift_by_moves_from_the_commit_and_is_clamped() -> None:
    assert _plan(ResetSpec("shift", 1)) == [("t", 0, 5, 6), ("t", 1, 18, 19)]
    assert _plan(ResetSpec("shift", 5)) == [("t", 0, 5, 10), ("t", 1, 18, 20)]
    assert _plan(ResetSpec("shift", -4)) == [("t", 0, 5, 2), ("t", 1, 18, 14)]


def test_plan_shift_by_needs_a_committed_offset() -> None:
    with pytest.raises(PlanError, match="t-1: the group has no committed offset"):
        _plan(ResetSpec("shift", 1), committed={("t", 0): 5})


def test_plan_to_datetime_falls_back_to_the_log_end_offset() -> None:
    by_time = {("t", 0): 4, ("t", 1): -1}
    assert _plan(ResetSpec("datetime", 0), offsets_for_time=by_time) == [
        ("t", 0, 5, 4),
        ("t", 1, 18, 20),
    ]


def test_plan_without_log_offsets_is_an_error() -> None:
    with pytest.raises(PlanError, match="log start offset of partition t-1"):
        _plan(ResetSpec("earliest"), log_start={("t", 0): 0})
    with pytest.raises(PlanError, match="log end offset of partition t-0"):
        _plan(ResetSpec("latest"), log_end={})


def test_plan_for_a_partition_without_a_commit_shows_no_current_offset() -> None:
    rows = plan_reset([("t", 0)], ResetSpec("latest"), {}, LOG_START, LOG_END)
    assert rows == [PlanRow("t", 0, None, 10)]
    assert rows[0].to_json() == {
        "topic": "t",
        "partition": 0,
        "current_offset": None,
        "new_offset": 10,
    }


def test_clamp_offset_with_unknown_bounds() -> None:
    assert clamp_offset(50, None, None) == 50
    assert clamp_offset(50, 0, None) == 50
    assert clamp_offset(-5, None, 10) == -5


def test_plan_text_says_whether_anything_changed() -> None:
    rows = [PlanRow("t", 0, 5, 2), PlanRow("t", 1, None, 0)]
    dry = _render(group_views.render_plan, "app", rows, False)
    lines = [line.split() for line in dry.splitlines()]
    assert ["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"] in lines
    assert ["t", "0", "5", "2"] in lines and ["t", "1", "-", "0"] in lines
    assert "Dry run: nothing was changed" in dry
    done = _render(group_views.render_plan, "app", rows, True)
    assert "Reset the offsets of group 'app' on 2 partition(s)." in done
    assert "No partitions to reset" in _render(group_views.render_plan, "app", [], False)


def test_parse_topic_arg() -> None:
    assert parse_topic_arg("orders") == ("orders", None)
    assert parse_topic_arg("orders:2,0,2") == ("orders", (0, 2))
    with pytest.raises(ClientError, match="partition 'x' is not a number"):
        parse_topic_arg("orders:0,x")
    with pytest.raises(ClientError, match="no topic name"):
        parse_topic_arg(":0")
    with pytest.raises(ClientError, match="is negative"):
        parse_topic_arg("orders:-1")


def test_parse_datetime_ms() -> None:
    assert parse_datetime_ms("1970-01-01T00:00:01Z") == 1000
    assert parse_datetime_ms("1970-01-01T00:00:01.250") == 1250  # no zone: UTC, as in Kafka
    assert parse_datetime_ms("2024-05-01T12:00:00+02:00") == 1714557600000
    with pytest.raises(ClientError, match="not an ISO 8601 date-time"):
        parse_datetime_ms("yesterday")


# -- delete ------------------------------------------------------------------------------------


def test_delete_results_and_exit_codes() -> None:
    ok = DeleteResult("a")
    busy = DeleteResult("b", "NON_EMPTY_GROUP", "The group is not empty.")
    missing = DeleteResult("c", "GROUP_ID_NOT_FOUND", "The group id does not exist.")
    assert delete_exit_code([ok]) == 0
    assert delete_exit_code([ok, busy]) == 1
    assert delete_exit_code([ok, busy, missing]) == 2
    assert busy.to_json() == {
        "group": "b",
        "deleted": False,
        "error": {"code": "NON_EMPTY_GROUP", "message": "The group is not empty."},
    }
    assert ok.to_json() == {"group": "a", "deleted": True, "error": None}
    assert group_views.delete_error_line(missing) == "Consumer group 'c' does not exist."
    assert group_views.delete_error_line(busy).endswith(
        "could not be deleted: The group is not empty."
    )
    assert _render(group_views.render_delete, [ok, busy]).strip() == "Deleted consumer group 'a'."


# -- command line ------------------------------------------------------------------------------


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv",
    [
        ["groups", "reset-offsets", "g", "--topic", "t"],  # no scenario
        ["groups", "reset-offsets", "g", "--to-earliest"],  # no scope
        ["groups", "reset-offsets", "g", "--all-topics", "--topic", "t", "--to-earliest"],
        ["groups", "reset-offsets", "g", "--all-topics", "--to-earliest", "--to-latest"],
        ["groups", "reset-offsets", "g", "--all-topics", "--to-earliest", "--dry-run", "--execute"],
        ["groups", "describe"],
        ["groups", "list", "--timeout", "0"],
        ["groups", "list", "--output", "yaml"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert out == ""
    assert "usage:" in err


def test_groups_without_a_verb_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["groups"], capsys)
    assert code == 2
    assert "reset-offsets" in out and "examples:" in out


def test_bad_values_fail_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    # port 9 on 127.0.0.1 would refuse; these must fail on the value, without a traceback
    for argv, message in [
        (["groups", "list", "--state", "Running"], "unknown group state 'Running'"),
        (
            ["groups", "reset-offsets", "g", "--all-topics", "--to-datetime", "noon"],
            "--to-datetime 'noon' is not an ISO 8601 date-time",
        ),
    ]:
        code, out, err = _run([*argv, "--bootstrap-server", "127.0.0.1:9"], capsys)
        assert (code, out) == (2, "")
        assert err.count("\n") == 1 and err.startswith("odradek groups: error: ")
        assert message in err


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for verb in ("list", "describe", "reset-offsets", "delete"):
        code, out, _ = _run(["groups", verb, "--help"], capsys)
        assert code == 0
        assert "examples:" in out and f"odradek groups {verb}" in out
        assert "--bootstrap-server" in out and "--command-config" in out


def test_importing_the_cli_loads_no_client_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys, odradek.cli.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('confluent_kafka', 'rich')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- shared client options ---------------------------------------------------------------------


def test_parse_properties_follows_java() -> None:
    text = "\n".join(
        [
            "# a comment",
            "! another comment",
            "   ",
            "security.protocol=SASL_SSL",
            "sasl.mechanism : SCRAM-SHA-512",
            "client.id   tool",
            "a==b",
            "empty=",
            "long.value = one, \\",
            "    two, \\",
            "    three",
            "path=C:\\\\kafka\\\\ca.pem",
            "tab\\ key=x\\ty",
            "unicode=caf\\u00e9",
            "last.line.continues=yes\\",
        ]
    )
    assert parse_properties(text) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "client.id": "tool",
        "a": "=b",
        "empty": "",
        "long.value": "one, two, three",
        "path": "C:\\kafka\\ca.pem",
        "tab key": "x\ty",
        "unicode": "café",
        "last.line.continues": "yes",
    }


def test_jaas_config_becomes_librdkafka_sasl_credentials() -> None:
    props = {
        "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required"
            ' username="alice" password="s3cr\\"et";'
        ),
    }
    assert librdkafka_properties(props) == {
        "sasl.mechanism": "PLAIN",
        "sasl.username": "alice",
        "sasl.password": 's3cr"et',
    }
    explicit = {**props, "sasl.username": "bob"}
    assert librdkafka_properties(explicit)["sasl.username"] == "bob"


def test_bootstrap_server_precedence(tmp_path: Path) -> None:
    import argparse

    env = {"ODRADEK_BOOTSTRAP_SERVER": "k:1"}
    args = argparse.Namespace(bootstrap_server=None, command_config=None)
    assert bootstrap_servers(args, None, {}) == "localhost:9092"
    assert bootstrap_servers(args, None, env) == "k:1"
    assert bootstrap_servers(args, "file:9", env) == "file:9"
    args.bootstrap_server = "k:2"
    assert bootstrap_servers(args, "file:9", env) == "k:2"

    config_file = tmp_path / "client.properties"
    config_file.write_text("bootstrap.servers=file:9\nclient.id=mine\nsocket.timeout.ms=5000\n")
    args.command_config = config_file
    config = client_options.client_config(args, **{"client.id": "odradek-groups"})
    assert config == {
        "bootstrap.servers": "k:2",  # --bootstrap-server wins over the file, as in Kafka
        "client.id": "mine",  # the file wins over the command's default
        "socket.timeout.ms": "5000",
    }
    args.bootstrap_server = None
    assert client_options.client_config(args)["bootstrap.servers"] == "file:9"


def test_missing_command_config_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.properties"
    code, out, err = _run(["groups", "list", "--command-config", str(missing)], capsys)
    assert (code, out) == (2, "")
    assert err == f"odradek groups: error: --command-config {missing}: No such file or directory\n"


def test_unknown_librdkafka_property_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "client.properties"
    config_file.write_text("no.such.property=1\n")
    code, out, err = _run(["groups", "list", "--command-config", str(config_file)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("odradek groups: error: invalid client configuration: ")
    assert "no.such.property" in err and err.count("\n") == 1


def test_error_message_prefers_kafkas_text() -> None:
    from confluent_kafka import KafkaError, KafkaException

    busy = KafkaException(KafkaError(KafkaError.NON_EMPTY_GROUP))
    assert client_options.error_message(busy) == "The group is not empty."
    assert client_options.error_name(busy) == "NON_EMPTY_GROUP"
    assert client_options.error_message(ValueError("bad\nvalue")) == "bad value"
