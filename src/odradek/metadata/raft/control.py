"""The control record that opens every leader epoch: Kafka's LeaderChange.

A leader's first batch of its epoch is a control batch (attribute bit 5) holding one record
whose key is the control record key (version 0, type 2 = LEADER_CHANGE) and whose value is a
`LeaderChangeMessage` v0 (flexible: compact arrays, empty tagged fields): the leader, the
voters and the voters that granted it the election. Encoded here by hand, in pure Python, so
the core stays free of the codec layer; `tests/unit/metadata/test_raft_control.py` decodes it
with kio's schema.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

LEADER_CHANGE_TYPE = 2
LEADER_CHANGE_KEY = struct.pack(">hh", 0, LEADER_CHANGE_TYPE)  # ControlRecordType key v0

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _voters(ids: Iterable[int]) -> bytes:
    members = sorted(ids)
    out = bytearray(_uvarint(len(members) + 1))  # compact array: length + 1
    for voter_id in members:
        out += _INT32.pack(voter_id)
        out += b"\x00"  # the Voter struct's tagged fields
    return bytes(out)


def leader_change_value(leader_id: int, voters: Iterable[int], granting: Iterable[int]) -> bytes:
    """A LeaderChangeMessage v0 value."""
    return b"".join(
        (
            _INT16.pack(0),  # Version of the message's data
            _INT32.pack(leader_id),
            _voters(voters),
            _voters(granting),
            b"\x00",  # tagged fields
        )
    )
