"""Linearizability checking of key-value histories (Herlihy & Wing 1990), by search.

Per key (P-compositionality, Horn & Kroening 2015), Wing & Gong's search with Lowe's
memoisation (Lowe, "Testing for linearizability", 2017), as in Porcupine: walk the key's calls
and returns in real-time order, linearize a call the register accepts, backtrack at a return
that cannot be met, and never revisit a configuration (linearized set as ``(base, mask)``,
register value).  Operations of unknown outcome (``info``) may be linearized at any point or
never; four sound rules, checked against brute force in the property tests, keep them from
making the search exponential.  Histories are JSON Lines in Jepsen's style, with a key.

More: docs/testing.md, 'The Wing-Gong search' and 'The history format'.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Literal

import msgspec

from pypaxos.kv.commands import parse_int64

FUNCTIONS = ("read", "write", "cas", "delete", "incr")
EVENT_TYPES = ("invoke", "ok", "fail", "info")
CONTEXT_OPS_BEFORE = 3  # completed operations shown before the failing one
AROUND_OPS_MAX = 24  # operations listed around a failure
FAILURE_STATES_MAX = 8  # register values listed at a failure
_TIMEOUT_CHECK_STEPS = 4096  # search steps between clock reads

Outcome = Literal["ok", "violation", "timeout"]
Process = int | str


class Operation(msgspec.Struct, frozen=True):
    """One operation of a history, its invocation paired with its completion.

    ``value`` is what was written (``write``), the new value (``cas``), what was read (``read``,
    ``None`` when absent) or the incremented value (``incr``, ``None`` when unknown).
    ``expected`` is a ``cas`` comparand.  ``complete_line`` is ``None`` for an operation whose
    outcome is unknown (``status == "info"``), including one never completed at all.
    """

    index: int
    process: Process
    f: str
    key: str
    value: str | None
    expected: str | None
    status: Literal["ok", "info"]
    invoke_line: int
    complete_line: int | None

    def describe(self) -> str:
        if self.f == "cas":
            text = f"cas {self.key} {_show(self.expected)}->{_show(self.value)}"
        elif self.f == "write":
            text = f"write {self.key} {_show(self.value)}"
        elif self.f == "delete":
            text = f"delete {self.key}"
        elif self.status == "info":
            text = f"{self.f} {self.key}"
        else:
            text = f"{self.f} {self.key} -> {_show(self.value)}"
        return text + (" (outcome unknown)" if self.status == "info" else "")

    def span(self) -> str:
        end = "?" if self.complete_line is None else str(self.complete_line)
        return f"lines {self.invoke_line}..{end}"


class History(msgspec.Struct, frozen=True):
    """A parsed history: its operations in invocation order, and how many ``fail``-ed."""

    operations: tuple[Operation, ...]
    failed: int = 0

    def keys(self) -> tuple[str, ...]:
        return tuple(sorted({op.key for op in self.operations}))

    def by_key(self) -> dict[str, list[Operation]]:
        groups: dict[str, list[Operation]] = {key: [] for key in self.keys()}
        for op in self.operations:
            groups[op.key].append(op)
        return groups


class Failure(msgspec.Struct, frozen=True):
    """Where the search for a key got furthest and stuck.

    ``op`` completed at the latest point any order reached without having been placed: no order
    of the operations before it explains its result.  ``states`` are register values the search
    held there (``None``: absent); ``around`` are the operations concurrent with ``op`` and the
    few that completed just before it, in invocation order.
    """

    op: Operation
    states: tuple[str | None, ...]
    around: tuple[Operation, ...]
    older_open: int = 0  # operations of unknown outcome invoked before ``around`` begins


class KeyResult(msgspec.Struct, frozen=True):
    key: str
    outcome: Outcome
    operations: int
    configurations: int  # memoised search configurations visited
    failure: Failure | None = None


class LinResult(msgspec.Struct, frozen=True):
    """The verdict on a whole history, with one ``KeyResult`` per key (sorted by key)."""

    outcome: Outcome
    keys: tuple[KeyResult, ...]
    operations: int  # checked: ``fail``-ed operations are not counted
    elapsed_s: float
    failed: int = 0  # operations dropped because they certainly did not happen

    @property
    def ok(self) -> bool:
        """True only if every key was verified linearizable."""
        return self.outcome == "ok"

    @property
    def key(self) -> str | None:
        """The first key that is not linearizable, if any."""
        bad = self.violation()
        return None if bad is None else bad.key

    def violation(self) -> KeyResult | None:
        return next((k for k in self.keys if k.outcome == "violation"), None)

    def summary(self) -> str:
        words = {"ok": "linearizable", "violation": "NOT linearizable", "timeout": "undecided"}
        timed_out = sum(k.outcome == "timeout" for k in self.keys)
        text = (
            f"{words[self.outcome]}: {self.operations} operations, {len(self.keys)} keys, "
            f"{sum(k.configurations for k in self.keys)} configurations, {self.elapsed_s:.3f} s"
        )
        if self.failed:
            text += f" ({self.failed} failed operations dropped)"
        return text + (f" ({timed_out} keys timed out)" if timed_out else "")

    def explain(self) -> str:
        """A human explanation: the summary, then the operations around the first violation."""
        lines = [self.summary()]
        bad = self.violation()
        if bad is not None and bad.failure is not None:
            lines.append(explain_failure(bad.key, bad.failure))
        return "\n".join(lines)


def explain_failure(key: str, failure: Failure) -> str:
    op = failure.op
    states = ", ".join(_show(s) for s in failure.states)
    lines = [
        f"key {key!r}: no order of its operations explains",
        f"  {op.describe()}   (process {op.process}, {op.span()})",
        f"orders that get this far leave the register at: {states}",
        "operations around it:",
    ]
    if failure.older_open:
        lines.append(f"  (and {failure.older_open} older operations of unknown outcome)")
    for other in failure.around:
        marker = "   <- cannot be placed" if other.index == op.index else ""
        lines.append(
            f"  {other.span():>18}  process {other.process!s:>4}  {other.describe()}{marker}"
        )
    return "\n".join(lines)


def _show(value: str | None) -> str:
    return "absent" if value is None else json.dumps(value)


# --- parsing ----------------------------------------------------------------------------------


def parse_history(lines: Iterable[str]) -> History:
    """Parse JSON Lines; blank lines are skipped.  Raises ``ValueError`` naming the line."""

    def events() -> Iterable[tuple[int, Mapping[str, object]]]:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                event = _JSON_DECODER.decode(line)
            except msgspec.DecodeError as error:
                raise ValueError(f"line {number}: not valid JSON ({error})") from None
            if not isinstance(event, dict):
                raise ValueError(f"line {number}: expected a JSON object")
            yield number, event

    return _build(events())


_JSON_DECODER = msgspec.json.Decoder()


def history_from_events(events: Iterable[Mapping[str, object]]) -> History:
    """Build a history from event dicts (line numbers are their 1-based positions)."""
    return _build(enumerate(events, start=1))


class _Invocation(msgspec.Struct):
    line: int
    process: Process
    f: str
    key: str
    value: str | None
    expected: str | None


def _build(events: Iterable[tuple[int, Mapping[str, object]]]) -> History:
    pending: dict[Process, _Invocation] = {}
    done: list[tuple[_Invocation, Literal["ok", "info"], str | None, int | None]] = []
    failed = 0
    for line, event in events:
        process = event.get("process")
        if process == "nemesis":
            continue
        if isinstance(process, bool) or not isinstance(process, int | str):
            raise ValueError(f"line {line}: 'process' must be an integer or a string")
        kind, f = event.get("type"), event.get("f")
        if kind not in EVENT_TYPES:
            raise ValueError(f"line {line}: 'type' must be one of {', '.join(EVENT_TYPES)}")
        if f not in FUNCTIONS:
            raise ValueError(f"line {line}: 'f' must be one of {', '.join(FUNCTIONS)}")
        assert isinstance(f, str)
        key = _scalar(event.get("key"), line, "key")
        if key is None:
            raise ValueError(f"line {line}: 'key' is missing")
        if kind == "invoke":
            if process in pending:
                raise ValueError(
                    f"line {line}: process {process} invokes while its {pending[process].f} "
                    f"invoked at line {pending[process].line} is outstanding"
                )
            pending[process] = _invocation(line, process, f, key, event.get("value"))
            continue
        invocation = pending.pop(process, None)
        if invocation is None:
            raise ValueError(f"line {line}: process {process} completes an op it never invoked")
        if (invocation.f, invocation.key) != (f, key):
            raise ValueError(
                f"line {line}: completion {f} {key} does not match the {invocation.f} "
                f"{invocation.key} process {process} invoked at line {invocation.line}"
            )
        if kind == "fail":
            failed += 1
        elif kind == "info":
            done.append((invocation, "info", None, None))
        else:
            done.append((invocation, "ok", _ok_value(f, event.get("value"), line), line))
    done.extend((invocation, "info", None, None) for invocation in pending.values())
    done.sort(key=lambda item: item[0].line)
    operations = tuple(
        Operation(
            index=index,
            process=inv.process,
            f=inv.f,
            key=inv.key,
            value=inv.value if inv.f in ("write", "cas") else result,
            expected=inv.expected,
            status=status,
            invoke_line=inv.line,
            complete_line=complete_line,
        )
        for index, (inv, status, result, complete_line) in enumerate(done)
    )
    return History(operations, failed)


def _scalar(value: object, line: int, what: str) -> str | None:
    """A key or value in its canonical form: a string, integers as decimal, or ``None``."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"line {line}: {what} must be a string, an integer or null")


def _invocation(line: int, process: Process, f: str, key: str, value: object) -> _Invocation:
    expected = None
    if f == "write":
        written = _scalar(value, line, "value")
        if written is None:
            raise ValueError(f"line {line}: write needs a value")
    elif f == "cas":
        if not isinstance(value, list) or len(value) != 2:
            raise ValueError(f"line {line}: cas value must be [expected, new]")
        expected = _scalar(value[0], line, "cas expected value")
        written = _scalar(value[1], line, "cas new value")
        if written is None:
            raise ValueError(f"line {line}: cas needs a new value")
    else:
        written = None  # read, delete and incr carry their result on the completion
    return _Invocation(line, process, f, key, written, expected)


def _ok_value(f: str, value: object, line: int) -> str | None:
    if f == "read":
        return _scalar(value, line, "read value")
    if f == "incr":
        number = _scalar(value, line, "incr value")
        if number is None or parse_int64(number.encode()) is None:
            raise ValueError(f"line {line}: incr ok needs the new integer value")
        return number
    return None


# --- the search -------------------------------------------------------------------------------

_NO = object()  # the register refuses the operation in this state
_READ, _WRITE, _CAS, _DELETE, _INCR, _INCR_UNKNOWN = range(6)
_KINDS = {"read": _READ, "write": _WRITE, "cas": _CAS, "delete": _DELETE, "incr": _INCR}


@lru_cache(maxsize=4096)
def _incremented(state: str | None) -> str | None:
    """The value ``incr`` leaves behind, or ``None`` if the store refuses it."""
    number = 0 if state is None else parse_int64(state.encode())
    if number is None or parse_int64(str(number + 1).encode()) is None:
        return None
    return str(number + 1)


@lru_cache(maxsize=4096)
def _number(state: str | None) -> int | None:
    """The integer an incr would count from (absent counts as 0), or ``None``."""
    return 0 if state is None else parse_int64(state.encode())


def _step(kind: int, value: str | None, expected: str | None, state: str | None) -> object:
    """The register's next state after the operation, or ``_NO`` if its result is impossible."""
    if kind == _READ:
        return state if state == value else _NO
    if kind == _WRITE:
        return value
    if kind == _CAS:
        return value if state == expected else _NO
    if kind == _DELETE:
        return None
    after = _incremented(state)
    if after is None or (kind == _INCR and after != value):
        return _NO
    return after


class _Timeout(Exception):
    pass


def check_history(history: History, timeout_s: float | None = None) -> LinResult:
    """Check every key of ``history``; stop searching after ``timeout_s`` seconds in total."""
    started = time.perf_counter()
    deadline = None if timeout_s is None else started + timeout_s
    results = []
    # The search allocates only acyclic tuples and lists; the cyclic collector would just
    # rescan them (a quarter of the run time on large histories).
    collecting = gc.isenabled()
    gc.disable()
    try:
        for key, ops in history.by_key().items():
            if deadline is not None and time.perf_counter() > deadline:
                results.append(KeyResult(key, "timeout", len(ops), 0))
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
    return LinResult(outcome, tuple(results), len(history.operations), elapsed_s, history.failed)


def check_key(key: str, ops: list[Operation], deadline: float | None = None) -> KeyResult:
    """Search one key's operations (in invocation order) for a linearization."""
    search = _Search(ops, deadline)
    try:
        found = search.run()
    except _Timeout:
        return KeyResult(key, "timeout", len(ops), search.configurations)
    if found:
        return KeyResult(key, "ok", len(ops), search.configurations)
    return KeyResult(key, "violation", len(ops), search.configurations, search.failure())


class _Search:
    """The linked-list search over one key; see the module docstring."""

    def __init__(self, ops: list[Operation], deadline: float | None) -> None:
        self.ops = [op for op in ops if not (op.f == "read" and op.status == "info")]
        self.deadline = deadline
        self.configurations = 0
        self.deepest_line = -1
        self.deepest_op = -1
        self.deepest_states: dict[str | None, None] = {}  # insertion-ordered set
        ops = self.ops
        self.kind = [_KINDS[op.f] for op in ops]
        for j, op in enumerate(ops):
            if op.f == "incr" and op.status == "info":
                self.kind[j] = _INCR_UNKNOWN
        # Optional operations with the same effect are interchangeable once invoked (none ever
        # expires), so each such group is applied in invocation order: only its earliest
        # unapplied member is ever tried.
        self.groups: list[list[int]] = []
        self.group_of = [-1] * len(ops)
        numbering: dict[tuple[int, str | None, str | None], int] = {}
        for j, op in enumerate(ops):
            if op.status == "info":
                effect = (self.kind[j], op.value, op.expected)
                if effect not in numbering:
                    numbering[effect] = len(self.groups)
                    self.groups.append([])
                self.group_of[j] = numbering[effect]
                self.groups[numbering[effect]].append(j)
        self._find_observers()

    def _find_observers(self) -> None:
        """Which register values some operation could still observe, and until when.

        Applying an optional operation only helps if the next operation depends on the value it
        leaves: a read of it, a cas expecting it, an incr counting from it.  Otherwise the same
        order without it is at least as good (it stays available for later), so an optional
        operation whose result no pending operation observes is not tried.  ``observed[v]`` is
        the last completion line of an observer of ``v`` (an optional observer never completes).
        """
        forever = sys.maxsize
        observed: dict[str | None, int] = {}

        def note(v: str | None, until: int | None) -> None:
            observed[v] = max(observed.get(v, -1), forever if until is None else until)

        for op in self.ops:
            if op.f == "read":
                note(op.value, op.complete_line)
            elif op.f == "cas":
                note(op.expected, op.complete_line)
            elif op.f == "incr" and op.status == "ok":
                assert op.value is not None
                note(str(int(op.value) - 1), op.complete_line)
                if op.value == "1":
                    note(None, op.complete_line)
        self.observed = observed
        self.counts_from_any_integer = any(
            op.f == "incr" and op.status == "info" for op in self.ops
        )
        # What each completed operation observes, and what optional cas operations expect:
        # used to check, at each stuck configuration, that an optional operation's result can
        # lead to a completed operation that may go next (see ``run``).
        self.watches: list[tuple[str | None, ...]] = []
        for op in self.ops:
            if op.status == "info" or op.f in ("write", "delete"):
                self.watches.append(())
            elif op.f == "cas":
                self.watches.append((op.expected,))
            elif op.f == "read":
                self.watches.append((op.value,))
            else:
                assert op.value is not None
                before = str(int(op.value) - 1)
                self.watches.append((before, None) if op.value == "1" else (before,))
        self.cas_expected = {
            op.expected for op in self.ops if op.f == "cas" and op.status == "info"
        }
        self.cas_expected_top = max(
            (n for n in map(_number, self.cas_expected) if n is not None), default=-1
        )

    def _observed_until(self, state: str | None) -> int:
        """The last line at which some operation could still observe ``state``; -1: none."""
        if self.counts_from_any_integer and _incremented(state) is not None:
            return sys.maxsize  # an optional incr can count from it at any time
        return self.observed.get(state, -1)

    def _leads_on(self, state: object, watched: set[str | None], top: int) -> bool:
        """Can a run of optional operations that leaves ``state`` be followed by a completed one?

        After a run of optional operations the search returns to the same main-phase
        candidates, so the run helps only if its last value is ``watched`` by one of them; its
        earlier values must feed the next optional operation: a cas expecting it, or an incr
        counting up towards a watched integer (``top`` is the largest).
        """
        assert state is None or isinstance(state, str)
        if state in watched or state in self.cas_expected:
            return True
        if not self.counts_from_any_integer:
            return False
        number = _number(state)
        return number is not None and number < max(top, self.cas_expected_top)

    def _candidates(self, return_lines: list[int]) -> dict[int, tuple[int, ...]]:
        """For each return line: the groups worth trying when it is the first pending return.

        A group qualifies if a member was invoked before the line and its result could still be
        observed there; computed in one sweep over the lines.
        """
        forever = sys.maxsize
        useful_until = []
        for members in self.groups:
            first = self.ops[members[0]]
            if first.f == "incr":
                useful_until.append(forever)  # its result depends on the state: checked live
            else:
                useful_until.append(
                    self._observed_until(None if first.f == "delete" else first.value)
                )
        by_first_call = sorted(
            range(len(self.groups)), key=lambda g: self.ops[self.groups[g][0]].invoke_line
        )
        candidates: dict[int, tuple[int, ...]] = {}
        active: list[int] = []
        added = 0
        for limit in return_lines:
            while (
                added < len(by_first_call)
                and self.ops[self.groups[by_first_call[added]][0]].invoke_line < limit
            ):
                active.append(by_first_call[added])
                added += 1
            active = [g for g in active if useful_until[g] >= limit]
            candidates[limit] = tuple(active)
        return candidates

    def run(self) -> bool:
        ops, kind, groups, group_of = self.ops, self.kind, self.groups, self.group_of
        n = len(ops)
        value = [op.value for op in ops]
        expected = [op.expected for op in ops]
        invoke_line = [op.invoke_line for op in ops]
        blind = [k in (_WRITE, _DELETE) for k in kind]
        # Completed operations are numbered 0.. and optional ones 0.. apart, by invocation.
        ok_bit, info_bit = [-1] * n, [0] * n
        completed = [j for j, op in enumerate(ops) if op.status == "ok"]
        for number, j in enumerate(completed):
            ok_bit[j] = number
        for number, j in enumerate(j for j, op in enumerate(ops) if op.status == "info"):
            info_bit[j] = 1 << number
        applied = [0] * len(groups)  # members of each group applied so far
        # The linked list: head 0, the calls and returns of completed operations in real-time
        # order, tail ``tail``.
        timeline = sorted(
            [(ops[j].invoke_line, j, True) for j in completed]
            + [(ops[j].complete_line or 0, j, False) for j in completed]
        )
        tail = len(timeline) + 1
        entry_op = [-1] + [j for _, j, _ in timeline] + [-1]
        is_call = [False] + [c for _, _, c in timeline] + [False]
        line = [0] + [at for at, _, _ in timeline] + [0]
        ret_entry = [-1] * n
        for e in range(1, tail):
            if not is_call[e]:
                ret_entry[entry_op[e]] = e
        nxt = list(range(1, tail + 2))
        prv = list(range(-1, tail + 1))
        candidates = self._candidates([line[e] for e in range(1, tail) if not is_call[e]])

        state: str | None = None
        base = mask = info = 0
        remaining = len(completed)
        seen: dict[tuple[int, int, str | None], list[int]] = {(0, 0, None): [0]}
        # (entry or optional op, main phase?, candidate position, limit, stuck op, config)
        stack: list[tuple[int, bool, int, int, int, str | None, int, int, int]] = []
        deadline = self.deadline
        steps = 0
        # Candidates at each configuration: first the calls of completed operations before the
        # first return entry (the main phase), then the optional operations invoked before it.
        # Trying optional operations last means configurations are first reached with as few
        # of them applied as possible, which is what makes the subset pruning bite.
        watches = self.watches

        def pending_watches() -> tuple[set[str | None], int]:
            """The values the main-phase candidates observe, and the largest integer among them."""
            watched: set[str | None] = set()
            x = nxt[0]
            while is_call[x]:
                watched.update(watches[entry_op[x]])
                x = nxt[x]
            numbers = [n for n in map(_number, watched) if n is not None]
            return watched, max(numbers, default=-1)

        cands: tuple[int, ...] = ()
        watched: set[str | None] = set()
        main_phase, limit, stuck, position, top = True, 0, -1, 0, -1
        e = nxt[0]
        while remaining:
            steps += 1
            if deadline is not None and steps % _TIMEOUT_CHECK_STEPS == 0:
                self.configurations = len(seen)
                if time.perf_counter() > deadline:
                    raise _Timeout
            after_optional = bool(stack) and not stack[-1][1]
            if main_phase:
                assert e != tail, "a pending completed operation has a return entry ahead"
                j = entry_op[e]
                if not is_call[e]:
                    # The earliest pending return: its operation must come before anything
                    # invoked later.  Try the optional operations invoked before it.
                    main_phase, limit, stuck = False, line[e], j
                    cands, position = candidates[limit], 0
                    watched, top = pending_watches()
                    continue
                if blind[j] and after_optional:
                    # A blind overwrite right after an optional operation makes that one
                    # pointless: the order without it is tried from the configuration before.
                    e = nxt[e]
                    continue
            else:
                if position == len(cands):
                    # Nothing left to try here: undo the last linearization.
                    self._note_stuck(stuck, state)
                    if not stack:
                        self.configurations = len(seen)
                        return False
                    (x, main_phase, position, limit, stuck, state, base, mask, info) = stack.pop()
                    if main_phase:
                        e = x
                        r = ret_entry[entry_op[e]]
                        nxt[prv[r]] = prv[nxt[r]] = r
                        nxt[prv[e]] = prv[nxt[e]] = e
                        remaining += 1
                        e = nxt[e]
                    else:
                        applied[group_of[x]] -= 1
                        cands, position = candidates[limit], position + 1
                        watched, top = pending_watches()
                    continue
                members = groups[cands[position]]
                taken = applied[cands[position]]
                if (
                    taken == len(members)
                    or invoke_line[members[taken]] > limit
                    or (blind[members[taken]] and after_optional)
                ):
                    position += 1
                    continue
                j = members[taken]
            after = _step(kind[j], value[j], expected[j], state)
            if after is _NO or not (main_phase or self._leads_on(after, watched, top)):
                if main_phase:
                    e = nxt[e]
                else:
                    position += 1
                continue
            assert after is None or isinstance(after, str)
            bit = ok_bit[j]
            if bit >= 0:
                new_mask = mask | (1 << (bit - base))
                shift = (~new_mask & (new_mask + 1)).bit_length() - 1  # trailing ones
                new_base, new_mask, new_info = base + shift, new_mask >> shift, info
            else:
                new_base, new_mask, new_info = base, mask, info | info_bit[j]
            memo_key = (new_base, new_mask, after)
            visited = seen.get(memo_key)
            if visited is None:
                seen[memo_key] = [new_info]
            elif any(old & ~new_info == 0 for old in visited):
                # seen, or seen with fewer optional operations applied: nothing new there
                if main_phase:
                    e = nxt[e]
                else:
                    position += 1
                continue
            else:
                visited.append(new_info)
            stack.append(
                (j if bit < 0 else e, main_phase, position, limit, stuck, state, base, mask, info)
            )
            state, base, mask, info = after, new_base, new_mask, new_info
            if main_phase:
                # Unlink the call entry, then its return entry (relinked in reverse order).
                nxt[prv[e]], prv[nxt[e]] = nxt[e], prv[e]
                r = ret_entry[j]
                nxt[prv[r]], prv[nxt[r]] = nxt[r], prv[r]
                remaining -= 1
            else:
                applied[group_of[j]] += 1
            main_phase = True
            e = nxt[0]
        self.configurations = len(seen)
        return True

    def _note_stuck(self, j: int, state: str | None) -> None:
        line = self.ops[j].complete_line
        assert line is not None
        if line > self.deepest_line:
            self.deepest_line, self.deepest_op, self.deepest_states = line, j, {}
        if line == self.deepest_line and len(self.deepest_states) < FAILURE_STATES_MAX:
            self.deepest_states[state] = None

    def failure(self) -> Failure:
        stuck = self.ops[self.deepest_op]
        assert stuck.complete_line is not None
        concurrent = [
            op
            for op in self.ops
            if op.invoke_line < stuck.complete_line
            and (op.complete_line is None or op.complete_line > stuck.invoke_line)
        ]
        before = sorted(
            (
                op
                for op in self.ops
                if op.complete_line is not None and op.complete_line < stuck.invoke_line
            ),
            key=lambda op: op.complete_line or 0,
        )[-CONTEXT_OPS_BEFORE:]
        # Operations of unknown outcome stay open forever; list only those invoked within the
        # window of the completed operations shown, and count the older ones.
        window_start = min(op.invoke_line for op in before + concurrent if op.status == "ok")
        older_open = sum(op.invoke_line < window_start for op in concurrent)
        around = sorted(
            {op.index: op for op in before + concurrent if op.invoke_line >= window_start}.values(),
            key=_by_invoke,
        )
        if len(around) > AROUND_OPS_MAX:  # keep the failing op in view
            at = around.index(stuck)
            start = max(0, min(at - AROUND_OPS_MAX // 2, len(around) - AROUND_OPS_MAX))
            around = around[start : start + AROUND_OPS_MAX]
        return Failure(stuck, tuple(self.deepest_states), tuple(around), older_open)


def _by_invoke(op: Operation) -> int:
    return op.invoke_line
