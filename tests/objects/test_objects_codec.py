"""The wire form of calls and results: round trips, encodability checked at call time, sets
encoded the same whatever the hash seed."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest

from pypaxos.objects import (
    Call,
    NotEncodable,
    Raised,
    Rejected,
    Returned,
    SessionExpired,
    Stale,
    decode_call,
    decode_result,
    encode_call,
)
from pypaxos.objects.codec import UNENCODABLE_RESULT, canonical, encode_result, returned


class Point(msgspec.Struct):
    x: int
    y: int


def test_a_call_round_trips_with_its_session_target_and_clock() -> None:
    data = encode_call(
        7, 3, "move", (Point(1, 2), [1, 2]), {"fast": True}, target="robot", now_ms=99
    )
    call = decode_call(data)
    assert call == Call(7, 3, "move", ({"x": 1, "y": 2}, [1, 2]), {"fast": True}, "robot", 99)


def test_an_argument_msgspec_cannot_encode_fails_at_call_time_naming_it() -> None:
    with pytest.raises(NotEncodable) as caught:
        encode_call(1, 1, "store", (1, object()))
    assert "argument 1 of store()" in str(caught.value)
    with pytest.raises(NotEncodable) as caught:
        encode_call(1, 1, "store", (), {"when": object()})
    assert "'when'" in str(caught.value)


@pytest.mark.parametrize(
    "result",
    [
        Returned([1, "a", None]),
        Raised("KeyError", "'x'"),
        Rejected("malformed"),
        Stale(4),
        SessionExpired(),
    ],
)
def test_every_result_round_trips(result: object) -> None:
    assert decode_result(encode_result(result)) == result  # type: ignore[arg-type]


def test_undecodable_bytes_are_a_value_error_not_a_crash() -> None:
    for data in (b"", b"\xc1", msgspec.msgpack.encode(["call", "x"]), msgspec.msgpack.encode(5)):
        with pytest.raises(ValueError):
            decode_call(data)
        with pytest.raises(ValueError):
            decode_result(data)


def test_sets_are_encoded_sorted_so_the_bytes_do_not_depend_on_iteration_order() -> None:
    forwards = {f"tag-{i}" for i in range(50)}
    backwards = set()
    for i in reversed(range(50)):
        backwards.add(f"tag-{i}")
    assert canonical({"s": forwards}) == canonical({"s": backwards})
    assert canonical({"s": forwards})["s"] == sorted(forwards, key=msgspec.msgpack.encode)
    assert canonical([{1, 2}, (frozenset({"b", "a"}),)]) == [[1, 2], [["a", "b"]]]


def test_dicts_keep_their_insertion_order() -> None:
    assert list(canonical({"b": 1, "a": {2}})) == ["b", "a"]


def test_an_unencodable_return_value_becomes_a_raised_result() -> None:
    @dataclasses.dataclass
    class Holder:
        thing: object

    result = decode_result(returned(Holder(object())))
    assert isinstance(result, Raised) and result.type_name == UNENCODABLE_RESULT
    assert decode_result(returned({"ok": (1, 2)})) == Returned({"ok": [1, 2]})


def test_deeply_nested_arguments_are_refused_the_same_way_everywhere() -> None:
    from pypaxos.objects.codec import ARGUMENT_DEPTH_MAX

    def nested(depth: int) -> object:
        value: object = 1
        for _ in range(depth):
            value = [value]
        return value

    decode_call(encode_call(1, 1, "f", (nested(ARGUMENT_DEPTH_MAX - 2),)))
    for depth in (ARGUMENT_DEPTH_MAX, 5_000):
        # ["call", 1, 1, "f", [[[...1...]]], {}, "", 0], written by hand: too deep to encode
        argument = b"\x91" * depth + b"\x01"
        data = b"\x98\xa4call\x01\x01\xa1f\x91" + argument + b"\x80\xa0\x00"
        with pytest.raises(ValueError):
            decode_call(data)


def test_a_return_value_too_deep_to_encode_is_a_raised_result() -> None:
    value: list[object] = []
    for _ in range(100_000):
        value = [value]
    result = decode_result(returned(value))
    assert isinstance(result, Raised) and result.type_name == UNENCODABLE_RESULT
