"""The JIT checker on hand-written histories: one linearizable and one not for each kind of op.

Histories are written as compact rows ``(process, type, f, value)`` on key ``"k"`` (or
``(process, type, f, key, value)``), in real-time order.  Each non-linearizable case also pins
the event where no configuration survives.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from pypaxos.lincheck.jit import JitResult, check_history_jit, check_jsonl_jit

Row = tuple[object, ...]


def events(rows: Sequence[Row]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for row in rows:
        if len(row) == 4:
            process, kind, f, value = row
            key: object = "k"
        else:
            process, kind, f, key, value = row
        out.append({"process": process, "type": kind, "f": f, "key": key, "value": value})
    return out


def check(rows: Sequence[Row], **options: object) -> JitResult:
    return check_history_jit(events(rows), **options)  # type: ignore[arg-type]


def ok(rows: Sequence[Row]) -> None:
    result = check(rows)
    assert result.outcome == "linearizable", result.explain()


def bad(rows: Sequence[Row], at: int) -> None:
    """Not linearizable, and no configuration survives event ``at`` (0-based)."""
    result = check(rows)
    assert result.outcome == "violation", result.explain()
    assert result.event_index == at, result.explain()
    assert result.line == at + 1


# -- read and write ------------------------------------------------------------------------------

SEQUENTIAL_WRITES = [
    (1, "invoke", "write", "a"),
    (1, "ok", "write", "a"),
    (2, "invoke", "write", "b"),
    (2, "ok", "write", "b"),
]


def test_empty_history_and_a_read_of_nothing_are_linearizable() -> None:
    ok([])
    ok([(1, "invoke", "read", None), (1, "ok", "read", None)])


def test_read_of_the_latest_write() -> None:
    ok([*SEQUENTIAL_WRITES, (3, "invoke", "read", None), (3, "ok", "read", "b")])


def test_stale_read_is_caught_at_its_return() -> None:
    bad([*SEQUENTIAL_WRITES, (3, "invoke", "read", None), (3, "ok", "read", "a")], at=5)


def test_lost_write_read_as_absent() -> None:
    rows = [(1, "invoke", "write", "a"), (1, "ok", "write", "a")]
    bad([*rows, (2, "invoke", "read", None), (2, "ok", "read", None)], at=3)


def test_read_of_a_value_never_written() -> None:
    bad([(1, "invoke", "read", None), (1, "ok", "read", "ghost")], at=1)


def test_read_cannot_see_a_write_invoked_after_it_returned() -> None:
    rows = [
        (1, "invoke", "read", None),
        (1, "ok", "read", "a"),
        (2, "invoke", "write", "a"),
        (2, "ok", "write", "a"),
    ]
    bad(rows, at=1)


def test_overlapping_writes_and_reads_may_take_either_order() -> None:
    # write a and write b overlap; reads inside them see b then a: order b, a
    rows = [
        (1, "invoke", "write", "a"),
        (2, "invoke", "write", "b"),
        (3, "invoke", "read", None),
        (3, "ok", "read", "b"),
        (3, "invoke", "read", None),
        (3, "ok", "read", "a"),
        (2, "ok", "write", "b"),
        (1, "ok", "write", "a"),
    ]
    ok(rows)
    ok([*rows, (3, "invoke", "read", None), (3, "ok", "read", "a")])
    # ...but once a was read after b, b cannot come back
    bad([*rows, (3, "invoke", "read", None), (3, "ok", "read", "b")], at=9)


def test_two_readers_cannot_see_two_writes_in_opposite_orders() -> None:
    rows = [
        (1, "invoke", "write", "a"),
        (2, "invoke", "write", "b"),
        (3, "invoke", "read", None),
        (4, "invoke", "read", None),
        (3, "ok", "read", "a"),
        (4, "ok", "read", "b"),
        (3, "invoke", "read", None),
        (4, "invoke", "read", None),
        (3, "ok", "read", "b"),
        (4, "ok", "read", "a"),
        (1, "ok", "write", "a"),
        (2, "ok", "write", "b"),
    ]
    bad(rows, at=9)


def test_integers_and_their_decimal_strings_are_one_value() -> None:
    ok([(1, "invoke", "write", 5), (1, "ok", "write", 5), (2, "invoke", "read", None),
        (2, "ok", "read", "5")])  # fmt: skip
    ok([(1, "invoke", "write", 5, "x"), (1, "ok", "write", "5", "x"),
        (2, "invoke", "read", "5", None), (2, "ok", "read", 5, "x")])  # fmt: skip


# -- delete --------------------------------------------------------------------------------------


def test_delete_then_read_absent() -> None:
    rows = [*SEQUENTIAL_WRITES, (1, "invoke", "delete", None), (1, "ok", "delete", None)]
    ok([*rows, (2, "invoke", "read", None), (2, "ok", "read", None)])
    bad([*rows, (2, "invoke", "read", None), (2, "ok", "read", "b")], at=7)


def test_delete_of_an_absent_key_is_fine() -> None:
    ok([(1, "invoke", "delete", None), (1, "ok", "delete", None)])


# -- cas -----------------------------------------------------------------------------------------


def test_cas_on_the_right_value() -> None:
    rows = [
        (1, "invoke", "write", "1"),
        (1, "ok", "write", "1"),
        (2, "invoke", "cas", ["1", "2"]),
        (2, "ok", "cas", ["1", "2"]),
        (3, "invoke", "read", None),
        (3, "ok", "read", "2"),
    ]
    ok(rows)


def test_cas_on_the_wrong_value_is_caught() -> None:
    rows = [
        (1, "invoke", "write", "1"),
        (1, "ok", "write", "1"),
        (2, "invoke", "cas", ["5", "2"]),
        (2, "ok", "cas", ["5", "2"]),
    ]
    bad(rows, at=3)


def test_cas_expecting_null_needs_an_absent_key() -> None:
    ok([(1, "invoke", "cas", [None, "a"]), (1, "ok", "cas", [None, "a"])])
    rows = [(1, "invoke", "write", "x"), (1, "ok", "write", "x")]
    bad([*rows, (2, "invoke", "cas", [None, "a"]), (2, "ok", "cas", [None, "a"])], at=3)


def test_a_failed_cas_did_not_take_effect() -> None:
    rows = [
        (1, "invoke", "write", "1"),
        (1, "ok", "write", "1"),
        (2, "invoke", "cas", ["1", "2"]),
        (2, "fail", "cas", ["1", "2"]),
    ]
    ok([*rows, (3, "invoke", "read", None), (3, "ok", "read", "1")])
    bad([*rows, (3, "invoke", "read", None), (3, "ok", "read", "2")], at=5)


def test_cas_values_may_be_written_on_the_completion_only() -> None:
    ok([(1, "invoke", "cas", None), (1, "ok", "cas", [None, "a"]), (2, "invoke", "read", None),
        (2, "ok", "read", "a")])  # fmt: skip


# -- incr ----------------------------------------------------------------------------------------


def test_incr_counts_from_absent() -> None:
    rows = [(1, "invoke", "incr", None), (1, "ok", "incr", 1)]
    ok([*rows, (1, "invoke", "incr", None), (1, "ok", "incr", 2), (2, "invoke", "read", None),
        (2, "ok", "read", "2")])  # fmt: skip


def test_incr_skipping_a_number_is_caught() -> None:
    rows = [(1, "invoke", "incr", None), (1, "ok", "incr", 1)]
    bad([*rows, (1, "invoke", "incr", None), (1, "ok", "incr", 3)], at=3)


def test_overlapping_incrs_may_return_in_either_order() -> None:
    rows = [
        (1, "invoke", "incr", None),
        (2, "invoke", "incr", None),
        (2, "ok", "incr", 2),
        (1, "ok", "incr", 1),
    ]
    ok(rows)


def test_sequential_incrs_cannot_return_in_reverse() -> None:
    rows = [
        (1, "invoke", "incr", None),
        (1, "ok", "incr", 2),
        (2, "invoke", "incr", None),
        (2, "ok", "incr", 1),
    ]
    bad(rows, at=1)


def test_incr_continues_a_written_integer_but_not_a_non_canonical_one() -> None:
    ok([(1, "invoke", "write", "41"), (1, "ok", "write", "41"), (1, "invoke", "incr", None),
        (1, "ok", "incr", "42")])  # fmt: skip
    bad([(1, "invoke", "write", "041"), (1, "ok", "write", "041"), (1, "invoke", "incr", None),
         (1, "ok", "incr", 42)], at=3)  # fmt: skip
    bad([(1, "invoke", "write", "x"), (1, "ok", "write", "x"), (1, "invoke", "incr", None),
         (1, "ok", "incr", 1)], at=3)  # fmt: skip


def test_incr_at_the_int64_limit_cannot_succeed() -> None:
    top = str(2**63 - 1)
    rows = [(1, "invoke", "write", top), (1, "ok", "write", top), (1, "invoke", "incr", None)]
    bad([*rows, (1, "ok", "incr", 2**63)], at=3)
    ok([*rows, (1, "fail", "incr", None), (2, "invoke", "read", None), (2, "ok", "read", top)])


# -- info: may have taken effect, at any time after its invoke, or never -------------------------


def test_info_write_observed_late() -> None:
    rows = [
        (1, "invoke", "write", "a"),
        (1, "ok", "write", "a"),
        (2, "invoke", "write", "b"),
        (2, "info", "write", "b"),
        (3, "invoke", "read", None),
        (3, "ok", "read", "a"),
        (3, "invoke", "read", None),
        (3, "ok", "read", "b"),  # b took effect long after its client gave up
    ]
    ok(rows)
    bad([*rows, (3, "invoke", "read", None), (3, "ok", "read", "a")], at=9)


def test_info_write_never_observed() -> None:
    ok([(1, "invoke", "write", "b"), (1, "info", "write", "b"), (2, "invoke", "read", None),
        (2, "ok", "read", None)])  # fmt: skip


def test_info_write_cannot_take_effect_before_its_invoke() -> None:
    rows = [
        (3, "invoke", "read", None),
        (3, "ok", "read", "b"),
        (2, "invoke", "write", "b"),
        (2, "info", "write", "b"),
    ]
    bad(rows, at=1)


def test_info_takes_effect_at_most_once() -> None:
    rows = [
        (1, "invoke", "write", "a"),
        (1, "info", "write", "a"),
        (2, "invoke", "read", None),
        (2, "ok", "read", "a"),
        (2, "invoke", "write", "b"),
        (2, "ok", "write", "b"),
        (2, "invoke", "read", None),
        (2, "ok", "read", "a"),
    ]
    bad(rows, at=7)


def test_a_process_may_invoke_again_after_info() -> None:
    rows = [
        (1, "invoke", "write", "a"),
        (1, "info", "write", "a"),
        (1, "invoke", "read", None),
        (1, "ok", "read", None),
        (1, "invoke", "read", None),
        (1, "ok", "read", "a"),  # the abandoned write is still in flight
    ]
    ok(rows)


def test_an_operation_never_completed_counts_as_info() -> None:
    ok([(1, "invoke", "write", "a"), (2, "invoke", "read", None), (2, "ok", "read", "a")])
    ok([(1, "invoke", "write", "a"), (2, "invoke", "read", None), (2, "ok", "read", None)])


def test_info_incrs_are_optional_and_interchangeable() -> None:
    rows = [(p, "invoke", "incr", None) for p in (1, 2, 3)]
    rows += [(p, "info", "incr", None) for p in (1, 2, 3)]
    ok([*rows, (4, "invoke", "read", None), (4, "ok", "read", "2")])
    ok([*rows, (4, "invoke", "incr", None), (4, "ok", "incr", 4)])
    bad([*rows, (4, "invoke", "incr", None), (4, "ok", "incr", 5)], at=7)


def test_info_cas_chain_after_an_info_write() -> None:
    rows = [
        (1, "invoke", "write", "1"),
        (1, "info", "write", "1"),
        (2, "invoke", "cas", ["1", "2"]),
        (2, "info", "cas", ["1", "2"]),
        (3, "invoke", "cas", ["2", "3"]),
        (3, "info", "cas", ["2", "3"]),
        (4, "invoke", "read", None),
        (4, "ok", "read", "3"),
    ]
    ok(rows)
    bad([*rows, (4, "invoke", "read", None), (4, "ok", "read", "2")], at=9)


def test_info_delete_and_info_write_in_either_order() -> None:
    rows = [
        (1, "invoke", "write", "a"),
        (1, "ok", "write", "a"),
        (2, "invoke", "delete", None),
        (2, "info", "delete", None),
        (3, "invoke", "write", "b"),
        (3, "info", "write", "b"),
    ]
    for first, second in ((None, "b"), ("b", None), ("a", "b"), ("a", None)):
        ok([*rows, (4, "invoke", "read", None), (4, "ok", "read", first),
            (4, "invoke", "read", None), (4, "ok", "read", second)])  # fmt: skip
    bad([*rows, (4, "invoke", "read", None), (4, "ok", "read", None),
         (4, "invoke", "read", None), (4, "ok", "read", "a")], at=9)  # fmt: skip


def test_info_read_and_fail_of_anything_are_ignored() -> None:
    rows = [(1, "invoke", "read", None), (1, "info", "read", None), (2, "invoke", "write", "a")]
    ok([*rows, (2, "fail", "write", "a"), (3, "invoke", "read", None), (3, "ok", "read", None)])


# -- keys, bounds, input -------------------------------------------------------------------------


def test_keys_are_independent_and_the_earliest_violation_is_reported() -> None:
    rows = [
        (1, "invoke", "write", "x", "a"),
        (1, "ok", "write", "x", "a"),
        (2, "invoke", "read", "y", None),
        (2, "ok", "read", "y", "a"),  # y was never written: the first violation
        (3, "invoke", "read", "x", None),
        (3, "ok", "read", "x", None),  # x lost its write: the second
    ]
    result = check(rows)
    assert (result.outcome, result.key, result.event_index) == ("violation", "y", 3)
    assert result.keys == 2 and result.operations == 3


def test_nemesis_events_are_skipped() -> None:
    rows = [
        ("nemesis", "info", "start", None),
        (1, "invoke", "write", "a"),
        (1, "ok", "write", "a"),
    ]
    ok(rows)


def test_too_many_configurations_gives_unknown_not_a_verdict() -> None:
    # eight overlapping writes and a read of one of them: 2**7 ways to be before or after it
    writes = [(p, "invoke", "write", f"v{p}") for p in range(8)]
    read = [(9, "invoke", "read", None), (9, "ok", "read", "v3")]
    returns = [(p, "ok", "write", f"v{p}") for p in range(8)]
    result = check([*writes, *read, *returns], configurations_max=20)
    assert result.outcome == "unknown" and "configurations" in result.detail
    assert result.key == "k" and result.event_index == 9
    assert check([*writes, *read, *returns]).outcome == "linearizable"


def test_timeout_gives_unknown() -> None:
    rows = [(1, "invoke", "write", "a"), (1, "ok", "write", "a")] * 100
    result = check(rows, timeout_s=1e-9)
    assert result.outcome == "unknown" and "timeout" in result.detail


def test_explanation_names_the_operation_and_what_was_pending() -> None:
    rows = [*SEQUENTIAL_WRITES, (3, "invoke", "write", "c"), (4, "invoke", "read", None),
            (4, "ok", "read", "a"), (3, "ok", "write", "c")]  # fmt: skip
    result = check(rows)
    assert "process 4 read 'a' (ok) returning at event 7 (invoked at event 6)" in result.detail
    assert "values the register could hold just before: 'b'" in result.detail
    assert "process 3 write 'c' (ok), invoked at event 5" in result.detail


def test_unknown_operations_nothing_observes_are_forgotten() -> None:
    # ten timed-out writes nobody reads: configurations do not carry them
    rows = [(p, kind, "write", f"w{p}") for p in range(10) for kind in ("invoke", "info")]
    rows += [(20, "invoke", "read", None), (20, "ok", "read", None)]
    result = check(rows)
    assert result.linearizable and result.configurations_peak == 1
    # ...but one a later cas chain needs is kept until that chain's observer returns
    rows = [(1, "invoke", "write", "a"), (1, "info", "write", "a"),
            (2, "invoke", "cas", ["a", "b"]), (2, "info", "cas", ["a", "b"]),
            (3, "invoke", "read", None), (3, "ok", "read", "b")]  # fmt: skip
    ok(rows)
    bad([*rows, (3, "invoke", "read", None), (3, "ok", "read", "a")], at=7)


def test_unknown_incr_keeps_integer_writes_alive() -> None:
    rows = [(1, "invoke", "write", "0"), (1, "info", "write", "0"), (2, "invoke", "incr", None)]
    ok([*rows, (2, "info", "incr", None), (3, "invoke", "read", None), (3, "ok", "read", "1")])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([(1, "ok", "read", None)], "which invoked nothing"),
        ([(1, "invoke", "read", None), (1, "invoke", "read", None)], "invokes again"),
        ([(1, "invoke", "read", None), (1, "ok", "write", "a")], "completes read"),
        ([(1, "invoke", "frob", None)], "unknown f"),
        ([(1, "begin", "read", None)], "unknown type"),
        ([(1, "invoke", "cas", "a"), (1, "ok", "cas", "a")], "[expected, new]"),
        ([(1, "invoke", "incr", None), (1, "ok", "incr", "x")], "integer result"),
        ([(1, "invoke", "write", None), (1, "ok", "write", None)], "needs a value"),
        ([(1, "invoke", "write", 1.5), (1, "ok", "write", 1.5)], "a value must be"),
    ],
)
def test_malformed_events_are_named(rows: list[Row], message: str) -> None:
    with pytest.raises(ValueError, match=r"event \d") as caught:
        check(rows)
    assert message in str(caught.value)


def test_jsonl_errors_and_verdicts_name_file_lines() -> None:
    text = [
        '{"process": 1, "type": "invoke", "f": "write", "key": "k", "value": "a"}\n',
        "\n",
        '{"process": 1, "type": "ok", "f": "write", "key": "k", "value": "a"}\n',
        '{"process": 2, "type": "invoke", "f": "read", "key": "k", "value": null}\n',
        '{"process": 2, "type": "ok", "f": "read", "key": "k", "value": "z"}\n',
    ]
    result = check_jsonl_jit(text)
    assert (result.outcome, result.event_index, result.line) == ("violation", 3, 5)
    assert "returning at line 5 (invoked at line 4)" in result.detail
    with pytest.raises(ValueError, match="line 2: not JSON"):
        check_jsonl_jit([text[0], "{oops\n"])
    with pytest.raises(ValueError, match="line 1: an event must be a JSON object"):
        check_jsonl_jit(["[1, 2]\n"])
