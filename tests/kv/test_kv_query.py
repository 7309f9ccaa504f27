"""``KVStateMachine.query``: the read-only path of read-index reads changes nothing."""

from __future__ import annotations

from pypaxos.kv import (
    Error,
    Get,
    KVStateMachine,
    Request,
    RequestBatch,
    Results,
    Set,
    Value,
    decode_answer,
    encode_request,
)


def test_query_answers_gets_like_apply_without_touching_sessions_or_the_count() -> None:
    machine = KVStateMachine()
    machine.apply(encode_request(Request(7, 1, Set(b"k", b"v"))))
    before = (machine.applied, machine.sessions(), machine.snapshot())
    assert decode_answer(machine.query(encode_request(Request(0, 0, Get(b"k"))))) == Value(b"v")
    batch = RequestBatch(0, 0, (Get(b"k"), Get(b"absent")))
    assert decode_answer(machine.query(encode_request(batch))) == Results(
        (Value(b"v"), Value(None))
    )
    assert (machine.applied, machine.sessions(), machine.snapshot()) == before


def test_query_refuses_writes_and_garbage_and_changes_nothing() -> None:
    machine = KVStateMachine()
    write = encode_request(Request(7, 1, Set(b"k", b"v")))
    mixed = encode_request(RequestBatch(7, 1, (Get(b"k"), Set(b"k", b"v"))))
    for command in (write, mixed, b"\xc1garbage"):
        assert isinstance(decode_answer(machine.query(command)), Error)
    assert machine.get(b"k") is None and machine.applied == 0
