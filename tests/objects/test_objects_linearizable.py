"""The linearizability checker for replicated objects, on small hand-made histories."""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pypaxos.objects import Counter, ObjectMachine, Returned, decode_call, encode_call
from pypaxos.objects.codec import encode_result
from pypaxos.testing.linearizable import Op, check_linearizable


def op(
    process: int,
    invoke: int,
    end: int | None,
    method: str,
    args: tuple[Any, ...],
    value: Any = None,
) -> Op:
    call = decode_call(encode_call(process, 1, method, args))
    result = None if end is None else encode_result(Returned(value))
    return Op(process, call, method == "get", invoke, end, result)


def counter() -> ObjectMachine:
    return ObjectMachine(Counter())


def test_sequential_history_is_linearizable() -> None:
    ops = [op(1, 0, 1, "add", (2,), 2), op(2, 2, 3, "add", (3,), 5), op(1, 4, 5, "get", (), 5)]
    assert check_linearizable(ops, counter).verdict == "linearizable"


def test_concurrent_calls_may_take_effect_in_either_order() -> None:
    ops = [op(1, 0, 10, "add", (2,), 5), op(2, 1, 9, "add", (3,), 3)]
    assert check_linearizable(ops, counter).verdict == "linearizable"


def test_a_read_that_misses_a_completed_write_is_caught() -> None:
    ops = [op(1, 0, 1, "add", (2,), 2), op(2, 2, 3, "get", (), 0)]
    result = check_linearizable(ops, counter)
    assert result.verdict == "not linearizable"
    assert result.stuck_at is not None and result.stuck_at.call.method == "get"


def test_a_write_applied_twice_is_caught() -> None:
    ops = [op(1, 0, 1, "add", (2,), 2), op(2, 2, 3, "get", (), 4)]
    assert check_linearizable(ops, counter).verdict == "not linearizable"


def test_an_unknown_outcome_may_have_happened_or_not() -> None:
    happened = [op(1, 0, None, "add", (2,)), op(2, 5, 6, "get", (), 2)]
    assert check_linearizable(happened, counter).verdict == "linearizable"
    did_not = [op(1, 0, None, "add", (2,)), op(2, 5, 6, "get", (), 0)]
    assert check_linearizable(did_not, counter).verdict == "linearizable"
    impossible = [op(1, 0, None, "add", (2,)), op(2, 5, 6, "get", (), 3)]
    assert check_linearizable(impossible, counter).verdict == "not linearizable"


def test_the_search_budget_gives_undecided_never_a_guess() -> None:
    ops = [op(p, 0, 100, "add", (p,), sum(range(1, p + 1))) for p in range(1, 12)]
    ops += [op(99, 101, 102, "get", (), 1)]  # no order gives 1: the search must try them all
    assert check_linearizable(ops, counter, steps_max=50).verdict == "undecided"


def test_only_completed_calls_must_be_explained() -> None:
    ops = [op(1, 0, 1, "add", (2,), 2), op(2, 0, None, "get", ())]
    assert check_linearizable(ops, counter).verdict == "linearizable"


def brute_force(ops: list[Op]) -> bool:
    """Linearizable by trying every order of every subset that keeps the completed calls."""
    required = [i for i, o in enumerate(ops) if o.result is not None]
    optional = [i for i, o in enumerate(ops) if o.result is None]
    for mask in range(1 << len(optional)):
        chosen = required + [i for bit, i in enumerate(optional) if mask >> bit & 1]
        for order in itertools.permutations(chosen):
            if not respects_real_time(ops, order):
                continue
            model = counter()
            if all(
                (model.read(ops[i].call) if ops[i].read else model.execute(ops[i].call))
                == ops[i].result
                or ops[i].result is None
                for i in order
            ):
                return True
    return False


def respects_real_time(ops: list[Op], order: tuple[int, ...]) -> bool:
    for before, a in enumerate(order):
        for b in order[before + 1 :]:
            end = ops[b].return_tick
            if end is not None and end < ops[a].invoke_tick:
                return False  # b returned before a was invoked, yet comes after it
    return True


@st.composite
def histories(draw: st.DrawFn) -> list[Op]:
    ops = []
    for process in range(1, draw(st.integers(1, 5)) + 1):
        start = draw(st.integers(0, 6))
        end = draw(st.one_of(st.none(), st.integers(start, start + 6)))
        if draw(st.booleans()):
            ops.append(
                op(process, start, end, "add", (draw(st.integers(1, 3)),), draw(st.integers(0, 7)))
            )
        else:
            ops.append(op(process, start, end, "get", (), draw(st.integers(0, 7))))
    return ops


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_the_search_agrees_with_brute_force_whatever_the_rank_hints(
    ops: list[Op], rng: random.Random
) -> None:
    expected = brute_force(ops)
    assert (check_linearizable(ops, counter).verdict == "linearizable") == expected
    hinted = [dataclasses.replace(o, rank=rng.choice([None, rng.random()])) for o in ops]
    assert (check_linearizable(hinted, counter).verdict == "linearizable") == expected
