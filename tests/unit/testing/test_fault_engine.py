"""The fault rule table, driven without a broker: matching, counting, windows, removal."""

from __future__ import annotations

import pytest

from odradek.protocol.api_keys import ApiKey
from odradek.server.faults import FaultAction, FaultEngine, FaultMatch, FaultRule, RequestFacts

PRODUCE = RequestFacts(
    ApiKey.PRODUCE,
    9,
    "billing",
    topics={"orders": frozenset({0, 2})},
    transactional_ids=frozenset({"tx-1"}),
)
COMMIT = RequestFacts(ApiKey.OFFSET_COMMIT, 8, "billing", group_ids=frozenset({"payments"}))
DESCRIBE = RequestFacts(ApiKey.DESCRIBE_GROUPS, 5, None, group_ids=frozenset({"a", "payments"}))


def rule(match: FaultMatch, **kwargs: object) -> FaultRule:
    return FaultRule(match, FaultAction.DROP_REQUEST, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("match", "facts", "expected"),
    [
        (FaultMatch(), PRODUCE, True),
        (FaultMatch(api_keys=frozenset({ApiKey.PRODUCE})), PRODUCE, True),
        (FaultMatch(api_keys=frozenset({ApiKey.FETCH})), PRODUCE, False),
        (FaultMatch(topic="orders"), PRODUCE, True),
        (FaultMatch(topic="payments"), PRODUCE, False),
        (FaultMatch(topic="orders", partition=2), PRODUCE, True),
        (FaultMatch(topic="orders", partition=1), PRODUCE, False),
        (FaultMatch(client_id="billing"), PRODUCE, True),
        (FaultMatch(client_id="shipping"), PRODUCE, False),
        (FaultMatch(transactional_id="tx-1"), PRODUCE, True),
        (FaultMatch(transactional_id="tx-2"), PRODUCE, False),
        (FaultMatch(group_id="payments"), COMMIT, True),
        (FaultMatch(group_id="payments"), PRODUCE, False),
        (FaultMatch(group_id="payments"), DESCRIBE, True),  # one of the groups it names
        (FaultMatch(topic="orders"), COMMIT, False),
        # every criterion must hold
        (FaultMatch(api_keys=frozenset({ApiKey.PRODUCE}), client_id="shipping"), PRODUCE, False),
    ],
)
def test_matching(match: FaultMatch, facts: RequestFacts, expected: bool) -> None:
    assert match.matches(facts) is expected


def test_times_counts_matching_requests_only() -> None:
    engine = FaultEngine()
    rule_id = engine.add(rule(FaultMatch(group_id="payments"), times=2), now_ms=0)
    assert engine.decide(PRODUCE, 0) is None  # does not match: not counted
    assert engine.decide(COMMIT, 0) is not None
    assert engine.decide(COMMIT, 0) is not None
    assert engine.decide(COMMIT, 0) is None
    assert engine.hits(rule_id) == 2
    assert not engine.active(0)


def test_window_ends_at_its_deadline() -> None:
    engine = FaultEngine()
    engine.add(rule(FaultMatch(), duration_ms=100), now_ms=1000)
    assert engine.decide(PRODUCE, 1099) is not None
    assert engine.decide(PRODUCE, 1100) is None
    assert not engine.active(1100)


def test_times_and_window_whichever_ends_first() -> None:
    engine = FaultEngine()
    engine.add(rule(FaultMatch(), times=1, duration_ms=100), now_ms=0)
    assert engine.decide(PRODUCE, 0) is not None
    assert engine.decide(PRODUCE, 1) is None


def test_first_matching_rule_decides_and_removal() -> None:
    engine = FaultEngine()
    first = engine.add(FaultRule(FaultMatch(topic="orders"), FaultAction.CLOSE_CONNECTION), 0)
    engine.add(FaultRule(FaultMatch(), FaultAction.DELAY, delay_ms=5), 0)
    decided = engine.decide(PRODUCE, 0)
    assert decided is not None and decided.action is FaultAction.CLOSE_CONNECTION
    engine.remove(first)
    decided = engine.decide(PRODUCE, 0)
    assert decided is not None and decided.action is FaultAction.DELAY
    engine.clear()
    assert engine.decide(PRODUCE, 0) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"action": FaultAction.DELAY},
        {"action": FaultAction.ERROR},
        {"action": FaultAction.DROP_REQUEST, "times": 0},
        {"action": FaultAction.DROP_REQUEST, "duration_ms": 0},
    ],
)
def test_rules_that_cannot_act_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FaultRule(FaultMatch(), **bad)  # type: ignore[arg-type]


def test_partition_needs_topic() -> None:
    with pytest.raises(ValueError):
        FaultMatch(partition=0)
