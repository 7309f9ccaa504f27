"""The caller's side: ``Caller`` checks and numbers calls, ``Stub`` makes them look local.

Here ``submit`` applies to one machine directly (what the runtime will do through the log)."""

from __future__ import annotations

import asyncio

import pytest

from pypaxos.objects import (
    AsyncStub,
    Caller,
    CallRejected,
    CommandRaised,
    Dict,
    List,
    NotACommand,
    NotEncodable,
    ObjectMachine,
    SessionLost,
    StaleCall,
    Stub,
    unwrap,
)
from pypaxos.objects.codec import Rejected, SessionExpired, Stale, encode_result


def local_stub(machine: ObjectMachine, client_id: int = 1) -> tuple[Stub, list[bool]]:
    reads: list[bool] = []

    def submit(command: bytes, read: bool) -> bytes:
        reads.append(read)
        return machine.query(command) if read else machine.apply(command)

    return Stub(Caller(Dict, client_id), submit, lambda: 0), reads


def test_a_stub_reads_like_the_object() -> None:
    machine = ObjectMachine(Dict())
    stub, reads = local_stub(machine)
    stub.set("a", 1)
    stub.set("b", [1, 2])
    assert stub.get("a") == 1 and stub.keys() == ["a", "b"]
    assert reads == [False, False, True, True]
    assert [s.last_seq for s in machine.sessions()] == [2]  # reads take no seq


def test_calls_are_checked_before_anything_is_sent() -> None:
    stub, reads = local_stub(ObjectMachine(Dict()))
    with pytest.raises(TypeError):
        stub.set("a")
    with pytest.raises(NotEncodable):
        stub.set("a", object())
    with pytest.raises(AttributeError):
        stub.missing()
    with pytest.raises(NotACommand):
        Caller(Dict, 1).encode("missing")
    assert reads == []


def test_unwrap_turns_each_result_into_its_error() -> None:
    with pytest.raises(CallRejected) as rejected:
        unwrap(encode_result(Rejected("unknown method", "x")))
    assert rejected.value.reason == "unknown method" and rejected.value.detail == "x"
    with pytest.raises(StaleCall):
        unwrap(encode_result(Stale(3)))
    with pytest.raises(SessionLost):
        unwrap(encode_result(SessionExpired()))


def test_an_exception_in_the_command_is_raised_in_the_caller() -> None:
    machine = ObjectMachine(List())
    stub = Stub(Caller(List, 1), lambda command, read: machine.apply(command), lambda: 0)
    with pytest.raises(CommandRaised) as caught:
        stub.pop()
    assert caught.value.type_name == "IndexError"
    assert machine.applied == 1  # applied on every replica, and raised in the caller


def test_renew_starts_a_new_session() -> None:
    caller = Caller(Dict, 1)
    caller.encode("set", ("a", 1))
    caller.renew(9)
    assert caller.client_id == 9 and caller.seq == 0


def test_the_async_stub() -> None:
    machine = ObjectMachine(Dict())

    async def submit(command: bytes, read: bool) -> bytes:
        await asyncio.sleep(0)
        return machine.query(command) if read else machine.apply(command)

    async def scenario() -> list[object]:
        stub = AsyncStub(Caller(Dict, 1), submit, lambda: 0)
        await stub.set("a", 1)
        return [await stub.get("a"), await stub.size()]

    assert asyncio.run(scenario()) == [1, 1]
