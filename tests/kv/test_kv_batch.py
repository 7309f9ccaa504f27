"""``RequestBatch``: several commands as one exactly-once request (what a pipelining
connection's commands become).  A batch must behave exactly like its commands sent one by one,
in order, and be answered (or replayed to a retry) as one."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kv_model import OPS

from pypaxos.kv import (
    Command,
    Error,
    Get,
    Incr,
    KVStateMachine,
    Ok,
    Request,
    RequestBatch,
    Results,
    SessionExpired,
    Stale,
    decode_answer,
    decode_entry,
    decode_result,
    encode_request,
    encode_result,
)
from pypaxos.kv.state_machine import ALL_OK_CACHE_MAX, encode_results


@pytest.mark.parametrize("digest", [True, False])
@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(OPS, min_size=1, max_size=8), min_size=1, max_size=6))
def test_a_batch_is_its_commands_one_by_one(digest: bool, batches: list[list[Command]]) -> None:
    # Without a digest the batch loop skips the digest's marks: the state must not care.
    batched = KVStateMachine(state_digest=digest)
    single = KVStateMachine(state_digest=digest)
    seq = 0
    for number, ops in enumerate(batches, start=1):
        answer = decode_answer(batched.apply(encode_request(RequestBatch(7, number, tuple(ops)))))
        expected = []
        for op in ops:
            seq += 1
            expected.append(decode_result(single.apply(encode_request(Request(9, seq, op)))))
        assert answer == Results(tuple(expected))
    for key in (b"a", b"b", b"c"):
        assert batched.get(key) == single.get(key)
    assert batched.commands_executed == single.commands_executed == seq


def test_a_retried_batch_is_answered_from_the_session_and_not_applied_again() -> None:
    machine = KVStateMachine()
    batch = encode_request(RequestBatch(5, 1, (Incr(b"n"), Incr(b"n"), Get(b"n"))))
    first = machine.apply(batch)
    assert machine.apply(batch) == first  # the retry: same bytes, nothing applied
    assert machine.get(b"n") == b"2"
    answer = decode_answer(first)
    assert isinstance(answer, Results) and len(answer.results) == 3
    later = encode_request(RequestBatch(5, 2, (Incr(b"n"),)))
    machine.apply(later)
    assert decode_answer(machine.apply(batch)) == Stale(2)
    assert decode_answer(machine.apply(encode_request(RequestBatch(6, 3, ())))) == (
        SessionExpired()
    )
    assert isinstance(decode_entry(batch), RequestBatch)


@pytest.mark.parametrize("count", [1, 16, ALL_OK_CACHE_MAX, ALL_OK_CACHE_MAX + 1])
def test_the_answer_of_a_batch_of_oks_is_its_encoding(count: int) -> None:
    oks = (Ok(),) * count
    assert encode_results(oks) == encode_result(Results(oks))
    assert encode_results(oks) == encode_result(Results(oks))  # again, from the cache if kept
    mixed = (*oks[:-1], Error("no"))
    assert encode_results(mixed) == encode_result(Results(mixed))
    assert decode_answer(encode_results(mixed)) == Results(mixed)
