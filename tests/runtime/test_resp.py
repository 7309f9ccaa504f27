from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypaxos.runtime.resp import (
    RespParser,
    RespProtocolError,
    encode_array,
    encode_bulk,
    encode_command,
    encode_error,
    encode_integer,
    encode_simple,
)


def test_parses_array_commands_and_inline_commands() -> None:
    parser = RespParser()
    data = encode_command("SET", "k", "v") + b"PING\r\n" + encode_command("GET", "k")
    assert parser.feed(data) == [[b"SET", b"k", b"v"], [b"PING"], [b"GET", b"k"]]


def test_waits_for_the_rest_of_a_partial_command() -> None:
    parser = RespParser()
    data = encode_command("SET", "key", "a value with spaces")
    assert parser.feed(data[:7]) == []
    assert parser.feed(data[7:20]) == []
    assert parser.feed(data[20:]) == [[b"SET", b"key", b"a value with spaces"]]


def test_binary_values_with_crlf_inside_survive() -> None:
    value = b"\r\n\x00\xff*$"
    assert RespParser().feed(encode_command(b"SET", b"k", value)) == [[b"SET", b"k", value]]


@given(st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=5), max_size=8), st.data())
def test_any_chunking_yields_the_same_commands(
    commands: list[list[bytes]], data: st.DataObject
) -> None:
    stream = b"".join(encode_command(*c) for c in commands)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    parser = RespParser()
    got: list[list[bytes]] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        got.extend(parser.feed(stream[previous:cut]))
        previous = cut
    assert got == commands


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"*x\r\n", "invalid multibulk length"),
        (b"*1\r\n+GET\r\n", "expected '$'"),
        (b"*1\r\n$-5\r\n", "invalid bulk length"),
        (b"*1\r\n$3\r\nGETXX", "not terminated"),
        (b"*1\r\n$999999999\r\n", "invalid bulk length"),
    ],
)
def test_malformed_input_is_a_protocol_error(data: bytes, message: str) -> None:
    with pytest.raises(RespProtocolError, match=re.escape(message)):
        RespParser().feed(data)


def test_limits_are_checked_before_buffering() -> None:
    parser = RespParser(bulk_bytes_max=10, inline_bytes_max=16)
    with pytest.raises(RespProtocolError, match="invalid bulk length"):
        parser.feed(b"*1\r\n$11\r\n")
    with pytest.raises(RespProtocolError, match="line too long"):
        RespParser(inline_bytes_max=16).feed(b"A" * 17)


def test_reply_encodings() -> None:
    assert encode_simple("OK") == b"+OK\r\n"
    assert encode_error("ERR bad\r\nthing") == b"-ERR bad  thing\r\n"
    assert encode_integer(-3) == b":-3\r\n"
    assert encode_bulk(None) == b"$-1\r\n"
    assert encode_bulk(b"hi") == b"$2\r\nhi\r\n"
    assert encode_array([b"a", None]) == b"*2\r\n$1\r\na\r\n$-1\r\n"


def test_commands_before_bad_bytes_are_returned_then_the_error_sticks() -> None:
    parser = RespParser()
    assert parser.feed(encode_command("PING") + b"*x\r\n") == [[b"PING"]]
    assert isinstance(parser.error, RespProtocolError)
    with pytest.raises(RespProtocolError):
        parser.feed(encode_command("PING"))
