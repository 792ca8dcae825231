"""Request and disk faults as tests write them, on an in-process broker or through the control
endpoint of a subprocess broker (`server/control.py`); both offer the same methods.

    fault = kafka_broker.faults.drop_response(api="produce", topic=topic, times=1)
    ...  # the client retries; the first attempt was applied
    assert fault.hits == 1

Every method takes the same criteria (each one given must hold): `api` (a name such as
"produce" or "offset_commit", an `ApiKey`, a number, or several of them), `topic`, `partition`,
`group`, `transactional_id`, `client_id`; and a lifetime: `times` (the next N matching
requests), `duration_s` (a window from now), both (whichever ends first) or neither (until
`remove()` or `clear()`). The first rule that matches a request acts on it. Rules of an
in-process broker survive its restart; those of a subprocess broker die with the process.
"""

from __future__ import annotations

import errno as errno_codes
import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from odradek.common.clock import SystemClock
from odradek.server.faults import ApiSpec, FaultAction, FaultEngine, FaultRule, rule_from_json

if TYPE_CHECKING:
    from odradek.server.node import Node
    from odradek.testing.broker import InProcessBroker


class Fault:
    """An installed rule."""

    def __init__(self, faults: Faults, rule_id: int, rule: FaultRule) -> None:
        self._faults = faults
        self.rule_id = rule_id
        self.rule = rule

    @property
    def hits(self) -> int:
        """How many requests this rule has acted on."""
        return self._faults._hits(self.rule_id)

    def remove(self) -> None:
        self._faults._remove(self.rule_id)

    def __repr__(self) -> str:
        return f"Fault({self.rule.action}, {self.rule.match}, hits={self.hits})"


class Criteria(TypedDict, total=False):
    """What a rule matches and how long it lives (see the module docstring)."""

    api: ApiSpec
    topic: str | None
    partition: int | None
    group: str | None
    transactional_id: str | None
    client_id: str | None
    times: int | None
    duration_s: float | None


class Faults:
    """The methods tests call; `_install`, `_hits`, `_remove` and `clear` reach the broker."""

    def _install(self, spec: dict[str, Any], rule: FaultRule) -> int:
        raise NotImplementedError

    def _hits(self, rule_id: int) -> int:
        raise NotImplementedError

    def _remove(self, rule_id: int) -> None:
        raise NotImplementedError

    def clear(self) -> None:
        """Remove every rule; the broker is back to its no-fault path."""
        raise NotImplementedError

    def _add(self, action: FaultAction, criteria: Criteria, **settings: Any) -> Fault:
        unexpected = set(criteria) - Criteria.__optional_keys__
        if unexpected:  # what a plain keyword-only signature would refuse
            raise TypeError(f"unexpected keyword argument(s) {sorted(unexpected)}")
        fields: dict[str, Any] = {**settings, **criteria}
        api = fields.get("api")
        if api is not None and not isinstance(api, (str, int)):
            fields["api"] = [a if isinstance(a, str) else int(a) for a in api]
        spec = {"action": action.value, **{k: v for k, v in fields.items() if v is not None}}
        rule = rule_from_json(spec)  # checked here, so a mistake fails in the test's own line
        return Fault(self, self._install(spec, rule), rule)

    def delay(self, ms: int, **criteria: Unpack[Criteria]) -> Fault:
        """Hold matching requests `ms` milliseconds before handling them."""
        return self._add(FaultAction.DELAY, criteria, delay_ms=ms)

    def drop_request(self, **criteria: Unpack[Criteria]) -> Fault:
        """Lose matching requests: not applied, never answered (the client times out)."""
        return self._add(FaultAction.DROP_REQUEST, criteria)

    def drop_response(self, **criteria: Unpack[Criteria]) -> Fault:
        """Apply matching requests but lose their responses (the client times out, retries)."""
        return self._add(FaultAction.DROP_RESPONSE, criteria)

    def error(self, code: int | str, **criteria: Unpack[Criteria]) -> Fault:
        """Answer matching requests with error `code` (number or name), without applying them."""
        return self._add(FaultAction.ERROR, criteria, error_code=code)

    def close_connection(self, **criteria: Unpack[Criteria]) -> Fault:
        """Close the connection a matching request came on, without answering it."""
        return self._add(FaultAction.CLOSE_CONNECTION, criteria)


class LocalFaults(Faults):
    """Rules kept in this process and consulted by the in-process broker's node."""

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

    def _install(self, spec: dict[str, Any], rule: FaultRule) -> int:
        node = self._node
        clock = node.clock if node is not None else SystemClock()
        rule_id = self.engine.add(rule, clock.monotonic_ms())
        self._installed = True
        if node is not None:
            node.faults = self.engine
        return rule_id

    def _hits(self, rule_id: int) -> int:
        return self.engine.hits(rule_id)

    def _remove(self, rule_id: int) -> None:
        self.engine.remove(rule_id)

    def clear(self) -> None:
        self.engine.clear()
        self._installed = False
        node = self._node
        if node is not None:
            node.faults = None


class ControlClient:
    """JSON over HTTP to a broker's control endpoint."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read().decode()}") from None
        return json.loads(payload) if payload else None


class RemoteFaults(Faults):
    """Rules installed through the control endpoint of a subprocess broker."""

    def __init__(self, control: ControlClient) -> None:
        self._control = control

    def _install(self, spec: dict[str, Any], rule: FaultRule) -> int:
        return int(self._control.call("POST", "/v1/faults", spec)["id"])

    def _hits(self, rule_id: int) -> int:
        return int(self._control.call("GET", f"/v1/faults/{rule_id}")["hits"])

    def _remove(self, rule_id: int) -> None:
        self._control.call("DELETE", f"/v1/faults/{rule_id}")

    def clear(self) -> None:
        self._control.call("DELETE", "/v1/faults")


class RemoteDisk:
    """Disk faults of a subprocess broker: the methods of `FaultyFileIO` tests use."""

    def __init__(self, control: ControlClient) -> None:
        self._control = control

    def fail(self, operation: str, errno: int = errno_codes.EIO, times: int | None = None) -> None:
        body: dict[str, Any] = {"operation": operation, "errno": errno}
        if times is not None:
            body["times"] = times
        self._control.call("POST", "/v1/disk", body)

    def clear(self) -> None:
        self._control.call("DELETE", "/v1/disk")

    @property
    def injected(self) -> int:
        return int(self._control.call("GET", "/v1/disk")["injected"])


class RemoteClock:
    """The virtual clock of a subprocess broker."""

    def __init__(self, control: ControlClient) -> None:
        self._control = control

    def advance(self, seconds: float) -> None:
        """Jump the broker's time ahead; what fell due fires before this returns."""
        self._control.call("POST", "/v1/clock", {"advance_ms": round(seconds * 1000)})
