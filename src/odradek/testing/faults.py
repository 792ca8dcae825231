"""Request faults on an in-process broker, as tests write them.

    fault = kafka_broker.faults.drop_response(api="produce", topic=topic, times=1)
    ...  # the client retries; the first attempt was applied
    assert fault.hits == 1

Every method takes the same criteria (each one given must hold): `api` (a name such as
"produce" or "offset_commit", an `ApiKey`, a number, or several of them), `topic`, `partition`,
`group`, `transactional_id`, `client_id`; and a lifetime: `times` (the next N matching
requests), `duration_s` (a window from now), both (whichever ends first) or neither (until
`remove()` or `clear()`). The first rule that matches a request acts on it. Rules survive a
restart of the broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from odradek.common.clock import SystemClock
from odradek.protocol.api_keys import ApiKey
from odradek.server.faults import FaultAction, FaultEngine, FaultMatch, FaultRule

if TYPE_CHECKING:
    from odradek.server.node import Node
    from odradek.testing.broker import InProcessBroker

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


class Fault:
    """An installed rule."""

    def __init__(self, faults: Faults, rule_id: int, rule: FaultRule) -> None:
        self._faults = faults
        self.rule_id = rule_id
        self.rule = rule

    @property
    def hits(self) -> int:
        """How many requests this rule has acted on."""
        return self._faults.engine.hits(self.rule_id)

    def remove(self) -> None:
        self._faults.engine.remove(self.rule_id)

    def __repr__(self) -> str:
        return f"Fault({self.rule.action}, {self.rule.match}, hits={self.hits})"


class Faults:
    def __init__(self, broker: InProcessBroker) -> None:
        self.engine = FaultEngine()
        self._broker = broker
        self._installed = False

    def attach(self, node: Node) -> None:
        """Called by the broker on every start: the new node consults the rules too."""
        if self._installed:
            node.faults = self.engine

    @property
    def _node(self) -> Node | None:
        return self._broker.node if self._broker.running else None

    def _add(
        self,
        action: FaultAction,
        *,
        api: ApiSpec,
        topic: str | None,
        partition: int | None,
        group: str | None,
        transactional_id: str | None,
        client_id: str | None,
        times: int | None,
        duration_s: float | None,
        delay_ms: int = 0,
        code: int = 0,
    ) -> Fault:
        rule = FaultRule(
            FaultMatch(
                api_keys=api_keys(api),
                client_id=client_id,
                topic=topic,
                partition=partition,
                group_id=group,
                transactional_id=transactional_id,
            ),
            action,
            delay_ms=delay_ms,
            error_code=code,
            times=times,
            duration_ms=None if duration_s is None else max(1, round(duration_s * 1000)),
        )
        node = self._node
        clock = node.clock if node is not None else SystemClock()
        rule_id = self.engine.add(rule, clock.monotonic_ms())
        self._installed = True
        if node is not None:
            node.faults = self.engine
        return Fault(self, rule_id, rule)

    def delay(
        self,
        ms: int,
        *,
        api: ApiSpec = None,
        topic: str | None = None,
        partition: int | None = None,
        group: str | None = None,
        transactional_id: str | None = None,
        client_id: str | None = None,
        times: int | None = None,
        duration_s: float | None = None,
    ) -> Fault:
        """Hold matching requests `ms` milliseconds before handling them."""
        return self._add(
            FaultAction.DELAY,
            delay_ms=ms,
            api=api,
            topic=topic,
            partition=partition,
            group=group,
            transactional_id=transactional_id,
            client_id=client_id,
            times=times,
            duration_s=duration_s,
        )

    def drop_request(
        self,
        *,
        api: ApiSpec = None,
        topic: str | None = None,
        partition: int | None = None,
        group: str | None = None,
        transactional_id: str | None = None,
        client_id: str | None = None,
        times: int | None = None,
        duration_s: float | None = None,
    ) -> Fault:
        """Lose matching requests: not applied, never answered (the client times out)."""
        return self._add(
            FaultAction.DROP_REQUEST,
            api=api,
            topic=topic,
            partition=partition,
            group=group,
            transactional_id=transactional_id,
            client_id=client_id,
            times=times,
            duration_s=duration_s,
        )

    def drop_response(
        self,
        *,
        api: ApiSpec = None,
        topic: str | None = None,
        partition: int | None = None,
        group: str | None = None,
        transactional_id: str | None = None,
        client_id: str | None = None,
        times: int | None = None,
        duration_s: float | None = None,
    ) -> Fault:
        """Apply matching requests but lose their responses (the client times out, retries)."""
        return self._add(
            FaultAction.DROP_RESPONSE,
            api=api,
            topic=topic,
            partition=partition,
            group=group,
            transactional_id=transactional_id,
            client_id=client_id,
            times=times,
            duration_s=duration_s,
        )

    def error(
        self,
        code: int | str,
        *,
        api: ApiSpec = None,
        topic: str | None = None,
        partition: int | None = None,
        group: str | None = None,
        transactional_id: str | None = None,
        client_id: str | None = None,
        times: int | None = None,
        duration_s: float | None = None,
    ) -> Fault:
        """Answer matching requests with error `code` (number or name), without applying them."""
        return self._add(
            FaultAction.ERROR,
            code=error_code(code),
            api=api,
            topic=topic,
            partition=partition,
            group=group,
            transactional_id=transactional_id,
            client_id=client_id,
            times=times,
            duration_s=duration_s,
        )

    def close_connection(
        self,
        *,
        api: ApiSpec = None,
        topic: str | None = None,
        partition: int | None = None,
        group: str | None = None,
        transactional_id: str | None = None,
        client_id: str | None = None,
        times: int | None = None,
        duration_s: float | None = None,
    ) -> Fault:
        """Close the connection a matching request came on, without answering it."""
        return self._add(
            FaultAction.CLOSE_CONNECTION,
            api=api,
            topic=topic,
            partition=partition,
            group=group,
            transactional_id=transactional_id,
            client_id=client_id,
            times=times,
            duration_s=duration_s,
        )

    def clear(self) -> None:
        """Remove every rule; the broker is back to its no-fault path."""
        self.engine.clear()
        self._installed = False
        if self._node is not None:
            self._node.faults = None
