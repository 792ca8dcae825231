"""Error responses built from the schema: every error_code set, the request's names mirrored,
and the result encodable (kio refuses a malformed entity)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from kio.schema.describe_groups.v5 import request as describe_groups
from kio.schema.find_coordinator.v4 import request as find_coordinator
from kio.schema.offset_fetch.v8 import request as offset_fetch

from odradek.protocol.api_keys import ApiKey
from odradek.protocol.codec import encode_response, response_is_flexible, response_module
from odradek.protocol.produce import ProducePartition, ProduceRequestData, ProduceTopic
from odradek.server.fault_hook import _entity_class, error_response


def build(api_key: ApiKey, version: int, request: Any, code: int) -> Any:
    cls = _entity_class(response_module(api_key, version))
    response = error_response(cls, request, code, None)  # type: ignore[arg-type]
    encode_response(7, response_is_flexible(api_key, version), response)  # must not raise
    return response


def error_codes(entity: Any) -> list[int]:
    found = []
    for field in dataclasses.fields(entity):
        value = getattr(entity, field.name)
        if field.name == "error_code":
            found.append(int(value))
        elif isinstance(value, tuple):
            for item in value:
                if dataclasses.is_dataclass(item):
                    found += error_codes(item)
    return found


@pytest.mark.parametrize("version", [3, 7, 9, 11])
def test_produce(version: int) -> None:
    request = ProduceRequestData(
        None,
        -1,
        1000,
        (
            ProduceTopic("a", (ProducePartition(0, None), ProducePartition(2, None))),
            ProduceTopic("b", (ProducePartition(1, None),)),
        ),
    )
    response = build(ApiKey.PRODUCE, version, request, 6)
    answered = [
        (t.name, p.index, int(p.error_code))
        for t in response.responses
        for p in t.partition_responses
    ]
    assert answered == [("a", 0, 6), ("a", 2, 6), ("b", 1, 6)]
    if version >= 10:
        assert response.node_endpoints == ()


def test_find_coordinator_batched_keys() -> None:
    request = find_coordinator.FindCoordinatorRequest(key_type=0, coordinator_keys=("g1", "g2"))
    response = build(ApiKey.FIND_COORDINATOR, 4, request, 15)
    assert [(c.key, int(c.error_code)) for c in response.coordinators] == [("g1", 15), ("g2", 15)]


def test_describe_groups_names_each_group() -> None:
    request = describe_groups.DescribeGroupsRequest(
        groups=("g1", "g2"), include_authorized_operations=False
    )
    response = build(ApiKey.DESCRIBE_GROUPS, 5, request, 30)
    assert [(g.group_id, int(g.error_code)) for g in response.groups] == [("g1", 30), ("g2", 30)]


def test_offset_fetch_groups() -> None:
    group = offset_fetch.OffsetFetchRequestGroup(group_id="g1", topics=None)
    request = offset_fetch.OffsetFetchRequest(groups=(group,))
    response = build(ApiKey.OFFSET_FETCH, 8, request, 16)
    assert [(g.group_id, int(g.error_code)) for g in response.groups] == [("g1", 16)]
    assert set(error_codes(response)) == {16}


def test_facts_name_groups_and_transactional_ids_wherever_the_version_keeps_them() -> None:
    from odradek.server.fault_hook import _named_ids

    groups = describe_groups.DescribeGroupsRequest(
        groups=("g1", "g2"), include_authorized_operations=False
    )
    assert _named_ids(groups) == ({"g1", "g2"}, set())
    by_group = find_coordinator.FindCoordinatorRequest(key_type=0, coordinator_keys=("g1",))
    assert _named_ids(by_group) == ({"g1"}, set())
    by_txn = find_coordinator.FindCoordinatorRequest(key_type=1, coordinator_keys=("tx",))
    assert _named_ids(by_txn) == (set(), {"tx"})
    group = offset_fetch.OffsetFetchRequestGroup(group_id="g3", topics=None)
    assert _named_ids(offset_fetch.OffsetFetchRequest(groups=(group,))) == ({"g3"}, set())
