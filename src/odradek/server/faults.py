"""Fault rules for requests: which request a rule matches and what happens to it. No I/O.

A rule matches requests by API key, client id, topic, partition, group id or transactional id
(every criterion given must hold) and does one thing to each request it matches: delay it, drop
it unanswered, apply it and drop the response, answer it with an error code without applying it,
or close the connection. It holds for its next `times` matching requests, until a monotonic
deadline, or both (whichever ends first); with neither, until it is removed.

`FaultEngine` is the rule table. The connection asks it about each request only while the node
holds one (`Node.faults` is None otherwise, so a broker without rules pays one attribute check
per request); `fault_hook` carries out the decisions. Rules are added from other threads (a test
thread driving an in-process broker), so the table is guarded by a lock; decisions are made on
the broker's event loop thread.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from odradek.protocol.api_keys import ApiKey


class FaultAction(StrEnum):
    DELAY = "delay"
    DROP_REQUEST = "drop_request"
    DROP_RESPONSE = "drop_response"
    ERROR = "error"
    CLOSE_CONNECTION = "close_connection"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What a rule can match on, taken from one request."""

    api_key: int
    api_version: int
    client_id: str | None
    topics: Mapping[str, frozenset[int]] = field(default_factory=dict)
    group_ids: frozenset[str] = frozenset()  # a request may name several (DescribeGroups)
    transactional_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class FaultMatch:
    """Criteria; None matches anything. `partition` needs `topic`."""

    api_keys: frozenset[int] | None = None
    client_id: str | None = None
    topic: str | None = None
    partition: int | None = None
    group_id: str | None = None
    transactional_id: str | None = None

    def __post_init__(self) -> None:
        if self.partition is not None and self.topic is None:
            raise ValueError("a partition criterion needs a topic")

    def matches(self, facts: RequestFacts) -> bool:
        if self.api_keys is not None and facts.api_key not in self.api_keys:
            return False
        if self.client_id is not None and facts.client_id != self.client_id:
            return False
        if self.group_id is not None and self.group_id not in facts.group_ids:
            return False
        if (
            self.transactional_id is not None
            and self.transactional_id not in facts.transactional_ids
        ):
            return False
        if self.topic is not None:
            partitions = facts.topics.get(self.topic)
            if partitions is None:
                return False
            if self.partition is not None and self.partition not in partitions:
                return False
        return True


@dataclass(frozen=True, slots=True)
class FaultRule:
    match: FaultMatch
    action: FaultAction
    delay_ms: int = 0
    error_code: int = 0
    times: int | None = None
    duration_ms: int | None = None

    def __post_init__(self) -> None:
        if self.action is FaultAction.DELAY and self.delay_ms <= 0:
            raise ValueError("a delay rule needs delay_ms > 0")
        if self.action is FaultAction.ERROR and self.error_code == 0:
            raise ValueError("an error rule needs a non-zero error_code")
        if self.times is not None and self.times <= 0:
            raise ValueError("times must be positive")
        if self.duration_ms is not None and self.duration_ms <= 0:
            raise ValueError("duration_ms must be positive")


@dataclass(slots=True)
class _Installed:
    rule_id: int
    rule: FaultRule
    remaining: int | None
    deadline_ms: int | None
    hits: int = 0


class FaultEngine:
    """The rule table. The first live rule that matches a request decides its fate."""

    def __init__(self) -> None:
        self._rules: list[_Installed] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._hits: dict[int, int] = {}

    def add(self, rule: FaultRule, now_ms: int) -> int:
        deadline = None if rule.duration_ms is None else now_ms + rule.duration_ms
        with self._lock:
            rule_id = next(self._ids)
            self._rules.append(_Installed(rule_id, rule, rule.times, deadline))
            self._hits[rule_id] = 0
            return rule_id

    def remove(self, rule_id: int) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r.rule_id != rule_id]

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def hits(self, rule_id: int) -> int:
        """How many requests the rule has acted on so far (also after it ran out)."""
        with self._lock:
            return self._hits.get(rule_id, 0)

    def active(self, now_ms: int) -> bool:
        """Whether any rule can still act (expired rules are dropped here)."""
        with self._lock:
            self._expire(now_ms)
            return bool(self._rules)

    def decide(self, facts: RequestFacts, now_ms: int) -> FaultRule | None:
        """The rule that acts on this request, counting it against that rule, or None."""
        with self._lock:
            self._expire(now_ms)
            for installed in self._rules:
                if not installed.rule.match.matches(facts):
                    continue
                installed.hits += 1
                self._hits[installed.rule_id] = installed.hits
                if installed.remaining is not None:
                    installed.remaining -= 1
                    if installed.remaining == 0:
                        self._rules.remove(installed)
                return installed.rule
            return None

    def _expire(self, now_ms: int) -> None:
        if any(r.deadline_ms is not None and now_ms >= r.deadline_ms for r in self._rules):
            self._rules = [
                r for r in self._rules if r.deadline_ms is None or now_ms < r.deadline_ms
            ]


# --- names as tests and the control endpoint write them ------------------------------------

ApiSpec = str | int | Iterable[str | int] | None


def api_keys(api: ApiSpec) -> frozenset[int] | None:
    """`"produce"`, `"OffsetCommit"`, `ApiKey.FETCH`, `0` or a list of them, as API keys."""
    if api is None:
        return None
    items = [api] if isinstance(api, (str, int)) else list(api)
    keys: set[int] = set()
    for item in items:
        if isinstance(item, int):
            keys.add(int(item))
            continue
        name = "".join(
            f"_{c}" if c.isupper() and i and item[i - 1].islower() else c
            for i, c in enumerate(item)
        )
        try:
            keys.add(ApiKey[name.upper().replace("-", "_")])
        except KeyError:
            known = ", ".join(k.name.lower() for k in ApiKey)
            raise ValueError(f"unknown API {item!r}; one of {known}") from None
    return frozenset(keys)


def error_code(code: int | str) -> int:
    """An error code by number or by Kafka's name (`"NOT_LEADER_OR_FOLLOWER"`)."""
    if isinstance(code, int):
        return int(code)
    from kio.schema.errors import ErrorCode

    try:
        return int(ErrorCode[code.lower()])
    except KeyError:
        raise ValueError(f"unknown error code {code!r}") from None


RULE_FIELDS = frozenset(
    {
        "action",
        "api",
        "topic",
        "partition",
        "group",
        "transactional_id",
        "client_id",
        "times",
        "duration_s",
        "delay_ms",
        "error_code",
    }
)


def rule_from_json(data: Mapping[str, Any]) -> FaultRule:
    """A rule from its JSON form: the keyword arguments of the test API plus `action`.

    `{"action": "error", "error_code": "NOT_LEADER_OR_FOLLOWER", "api": "produce", "times": 2}`
    """
    unknown = set(data) - RULE_FIELDS
    if unknown:
        raise ValueError(f"unknown rule fields {sorted(unknown)}; known: {sorted(RULE_FIELDS)}")
    if "action" not in data:
        raise ValueError(f"a rule needs an action: one of {[a.value for a in FaultAction]}")
    duration_s = data.get("duration_s")
    return FaultRule(
        FaultMatch(
            api_keys=api_keys(data.get("api")),
            client_id=data.get("client_id"),
            topic=data.get("topic"),
            partition=data.get("partition"),
            group_id=data.get("group"),
            transactional_id=data.get("transactional_id"),
        ),
        FaultAction(data["action"]),
        delay_ms=int(data.get("delay_ms") or 0),
        error_code=error_code(data.get("error_code") or 0),
        times=data.get("times"),
        duration_ms=None if duration_s is None else max(1, round(float(duration_s) * 1000)),
    )
