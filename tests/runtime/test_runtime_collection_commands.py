"""The collection commands' planning (``runtime.collection_commands``), without a server."""

from __future__ import annotations

import pytest

from pypaxos.kv import READ_OPS
from pypaxos.kv.collection_ops import HSet, LPopFirst, ZRangeByScore
from pypaxos.runtime import admin_commands, commands
from pypaxos.runtime.auth import Access
from pypaxos.runtime.blocking import BLOCKING_PLANNERS, Blocking
from pypaxos.runtime.collection_commands import COLLECTION_COMMANDS
from pypaxos.runtime.commands import plan, required_access, single_reply
from pypaxos.runtime.plans import Immediate, Ops


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ([b"HSET", b"h", b"f"], b"-ERR wrong number of arguments for 'hset' command\r\n"),
        (
            [b"HSET", b"h", b"f", b"v", b"g"],
            b"-ERR wrong number of arguments for 'hset' command\r\n",
        ),
        ([b"LPOP", b"l", b"1", b"2"], b"-ERR wrong number of arguments for 'lpop' command\r\n"),
        (
            [b"ZADD", b"z", b"NX", b"XX", b"1", b"m"],
            b"-ERR XX and NX options at the same time are not compatible\r\n",
        ),
        ([b"ZADD", b"z", b"nan", b"m"], b"-ERR value is not a valid float\r\n"),
        ([b"ZRANGEBYSCORE", b"z", b"x", b"1"], b"-ERR min or max is not a float\r\n"),
        ([b"BLPOP", b"l", b"-1"], b"-ERR timeout is negative\r\n"),
        ([b"SPOP", b"s", b"-1"], b"-ERR value is out of range, must be positive\r\n"),
    ],
)
def test_argument_errors_are_answered_before_the_log(args: list[bytes], error: bytes) -> None:
    planned = plan(args)
    assert isinstance(planned, Immediate) and planned.reply == error


def test_each_command_becomes_one_log_command_and_reads_are_reads() -> None:
    hset = plan([b"HSET", b"h", b"f", b"v"])
    assert isinstance(hset, Ops) and hset.ops == (HSet(b"h", ((b"f", b"v"),)),)
    assert required_access(b"HSET", hset) is Access.WRITE
    zrange = plan([b"ZRANGE", b"z", b"(1", b"+inf", b"BYSCORE"])
    assert isinstance(zrange, Ops) and isinstance(zrange.ops[0], ZRangeByScore)
    assert isinstance(zrange.ops[0], READ_OPS)
    assert required_access(b"ZRANGE", zrange) is Access.READ
    blocking = plan([b"BLPOP", b"a", b"b", b"0"])
    assert isinstance(blocking, Blocking) and blocking.ops == (LPopFirst((b"a", b"b")),)
    assert required_access(b"BLPOP", blocking) is Access.WRITE  # it pops
    assert set(BLOCKING_PLANNERS) <= set(admin_commands.ADMIN)
    assert not set(COLLECTION_COMMANDS) & set(admin_commands.ADMIN)


def test_per_command_combines_do_not_grow_the_reply_cache_without_bound() -> None:
    """Plans whose combine closes over their arguments (``HRANDFIELD h 5``) make a new
    function per command; the server's cache of single-op replies must stay bounded."""
    for count in range(3 * commands.SINGLE_CACHE_MAX):
        planned = plan([b"HRANDFIELD", b"h", b"%d" % count])
        assert isinstance(planned, Ops)
        single_reply(planned.combine)
    assert len(commands._SINGLE) <= commands.SINGLE_CACHE_MAX
    first = plan([b"ZRANGE", b"z", b"0", b"1", b"WITHSCORES"])
    second = plan([b"ZRANGE", b"y", b"0", b"1", b"WITHSCORES"])
    assert isinstance(first, Ops) and isinstance(second, Ops)
    assert first.combine is second.combine  # a fixed combine: cached once
