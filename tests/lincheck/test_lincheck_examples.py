"""Hand-written histories whose verdict is known, one anomaly at a time."""

from __future__ import annotations

import pytest

from pypaxos.lincheck.wgl import LinResult, check_history, history_from_events

Event = tuple[int, str, str, object]  # (process, type, f, value) on key "x"


def check(*events: Event, key: str = "x") -> LinResult:
    return check_history(
        history_from_events(
            {"process": p, "type": t, "f": f, "key": key, "value": v} for p, t, f, v in events
        )
    )


def linearizable(*events: Event) -> bool:
    result = check(*events)
    assert result.outcome in ("ok", "violation")
    return result.ok


def op(process: int, f: str, value: object = None, result: object = None) -> list[Event]:
    """A whole operation that does not overlap its neighbours."""
    return [(process, "invoke", f, value), (process, "ok", f, value if result is None else result)]


def read(process: int, value: object) -> list[Event]:
    return [(process, "invoke", "read", None), (process, "ok", "read", value)]


# --- registers: reads and writes ---------------------------------------------------------------


def test_empty_history_and_reads_of_an_absent_key() -> None:
    assert check().ok
    assert linearizable(*read(1, None), *read(2, None))


def test_sequential_write_then_read() -> None:
    assert linearizable(*op(1, "write", "a"), *read(2, "a"), *op(1, "write", "b"), *read(2, "b"))


def test_stale_read_is_caught() -> None:
    assert not linearizable(*op(1, "write", "a"), *op(1, "write", "b"), *read(2, "a"))


def test_lost_write_is_caught() -> None:
    assert not linearizable(*op(1, "write", "a"), *read(2, None))


def test_read_of_a_never_written_value_is_caught() -> None:
    assert not linearizable(*op(1, "write", "a"), *read(2, "ghost"))


def test_read_concurrent_with_a_write_may_see_either_value() -> None:
    for seen in ("a", "b"):
        assert linearizable(
            *op(1, "write", "a"),
            (1, "invoke", "write", "b"),
            *read(2, seen),
            (1, "ok", "write", "b"),
        )


@pytest.mark.parametrize("last", ["a", "b"])
def test_concurrent_writes_may_be_read_in_either_order(last: str) -> None:
    overlapping = [
        (1, "invoke", "write", "a"),
        (2, "invoke", "write", "b"),
        (1, "ok", "write", "a"),
        (2, "ok", "write", "b"),
    ]
    assert linearizable(*overlapping, *read(3, last), *read(3, last))


def test_concurrent_writes_cannot_be_read_in_both_orders() -> None:
    overlapping = [
        (1, "invoke", "write", "a"),
        (2, "invoke", "write", "b"),
        (1, "ok", "write", "a"),
        (2, "ok", "write", "b"),
    ]
    assert not linearizable(*overlapping, *read(3, "b"), *read(3, "a"))
    assert not linearizable(*overlapping, *read(3, "a"), *read(4, "b"))


def test_two_concurrent_reads_disagreeing_with_the_later_read_order() -> None:
    # r1 (sees new) completes before r2 (sees old) begins: new-then-old is not allowed.
    assert not linearizable(
        *op(1, "write", "old"),
        (2, "invoke", "write", "new"),
        *read(3, "new"),
        *read(4, "old"),
        (2, "ok", "write", "new"),
    )


def test_integers_equal_their_decimal_strings() -> None:
    assert linearizable(*op(1, "write", 5), *read(2, "5"), *op(1, "write", "6"), *read(2, 6))


def test_delete_makes_the_key_absent() -> None:
    assert linearizable(*op(1, "write", "a"), *op(1, "delete"), *read(2, None))
    assert not linearizable(*op(1, "write", "a"), *op(1, "delete"), *read(2, "a"))


# --- compare-and-set -----------------------------------------------------------------------------


def test_cas_chain() -> None:
    assert linearizable(
        *op(1, "write", "a"),
        *op(2, "cas", ["a", "b"]),
        *op(3, "cas", ["b", "c"]),
        *read(1, "c"),
    )


def test_cas_with_null_expected_needs_an_absent_key() -> None:
    assert linearizable(*op(1, "cas", [None, "a"]), *read(2, "a"))
    assert not linearizable(*op(1, "write", "z"), *op(1, "cas", [None, "a"]))


def test_two_cas_from_the_same_value_cannot_both_succeed() -> None:
    assert not linearizable(
        *op(1, "write", "a"), *op(2, "cas", ["a", "b"]), *op(3, "cas", ["a", "c"])
    )
    # not even when they overlap
    assert not linearizable(
        *op(1, "write", "a"),
        (2, "invoke", "cas", ["a", "b"]),
        (3, "invoke", "cas", ["a", "c"]),
        (2, "ok", "cas", ["a", "b"]),
        (3, "ok", "cas", ["a", "c"]),
    )


def test_cas_success_on_a_value_that_is_not_there() -> None:
    assert not linearizable(*op(1, "write", "a"), *op(2, "cas", ["b", "c"]))


def test_effect_of_a_successful_cas_cannot_vanish() -> None:
    assert not linearizable(*op(1, "write", "a"), *op(2, "cas", ["a", "b"]), *read(3, "a"))


def test_failed_cas_is_dropped() -> None:
    result = check(
        *op(1, "write", "a"),
        (2, "invoke", "cas", ["zzz", "b"]),
        (2, "fail", "cas", ["zzz", "b"]),
        *read(3, "a"),
    )
    assert result.ok
    assert (result.operations, result.failed) == (2, 1)
    assert "1 failed operations dropped" in result.summary()


# --- incr ----------------------------------------------------------------------------------------


def test_incr_counts_from_absent() -> None:
    assert linearizable(*op(1, "incr", None, 1), *op(2, "incr", None, 2), *read(3, 2))


def test_incr_continues_from_a_written_integer() -> None:
    assert linearizable(*op(1, "write", "41"), *op(2, "incr", None, 42), *read(3, "42"))


def test_incr_of_a_non_integer_is_impossible() -> None:
    assert not linearizable(*op(1, "write", "abc"), *op(2, "incr", None, 1))
    assert not linearizable(*op(1, "write", "007"), *op(2, "incr", None, 8))


def test_incr_applied_twice_is_caught() -> None:
    # The first incr answered 1, but the next one sees 2 already: it was applied twice.
    assert not linearizable(*op(1, "incr", None, 1), *op(2, "incr", None, 3))


def test_duplicate_incr_results_are_caught() -> None:
    assert not linearizable(
        (1, "invoke", "incr", None),
        (2, "invoke", "incr", None),
        (1, "ok", "incr", 1),
        (2, "ok", "incr", 1),
    )


def test_concurrent_incrs_may_finish_in_any_order() -> None:
    assert linearizable(
        (1, "invoke", "incr", None),
        (2, "invoke", "incr", None),
        (1, "ok", "incr", 2),
        (2, "ok", "incr", 1),
    )


# --- operations with unknown outcome (info) --------------------------------------------------


def test_info_write_that_took_effect() -> None:
    assert linearizable(
        *op(1, "write", "a"), (2, "invoke", "write", "b"), (2, "info", "write", "b"), *read(3, "b")
    )


def test_info_write_that_did_not_take_effect() -> None:
    assert linearizable(
        *op(1, "write", "a"), (2, "invoke", "write", "b"), (2, "info", "write", "b"), *read(3, "a")
    )


def test_info_write_may_take_effect_long_after_its_timeout() -> None:
    assert linearizable(
        (2, "invoke", "write", "b"),
        (2, "info", "write", "b"),
        *read(3, None),
        *read(3, None),
        *read(4, "b"),
    )


def test_info_write_cannot_take_effect_twice() -> None:
    assert not linearizable(
        *op(1, "write", "a"),
        (2, "invoke", "write", "b"),
        (2, "info", "write", "b"),
        *read(3, "b"),
        *op(1, "write", "a"),
        *read(3, "b"),
    )


def test_info_write_cannot_happen_before_its_invocation() -> None:
    assert not linearizable(*read(3, "b"), (2, "invoke", "write", "b"), (2, "info", "write", "b"))


def test_info_incr_that_did_and_did_not_take_effect() -> None:
    timed_out = [(1, "invoke", "incr", None), (1, "info", "incr", None)]
    assert linearizable(*timed_out, *op(2, "incr", None, 1))
    assert linearizable(*timed_out, *op(2, "incr", None, 2))
    assert not linearizable(*timed_out, *op(2, "incr", None, 3))


def test_several_identical_info_ops_may_all_take_effect() -> None:
    timed_out = [(1, "invoke", "incr", None), (1, "info", "incr", None)]
    timed_out += [(2, "invoke", "incr", None), (2, "info", "incr", None)]
    assert linearizable(*timed_out, *op(3, "incr", None, 3))
    assert not linearizable(*timed_out, *op(3, "incr", None, 4))
    # and one spent before the other was even invoked
    assert linearizable(
        (1, "invoke", "incr", None),
        (1, "info", "incr", None),
        *read(3, "1"),
        (2, "invoke", "incr", None),
        (2, "info", "incr", None),
        *read(3, "2"),
    )


def test_info_op_needed_by_a_later_order_of_the_same_operations() -> None:
    # delete; incr -> 1; the never-completed incr -> 2; incr -> 3.  A first attempt applies the
    # optional incr early and reaches the same completed set and value with it spent; the
    # search must not treat that as covering the attempt that saves it for later.
    assert linearizable(
        (0, "invoke", "incr", None),
        (1, "invoke", "incr", None),
        (2, "invoke", "delete", None),
        (2, "ok", "delete", None),
        (2, "invoke", "incr", None),
        (0, "ok", "incr", 3),
        (1, "ok", "incr", 1),
    )


def test_info_cas_takes_effect_only_if_its_comparison_holds() -> None:
    assert linearizable(
        *op(1, "write", "a"),
        (2, "invoke", "cas", ["a", "b"]),
        (2, "info", "cas", ["a", "b"]),
        *read(3, "b"),
    )
    assert not linearizable(
        *op(1, "write", "z"),
        (2, "invoke", "cas", ["a", "b"]),
        (2, "info", "cas", ["a", "b"]),
        *read(3, "b"),
    )


def test_chain_of_info_ops_feeding_each_other() -> None:
    # Only the last link is read; the first leaves a value only the next cas expects.
    chain = [
        (2, "invoke", "cas", ["a", "b"]),
        (2, "info", "cas", ["a", "b"]),
        (3, "invoke", "cas", ["b", "c"]),
        (3, "info", "cas", ["b", "c"]),
        (4, "invoke", "incr", None),
        (4, "info", "incr", None),
    ]
    assert linearizable(*op(1, "write", "a"), *chain, *read(5, "c"))
    assert linearizable(*op(1, "write", "b"), *chain, *read(5, "c"))
    assert not linearizable(*op(1, "write", "c"), *chain, *read(5, "b"))
    # an incr run ending in a cas: 6 -> 7 -> 8 (optional incrs), then the cas 8 -> done
    incr_then_cas = [
        (2, "invoke", "incr", None),
        (2, "info", "incr", None),
        (3, "invoke", "incr", None),
        (3, "info", "incr", None),
        (4, "invoke", "cas", ["8", "done"]),
        (4, "info", "cas", ["8", "done"]),
    ]
    assert linearizable(*op(1, "write", "6"), *incr_then_cas, *read(5, "done"))
    assert not linearizable(*op(1, "write", "5"), *incr_then_cas, *read(5, "done"))


def test_info_read_constrains_nothing() -> None:
    assert linearizable(
        *op(1, "write", "a"), (2, "invoke", "read", None), (2, "info", "read", None), *read(3, "a")
    )


def test_never_completed_operation_counts_as_info() -> None:
    assert linearizable(*op(1, "write", "a"), (2, "invoke", "write", "b"), *read(3, "b"))
    assert linearizable(*op(1, "write", "a"), (2, "invoke", "write", "b"), *read(3, "a"))


def test_process_reused_after_info_keeps_the_info_op_open() -> None:
    assert linearizable(
        (1, "invoke", "write", "a"),
        (1, "info", "write", "a"),
        *read(1, None),
        *read(1, "a"),
    )


def test_many_info_writes_are_handled_quickly() -> None:
    # 25 timed-out writes, all still possible: the subset pruning keeps this small.
    events: list[Event] = []
    for p in range(25):
        events += [(p, "invoke", "write", f"v{p}"), (p, "info", "write", f"v{p}")]
    for p in range(25):
        events += read(100, f"v{p}")
    result = check(*events)
    assert result.ok
    assert result.keys[0].configurations < 5000
    events += read(100, "v0")
    assert not check(*events).ok


def test_many_identical_info_ops_are_handled_quickly() -> None:
    # 30 timed-out incrs, then a final incr seeing all of them but one: interchangeable
    # optional operations are tried in one canonical order, not in every subset.
    events: list[Event] = []
    for p in range(30):
        events += [(p, "invoke", "incr", None), (p, "info", "incr", None)]
    result = check(*events, *op(100, "incr", None, 30))
    assert result.ok
    assert result.keys[0].configurations < 5000
    result = check_history(
        history_from_events(
            {"process": p, "type": t, "f": f, "key": "x", "value": v}
            for p, t, f, v in [*events, *op(100, "incr", None, 32)]
        ),
        timeout_s=20,
    )
    assert result.outcome == "violation"


# --- several keys, and the explanation ---------------------------------------------------------


def test_keys_are_checked_independently_and_the_bad_one_is_named() -> None:
    events = [
        {"process": 1, "type": "invoke", "f": "write", "key": "good", "value": "a"},
        {"process": 2, "type": "invoke", "f": "write", "key": "bad", "value": "a"},
        {"process": 1, "type": "ok", "f": "write", "key": "good", "value": "a"},
        {"process": 2, "type": "ok", "f": "write", "key": "bad", "value": "a"},
        {"process": 1, "type": "invoke", "f": "read", "key": "bad", "value": None},
        {"process": 2, "type": "invoke", "f": "read", "key": "good", "value": None},
        {"process": 1, "type": "ok", "f": "read", "key": "bad", "value": "b"},
        {"process": 2, "type": "ok", "f": "read", "key": "good", "value": "a"},
    ]
    result = check_history(history_from_events(events))
    assert not result.ok
    assert result.outcome == "violation"
    assert result.key == "bad"
    assert [(k.key, k.outcome, k.operations) for k in result.keys] == [
        ("bad", "violation", 2),
        ("good", "ok", 2),
    ]


def test_explanation_names_the_operation_and_its_neighbours() -> None:
    result = check(
        *op(1, "write", "a"),  # lines 1-2
        (1, "invoke", "write", "b"),  # line 3
        *read(2, "b"),  # lines 4-5
        (1, "ok", "write", "b"),  # line 6
        *read(3, "a"),  # lines 7-8: stale
    )
    violation = result.violation()
    assert violation is not None and violation.failure is not None
    failure = violation.failure
    assert (failure.op.f, failure.op.value, failure.op.invoke_line) == ("read", "a", 7)
    assert failure.states == ("b",)
    assert [o.invoke_line for o in failure.around] == [1, 3, 4, 7]
    text = result.explain()
    assert "NOT linearizable" in text
    assert 'read x -> "a"   (process 3, lines 7..8)' in text
    assert "lines 3..6" in text and "<- cannot be placed" in text


def test_timeout_gives_an_undecided_result() -> None:
    # 18 overlapping writes and a read of a value none wrote: the memo must visit ~2^18 sets.
    events: list[Event] = [(p, "invoke", "write", f"v{p}") for p in range(18)]
    events += [(99, "invoke", "read", None), (99, "ok", "read", "ghost")]
    events += [(p, "ok", "write", f"v{p}") for p in range(18)]
    result = check_history(
        history_from_events(
            {"process": p, "type": t, "f": f, "key": "x", "value": v} for p, t, f, v in events
        ),
        timeout_s=0.2,
    )
    assert result.outcome == "timeout"
    assert not result.ok and result.key is None
    assert "undecided" in result.summary()


def test_explanation_counts_old_open_operations_instead_of_listing_them() -> None:
    result = check(
        (9, "invoke", "write", "old"),
        (9, "info", "write", "old"),
        *op(1, "write", "a"),
        *op(1, "write", "b"),
        *op(1, "write", "c"),
        *op(1, "write", "d"),
        *read(2, "ghost"),
    )
    violation = result.violation()
    assert violation is not None and violation.failure is not None
    assert violation.failure.older_open == 1
    assert all(o.status == "ok" for o in violation.failure.around)
    assert "(and 1 older operations of unknown outcome)" in result.explain()
