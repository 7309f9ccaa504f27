"""The client connection's inlined fast path agrees with ``plan`` at the size bounds.

``RespConnection.data_received`` inlines ``commands.plain_single`` for ``GET``/``SET``/``INCR``
(the hot loop of a pipelining client); these tests drive a connection without a network or a
cluster (a router that applies each request to a ``KVStateMachine`` at once) and check that
commands at the fast path's size bound, just over it (handed to ``plan``) and over ``plan``'s
own bound all get ``plan``'s answers, in order, in one pipeline.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from connection_fakes import Collecting

from pypaxos.kv import Error, KVStateMachine, Ok, Results, decode_answer
from pypaxos.runtime.plans import KEY_BYTES_MAX
from pypaxos.runtime.router import Outcome
from pypaxos.runtime.server import RespConnection, RespServer
from pypaxos.transport.resp import encode_command


class ApplyingRouter:
    """Applies each submitted request to one state machine, answering at ``drain``."""

    def __init__(self) -> None:
        self.machine = KVStateMachine()
        self.queue: list[tuple[bytes, Callable[[Outcome], None]]] = []

    def submit(self, command: bytes, done: Callable[[Outcome], None]) -> None:
        self.queue.append((command, done))

    def drain(self) -> None:
        queue, self.queue = self.queue, []
        for command, done in queue:
            done(decode_answer(self.machine.apply(command)))


@pytest.mark.asyncio
async def test_commands_at_and_over_the_key_bound_in_one_pipeline() -> None:
    router = ApplyingRouter()
    server = RespServer(router, lambda section: "", "127.0.0.1:0")  # type: ignore[arg-type]
    connection = RespConnection(server)
    transport = Collecting()
    connection.connection_made(transport)  # type: ignore[arg-type]
    at_limit = b"v" * (KEY_BYTES_MAX - len(b"SET") - 1)  # name + key + value == the bound
    pipeline = [
        encode_command("SET", b"k", at_limit),
        encode_command("SET", b"k", at_limit + b"v"),  # one byte over: the general path
        encode_command("GET", b"g" * (KEY_BYTES_MAX - len(b"GET"))),
        encode_command("GET", b"g" * (KEY_BYTES_MAX - len(b"GET") + 1)),  # the general path
        encode_command("GET", b"g" * (KEY_BYTES_MAX + 1)),  # over plan's own bound
        encode_command("GET", b"k"),
        encode_command("INCR", b"n"),
    ]
    connection.data_received(b"".join(pipeline))
    for _ in range(3):  # two requests (the refused GET splits the pipeline): answer, write
        router.drain()
        await asyncio.sleep(0)  # the connection writes its replies from a loop callback
    value_header = b"$" + str(len(at_limit) + 1).encode()
    assert bytes(transport.out).split(b"\r\n") == [
        b"+OK",
        b"+OK",  # values may be longer than keys (VALUE_BYTES_MAX): plan takes it
        b"$-1",
        b"$-1",
        b"-ERR key too large (%d bytes, limit %d)" % (KEY_BYTES_MAX + 1, KEY_BYTES_MAX),
        value_header,
        at_limit + b"v",
        b":1",
        b"",
    ]
    assert router.machine.commands_executed == 6  # the refused GET never reached the log


class AnsweringRouter:
    """Answers every request with ``answer``, whatever it holds (a planted reply)."""

    def __init__(self, answer: Outcome) -> None:
        self.answer = answer
        self.waiting: list[Callable[[Outcome], None]] = []

    def submit(self, command: bytes, done: Callable[[Outcome], None]) -> None:
        self.waiting.append(done)

    def drain(self) -> None:
        waiting, self.waiting = self.waiting, []
        for done in waiting:
            done(self.answer)


async def _pipeline_replies(router: ApplyingRouter | AnsweringRouter, pipeline: bytes) -> bytes:
    server = RespServer(router, lambda section: "", "127.0.0.1:0")  # type: ignore[arg-type]
    connection = RespConnection(server)
    transport = Collecting()
    connection.connection_made(transport)  # type: ignore[arg-type]
    connection.data_received(pipeline)
    router.drain()
    await asyncio.sleep(0)  # the connection writes its replies from a loop callback
    return bytes(transport.out)


@pytest.mark.asyncio
async def test_a_group_of_sets_is_answered_ok_each_in_upper_and_lower_case() -> None:
    router = ApplyingRouter()
    names = ["SET", "set", "SET", "set"]
    sets = [encode_command(name, b"k%d" % n, b"v%d" % n) for n, name in enumerate(names)]
    sets.append(encode_command("Set", b"k9", b"v9"))  # mixed case: the general path's reply
    replies = await _pipeline_replies(router, b"".join(sets))
    assert replies == b"+OK\r\n" * 5
    assert [router.machine.get(b"k%d" % n) for n in (0, 3, 9)] == [b"v0", b"v3", b"v9"]


@pytest.mark.asyncio
async def test_a_group_of_sets_with_one_result_not_ok_is_answered_one_by_one() -> None:
    answer = Results((Ok(), Error("planted"), Ok()))
    pipeline = b"".join(encode_command("SET", b"k%d" % n, b"v") for n in range(3))
    replies = await _pipeline_replies(AnsweringRouter(answer), pipeline)
    assert replies == b"+OK\r\n-ERR planted\r\n+OK\r\n"
