"""Linearizability of histories over any sequential model, by search (here: ``redis_model``).

``wgl`` and ``jit`` know one object, a register, and are tuned to it.  Histories of Redis
collections need a richer object (a key that may hold a string, a hash, a list, a set or a
sorted set), so this module searches against a sequential model instead: the model's
``step(f, args, state)`` answers ``(reply, next state)``, and an operation is placed only where
the model gives the reply the client recorded.

Per key (linearizability is local: Herlihy & Wing 1990; P-compositionality, Horn & Kroening
2015), a depth-first Wing & Gong search with Lowe's memoisation ("Testing for
linearizability", 2017): a configuration is the set of completed operations already placed
and the model's state; one seen before is not explored again.  Operations of unknown outcome
(``info``) may take effect at any point after their invocation, or never: they are placed only
when they change the state, read-only ones are dropped, and a configuration reached before
with a subset of them placed makes this one redundant, and of several with the same call only
the earliest invoked is tried first (they are interchangeable).  Completed operations are tried
before unknown-outcome ones, so configurations are first reached with as few of those as
possible.  A first, narrower search places an unknown-outcome operation only where it lets a
completed one go next; what it finds is a witness, and only if it finds none does the full
search decide.

A history is the Jepsen-style JSON events of ``wgl`` (``process``, ``type``, ``f``, ``key``,
``value``), with ``f`` any operation of the model: the invocation's ``value`` holds the
arguments, the ``ok`` completion's the reply.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from pypaxos.lincheck.redis_model import (
    FUNCTIONS,
    KeyState,
    ModelError,
    Reply,
    State,
    freeze,
    is_read_only,
    step,
    thaw,
)

Outcome = Literal["ok", "violation", "timeout"]
EVENT_TYPES = ("invoke", "ok", "fail", "info")
_TIMEOUT_CHECK_STEPS = 2048  # search steps between clock reads
STATES_SHOWN_MAX = 4  # model states listed at a failure


@dataclass(frozen=True, slots=True)
class ModelOp:
    """One operation: invocation paired with completion (``reply`` ``None`` and ``returned``
    ``None`` for an unknown outcome).  Positions are 1-based event numbers."""

    index: int
    process: object
    f: str
    key: str
    args: Reply
    reply: Reply
    known: bool
    invoked: int
    returned: int | None

    def describe(self) -> str:
        shown = f"{self.f} {self.key} {thaw(self.args)!r}"
        if not self.known:
            return shown + " (outcome unknown)"
        return f"{shown} -> {thaw(self.reply)!r}"


@dataclass(frozen=True, slots=True)
class ModelHistory:
    operations: tuple[ModelOp, ...]
    failed: int = 0

    def by_key(self) -> dict[str, list[ModelOp]]:
        groups: dict[str, list[ModelOp]] = {}
        for op in self.operations:
            groups.setdefault(op.key, []).append(op)
        return dict(sorted(groups.items()))


REGISTER_FUNCTIONS = frozenset({"read", "write", "cas", "delete", "incr"})
"""What ``wgl`` and ``jit`` check; a key with any other operation is the model's."""


def split_lines(lines: Iterable[str]) -> tuple[list[str], list[Mapping[str, object]]]:
    """A mixed history (``pypaxos sim kv --collections``) split by key: the lines of the keys
    whose operations are all register operations (kept as they are, for ``wgl`` and ``jit``)
    and the events of the other keys, for this module.  A line that is not a JSON object
    stays with the register lines, whose parsers report it."""
    decoded: list[tuple[str, Mapping[str, object] | None]] = []
    model_keys: set[object] = set()
    for line in lines:
        try:
            event = json.loads(line) if line.strip() else None
        except ValueError:
            event = None
        if not isinstance(event, dict):
            event = None
        elif event.get("f") not in REGISTER_FUNCTIONS:
            model_keys.add(event.get("key"))
        decoded.append((line, event))
    register = [line for line, e in decoded if e is None or e.get("key") not in model_keys]
    model = [e for _, e in decoded if e is not None and e.get("key") in model_keys]
    return register, model


def history_from_events(events: Iterable[Mapping[str, object]]) -> ModelHistory:
    """Pair invocations with completions; ``fail``-ed operations are dropped (they certainly
    did not happen).  Raises ``ValueError`` naming the event."""
    pending: dict[object, tuple[int, str, str, Reply]] = {}
    done: list[ModelOp] = []
    failed = 0
    for number, event in enumerate(events, start=1):
        process, kind, f, key = (event.get(k) for k in ("process", "type", "f", "key"))
        if process == "nemesis":
            continue
        if kind not in EVENT_TYPES:
            raise ValueError(f"event {number}: 'type' must be one of {', '.join(EVENT_TYPES)}")
        if not isinstance(f, str) or f not in FUNCTIONS:
            raise ValueError(f"event {number}: unknown operation {f!r}")
        if not isinstance(key, str):
            raise ValueError(f"event {number}: 'key' must be a string")
        try:
            value = freeze(event.get("value"))
        except ModelError as error:
            raise ValueError(f"event {number}: {error}") from None
        if kind == "invoke":
            if process in pending:
                raise ValueError(f"event {number}: process {process} invokes twice")
            pending[process] = (number, f, key, value)
            continue
        invocation = pending.pop(process, None)
        if invocation is None or invocation[1:3] != (f, key):
            raise ValueError(f"event {number}: completes no matching invocation")
        invoked, _, _, args = invocation
        if kind == "fail":
            failed += 1
            continue
        known = kind == "ok"
        done.append(
            ModelOp(
                0,
                process,
                f,
                key,
                args,
                value if known else None,
                known,
                invoked,
                number if known else None,
            )
        )
    for invoked, f, key, args in pending.values():
        done.append(ModelOp(0, None, f, key, args, None, False, invoked, None))
    done.sort(key=lambda op: op.invoked)
    ops = tuple(
        ModelOp(i, op.process, op.f, op.key, op.args, op.reply, op.known, op.invoked, op.returned)
        for i, op in enumerate(done)
    )
    return ModelHistory(ops, failed)


@dataclass(frozen=True, slots=True)
class ModelKeyResult:
    key: str
    outcome: Outcome
    operations: int
    configurations: int
    failure: str = ""  # on a violation: the operation no order explains, and its context


@dataclass(frozen=True, slots=True)
class ModelResult:
    outcome: Outcome
    keys: tuple[ModelKeyResult, ...]
    operations: int
    elapsed_s: float
    failed: int = 0

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def violation(self) -> ModelKeyResult | None:
        return next((k for k in self.keys if k.outcome == "violation"), None)

    def summary(self) -> str:
        words = {"ok": "linearizable", "violation": "NOT linearizable", "timeout": "undecided"}
        timed_out = sum(k.outcome == "timeout" for k in self.keys)
        text = (
            f"{words[self.outcome]} (model): {self.operations} operations, {len(self.keys)} "
            f"keys, {sum(k.configurations for k in self.keys)} configurations, "
            f"{self.elapsed_s:.3f} s"
        )
        if self.failed:
            text += f" ({self.failed} failed operations dropped)"
        return text + (f" ({timed_out} keys timed out)" if timed_out else "")

    def explain(self) -> str:
        bad = self.violation()
        return self.summary() if bad is None else f"{self.summary()}\n{bad.failure}"


class _Timeout(Exception):
    pass


@dataclass
class _Search:
    """The search over one key's operations (see the module docstring)."""

    key: str
    ops: list[ModelOp]
    deadline: float | None
    # Place an unknown-outcome operation only where it lets a completed one be placed next
    # (a first, narrower search: a witness it finds is a witness; if it finds none, the full
    # search decides).
    narrow: bool = False
    configurations: int = 0
    deepest: int = -1  # completed operations placed at the deepest dead end
    stuck: list[tuple[int, State]] = field(default_factory=list)  # (op, state) there

    def run(self) -> bool:
        ops = self.ops
        completed = sorted((j for j, op in enumerate(ops) if op.known), key=self._returned)
        bit = {j: 1 << n for n, j in enumerate(completed)}
        everything = (1 << len(completed)) - 1
        optional = [j for j, op in enumerate(ops) if not op.known]
        info_bit = {j: 1 << n for n, j in enumerate(optional)}
        order = sorted(range(len(ops)), key=lambda j: ops[j].invoked)
        known = [op.known for op in ops]
        invoked = [op.invoked for op in ops]
        # Unknown-outcome operations with the same call are interchangeable: the earliest one
        # is available whenever a later one is, so a later one is used only after it.
        twin_before: dict[int, int] = {}
        last_of: dict[tuple[str, Reply], int] = {}
        for j in order:
            if not known[j]:
                call = (ops[j].f, ops[j].args)
                if call in last_of:
                    twin_before[j] = last_of[call]
                last_of[call] = j
        seen: dict[tuple[int, State], list[int]] = {}
        # One frame per configuration on the path, its candidates generated lazily (most
        # configurations of a linearizable history need only their first): placed completed
        # ops, placed optional ops, state, completed ops placed, the first unplaced completed
        # op, its return (every op placed next was invoked before it), the position in
        # ``order``, the pass (completed ops first, then optional ones), whether a child was
        # found.
        frames: list[list[object]] = []

        def enter(done: int, used: int, state: State, depth: int) -> bool:
            if done == everything:
                return True
            first = next(j for j in completed if not done & bit[j])
            frames.append([done, used, state, depth, first, self._returned(first), 0, 0, False])
            return False

        if enter(0, 0, None, 0):
            return True
        steps = 0
        while frames:
            frame = frames[-1]
            done, used, state, depth, first, limit, position, phase, fertile = frame
            assert isinstance(done, int) and isinstance(used, int) and isinstance(depth, int)
            assert isinstance(position, int) and isinstance(limit, int)
            assert state is None or isinstance(state, KeyState)
            steps += 1
            if self.deadline is not None and steps % _TIMEOUT_CHECK_STEPS == 0:
                self.configurations = len(seen)
                if time.perf_counter() > self.deadline:
                    raise _Timeout
            child: tuple[int, int, State, int] | None = None
            while position < len(order) and child is None:
                j = order[position]
                position += 1
                if invoked[j] > limit:
                    position = len(order)
                    break
                op = ops[j]
                if phase == 0:
                    if not known[j] or done & bit[j]:
                        continue
                    reply, after = step(op.f, op.args, state)
                    if reply != op.reply:
                        continue
                    child = (done | bit[j], used, after, depth + 1)
                else:
                    if known[j] or used & info_bit[j]:
                        continue
                    twin = twin_before.get(j)
                    if twin is not None and not used & info_bit[twin]:
                        continue
                    _, after = step(op.f, op.args, state)
                    if after == state:  # changes nothing here: pointless now
                        continue
                    if self.narrow and not self._enables(done, limit, after, order, bit):
                        continue
                    child = (done, used | info_bit[j], after, depth)
                fertile = True
                memo = seen.setdefault((child[0], after), [])
                if any(old & ~child[1] == 0 for old in memo):
                    child = None  # reached before with no more optional operations placed
                else:
                    memo.append(child[1])
            frame[6], frame[8] = position, fertile
            if child is not None:
                if enter(*child):
                    self.configurations = len(seen)
                    return True
                continue
            if phase == 0:  # completed operations tried: now the optional ones
                frame[6], frame[7] = 0, 1
                continue
            if not fertile:
                assert isinstance(first, int)
                self._note_stuck(depth, first, state)
            frames.pop()
        self.configurations = len(seen)
        return False

    def _enables(
        self, done: int, limit: int, state: State, order: list[int], bit: dict[int, int]
    ) -> bool:
        """Can some unplaced completed operation invoked before ``limit`` go next in ``state``?"""
        for j in order:
            op = self.ops[j]
            if op.invoked > limit:
                return False
            if op.known and not done & bit[j] and step(op.f, op.args, state)[0] == op.reply:
                return True
        return False

    def _returned(self, j: int) -> int:
        returned = self.ops[j].returned
        assert returned is not None
        return returned

    def _note_stuck(self, depth: int, j: int, state: State) -> None:
        if depth > self.deepest:
            self.deepest, self.stuck = depth, []
        if depth == self.deepest and len(self.stuck) < STATES_SHOWN_MAX:
            self.stuck.append((j, state))

    def failure(self) -> str:
        j, _ = self.stuck[0] if self.stuck else (0, None)
        op = self.ops[j]
        returned = op.returned or 0
        lines = [
            f"key {self.key!r}: no order of its operations explains",
            f"  {op.describe()}   (process {op.process}, events {op.invoked}..{returned})",
            "orders that get this far leave the key as: "
            + "; ".join(repr(state) for _, state in self.stuck),
            "operations around it:",
        ]
        for other in self.ops:
            if other.invoked < returned and (other.returned or returned + 1) > op.invoked - 40:
                marker = "   <- cannot be placed" if other.index == op.index else ""
                end = "?" if other.returned is None else str(other.returned)
                lines.append(
                    f"  events {other.invoked}..{end}  process {other.process}  "
                    f"{other.describe()}{marker}"
                )
        return "\n".join(lines)


def check_key(key: str, ops: list[ModelOp], deadline: float | None = None) -> ModelKeyResult:
    # An unknown-outcome read changes nothing: it can always be left out.
    kept = [op for op in ops if op.known or not is_read_only(op.f, op.args)]
    search = _Search(key, kept, deadline)
    try:
        if any(not op.known for op in kept):
            narrow = _Search(key, kept, deadline, narrow=True)
            if narrow.run():
                return ModelKeyResult(key, "ok", len(kept), narrow.configurations)
        verdict = search.run()
    except _Timeout:
        return ModelKeyResult(key, "timeout", len(kept), search.configurations)
    if verdict:
        return ModelKeyResult(key, "ok", len(kept), search.configurations)
    return ModelKeyResult(key, "violation", len(kept), search.configurations, search.failure())


def check_history(history: ModelHistory, timeout_s: float | None = None) -> ModelResult:
    """Check every key; stop searching after ``timeout_s`` seconds in total (``timeout``)."""
    started = time.perf_counter()
    deadline = None if timeout_s is None else started + timeout_s
    results: list[ModelKeyResult] = []
    collecting = gc.isenabled()
    gc.disable()  # the search makes only acyclic tuples: the cyclic collector would rescan them
    try:
        for key, ops in history.by_key().items():
            if deadline is not None and time.perf_counter() > deadline:
                results.append(ModelKeyResult(key, "timeout", len(ops), 0))
                continue
            results.append(check_key(key, ops, deadline))
    finally:
        if collecting:
            gc.enable()
    outcomes = {r.outcome for r in results}
    outcome: Outcome = (
        "violation" if "violation" in outcomes else "timeout" if "timeout" in outcomes else "ok"
    )
    elapsed_s = time.perf_counter() - started
    return ModelResult(outcome, tuple(results), len(history.operations), elapsed_s, history.failed)


__all__ = [
    "ModelHistory",
    "ModelKeyResult",
    "ModelOp",
    "ModelResult",
    "check_history",
    "check_key",
    "history_from_events",
    "split_lines",
]
