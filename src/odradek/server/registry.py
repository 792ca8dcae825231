"""The handler registry: one entry per API key, from which ApiVersions is derived.

    @handler(ApiKey.METADATA, versions=(0, 12))
    async def handle_metadata(ctx: RequestContext, request: Any) -> Any: ...

A handler gets the request decoded by kio, or with `raw=True` the frame itself (the produce
hot path decodes its own; `raw_below=n` gives versions below n raw: old versions kio has no
schema for, decoded by the handler), and returns a kio response entity, `NO_RESPONSE` (acks=0), or
raises `CloseConnection`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from odradek.protocol.api_keys import ApiKey

if TYPE_CHECKING:
    from odradek.server.context import RequestContext

Handler = Callable[["RequestContext", Any], Awaitable[Any]]


class CloseConnection(Exception):
    """Close the client's connection without a response (Kafka's answer to some errors)."""


class _NoResponse:
    def __repr__(self) -> str:
        return "NO_RESPONSE"


NO_RESPONSE = _NoResponse()


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    api_key: ApiKey
    min_version: int
    max_version: int
    func: Handler
    raw: bool
    raw_below: int = 0


HANDLERS: dict[int, HandlerSpec] = {}


def handler(
    api_key: ApiKey, *, versions: tuple[int, int], raw: bool = False, raw_below: int = 0
) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        HANDLERS[int(api_key)] = HandlerSpec(
            api_key, versions[0], versions[1], func, raw, raw_below
        )
        return func

    return register


def supported_versions() -> list[tuple[int, int, int]]:
    return sorted((int(s.api_key), s.min_version, s.max_version) for s in HANDLERS.values())
