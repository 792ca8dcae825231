"""How `odradek produce` reads its input: headers, key separators, lines and JSON checks."""

from __future__ import annotations

import pytest

from odradek.cli.client_options import ClientError, parse_properties_option
from odradek.cli.produce import LineParser, parse_header, parse_separator


def test_headers() -> None:
    assert parse_header("a=b") == ("a", b"b")
    assert parse_header("a=") == ("a", b"")
    assert parse_header("a=b=c") == ("a", b"b=c")
    assert parse_header("ü=ö") == ("ü", "ö".encode())
    for bad in ("a", "", "=b"):
        with pytest.raises(ClientError):
            parse_header(bad)


def test_separators() -> None:
    assert parse_separator("\\t") == b"\t"
    assert parse_separator("::") == b"::"
    assert parse_separator("\\\\") == b"\\"
    assert parse_separator("\\x") == b"\\x"
    with pytest.raises(ClientError):
        parse_separator("")


def test_lines_keep_their_bytes() -> None:
    raw = LineParser()
    assert raw.parse(b"a b\r\n", 1) == (None, b"a b\r")
    assert raw.parse(b"last", 2) == (None, b"last")
    assert raw.parse(b"\n", 3) == (None, b"")
    keyed = LineParser(b"\t")
    assert keyed.parse(b"k\tv\tw\n", 1) == (b"k", b"v\tw")
    assert keyed.parse(b"\tv\n", 1) == (b"", b"v")
    with pytest.raises(ClientError, match=r"^line 4: no key separator"):
        keyed.parse(b"kv\n", 4)


def test_json_values_are_checked() -> None:
    parser = LineParser(b":", json_values=True)
    assert parser.parse(b'k:{"a": [1, 2]}\n', 1) == (b"k", b'{"a": [1, 2]}')
    assert parser.parse(b"k: 3 \n", 1) == (b"k", b" 3 ")
    for bad, reason in ((b"k:{", "Expecting"), (b"k:", "Expecting value"), (b"k:\xff", "UTF-8")):
        with pytest.raises(ClientError) as raised:
            parser.parse(bad, 9)
        assert raised.value.message.startswith("line 9: the value is not valid JSON")
        assert reason in raised.value.message


def test_properties_option() -> None:
    assert parse_properties_option(["linger.ms=5", "a=b=c", "empty="]) == {
        "linger.ms": "5",
        "a": "b=c",
        "empty": "",
    }
    with pytest.raises(ClientError, match="expected KEY=VALUE"):
        parse_properties_option(["linger.ms"])
