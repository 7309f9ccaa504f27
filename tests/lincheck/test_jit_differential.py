"""Differential test: the JIT checker, the WGL checker and (for small histories) brute force agree.

Histories come from a real register: each operation takes effect at one random instant inside
its interval (an ``info`` one possibly long after its client gave up, or never), so the
unmutated ones are linearizable by construction and both checkers must accept them.  Mutations
(a read sees another value, an ``incr`` returns another number, a write becomes ``fail``, a lost
``info`` becomes ``ok``, two events swap, ...) make most of them non-linearizable; there the two
checkers must still agree with each other and, when the history has at most ``BRUTE_OPS_MAX``
operations, with an exhaustive search over every order written here from the definition.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pypaxos.lincheck.jit import check_history_jit
from pypaxos.lincheck.wgl import check_history, history_from_events

FUNCTIONS = ("read", "read", "write", "write", "cas", "delete", "incr")
OUTCOMES = ("ok", "ok", "ok", "ok", "info-applied", "info-lost", "open")
BRUTE_OPS_MAX = 8
Event = dict[str, Any]


# -- generating histories from a real register ---------------------------------------------------


@dataclass(frozen=True)
class Plan:
    slot: int
    f: str
    gap: int
    lin: int
    tail: int
    outcome: str
    numeric: bool
    expected_choice: int


def plans(outcomes: tuple[str, ...] = OUTCOMES) -> st.SearchStrategy[Plan]:
    return st.builds(
        Plan,
        slot=st.integers(0, 4),
        f=st.sampled_from(FUNCTIONS),
        gap=st.integers(0, 3),
        lin=st.integers(0, 4),
        tail=st.integers(0, 4),
        outcome=st.sampled_from(outcomes),
        numeric=st.booleans(),
        expected_choice=st.integers(0, 3),
    )


# mostly unknown outcomes: exercises the runs, twins, dominance and forgetting of the JIT checker
INFO_HEAVY = ("ok", "ok", "info-applied", "info-applied", "info-lost", "open")


def canonical(value: str | None) -> int | None:
    if value is None:
        return 0
    try:
        number = int(value)
    except ValueError:
        return None
    return number if str(number) == value and -(2**63) <= number < 2**63 - 1 else None


def simulate(ops: list[Plan], processes: int, reuse_after_info: bool) -> list[Event]:
    """A history of ``ops`` on one register key ``k`` with random linearization points.

    Times are integers: invokes and completions at even ticks, effects at odd ticks, so every
    effect lies strictly inside its interval whatever order tied events are written in.
    """
    clock = [0] * processes
    ids = list(range(processes))
    alive = [True] * processes
    scheduled: list[tuple[int, int, Plan, int, int, int | None]] = []  # instant, serial, ...
    for serial, plan in enumerate(ops):
        slot = plan.slot % processes
        if not alive[slot]:  # its last operation never completed: a fresh process takes over
            ids[slot] += processes
            alive[slot] = True
        start = clock[slot] + 2 * plan.gap
        instant = start + 2 * plan.lin + 1
        if plan.outcome in ("ok",):
            end: int | None = instant + 2 * plan.tail + 1
        elif plan.outcome == "open":
            end = None
        else:  # info: the client gives up at ``end``; the effect may come later
            end = start + 2 * plan.tail + 2
        scheduled.append((instant, serial, plan, ids[slot], start, end))
        if end is None:
            alive[slot] = False
            clock[slot] = start + 2
        else:
            clock[slot] = end
            if plan.outcome.startswith("info") and not reuse_after_info:
                ids[slot] += processes
    current: str | None = None
    written: list[str] = []
    timed: list[tuple[int, int, int, Event]] = []
    for _instant, serial, plan, process, start, end in sorted(scheduled, key=lambda s: s[:2]):
        applies = plan.outcome != "info-lost"
        value: Any = None
        result: Any = None
        failed = False
        if plan.f == "read":
            result = current
        elif plan.f == "write":
            value = str(10 * serial + 10) if plan.numeric else f"t{serial}"
            written.append(value)
            if applies:
                current = value
        elif plan.f == "delete":
            if applies:
                current = None
        elif plan.f == "cas":
            choices = [current, None, written[-1] if written else "t-1", str(serial)]
            expected = choices[plan.expected_choice]
            new = str(10 * serial + 10) if plan.numeric else f"t{serial}"
            written.append(new)
            value = [expected, new]
            failed = expected != current
            if applies and not failed:
                current = new
        else:
            number = canonical(current)
            failed = number is None
            if number is not None:
                result = number + 1
                if applies:
                    current = str(number + 1)
        base = {"process": process, "f": plan.f, "key": "k"}
        timed.append((start, 1, serial, {**base, "type": "invoke", "value": value}))
        if end is not None:
            kind = "ok" if plan.outcome == "ok" else "info"
            if kind == "ok" and failed:
                kind = "fail"
            done = result if plan.f in ("read", "incr") else value
            timed.append((end, 0, serial, {**base, "type": kind, "value": done}))
    return [event for *_, event in sorted(timed, key=lambda t: t[:3])]


@st.composite
def valid_histories(
    draw: st.DrawFn, ops_max: int = 10, outcomes: tuple[str, ...] = OUTCOMES
) -> list[Event]:
    processes = draw(st.integers(1, 5))
    ops = draw(st.lists(plans(outcomes), min_size=1, max_size=ops_max))
    return simulate(ops, processes, draw(st.booleans()))


# -- mutations -----------------------------------------------------------------------------------


def mutate(events: list[Event], rng: random.Random) -> list[Event]:
    """One random change that keeps the history well formed (usually breaking linearizability)."""
    out = [dict(e) for e in events]
    values = [None, "t0", "10", "20", "1", "2"] + [
        e["value"] for e in out if isinstance(e["value"], str)
    ]
    choices: list[tuple[str, int]] = []
    for i, event in enumerate(out):
        kind, f = event["type"], event["f"]
        if kind == "ok" and f in ("read", "incr"):
            choices += [("value", i)] * 3
        if kind != "invoke" and f == "cas":
            choices.append(("expected", i))
        if kind == "ok" and f != "read":
            choices.append(("to-fail", i))
        if kind in ("info", "fail"):
            choices += [("to-ok", i)] * 2
        if kind == "ok":
            choices.append(("to-info", i))  # weakens: keeps a linearizable history so
        if i + 1 < len(out) and out[i + 1]["process"] != event["process"]:
            choices.append(("swap", i))
    if not choices:
        return out
    kind, i = rng.choice(choices)
    event = out[i]
    if kind == "swap":
        out[i], out[i + 1] = out[i + 1], out[i]
    elif kind == "value" and event["f"] == "read":
        event["value"] = rng.choice(values)
    elif kind == "value":
        event["value"] = max(1, event["value"] + rng.choice((-2, -1, 1, 2)))
    elif kind == "expected":
        invoke = next(j for j in range(i - 1, -1, -1) if out[j]["process"] == event["process"])
        pair = [rng.choice(values), event["value"][1]]
        out[invoke]["value"] = pair
        event["value"] = list(pair)
    elif kind == "to-ok":
        if event["f"] == "incr":
            event["value"] = rng.choice((1, 2, 3))
        elif event["f"] == "read":
            event["value"] = rng.choice(values)
        event["type"] = "ok"
    else:
        event["type"] = "fail" if kind == "to-fail" else "info"
    return out


@st.composite
def mutated_histories(
    draw: st.DrawFn, ops_max: int = 10, outcomes: tuple[str, ...] = OUTCOMES
) -> list[Event]:
    events = draw(valid_histories(ops_max, outcomes))
    rng = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(1, 3))):
        events = mutate(events, rng)
    return events


@st.composite
def colliding_histories(draw: st.DrawFn, ops_max: int = BRUTE_OPS_MAX) -> list[Event]:
    """Histories whose values are squeezed into a few, so writes repeat and collide (and the
    integer 1 meets the string "1").  No longer valid by construction, but brute force says
    which they are.  Exercises the twins rule and value normalisation."""
    events = draw(valid_histories(ops_max, INFO_HEAVY))
    table: dict[str, str] = {}

    def squash(value: Any) -> Any:
        if isinstance(value, list):
            return [squash(v) for v in value]
        if isinstance(value, str) and value not in table:
            table[value] = draw(st.sampled_from(("0", "1", "2", "x", 1)))  # 1 == "1"
        return table[value] if isinstance(value, str) else value

    return [{**event, "value": squash(event["value"])} for event in events]


# -- brute force, from the definition ------------------------------------------------------------


@dataclass(frozen=True)
class BruteOp:
    f: str
    args: tuple[Any, ...]
    invoke: int
    ret: int | None  # None: info, optional


def norm(value: Any) -> str | None:
    return None if value is None else str(value)


def brute_op(invoke_at: int, invoke: Event, done_at: int, done: Event | None) -> BruteOp | None:
    kind = "info" if done is None else done["type"]
    if kind == "fail" or (kind == "info" and invoke["f"] == "read"):
        return None  # did not happen / changes nothing
    source = done if done is not None and invoke["f"] in ("read", "incr") else invoke
    raw = source["value"]
    args = tuple(norm(v) for v in raw) if isinstance(raw, list) else (norm(raw),)
    return BruteOp(invoke["f"], args, invoke_at, None if kind == "info" else done_at)


def brute_ops(events: list[Event]) -> list[BruteOp]:
    opened: dict[Any, tuple[int, Event]] = {}
    found: list[BruteOp | None] = []
    for i, event in enumerate(events):
        if event["type"] == "invoke":
            opened[event["process"]] = (i, event)
        else:
            at, invoke = opened.pop(event["process"])
            found.append(brute_op(at, invoke, i, event))
    found.extend(brute_op(at, invoke, -1, None) for at, invoke in opened.values())
    return [op for op in found if op is not None]


def step(state: str | None, op: BruteOp) -> Iterator[str | None]:
    """Every state after ``op`` from ``state`` (none: impossible; info failures change nothing)."""
    known = op.ret is not None
    if op.f == "read":
        if state == op.args[0]:
            yield state
    elif op.f == "write":
        yield op.args[0]
    elif op.f == "delete":
        yield None
    elif op.f == "cas":
        if state == op.args[0]:
            yield op.args[1]
    else:
        number = canonical(state)
        if number is not None and (not known or str(number + 1) == op.args[0]):
            yield str(number + 1)


def brute_linearizable(events: list[Event]) -> bool:
    ops = brute_ops(events)
    seen: set[tuple[str | None, frozenset[int]]] = set()

    def search(state: str | None, done: frozenset[int]) -> bool:
        if all(i in done for i, op in enumerate(ops) if op.ret is not None):
            return True
        if (state, done) in seen:
            return False
        seen.add((state, done))
        for i, op in enumerate(ops):
            if i in done:
                continue
            # ``op`` may come next only if no unplaced completed op returned before it began
            if any(
                j not in done and j != i and other.ret is not None and other.ret < op.invoke
                for j, other in enumerate(ops)
            ):
                continue
            for after in step(state, op):
                if search(after, done | {i}):
                    return True
        return False

    return search(None, frozenset())


# -- the properties ------------------------------------------------------------------------------


def verdicts(events: list[Event]) -> tuple[str, str]:
    jit = check_history_jit(events, timeout_s=30).outcome
    wgl = check_history(history_from_events(events), timeout_s=30).outcome
    return jit, {"ok": "linearizable", "violation": "violation"}.get(wgl, "unknown")


def one_key_ops(events: list[Mapping[str, Any]]) -> int:
    return sum(1 for e in events if e["type"] == "invoke")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_histories(ops_max=12))
def test_histories_of_a_real_register_are_accepted_by_both(events: list[Event]) -> None:
    jit, wgl = verdicts(events)
    assert (jit, wgl) == ("linearizable", "linearizable"), events


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_histories(ops_max=BRUTE_OPS_MAX))
def test_small_mutated_histories_jit_wgl_and_brute_force_agree(events: list[Event]) -> None:
    jit, wgl = verdicts(events)
    truth = "linearizable" if brute_linearizable(events) else "violation"
    assert (jit, wgl) == (truth, truth), events


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_histories(ops_max=BRUTE_OPS_MAX, outcomes=INFO_HEAVY))
def test_small_info_heavy_histories_jit_wgl_and_brute_force_agree(events: list[Event]) -> None:
    jit, wgl = verdicts(events)
    truth = "linearizable" if brute_linearizable(events) else "violation"
    assert (jit, wgl) == (truth, truth), events


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(colliding_histories())
def test_small_histories_with_colliding_values_jit_wgl_and_brute_force_agree(
    events: list[Event],
) -> None:
    jit, wgl = verdicts(events)
    truth = "linearizable" if brute_linearizable(events) else "violation"
    assert (jit, wgl) == (truth, truth), events


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_histories(ops_max=30))
def test_larger_mutated_histories_jit_and_wgl_agree(events: list[Event]) -> None:
    jit, wgl = verdicts(events)
    assert "unknown" not in (jit, wgl)
    assert jit == wgl, events


def test_the_generator_makes_both_kinds() -> None:
    """Guard against a generator whose mutations never break anything (a vacuous test)."""
    rng = random.Random(7)
    kinds = {"linearizable": 0, "violation": 0}
    for _ in range(200):
        ops = [
            Plan(rng.randrange(5), rng.choice(FUNCTIONS), rng.randrange(4), rng.randrange(5),
                 rng.randrange(5), rng.choice(OUTCOMES), rng.random() < 0.5, rng.randrange(4))
            for _ in range(rng.randrange(1, 8))
        ]  # fmt: skip
        events = simulate(ops, rng.randrange(1, 5), rng.random() < 0.5)
        assert brute_linearizable(events)
        kinds[verdicts(mutate(events, rng))[0]] += 1
    assert kinds["violation"] > 30 and kinds["linearizable"] > 30, kinds
