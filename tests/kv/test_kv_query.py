"""``KVStateMachine.query``: the read-only path of read-index reads changes nothing."""

from __future__ import annotations

from pypaxos.kv import (
    DbSize,
    Error,
    Expire,
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
from pypaxos.kv.collection_ops import HSet


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


def test_a_batch_of_gets_answers_as_the_general_read_path_does() -> None:
    """``query`` answers a batch of plain ``GET`` s straight from the store; a batch with one
    other read in it takes the general path, so each prefix must be answered the same."""
    machine = KVStateMachine()
    machine.apply(encode_request(Request(7, 1, Set(b"string", b"v"), now_ms=1_000)))
    machine.apply(encode_request(Request(7, 2, Set(b"expiring", b"e"), now_ms=1_000)))
    machine.apply(encode_request(Request(7, 3, Expire(b"expiring", 500), now_ms=1_000)))
    machine.apply(encode_request(Request(7, 4, HSet(b"hash", ((b"f", b"x"),)), now_ms=1_000)))
    keys = (b"string", b"absent", b"expiring", b"hash")
    for now_ms in (1_200, 1_600):  # before and after the deadline
        for count in range(1, len(keys) + 1):
            gets = tuple(Get(key) for key in keys[:count])
            fast = decode_answer(machine.query(encode_request(RequestBatch(0, 0, gets, now_ms))))
            general = RequestBatch(0, 0, (*gets, DbSize()), now_ms)
            answer = decode_answer(machine.query(encode_request(general)))
            assert isinstance(fast, Results) and isinstance(answer, Results)
            assert fast.results == answer.results[:count]
    expected = (Value(b"v"), Value(None), Value(None))
    answer = decode_answer(
        machine.query(
            encode_request(
                RequestBatch(0, 0, (Get(b"string"), Get(b"absent"), Get(b"expiring")), 1_600)
            )
        )
    )
    assert isinstance(answer, Results) and answer.results == expected
    wrong = decode_answer(machine.query(encode_request(RequestBatch(0, 0, (Get(b"hash"),)))))
    assert isinstance(wrong, Results) and isinstance(wrong.results[0], Error)
