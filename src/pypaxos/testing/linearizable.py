"""Is a history of calls on a replicated object linearizable, with the user's class as the
sequential specification?  Wing & Gong's search with Lowe's memoisation.

Herlihy & Wing's definition (1990): some total order of the operations, consistent with real
time (an operation that returned before another was invoked comes first), in which running each
operation on the sequential object gives the result it really returned.  The search (Wing &
Gong 1993; Lowe, "Testing for linearizability", 2017; as in Porcupine) walks the invocations
and returns in time order, tentatively linearizes a pending call whose model result matches,
backtracks when it meets the return of a call not yet linearized, and never revisits a
configuration (the set of linearized operations, the model's state).  The model is a fresh
``ObjectMachine`` built by the user's factory, stepped with ``ObjectMachine.execute`` (a
command) or ``read``; its state is ``ObjectMachine.state()`` bytes, so memoisation is exact.

An operation of unknown outcome (the client gave up) may take effect at any point after its
invocation or never; any result is accepted for it.  ``fail``-ed operations (the machine said
it did not apply them) are left out.  A search budget bounds the work: past it the verdict is
``undecided``, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pypaxos.objects import Call, ObjectMachine, decode_result

Verdict = Literal["linearizable", "not linearizable", "undecided"]
SEARCH_STEPS_MAX = 400_000


@dataclass(frozen=True, slots=True)
class Op:
    """One call of a history: invoked at ``invoke_tick``, returned ``result`` at
    ``return_tick`` (``None`` for both when its outcome is unknown)."""

    process: int
    call: Call
    read: bool
    invoke_tick: int
    return_tick: int | None
    result: bytes | None

    def describe(self) -> str:
        args = ", ".join(repr(a) for a in self.call.args)
        kwargs = ", ".join(f"{k}={v!r}" for k, v in self.call.kwargs.items())
        target = f"{self.call.target}." if self.call.target else ""
        shown = ", ".join(x for x in (args, kwargs) if x)
        text = f"p{self.process} {target}{self.call.method}({shown})"
        if self.result is None:
            return text + " -> ? (outcome unknown)"
        return f"{text} -> {decode_result(self.result)!r}"


@dataclass(frozen=True, slots=True)
class LinearizabilityResult:
    verdict: Verdict
    operations: int
    configurations: int
    stuck_at: Op | None = None  # the operation no order could explain
    model_states: int = 0
    mutating_read: Op | None = None  # a read that changed the model's state

    def summary(self) -> str:
        text = (
            f"{self.verdict} ({self.operations} operations, {self.configurations} configurations)"
        )
        if self.mutating_read is not None:
            text += (
                f"; the read {self.mutating_read.describe()} changed the object's state: "
                "a method that changes state must be a @command"
            )
        elif self.stuck_at is not None:
            text += f"; no order explains {self.stuck_at.describe()}"
        return text


class _Entry:
    """A node of the doubly linked list of call and return events."""

    __slots__ = ("is_call", "match", "next", "op_index", "prev")

    def __init__(self, op_index: int, is_call: bool) -> None:
        self.op_index = op_index
        self.is_call = is_call
        self.match: _Entry | None = None  # a call's return (None: unknown outcome)
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def check_linearizable(
    ops: Sequence[Op],
    model_factory: Callable[[], ObjectMachine],
    steps_max: int = SEARCH_STEPS_MAX,
) -> LinearizabilityResult:
    """The verdict on ``ops`` against the sequential object ``model_factory()`` builds."""
    model = model_factory()
    head = _build_list(ops)
    cache: set[tuple[int, bytes]] = set()
    steps_cache: dict[tuple[bytes, int], tuple[bytes, bytes]] = {}
    state = model.state()
    linearized = 0
    stack: list[tuple[_Entry, bytes]] = []
    entry = head.next
    steps = 0
    returns_left = sum(1 for op in ops if op.return_tick is not None)
    deepest: tuple[int, _Entry | None] = (-1, None)

    mutating: list[Op] = []

    def step(state: bytes, index: int) -> tuple[bytes, bytes]:
        key = (state, index)
        known = steps_cache.get(key)
        if known is None:
            model.set_state(state)
            op = ops[index]
            result = model.read(op.call) if op.read else model.execute(op.call)
            known = steps_cache[key] = (model.state(), result)
            if op.read and known[0] != state:
                mutating.append(op)
        return known

    while True:
        if not returns_left:
            return LinearizabilityResult(
                "linearizable", len(ops), len(cache), None, len(steps_cache)
            )
        steps += 1
        if steps > steps_max:
            return LinearizabilityResult("undecided", len(ops), len(cache), None, len(steps_cache))
        assert entry is not None, "a list with returns left always has an entry to look at"
        if entry.is_call:
            op = ops[entry.op_index]
            new_state, result = step(state, entry.op_index)
            if mutating:
                return LinearizabilityResult(
                    "not linearizable", len(ops), len(cache), None, len(steps_cache), mutating[0]
                )
            fits = op.result is None or result == op.result
            new_linearized = linearized | (1 << entry.op_index)
            if fits and (new_linearized, new_state) not in cache:
                cache.add((new_linearized, new_state))
                stack.append((entry, state))
                state, linearized = new_state, new_linearized
                _lift(entry)
                returns_left -= entry.match is not None
                entry = head.next
            else:
                entry = entry.next
        else:  # the return of a call not linearized yet: undo the last choice
            if len(stack) > deepest[0]:
                deepest = (len(stack), entry)
            if not stack:
                stuck = deepest[1]
                stuck_op = ops[stuck.op_index] if stuck is not None else None
                return LinearizabilityResult(
                    "not linearizable", len(ops), len(cache), stuck_op, len(steps_cache)
                )
            call_entry, state = stack.pop()
            linearized &= ~(1 << call_entry.op_index)
            _unlift(call_entry)
            returns_left += call_entry.match is not None
            entry = call_entry.next


def _build_list(ops: Sequence[Op]) -> _Entry:
    """The events in time order (a call before a return at the same tick: more overlap, so
    never a false alarm), after a sentinel head."""
    events: list[tuple[int, int, int, _Entry]] = []
    for index, op in enumerate(ops):
        call = _Entry(index, True)
        events.append((op.invoke_tick, 0, index, call))
        if op.return_tick is not None:
            ret = _Entry(index, False)
            call.match = ret
            events.append((op.return_tick, 1, index, ret))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    head = _Entry(-1, True)
    last = head
    for *_, entry in events:
        last.next = entry
        entry.prev = last
        last = entry
    return head


def _lift(call: _Entry) -> None:
    _unlink(call)
    if call.match is not None:
        _unlink(call.match)


def _unlift(call: _Entry) -> None:
    if call.match is not None:
        _relink(call.match)
    _relink(call)


def _unlink(entry: _Entry) -> None:
    assert entry.prev is not None
    entry.prev.next = entry.next
    if entry.next is not None:
        entry.next.prev = entry.prev


def _relink(entry: _Entry) -> None:
    assert entry.prev is not None
    entry.prev.next = entry
    if entry.next is not None:
        entry.next.prev = entry
