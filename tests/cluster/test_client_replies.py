"""The client's RESP2 reply parser and INFO parsing (no sockets)."""

from __future__ import annotations

import pytest

from pypaxos.client.replies import (
    ErrorReply,
    ReplyParser,
    ReplyProtocolError,
    Simple,
    parse_info,
)


def test_every_reply_kind() -> None:
    data = (
        b"+OK\r\n-TRYAGAIN no leader\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n$1\r\na\r\n$-1\r\n*-1\r\n"
    )
    replies = ReplyParser().feed(data)
    assert replies == [
        Simple("OK"),
        ErrorReply("TRYAGAIN", "no leader"),
        42,
        b"abc",
        None,
        [b"a", None],
        None,
    ]
    assert isinstance(replies[0], Simple)


def test_replies_split_at_every_byte_come_out_whole() -> None:
    data = b"*3\r\n:1\r\n*1\r\n+x\r\n$5\r\nhe\r\nl\r\n:-7\r\n"
    parser = ReplyParser()
    replies = []
    for i in range(len(data)):
        replies += parser.feed(data[i : i + 1])
    assert replies == [[1, [Simple("x")], b"he\r\nl"], -7]
    assert parser.pending_bytes == 0


@pytest.mark.parametrize(
    "data",
    [b"?what\r\n", b":notanumber\r\n", b"$3\r\nabcd\r\n", b"$-5\r\n", b"*-2\r\n"],
)
def test_garbage_is_a_protocol_error(data: bytes) -> None:
    with pytest.raises(ReplyProtocolError):
        ReplyParser().feed(data)


def test_limits_are_checked_before_buffering() -> None:
    with pytest.raises(ReplyProtocolError):
        ReplyParser(bulk_bytes_max=10).feed(b"$11\r\n")
    with pytest.raises(ReplyProtocolError):
        ReplyParser().feed(b"+" + b"x" * 70_000)


def test_parse_info_skips_headers_and_keeps_colons_in_values() -> None:
    text = (
        b"# Paxos\r\nnode_id:2\r\npaxos_role:follower\r\nleader_id:\r\n"
        b"leader_client:127.0.0.1:7001\r\n"
    )
    assert parse_info(text) == {
        "node_id": "2",
        "paxos_role": "follower",
        "leader_id": "",
        "leader_client": "127.0.0.1:7001",
    }
