"""Each command's semantics, integer parsing, and the wire encoding."""

from __future__ import annotations

import msgspec
import pytest

from pypaxos.kv import (
    NOOP,
    Cas,
    Command,
    Delete,
    Error,
    Get,
    Incr,
    Integer,
    KVStateMachine,
    Mismatch,
    NoOp,
    Ok,
    Request,
    Result,
    Results,
    Set,
    Value,
    commands,
    decode_answer,
    decode_entry,
    decode_request,
    decode_result,
    encode_request,
    encode_result,
    parse_int64,
)
from pypaxos.kv.commands import INT64_MAX, INT64_MIN, MALFORMED, NOT_AN_INTEGER, OVERFLOW


class Client:
    """One well-behaved client: a fresh seq for every command."""

    def __init__(self, machine: KVStateMachine, client_id: int = 1) -> None:
        self.machine = machine
        self.client_id = client_id
        self.seq = 0

    def __call__(self, op: Command) -> Result:
        self.seq += 1
        return decode_result(
            self.machine.apply(encode_request(Request(self.client_id, self.seq, op)))
        )


@pytest.fixture
def kv() -> Client:
    return Client(KVStateMachine())


def test_get_of_absent_key_is_none(kv: Client) -> None:
    assert kv(Get(b"k")) == Value(None)


def test_set_then_get(kv: Client) -> None:
    assert kv(Set(b"k", b"v1")) == Ok()
    assert kv(Set(b"k", b"v2")) == Ok()
    assert kv(Get(b"k")) == Value(b"v2")
    assert kv(Get(b"other")) == Value(None)


def test_values_are_binary_safe(kv: Client) -> None:
    blob = bytes(range(256))
    kv(Set(b"\x00\xff", blob))
    assert kv(Get(b"\x00\xff")) == Value(blob)


def test_delete_reports_whether_the_key_existed(kv: Client) -> None:
    kv(Set(b"k", b"v"))
    assert kv(Delete(b"k")) == Integer(1)
    assert kv(Get(b"k")) == Value(None)
    assert kv(Delete(b"k")) == Integer(0)


def test_incr_starts_from_zero_and_stores_decimal(kv: Client) -> None:
    assert kv(Incr(b"n")) == Integer(1)
    assert kv(Incr(b"n")) == Integer(2)
    assert kv(Get(b"n")) == Value(b"2")


def test_incr_works_on_a_set_integer_including_negative(kv: Client) -> None:
    kv(Set(b"n", b"-2"))
    assert kv(Incr(b"n")) == Integer(-1)
    assert kv(Incr(b"n")) == Integer(0)
    assert kv(Get(b"n")) == Value(b"0")


@pytest.mark.parametrize("stored", [b"abc", b"007", b"+1", b" 1", b"1.5", b"-0", b"", b"1 "])
def test_incr_of_a_non_integer_is_refused_and_changes_nothing(kv: Client, stored: bytes) -> None:
    kv(Set(b"n", stored))
    assert kv(Incr(b"n")) == Error(NOT_AN_INTEGER)
    assert kv(Get(b"n")) == Value(stored)


def test_incr_overflow_is_refused(kv: Client) -> None:
    kv(Set(b"n", b"%d" % (INT64_MAX - 1)))
    assert kv(Incr(b"n")) == Integer(INT64_MAX)
    assert kv(Incr(b"n")) == Error(OVERFLOW)
    assert kv(Get(b"n")) == Value(b"%d" % INT64_MAX)


def test_cas_swaps_only_on_match(kv: Client) -> None:
    kv(Set(b"k", b"a"))
    assert kv(Cas(b"k", b"b", b"c")) == Mismatch(b"a")
    assert kv(Get(b"k")) == Value(b"a")
    assert kv(Cas(b"k", b"a", b"c")) == Ok()
    assert kv(Get(b"k")) == Value(b"c")


def test_cas_with_expected_none_means_must_be_absent(kv: Client) -> None:
    assert kv(Cas(b"k", None, b"first")) == Ok()
    assert kv(Cas(b"k", None, b"second")) == Mismatch(b"first")
    assert kv(Get(b"k")) == Value(b"first")
    assert kv(Cas(b"gone", b"x", b"y")) == Mismatch(None)
    assert kv(Get(b"gone")) == Value(None)


def test_noop_in_a_request_and_bare(kv: Client) -> None:
    kv(Set(b"k", b"v"))
    before = kv.machine.snapshot()
    assert decode_result(kv.machine.apply(NOOP)) == Ok()
    assert decode_result(kv.machine.apply(b"")) == Ok()
    assert kv.machine.applied == 3
    assert kv(NoOp()) == Ok()
    assert kv(Get(b"k")) == Value(b"v")
    assert before != kv.machine.snapshot()  # the applied count moved, nothing else


def test_malformed_command_is_a_deterministic_error_not_an_exception() -> None:
    machine = KVStateMachine()
    for junk in (b"garbage", b"\x93\xa3req\x01", encode_result(Ok()), b"\xc1"):
        assert decode_result(machine.apply(junk)) == Error(MALFORMED)
    assert machine.applied == 4
    assert machine.sessions() == ()


@pytest.mark.parametrize(
    ("text", "number"),
    [
        (b"0", 0),
        (b"1", 1),
        (b"-1", -1),
        (b"9223372036854775807", INT64_MAX),
        (b"-9223372036854775808", INT64_MIN),
        (b"9223372036854775808", None),
        (b"-9223372036854775809", None),
        (b"99999999999999999999", None),
        (b"-0", None),
        (b"01", None),
        (b"+1", None),
        (b"", None),
        (b"-", None),
        (b"1e3", None),
        (b"\xd9\xa1", None),  # Arabic-Indic digit one: int() would accept it as text
        (b"1\n", None),
    ],
)
def test_parse_int64(text: bytes, number: int | None) -> None:
    assert parse_int64(text) == number


@pytest.mark.parametrize(
    "op",
    [
        Get(b"k"),
        Set(b"k", b"v"),
        Delete(b"k"),
        Incr(b"k"),
        Cas(b"k", None, b"v"),
        Cas(b"k", b"a", b"b"),
        NoOp(),
    ],
)
def test_request_round_trip(op: Command) -> None:
    request = Request(client_id=2**63, seq=7, op=op)
    data = encode_request(request)
    assert decode_request(data) == request
    assert decode_entry(data) == request


def test_decode_rejects_junk_and_wrong_types() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_request(b"junk")
    with pytest.raises(msgspec.DecodeError):
        decode_request(NOOP)  # a bare NoOp is a log entry, not a request
    with pytest.raises(msgspec.DecodeError):
        decode_result(encode_request(Request(1, 1, Get(b"k"))))


@pytest.mark.parametrize(
    "result",
    [Ok(), Value(None), Value(b"x"), Integer(-3), Mismatch(None), Mismatch(b"y"), Error("e")],
)
def test_result_round_trip(result: Result) -> None:
    assert decode_result(encode_result(result)) == result


def test_short_answers_are_decoded_once_and_long_or_bad_ones_every_time() -> None:
    commands._ANSWER_CACHE.clear()
    oks = encode_result(Results((Ok(),) * 16))
    first, second = decode_answer(oks), decode_answer(bytes(oks))  # equal bytes, other object
    assert first == Results((Ok(),) * 16) and second is first
    long_value = encode_result(Value(b"v" * commands.ANSWER_CACHE_BYTES_MAX))
    assert decode_answer(long_value) == Value(b"v" * commands.ANSWER_CACHE_BYTES_MAX)
    assert long_value not in commands._ANSWER_CACHE
    with pytest.raises(msgspec.DecodeError):
        decode_answer(b"\xc1")
    for n in range(commands.ANSWER_CACHE_ENTRIES + 10):  # bounded: starts over when full
        assert decode_answer(encode_result(Integer(n))) == Integer(n)
    assert len(commands._ANSWER_CACHE) <= commands.ANSWER_CACHE_ENTRIES
