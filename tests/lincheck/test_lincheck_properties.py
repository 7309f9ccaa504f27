"""Property tests: histories of real sequential executions pass, corrupted ones fail, and on
small arbitrary histories the checker agrees with a brute-force search over every order."""

from __future__ import annotations

import gc
import importlib.util
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pypaxos.lincheck.wgl import Operation, check_history, history_from_events

VALUES: tuple[Any, ...] = ("a", "b", "1", "7", 5)
FUNCTIONS = ("read", "write", "cas", "delete", "incr")
NEVER_WRITTEN = "never-written"

Event = dict[str, Any]


def incremented(state: str | None) -> str | None:
    """What incr leaves, or None if refused; written apart from the checker on purpose."""
    text = "0" if state is None else state
    try:
        number = int(text)
    except ValueError:
        return None
    if str(number) != text or not -(2**63) <= number < 2**63 - 1:
        return None
    return str(number + 1)


def canonical(value: Any) -> str | None:
    return None if value is None else str(value)


@st.composite
def sequential_histories(draw: st.DrawFn, max_ops: int = 40, processes: int = 5) -> list[Event]:
    """Run random operations on a dict, one at a time at distinct instants, and record each
    with a random interval around its instant: a linearizable history by construction."""
    keys = draw(st.sampled_from([("k",), ("k", "j"), ("k", "j", "i")]))
    clock = [0] * processes
    dead: set[int] = set()  # a process whose op never completes invokes nothing more
    plans = []
    for _ in range(draw(st.integers(1, max_ops))):
        p = draw(st.integers(0, processes - 1))
        if p in dead:
            continue
        f = draw(st.sampled_from(FUNCTIONS))
        outcome = draw(st.sampled_from(["ok"] * 6 + ["info-applied", "info-lost", "never"]))
        start = clock[p] + draw(st.integers(1, 12))
        instant = start + draw(st.integers(0, 12))
        end = instant + draw(st.integers(1, 12))
        clock[p] = end
        if outcome == "never":
            dead.add(p)
        # Times are unique: t * 16 + process, so real-time order is a strict total order.
        plans.append(
            {
                "p": p,
                "f": f,
                "key": draw(st.sampled_from(keys)),
                "arg": draw(st.sampled_from(VALUES)),
                "expected": draw(st.sampled_from((None, *VALUES))),
                "outcome": outcome,
                "times": (start * 16 + p, instant * 16 + p, end * 16 + p),
            }
        )
    store: dict[str, str] = {}
    timed: list[tuple[int, Event]] = []
    for plan in sorted(plans, key=lambda plan: plan["times"][1]):  # execute in instant order
        f, key, arg, outcome = plan["f"], plan["key"], plan["arg"], plan["outcome"]
        applies = outcome in ("ok", "info-applied")
        result: Any = None
        failed = False
        if f == "read":
            result = store.get(key)
        elif f == "write" and applies:
            store[key] = canonical(arg)  # type: ignore[assignment]
        elif f == "delete" and applies:
            store.pop(key, None)
        elif f == "cas":
            failed = store.get(key) != canonical(plan["expected"])
            if applies and not failed:
                store[key] = canonical(arg)  # type: ignore[assignment]
        elif f == "incr":
            after = incremented(store.get(key))
            failed = after is None
            if applies and after is not None:
                store[key] = after
                result = int(after)
        invoke_value = [plan["expected"], arg] if f == "cas" else arg if f == "write" else None
        start, _, end = plan["times"]
        base = {"process": plan["p"], "f": f, "key": key}
        timed.append((start, {**base, "type": "invoke", "value": invoke_value}))
        if outcome == "ok":
            kind = "fail" if failed else "ok"
            value = result if f in ("read", "incr") else invoke_value
            timed.append((end, {**base, "type": kind, "value": value}))
        elif outcome != "never":
            timed.append((end, {**base, "type": "info", "value": invoke_value}))
    return [event for _, event in sorted(timed, key=lambda item: item[0])]


@settings(max_examples=300, deadline=None)
@given(sequential_histories())
def test_histories_of_sequential_executions_are_linearizable(events: list[Event]) -> None:
    result = check_history(history_from_events(events))
    assert result.ok, result.explain()


@settings(max_examples=300, deadline=None)
@given(sequential_histories(), st.data())
def test_reading_a_never_written_value_is_not_linearizable(
    events: list[Event], data: st.DataObject
) -> None:
    reads = [i for i, e in enumerate(events) if e["f"] == "read" and e["type"] == "ok"]
    events = [*events, {"process": 99, "type": "invoke", "f": "read", "key": "k", "value": None}]
    events.append({"process": 99, "type": "ok", "f": "read", "key": "k", "value": None})
    reads.append(len(events) - 1)
    bad = data.draw(st.sampled_from(reads))
    events[bad] = {**events[bad], "value": NEVER_WRITTEN}
    result = check_history(history_from_events(events))
    assert result.outcome == "violation"
    assert result.key == events[bad]["key"]
    failing = result.violation()
    assert failing is not None and failing.failure is not None
    assert failing.failure.op.value == NEVER_WRITTEN


# --- agreement with brute force ---------------------------------------------------------------


def brute_force(ops: list[Operation]) -> bool:
    """Try every order of the completed operations, each optional one placed anywhere after
    its invocation or nowhere; no memo, no pruning."""
    ops = [op for op in ops if not (op.f == "read" and op.status == "info")]
    forever = float("inf")

    def returns(op: Operation) -> float:
        return forever if op.complete_line is None else op.complete_line

    def apply(op: Operation, state: str | None) -> tuple[bool, str | None]:
        if op.f == "read":
            return state == op.value, state
        if op.f == "write":
            return True, op.value
        if op.f == "delete":
            return True, None
        if op.f == "cas":
            return state == op.expected, op.value
        after = incremented(state)
        matches = after is not None and (op.status == "info" or after == op.value)
        return matches, after

    def search(remaining: frozenset[int], state: str | None) -> bool:
        if all(ops[i].status == "info" for i in remaining):
            return True
        for i in remaining:
            # i may go next only if no remaining completed op returned before i was invoked
            if any(returns(ops[k]) < ops[i].invoke_line for k in remaining):
                continue
            matches, after = apply(ops[i], state)
            if matches and search(remaining - {i}, after):
                return True
        return False

    return search(frozenset(range(len(ops))), None)


@st.composite
def arbitrary_histories(draw: st.DrawFn, max_steps: int = 16) -> list[Event]:
    """Any well-formed interleaving with made-up results: most are not linearizable."""
    pending: dict[int, Event] = {}
    events: list[Event] = []
    for _ in range(draw(st.integers(0, max_steps))):
        p = draw(st.integers(0, 2))
        if p in pending:
            invoke = pending.pop(p)
            kind = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"]))
            value = invoke["value"]
            if invoke["f"] == "read":
                value = draw(st.sampled_from((None, "a", "b", "1")))
            elif invoke["f"] == "incr":
                value = draw(st.integers(1, 3))
            events.append({**invoke, "type": kind, "value": value})
            continue
        f = draw(st.sampled_from(FUNCTIONS))
        value: Any = None
        if f == "write":
            value = draw(st.sampled_from(("a", "b", "1")))
        elif f == "cas":
            value = [draw(st.sampled_from((None, "a", "b"))), draw(st.sampled_from(("a", "b")))]
        pending[p] = {"process": p, "f": f, "key": "k", "value": value}
        events.append({**pending[p], "type": "invoke"})
    return events


@settings(max_examples=2000, deadline=None)
@given(arbitrary_histories())
def test_agrees_with_brute_force_on_small_histories(events: list[Event]) -> None:
    history = history_from_events(events)
    expected = brute_force(list(history.operations))
    result = check_history(history)
    assert result.ok == expected, result.explain()
    assert result.outcome == ("ok" if expected else "violation")


def test_brute_force_itself_is_not_vacuous() -> None:
    def ops(*events: tuple[int, str, str, Any]) -> list[Operation]:
        history = history_from_events(
            {"process": p, "type": t, "f": f, "key": "k", "value": v} for p, t, f, v in events
        )
        return list(history.operations)

    write_a = [(1, "invoke", "write", "a"), (1, "ok", "write", "a")]
    assert brute_force(ops(*write_a, (2, "invoke", "read", None), (2, "ok", "read", "a")))
    assert not brute_force(ops(*write_a, (2, "invoke", "read", None), (2, "ok", "read", "b")))


# --- scale --------------------------------------------------------------------------------------


def load_bench() -> Any:
    path = Path(__file__).resolve().parents[2] / "bench" / "lincheck_bench.py"
    spec = importlib.util.spec_from_file_location("lincheck_bench", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("info", [0.0, 0.05])
def test_thousands_of_concurrent_operations_check_quickly(info: float) -> None:
    # The benchmark's workload: 5 processes, 3 keys, real overlaps, some timed-out operations.
    events = load_bench().generate(6000, processes=5, keys=3, info=info, seed=7)
    started = time.process_time()
    result = check_history(history_from_events(events), timeout_s=60)
    assert result.ok, result.explain()
    assert time.process_time() - started < 10
    assert gc.isenabled()
