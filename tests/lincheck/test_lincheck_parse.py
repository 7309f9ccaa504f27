"""Parsing JSON Lines histories: pairing, normalisation, and errors that name the line."""

from __future__ import annotations

import json

import pytest

from pypaxos.lincheck.wgl import parse_history


def lines(*events: dict[str, object]) -> list[str]:
    return [json.dumps(e) + "\n" for e in events]


def ev(process: object, kind: str, f: str, value: object = None, key: object = "k") -> dict:
    return {"process": process, "type": kind, "f": f, "key": key, "value": value}


def test_pairs_invocations_with_completions_in_invocation_order() -> None:
    history = parse_history(
        lines(
            ev(1, "invoke", "write", "a"),
            ev(2, "invoke", "read"),
            ev(2, "ok", "read", "a"),
            ev(1, "ok", "write", "a"),
        )
    )
    write, read = history.operations
    assert (write.index, write.f, write.value, write.invoke_line, write.complete_line) == (
        0,
        "write",
        "a",
        1,
        4,
    )
    assert (read.index, read.f, read.value, read.invoke_line, read.complete_line) == (
        1,
        "read",
        "a",
        2,
        3,
    )
    assert write.status == read.status == "ok"


def test_fail_is_dropped_and_counted_info_and_unfinished_are_open() -> None:
    history = parse_history(
        lines(
            ev(1, "invoke", "cas", ["a", "b"]),
            ev(1, "fail", "cas", ["a", "b"]),
            ev(2, "invoke", "write", "x"),
            ev(2, "info", "write", "x"),
            ev(3, "invoke", "incr"),
        )
    )
    assert history.failed == 1
    assert [(op.f, op.status, op.complete_line) for op in history.operations] == [
        ("write", "info", None),
        ("incr", "info", None),
    ]


def test_integers_become_decimal_strings_and_cas_keeps_both_values() -> None:
    history = parse_history(
        lines(
            ev(1, "invoke", "cas", [None, 5], key=7),
            ev(1, "ok", "cas", [None, 5], key=7),
            ev(1, "invoke", "incr", key=7),
            ev(1, "ok", "incr", "6", key=7),
        )
    )
    cas, incr = history.operations
    assert (cas.key, cas.expected, cas.value) == ("7", None, "5")
    assert incr.value == "6"
    assert history.keys() == ("7",)


def test_blank_lines_and_nemesis_events_are_skipped() -> None:
    text = lines(
        ev(1, "invoke", "write", "a"),
        {"process": "nemesis", "type": "info", "f": "start", "value": "partition"},
    )
    history = parse_history(["\n", *text, "   \n", *lines(ev(1, "ok", "write", "a"))])
    assert [(op.invoke_line, op.complete_line) for op in history.operations] == [(2, 5)]


def test_a_process_may_invoke_again_after_an_info() -> None:
    history = parse_history(
        lines(
            ev(1, "invoke", "write", "a"),
            ev(1, "info", "write", "a"),
            ev(1, "invoke", "read"),
            ev(1, "ok", "read", "a"),
        )
    )
    assert [op.status for op in history.operations] == ["info", "ok"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "line 2: not valid JSON"),
        ("[1, 2]", "line 2: expected a JSON object"),
        (json.dumps(ev(True, "invoke", "read")), "line 2: 'process' must be"),
        (json.dumps(ev(None, "invoke", "read")), "line 2: 'process' must be"),
        (json.dumps(ev(2, "begin", "read")), "line 2: 'type' must be one of"),
        (json.dumps(ev(2, "invoke", "append")), "line 2: 'f' must be one of"),
        (json.dumps(ev(2, "invoke", "read", key=None)), "line 2: 'key' is missing"),
        (json.dumps(ev(2, "invoke", "read", key=[1])), "line 2: key must be"),
        (json.dumps(ev(2, "invoke", "write")), "line 2: write needs a value"),
        (json.dumps(ev(2, "invoke", "write", 1.5)), "line 2: value must be"),
        (json.dumps(ev(2, "invoke", "write", True)), "line 2: value must be"),
        (json.dumps(ev(2, "invoke", "cas", "a")), r"line 2: cas value must be \[expected, new\]"),
        (json.dumps(ev(2, "invoke", "cas", ["a", None])), "line 2: cas needs a new value"),
        (json.dumps(ev(1, "invoke", "read")), "line 2: process 1 invokes while its write"),
        (json.dumps(ev(2, "ok", "read", "a")), "line 2: process 2 completes an op it never"),
        (json.dumps(ev(1, "ok", "read", "a")), "line 2: completion read k does not match"),
        (json.dumps(ev(1, "ok", "write", "a", key="j")), "line 2: completion write j does not"),
    ],
)
def test_malformed_lines_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_history([json.dumps(ev(1, "invoke", "write", "a")), text])


@pytest.mark.parametrize("value", [None, "x", "007", 1.0])
def test_incr_ok_needs_an_integer(value: object) -> None:
    with pytest.raises(ValueError, match="line 2: incr"):
        parse_history(lines(ev(1, "invoke", "incr"), ev(1, "ok", "incr", value)))


def test_read_ok_value_must_be_a_scalar() -> None:
    with pytest.raises(ValueError, match="line 2: read value must be"):
        parse_history(lines(ev(1, "invoke", "read"), ev(1, "ok", "read", {"a": 1})))
