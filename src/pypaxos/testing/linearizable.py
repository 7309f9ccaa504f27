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

Which pending call to try first is free; a call that may take effect anywhere (an unknown
outcome) makes the search try it at every point, which explodes with a few of them.  So each
operation may carry a ``rank``, where the run says it took effect (its position in the decided
log, or the log position a read was answered at), and candidates are tried in rank order: for a
correct run the first path tried is the witness.  A hint only orders the search; every
candidate is still tried before a configuration is given up, so the verdict is the same (a
property test checks it against brute force, with random hints).

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
    rank: float | None = None  # where it took effect in the run, if known: a search hint

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
    return _Search(ops, model_factory(), steps_max).run()


class _Search:
    """One depth-first search; a frame per configuration, its candidates tried in order.

    The candidates of a configuration are the calls before the first return still in the list
    (Wing & Gong).  They are tried by ``Op.rank`` first (a hint: where the call took effect in
    the run, when known), then in invocation order; the order changes how fast a witness is
    found, never the verdict, since every candidate is tried before a frame is given up.
    """

    def __init__(self, ops: Sequence[Op], model: ObjectMachine, steps_max: int) -> None:
        self.ops = ops
        self.model = model
        self.steps_max = steps_max
        self.head = _build_list(ops)
        self.order = [
            (0, op.rank, index) if op.rank is not None else (1, 0.0, index)
            for index, op in enumerate(ops)
        ]
        self.cache: set[tuple[int, bytes]] = set()
        self.steps_cache: dict[tuple[bytes, int], tuple[bytes, bytes]] = {}
        self.mutating: Op | None = None

    def step(self, state: bytes, index: int) -> tuple[bytes, bytes]:
        """The model's state and result after ``ops[index]`` from ``state`` (memoised)."""
        key = (state, index)
        known = self.steps_cache.get(key)
        if known is None:
            model = self.model
            model.set_state(state)
            op = self.ops[index]
            result = model.read(op.call) if op.read else model.execute(op.call)
            known = self.steps_cache[key] = (model.state(), result)
            if op.read and known[0] != state and self.mutating is None:
                self.mutating = op
        return known

    def candidates(self) -> list[_Entry]:
        found = []
        entry = self.head.next
        while entry is not None and entry.is_call:
            found.append(entry)
            entry = entry.next
        found.sort(key=lambda e: self.order[e.op_index])
        return found

    def first_return(self) -> _Entry | None:
        entry = self.head.next
        while entry is not None and entry.is_call:
            entry = entry.next
        return entry

    def result(self, verdict: Verdict, stuck: Op | None = None) -> LinearizabilityResult:
        return LinearizabilityResult(
            verdict,
            len(self.ops),
            len(self.cache),
            stuck,
            len(self.steps_cache),
            self.mutating,
        )

    def run(self) -> LinearizabilityResult:
        ops = self.ops
        state = self.model.state()
        linearized = 0
        returns_left = sum(1 for op in ops if op.return_tick is not None)
        frames: list[tuple[list[_Entry], list[int]]] = [(self.candidates(), [0])]
        chosen: list[tuple[_Entry, bytes]] = []  # the call linearized to reach each frame
        deepest: tuple[int, _Entry | None] = (-1, None)
        steps = 0
        while returns_left:
            steps += 1
            if steps > self.steps_max:
                return self.result("undecided")
            candidates, cursor = frames[-1]
            if cursor[0] >= len(candidates):  # every candidate tried: undo the last choice
                if len(chosen) > deepest[0]:
                    deepest = (len(chosen), self.first_return())
                if not chosen:
                    stuck = deepest[1]
                    return self.result(
                        "not linearizable", None if stuck is None else ops[stuck.op_index]
                    )
                entry, state = chosen.pop()
                linearized &= ~(1 << entry.op_index)
                _unlift(entry)
                returns_left += entry.match is not None
                frames.pop()
                continue
            entry = candidates[cursor[0]]
            cursor[0] += 1
            op = ops[entry.op_index]
            new_state, result = self.step(state, entry.op_index)
            if self.mutating is not None:
                return self.result("not linearizable")
            new_linearized = linearized | (1 << entry.op_index)
            if op.result is not None and result != op.result:
                continue
            if (new_linearized, new_state) in self.cache:
                continue
            self.cache.add((new_linearized, new_state))
            chosen.append((entry, state))
            state, linearized = new_state, new_linearized
            _lift(entry)
            returns_left -= entry.match is not None
            frames.append((self.candidates(), [0]))
        return self.result("linearizable")


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
