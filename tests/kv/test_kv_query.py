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


def test_last_seq_names_an_open_session_and_forgets_an_expired_one() -> None:
    machine = KVStateMachine(session_ttl_commands=2)
    assert machine.last_seq(7) is None  # never opened
    machine.apply(encode_request(Request(7, 1, Set(b"k", b"v"))))
    machine.apply(encode_request(Request(7, 4, Set(b"k", b"w"))))
    assert machine.last_seq(7) == 4
    machine.query(encode_request(Request(7, 5, Get(b"k"))))
    assert machine.last_seq(7) == 4  # a query leaves the session as it was
    for seq in (1, 2):
        machine.apply(encode_request(Request(8, seq, Set(b"o", b"x"))))
    assert machine.last_seq(7) is None and machine.last_seq(8) == 2  # 7 expired
