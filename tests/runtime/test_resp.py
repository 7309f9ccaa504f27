from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypaxos.transport.resp import (
    CommandTooLarge,
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


class _PositionalParser(RespParser):
    """The reference: the positional parser alone, without the split-based fast path."""

    __slots__ = ()

    def _parse_fast(self, position: int, commands: list[list[bytes]]) -> int:
        return position


def _feed_all(parser: RespParser, chunks: list[bytes]) -> tuple[list[list[bytes]], str | None]:
    got: list[list[bytes]] = []
    for chunk in chunks:
        try:
            got.extend(parser.feed(chunk))
        except RespProtocolError as error:
            return got, str(error)
        if parser.error is not None:
            return got, str(parser.error)
    return got, None


_PIECES = st.one_of(
    st.lists(st.binary(max_size=12), min_size=1, max_size=4).map(lambda c: encode_command(*c)),
    st.sampled_from(
        [
            b"*1\r\n$3\r\na\r\n\r\n",  # a value with CRLF inside
            b"*2\r\n$1\r\nx\r\n$4\r\n\r\n\r\n",
            b"PING\r\n",
            b"*0\r\n",
            b"*-1\r\n",
            b"*2\r\n$+1\r\nx\r\n$ 1\r\ny\r\n",  # int() is lenient; both paths agree
            b"*1\r\n$x\r\n",
            b"*x\r\n",
            b"*1\r\n+a\r\n",
            b"*1\r\n$2\r\nabc\r\n",
            b"*1\r\n$-1\r\n",
            b"*3\r\n$3\r\nSET\r\n",
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n",  # CRLF in a 3-arg value
            b"*2\r\n$3\r\nGET\r\n$5000\r\n" + b"k" * 5000 + b"\r\n",  # beyond the table
        ]
    ),
    st.binary(max_size=8),
)


@pytest.mark.parametrize(
    "limits",
    [
        {"bulk_bytes_max": 10, "array_items_max": 3, "inline_bytes_max": 40},  # limits hit
        {},  # the defaults: the short forms for 2 and 3 arguments run
    ],
)
@given(st.lists(_PIECES, max_size=12), st.data())
def test_fast_path_agrees_with_the_positional_parser_on_any_split(
    limits: dict[str, int], pieces: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(pieces)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    bounds = [0, *cuts, len(stream)]
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    fast = _feed_all(RespParser(**limits), chunks)
    reference = _feed_all(_PositionalParser(**limits), chunks)
    assert fast == reference


def test_fast_path_parses_a_pipelined_buffer_and_keeps_the_partial_tail() -> None:
    parser = RespParser()
    commands = [[b"SET", b"key:%d" % i, b"v" * 128] for i in range(32)]
    stream = b"".join(encode_command(*c) for c in commands)
    assert parser.feed(stream[:-10]) == commands[:-1]
    assert parser.feed(stream[-10:]) == commands[-1:]


def test_a_partial_command_is_never_parsed_again_from_its_start() -> None:
    # A million empty arguments (6 MB) in 64 KiB pieces: each completed argument leaves the
    # buffer at once, so what stays buffered is at most one piece, however long the command.
    count = 1_000_000
    stream = b"*%d\r\n" % count + b"$0\r\n\r\n" * count
    parser = RespParser()
    commands: list[list[bytes]] = []
    piece_bytes = 64 * 1024
    for start in range(0, len(stream), piece_bytes):
        commands += parser.feed(stream[start : start + piece_bytes])
        assert len(parser._buffer) <= piece_bytes
    assert commands == [[b""] * count]
    assert parser.buffered_bytes == 0


def test_a_command_over_its_byte_bound_is_refused_before_it_is_buffered() -> None:
    parser = RespParser(bulk_bytes_max=100, command_bytes_max=1000)
    first = encode_command(b"SET", b"k", b"v" * 90)  # 3 arguments, each within the bound
    assert parser.feed(first) == [[b"SET", b"k", b"v" * 90]]
    with pytest.raises(CommandTooLarge) as caught:
        parser.feed(b"*20\r\n" + b"$100\r\n" + b"x" * 100 + b"\r\n" + b"$100\r\n" * 1)
        parser.feed(b"x" * 100 + b"\r\n" + (b"$100\r\n" + b"x" * 100 + b"\r\n") * 10)
    assert caught.value.command_bytes_max == 1000
    assert parser.error is caught.value
    assert parser.buffered_bytes == 0


def test_many_empty_arguments_count_against_the_command_bound() -> None:
    parser = RespParser(command_bytes_max=64 * 1000)
    with pytest.raises(CommandTooLarge):
        parser.feed(b"*2000\r\n" + b"$0\r\n\r\n" * 2000)


@given(
    st.lists(st.lists(st.binary(max_size=8), min_size=1, max_size=300), max_size=4),
    st.lists(st.integers(1, 64), min_size=1, max_size=50),
)
def test_long_commands_in_any_pieces_parse_as_sent(
    commands: list[list[bytes]], piece_sizes: list[int]
) -> None:
    stream = b"".join(encode_command(*c) for c in commands)
    parser = RespParser()
    got: list[list[bytes]] = []
    position, turn = 0, 0
    while position < len(stream):
        size = piece_sizes[turn % len(piece_sizes)]
        got += parser.feed(stream[position : position + size])
        position, turn = position + size, turn + 1
    assert got == commands
    assert parser.buffered_bytes == 0
