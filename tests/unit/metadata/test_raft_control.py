"""The LeaderChange control record the core writes decodes with Kafka's schema (via kio)."""

from __future__ import annotations

import struct

from kio.schema.leader_change_message.v0.data import LeaderChangeMessage
from kio.serial import entity_reader

from odradek.metadata.raft.control import LEADER_CHANGE_KEY, leader_change_value


def test_the_leader_change_value_is_a_leader_change_message_v0() -> None:
    value = leader_change_value(2, (3, 1, 2), (2, 3))
    message, size = entity_reader(LeaderChangeMessage)(memoryview(value).toreadonly(), 0)
    assert size == len(value)
    assert (message.version, message.leader_id) == (0, 2)
    assert [v.voter_id for v in message.voters] == [1, 2, 3]
    assert [v.voter_id for v in message.granting_voters] == [2, 3]


def test_the_key_is_a_version_0_leader_change_control_key() -> None:
    assert struct.unpack(">hh", LEADER_CHANGE_KEY) == (0, 2)
