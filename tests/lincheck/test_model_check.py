"""The model-based linearizability search (``lincheck.model_check``) against brute force.

Histories come from the reference model itself: commands the simulator draws on one key, each
taking effect at a random instant inside its interval (an ``info`` one possibly never), so the
unmutated ones are linearizable by construction.  Mutations (a reply replaced, an ``ok`` turned
``info`` or ``fail``, two events swapped) break most of them; then the search must agree with an
exhaustive search over every order, written here from the definition.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pypaxos.lincheck.model_check import check_history, history_from_events
from pypaxos.lincheck.redis_model import State, freeze, is_read_only, step
from pypaxos.sim.kv_collections import FAMILIES, draw_command

Event = dict[str, Any]


def _events(ops: list[tuple[int, str, list[Any], Any, str]]) -> list[Event]:
    """Sequential events: ``(process, f, args, reply, outcome)`` each invoked and completed."""
    events: list[Event] = []
    for process, f, args, reply, outcome in ops:
        base = {"process": process, "f": f, "key": "c0"}
        events.append({**base, "type": "invoke", "value": args})
        events.append({**base, "type": outcome, "value": reply})
    return events


def test_a_stale_read_is_caught_and_explained() -> None:
    events = _events(
        [
            (1, "rpush", ["a"], 1, "ok"),
            (2, "lpop", [], "a", "ok"),
            (1, "lrange", [0, -1], ["a"], "ok"),  # the item was popped before this began
        ]
    )
    result = check_history(history_from_events(events))
    bad = result.violation()
    assert result.outcome == "violation" and bad is not None and bad.key == "c0"
    assert "lrange c0 [0, -1] -> ['a']" in bad.failure


def test_concurrent_operations_may_take_either_order() -> None:
    base = {"key": "c0"}
    events = [
        {**base, "process": 1, "type": "invoke", "f": "sadd", "value": ["m"]},
        {**base, "process": 2, "type": "invoke", "f": "smembers", "value": []},
        {**base, "process": 2, "type": "ok", "f": "smembers", "value": []},
        {**base, "process": 1, "type": "ok", "f": "sadd", "value": 1},
        {**base, "process": 2, "type": "invoke", "f": "scard", "value": []},
        {**base, "process": 2, "type": "ok", "f": "scard", "value": 1},
    ]
    assert check_history(history_from_events(events)).ok


def test_an_unknown_outcome_may_have_happened_or_not() -> None:
    happened = _events([(1, "hset", [["f", "1"]], None, "info"), (2, "hget", ["f"], "1", "ok")])
    assert check_history(history_from_events(happened)).ok
    lost = _events([(1, "hset", [["f", "1"]], None, "info"), (2, "hget", ["f"], None, "ok")])
    assert check_history(history_from_events(lost)).ok
    failed = _events([(1, "hset", [["f", "1"]], None, "fail"), (2, "hget", ["f"], "1", "ok")])
    assert check_history(history_from_events(failed)).outcome == "violation"


# -- histories from the model, with random linearization points ----------------------------------


def simulate(rng: random.Random, count: int, processes: int) -> list[Event]:
    """``count`` drawn commands on one key, each applied at an instant inside its interval."""
    clock = [0] * processes
    ids = list(range(processes))
    fresh = itertools.count(1)
    planned = []
    for serial in range(count):
        slot = rng.randrange(processes)
        family = rng.choice((*FAMILIES, "keyspace"))
        f, args, _, _ = draw_command(rng, family, "c0", lambda: str(next(fresh)))
        start = clock[slot] + 2 * rng.randrange(3)
        instant = start + 2 * rng.randrange(4) + 1
        outcome = rng.choice(("ok", "ok", "ok", "info-applied", "info-lost"))
        end = instant + 2 * rng.randrange(4) + 1
        if outcome.startswith("info"):
            end = start + 2 * rng.randrange(3) + 2  # the client gave up; the effect may be later
        planned.append((instant, serial, ids[slot], f, args, start, end, outcome))
        clock[slot] = end
        if outcome.startswith("info"):
            ids[slot] += processes  # a new process takes over after an unknown outcome
    state: State = None
    timed: list[tuple[int, int, int, Event]] = []
    for _, serial, process, f, args, start, end, outcome in sorted(planned):
        reply, after = step(f, freeze(args), state)
        if outcome != "info-lost":
            state = after
        base = {"process": process, "f": f, "key": "c0"}
        timed.append((start, 1, serial, {**base, "type": "invoke", "value": args}))
        kind = "ok" if outcome == "ok" else "info"
        timed.append((end, 0, serial, {**base, "type": kind, "value": _json(reply)}))
    return [event for *_, event in sorted(timed, key=lambda t: t[:3])]


def _json(reply: object) -> object:
    if isinstance(reply, tuple):
        if len(reply) == 2 and reply[0] == "error":
            return {"error": reply[1]}
        return [_json(item) for item in reply]
    return reply


def mutate(events: list[Event], rng: random.Random) -> list[Event]:
    out = [dict(e) for e in events]
    completions = [i for i, e in enumerate(out) if e["type"] != "invoke"]
    if not completions:
        return out
    i = rng.choice(completions)
    how = rng.choice(("reply", "reply", "to-info", "to-fail", "swap"))
    if how == "reply":
        others = [e["value"] for e in out if e["type"] == "ok" and e["f"] == out[i]["f"]]
        out[i]["value"] = rng.choice([*others, None, 0, 1, 2])
        out[i]["type"] = "ok"
    elif how == "to-info":
        out[i]["type"] = "info"
    elif how == "to-fail":
        out[i]["type"] = "fail"
    elif i + 1 < len(out) and out[i + 1]["process"] != out[i]["process"]:
        out[i], out[i + 1] = out[i + 1], out[i]
    return out


def brute_force(events: list[Event]) -> bool:
    """Every order of the operations that respects real time, unknown outcomes optional."""
    opened: dict[Any, tuple[int, Event]] = {}
    ops: list[tuple[str, object, object, int, int | None]] = []  # f, args, reply, invoked, done
    for i, event in enumerate(events):
        if event["type"] == "invoke":
            opened[event["process"]] = (i, event)
            continue
        at, invoke = opened.pop(event["process"])
        if event["type"] == "ok":
            ops.append((invoke["f"], freeze(invoke["value"]), freeze(event["value"]), at, i))
        elif event["type"] == "info":
            ops.append((invoke["f"], freeze(invoke["value"]), None, at, None))
    ops += [(e["f"], freeze(e["value"]), None, at, None) for at, e in opened.values()]
    ops = [op for op in ops if op[4] is not None or not is_read_only(op[0], op[1])]

    def search(state: State, left: frozenset[int]) -> bool:
        if all(ops[j][4] is None for j in left):
            return True
        for j in left:
            f, args, reply, invoked, _ = ops[j]
            # j may go next only if no other operation left returned before j was invoked
            if any(ops[k][4] is not None and ops[k][4] < invoked for k in left if k != j):  # type: ignore[operator]
                continue
            got, after = step(f, args, state)
            if ops[j][4] is not None and got != reply:
                continue
            if search(after, left - {j}):
                return True
        return False

    return search(None, frozenset(range(len(ops))))


@settings(max_examples=400, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(1, 7), st.integers(1, 3), st.booleans())
def test_the_search_agrees_with_brute_force(
    rng: random.Random, count: int, processes: int, mutated: bool
) -> None:
    events = simulate(rng, count, processes)
    if mutated:
        events = mutate(events, rng)
    else:
        assert brute_force(events), "a history made by the model is linearizable"
    try:
        history = history_from_events(events)
    except ValueError:
        return  # a swap made it malformed (a completion before its invocation)
    assert check_history(history).ok == brute_force(events)
