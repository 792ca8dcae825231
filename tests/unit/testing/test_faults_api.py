"""How tests name APIs and error codes in fault rules."""

from __future__ import annotations

import pytest

from odradek.protocol.api_keys import ApiKey
from odradek.server.faults import api_keys, error_code


@pytest.mark.parametrize(
    ("api", "expected"),
    [
        ("produce", {0}),
        ("OffsetCommit", {8}),
        ("offset_commit", {8}),
        ("find-coordinator", {10}),
        (ApiKey.FETCH, {1}),
        (["produce", "fetch"], {0, 1}),
        (None, None),
    ],
)
def test_api_names(api: object, expected: set[int] | None) -> None:
    keys = api_keys(api)  # type: ignore[arg-type]
    assert keys == (None if expected is None else frozenset(expected))


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown API"):
        api_keys("produec")
    with pytest.raises(ValueError, match="unknown error code"):
        error_code("NOT_AN_ERROR")
    assert error_code("NOT_LEADER_OR_FOLLOWER") == 6
    assert error_code(29) == 29
