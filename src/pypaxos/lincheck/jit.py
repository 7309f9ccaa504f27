"""A second, independent linearizability checker: just-in-time linearization, breadth first.

A checker that wrongly accepts hides the very bugs it is there to catch, and no external checker
is at hand, so this module answers the question of ``pypaxos.lincheck.wgl`` with a different
algorithm, written from the history format and the papers without reading that module;
``pypaxos lincheck --checker both`` and a differential test compare them.  Per key
(P-compositionality, Horn & Kroening, FORTE 2015), the events are swept once in real-time order
carrying the set of every configuration still possible, and an operation is linearized only at
its return, when it must be (Lowe, "Testing for linearizability", 2017, section 5; Knossos's
``linear``).  Operations of unknown outcome stay pending, kept few by four sound reductions;
past ``configurations_max`` or ``timeout_s`` the outcome is ``"unknown"``.

More: docs/testing.md, 'Just-in-time linearization' and 'The history format'.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import msgspec

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
CONFIGURATIONS_MAX: Final = 200_000  # held plus visited in one step; ~100 MB at worst
RUN_NODES_MAX: Final = 10_000  # backward-search nodes for one observer's unknown-outcome runs

FUNCTIONS: Final = ("read", "write", "cas", "delete", "incr")
Outcome = Literal["linearizable", "violation", "unknown"]
State = str | None  # the register's value; None: the key is absent


class _Disabled:
    """The result of an operation that cannot take effect in a given state."""

    __slots__ = ()


DISABLED: Final = _Disabled()


class _Exploded(Exception):
    """The configuration set (or one run search) outgrew its bound: give up, verdict unknown."""


@dataclass(frozen=True, slots=True)
class JitOp:
    """One operation of a key's sub-history: invoke paired with completion.

    ``known`` is True for an ``ok`` completion.  ``value`` is what was written (``write``), the
    new value (``cas``), or what was read (``read``).  ``returned`` is an ``ok`` ``incr``'s
    result.  ``invoke_at`` and ``return_at`` are 0-based positions in the event sequence.
    """

    id: int
    f: str
    process: object
    known: bool
    value: State
    expected: State
    returned: int | None
    invoke_at: int
    return_at: int | None

    def describe(self) -> str:
        if self.f == "cas":
            shown = f"{self.expected!r} -> {self.value!r}"
        elif self.f == "incr":
            shown = "?" if self.returned is None else str(self.returned)
        elif self.f == "delete":
            shown = ""
        else:
            shown = repr(self.value)
        outcome = "ok" if self.known else "info"
        return f"process {self.process} {self.f} {shown} ({outcome})".replace("  ", " ")


Config = tuple[State, frozenset[int], frozenset[int]]  # value, pending ok ops, pending info ops


@dataclass(frozen=True, slots=True)
class JitResult:
    """The verdict on a whole history.

    On ``violation``: ``key`` and ``event_index`` (0-based position among the events given; the
    return of an operation no surviving configuration could linearize), ``line`` (its 1-based
    line when read from JSON Lines) and ``detail``.  On ``unknown``: ``detail`` says which bound.
    """

    outcome: Outcome
    events: int
    operations: int
    keys: int
    elapsed_s: float
    configurations_peak: int
    key: str | None = None
    event_index: int | None = None
    line: int | None = None
    detail: str = ""

    @property
    def linearizable(self) -> bool:
        return self.outcome == "linearizable"

    def summary(self) -> str:
        return (
            f"{self.outcome}: {self.events} events, {self.operations} operations on "
            f"{self.keys} keys, at most {self.configurations_peak} configurations, "
            f"{self.elapsed_s:.3f} s"
        )

    def explain(self) -> str:
        if self.outcome == "linearizable":
            return self.summary()
        return f"{self.summary()}\n{self.detail}"


# -- values and the register model ---------------------------------------------------------------


def _canonical_int(value: str) -> int | None:
    """The int64 ``value`` spells in canonical decimal (what ``incr`` accepts), else ``None``."""
    if len(value) > 20:  # longer than any int64; also keeps int() away from huge strings
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    # str(int(s)) == s rejects "+1", "01", "-0", " 1", "1_0" and non-ASCII digits at once.
    if str(number) != value or not INT64_MIN <= number <= INT64_MAX:
        return None
    return number


def _decimal(value: str) -> int | None:
    """Any integer in canonical decimal: an ``incr`` result outside int64 is impossible, not
    malformed."""
    if len(value) > 4000:  # int() refuses longer strings anyway
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if str(number) == value else None


def _apply(state: State, op: JitOp) -> State | _Disabled:
    """The register value after ``op`` in ``state``, or DISABLED if ``op`` cannot happen there.

    For an unknown-outcome ``cas`` or ``incr`` "cannot happen" includes "would have failed":
    a failed one changed nothing, which is the same as not applying it at all.
    """
    match op.f:
        case "read":
            return state if state == op.value else DISABLED
        case "write":
            return op.value
        case "delete":
            return None
        case "cas":
            return op.value if state == op.expected else DISABLED
        case "incr":
            number = 0 if state is None else _canonical_int(state)
            if number is None or number == INT64_MAX:
                return DISABLED
            if op.returned is not None and op.returned != number + 1:
                return DISABLED
            return str(number + 1)
    raise AssertionError(op.f)


def _needs(op: JitOp) -> tuple[State, ...]:
    """Every state in which the completed observer ``op`` is enabled (consistent with _apply)."""
    if op.f == "read":
        return (op.value,)
    if op.f == "cas":
        return (op.expected,)
    assert op.f == "incr" and op.returned is not None
    before = op.returned - 1
    if not INT64_MIN <= before < INT64_MAX:
        return ()
    return (str(before), None) if before == 0 else (str(before),)


# -- runs of unknown-outcome operations ----------------------------------------------------------


class _Producers:
    """Index of the pending unknown-outcome operations by the value each one leaves."""

    __slots__ = ("cas", "deletes", "incrs", "writes")

    def __init__(self, pending: frozenset[int], ops: Sequence[JitOp]) -> None:
        self.writes: dict[str, int] = {}
        self.deletes: list[int] = []
        self.cas: dict[State, dict[State, int]] = {}  # new -> expected -> earliest op id
        self.incrs: list[int] = []
        for op_id in sorted(pending):  # ascending ids: the earliest twin is the one kept
            op = ops[op_id]
            if op.f == "write" and op.value is not None:
                self.writes.setdefault(op.value, op_id)
            elif op.f == "delete":
                self.deletes.append(op_id)
            elif op.f == "cas":
                self.cas.setdefault(op.value, {}).setdefault(op.expected, op_id)
            elif op.f == "incr":
                self.incrs.append(op_id)


def _runs(start: State, target: State, producers: _Producers) -> list[frozenset[int]]:
    """Sets of pending unknown-outcome operations that, in some order, take ``start`` to ``target``.

    Searched backwards from ``target``: what could have left this value?  A blind operation
    (write of it, delete for absent) ends the search, as it works from any state; a ``cas`` or an
    ``incr`` leads to the value it needs before.  Values never repeat along a run and twins are
    taken earliest first, so only useful runs are returned; every useful run contains one of them.
    """
    found: list[frozenset[int]] = []
    # (value reached backwards, operations used, values on the path, incrs used)
    stack: list[tuple[State, tuple[int, ...], frozenset[State], int]] = [
        (target, (), frozenset((target,)), 0)
    ]
    nodes = 0
    while stack:
        value, used, path, incrs_used = stack.pop()
        nodes += 1
        if nodes > RUN_NODES_MAX:
            raise _Exploded(f"more than {RUN_NODES_MAX} steps searching unknown-outcome runs")
        if value == start:
            found.append(frozenset(used))
            continue  # longer runs through ``start`` only use more operations
        if value is None:
            if producers.deletes:
                found.append(frozenset((*used, producers.deletes[0])))
        elif value in producers.writes:
            found.append(frozenset((*used, producers.writes[value])))
        for expected, op_id in producers.cas.get(value, {}).items():
            if expected not in path:
                stack.append((expected, (*used, op_id), path | {expected}, incrs_used))
        if value is not None and incrs_used < len(producers.incrs):
            number = _canonical_int(value)
            if number is not None and number - 1 >= INT64_MIN:
                op_id = producers.incrs[incrs_used]
                befores: tuple[State, ...] = (str(number - 1),)
                if number == 1:
                    befores = ("0", None)
                for before in befores:
                    if before not in path:
                        stack.append((before, (*used, op_id), path | {before}, incrs_used + 1))
    return found


# -- one key's sweep -----------------------------------------------------------------------------


ProducersCache = dict[frozenset[int], _Producers]
PRODUCERS_CACHED_MAX: Final = 256


def _moves(
    state: State, op: JitOp, info: frozenset[int], ops: Sequence[JitOp], cache: ProducersCache
) -> Iterator[tuple[State, frozenset[int]]]:
    """Ways to linearize the completed ``op`` next: (value after it, unknown ops still pending)."""
    after = _apply(state, op)
    if not isinstance(after, _Disabled):
        yield after, info  # a run of unknown ops first could only use up more of them
        return
    if not info or op.f in ("write", "delete"):
        return
    producers = cache.get(info)
    if producers is None:  # the same pending set recurs from event to event: index it once
        if len(cache) >= PRODUCERS_CACHED_MAX:
            cache.clear()
        producers = cache[info] = _Producers(info, ops)
    for needed in _needs(op):
        result = _apply(needed, op)
        assert not isinstance(result, _Disabled), (needed, op)
        for run in _runs(state, needed, producers):
            yield result, info - run


def _linearize_by(
    configs: set[Config], target: JitOp, ops: Sequence[JitOp], limit: int, cache: ProducersCache
) -> set[Config]:
    """Configurations after ``target`` returns: each one has linearized it (JIT, Lowe sec. 5)."""
    survivors: set[Config] = set()
    visited: set[Config] = set()
    stack: list[Config] = []
    for config in configs:
        if target.id not in config[1]:
            survivors.add(config)  # linearized earlier, just in time for another return
        elif config not in visited:
            visited.add(config)
            stack.append(config)
    while stack:
        state, pending, info = stack.pop()
        for op_id in pending:
            for after, info_left in _moves(state, ops[op_id], info, ops, cache):
                reached: Config = (after, pending - {op_id}, info_left)
                if op_id == target.id:
                    survivors.add(reached)
                elif reached not in visited:
                    visited.add(reached)
                    stack.append(reached)
        if len(visited) + len(survivors) > limit:
            raise _Exploded(f"more than {limit} configurations at one return")
    return survivors


def _drop_dominated(configs: set[Config]) -> set[Config]:
    """Keep, per (value, pending ok ops), only maximal sets of pending unknown-outcome ops."""
    groups: dict[tuple[State, frozenset[int]], list[frozenset[int]]] = {}
    for state, pending, info in configs:
        groups.setdefault((state, pending), []).append(info)
    if len(groups) == len(configs):
        return configs
    kept: set[Config] = set()
    for (state, pending), infos in groups.items():
        maximal: list[frozenset[int]] = []
        for info in sorted(infos, key=len, reverse=True):
            if not any(info <= bigger for bigger in maximal):
                maximal.append(info)
        kept.update((state, pending, info) for info in maximal)
    return kept


@dataclass(frozen=True, slots=True)
class _KeyVerdict:
    outcome: Outcome
    peak: int
    event_index: int | None = None
    detail: str = ""


class _Expiry:
    """When an unknown-outcome operation can no longer help, so configurations may forget it.

    Such an operation is only ever applied in a run that ends at a value some completed observer
    needs (see ``_runs``), and an observer is linearized by its return at the latest.  So one
    that leaves value ``p`` is useless after the *horizon* of ``p``: the last return of a
    completed observer that needs ``p`` or needs what another unknown-outcome operation makes of
    ``p`` (a ``cas`` expecting ``p`` passes on its new value's horizon; with an unknown ``incr``
    around, absent and every integer get the latest horizon of any integer).  Forgetting them
    keeps the pending sets, hence the work per event, from growing with the history.
    """

    __slots__ = ("horizon", "incr", "int_horizon")

    def __init__(self, ops: Sequence[JitOp]) -> None:
        self.horizon: dict[State, int] = {}
        for op in ops:
            if op.known and op.f in ("read", "cas", "incr"):
                assert op.return_at is not None
                for value in _needs(op):
                    self.horizon[value] = max(self.horizon.get(value, -1), op.return_at)
        self.incr = any(not op.known and op.f == "incr" for op in ops)
        self.int_horizon = -1
        carries = [(op.expected, op.value) for op in ops if not op.known and op.f == "cas"]
        changed = True
        while changed:  # a fixed point: horizons only grow, up to the last event
            changed = False
            if self.incr:
                integers = (
                    v for v in self.horizon if v is not None and _canonical_int(v) is not None
                )
                top = max((self.horizon[v] for v in integers), default=-1)
                if top > self.int_horizon:
                    self.int_horizon, changed = top, True
            for expected, new in carries:
                if (h := self.of(new)) > self.horizon.get(expected, -1):
                    self.horizon[expected], changed = h, True

    def of(self, value: State) -> int:
        """The horizon of ``value``: -1 if nothing will ever need it."""
        own = self.horizon.get(value, -1)
        if self.incr and (value is None or _canonical_int(value) is not None):
            return max(own, self.int_horizon)
        return own

    def position(self, op: JitOp) -> int:
        """The event position after which ``op`` (unknown outcome) cannot matter any more."""
        if op.f == "incr":
            return self.int_horizon
        return self.of(None if op.f == "delete" else op.value)


def _forget(configs: set[Config], useless: frozenset[int]) -> set[Config]:
    return _drop_dominated({(s, pending, info - useless) for s, pending, info in configs})


def _sweep_key(
    key: str, ops: Sequence[JitOp], limit: int, deadline: float | None, labels: _Labels
) -> _KeyVerdict:
    """Sweep one key's invokes and returns in real-time order, carrying every configuration."""
    timeline: list[tuple[int, bool, int]] = []  # (event position, is return, op id)
    for op in ops:
        timeline.append((op.invoke_at, False, op.id))
        if op.return_at is not None:
            timeline.append((op.return_at, True, op.id))
    timeline.sort()
    expiry = _Expiry(ops)
    expiring: list[tuple[int, int]] = []  # heap of (expiry position, unknown-outcome op id)
    configs: set[Config] = {(None, frozenset(), frozenset())}
    cache: ProducersCache = {}
    peak = 1
    for step, (position, is_return, op_id) in enumerate(timeline):
        if deadline is not None and step % 64 == 0 and time.monotonic() > deadline:
            return _KeyVerdict("unknown", peak, position, "the --timeout ran out")
        if expiring and expiring[0][0] < position:
            useless: set[int] = set()
            while expiring and expiring[0][0] < position:
                useless.add(heapq.heappop(expiring)[1])
            configs = _forget(configs, frozenset(useless))
        op = ops[op_id]
        if not is_return:
            if op.known:
                configs = {(s, pending | {op_id}, info) for s, pending, info in configs}
            elif (until := expiry.position(op)) > position:  # else useless from the start
                heapq.heappush(expiring, (until, op_id))
                configs = {(s, pending, info | {op_id}) for s, pending, info in configs}
            continue
        try:
            after = _drop_dominated(_linearize_by(configs, op, ops, limit, cache))
        except _Exploded as error:
            return _KeyVerdict("unknown", peak, position, f"key {key!r}: {error}")
        if not after:
            detail = _explain(key, op, configs, ops, labels)
            return _KeyVerdict("violation", peak, position, detail)
        configs = after
        peak = max(peak, len(configs))
    return _KeyVerdict("linearizable", peak)


def _explain(
    key: str, op: JitOp, before: set[Config], ops: Sequence[JitOp], labels: _Labels
) -> str:
    """What the checker held just before the return that no configuration survives."""
    assert op.return_at is not None
    values = sorted({repr(state) for state, _, _ in before})
    pending = sorted({op_id for _, p, i in before for op_id in p | i} - {op.id})
    lines = [
        f"key {key!r}: no linearization explains {op.describe()} returning at "
        f"{labels[op.return_at]} (invoked at {labels[op.invoke_at]})",
        f"  values the register could hold just before: {', '.join(values[:8])}"
        + (" ..." if len(values) > 8 else ""),
    ]
    if pending:
        lines.append("  operations pending then:")
        lines.extend(
            f"    {ops[i].describe()}, invoked at {labels[ops[i].invoke_at]}" for i in pending[:12]
        )
        if len(pending) > 12:
            lines.append(f"    ... and {len(pending) - 12} more")
    return "\n".join(lines)


# -- reading a history ---------------------------------------------------------------------------


class _Labels:
    """How messages name an event: ``line N`` of its file, else ``event N`` (1-based position).

    Built on demand: only error messages and explanations need the text.
    """

    __slots__ = ("lines",)

    def __init__(self, lines: Sequence[int] | None) -> None:
        self.lines = lines

    def __getitem__(self, position: int) -> str:
        if self.lines is None:
            return f"event {position + 1}"
        return f"line {self.lines[position]}"

    def line(self, position: int) -> int:
        return position + 1 if self.lines is None else self.lines[position]


def _value(raw: object, where: str) -> State:
    if raw is None or isinstance(raw, str):
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool):
        return str(raw)  # the store keeps bytes: 5 and "5" are one value
    raise ValueError(f"{where}: a value must be a string, an integer or null, not {raw!r}")


@dataclass(slots=True)
class _Open:
    """An invoke waiting for its completion."""

    position: int
    f: str
    key: str
    value: object


def _make_op(
    op_id: int,
    opened: _Open,
    process: object,
    kind: str,
    done: Mapping[str, object] | None,
    position: int | None,
    where: str,
) -> JitOp | None:
    """The key's operation for one invoke and its completion, or None if it can be ignored."""
    if kind == "fail":
        return None  # certainly did not take effect
    known = kind == "ok"
    if opened.f == "read" and not known:
        return None  # a read that may have happened changes nothing
    raw = opened.value
    if raw is None and done is not None and opened.f in ("write", "cas"):
        raw = done.get("value")  # the arguments may be written on the completion only
    value: State = None
    expected: State = None
    returned: int | None = None
    if opened.f == "write":
        value = _value(raw, where)
        if value is None:
            raise ValueError(f"{where}: a write needs a value")
    elif opened.f == "cas":
        if not isinstance(raw, list | tuple) or len(raw) != 2:
            raise ValueError(f"{where}: a cas value must be [expected, new], not {raw!r}")
        expected, value = _value(raw[0], where), _value(raw[1], where)
        if value is None:
            raise ValueError(f"{where}: a cas needs a new value")
    elif opened.f == "read":
        assert done is not None
        value = _value(done.get("value"), where)
    elif opened.f == "incr" and known:
        assert done is not None
        result = _value(done.get("value"), where)
        returned = None if result is None else _decimal(result)
        if returned is None:
            raise ValueError(f"{where}: an ok incr needs its integer result, not {result!r}")
    return JitOp(
        op_id, opened.f, process, known, value, expected, returned, opened.position, position
    )


_Finished = tuple[_Open, object, str, Mapping[str, object] | None, int | None, str]


def _split(
    events: Sequence[Mapping[str, object]], names: _Labels
) -> tuple[dict[str, list[JitOp]], int]:
    """Pair invokes with completions and group the operations by key.

    Returns the operations of each key (ids count up in invocation order) and how many events
    were read (nemesis events left out).
    """
    open_by_process: dict[object, _Open] = {}
    finished: list[_Finished] = []  # (invoke, process, type, completion, return position, where)
    counted = 0
    for position, event in enumerate(events):
        if not isinstance(event, dict) and not isinstance(event, Mapping):  # dict: fast path
            raise ValueError(f"{names[position]}: an event must be a JSON object")
        try:
            process = event["process"]
            if process == "nemesis":
                continue
            kind, f, raw_key = event["type"], event["f"], event["key"]
        except KeyError as missing:
            raise ValueError(f"{names[position]}: no {missing.args[0]!r} field") from None
        where = names[position]
        if not isinstance(process, int | str) or isinstance(process, bool):
            raise ValueError(f"{where}: process must be an integer or a string")
        counted += 1
        if not isinstance(f, str) or f not in FUNCTIONS:
            raise ValueError(f"{where}: unknown f {f!r} (one of {', '.join(FUNCTIONS)})")
        key = _value(raw_key, where)
        if key is None:
            raise ValueError(f"{where}: key must be a string or an integer")
        if kind == "invoke":
            if process in open_by_process:
                earlier = names[open_by_process[process].position]
                raise ValueError(
                    f"{where}: process {process!r} invokes again before completing its "
                    f"operation invoked at {earlier}"
                )
            open_by_process[process] = _Open(position, f, key, event.get("value"))
        elif kind == "ok" or kind == "fail" or kind == "info":
            opened = open_by_process.pop(process, None)
            if opened is None:
                raise ValueError(f"{where}: {kind} for process {process!r}, which invoked nothing")
            if (opened.f, opened.key) != (f, key):
                raise ValueError(
                    f"{where}: {kind} {f} {key!r} completes {opened.f} {opened.key!r} "
                    f"invoked at {names[opened.position]}"
                )
            return_at = position if kind == "ok" else None  # info: no return, pending for ever
            finished.append((opened, process, kind, event, return_at, where))
        else:
            raise ValueError(f"{where}: unknown type {kind!r} (invoke, ok, fail or info)")
    for process, opened in open_by_process.items():  # never completed: outcome unknown
        finished.append((opened, process, "info", None, None, names[opened.position]))
    finished.sort(key=lambda item: item[0].position)
    by_key: dict[str, list[JitOp]] = {}
    for opened, process, kind, done, return_at, where in finished:
        ops = by_key.setdefault(opened.key, [])
        op = _make_op(len(ops), opened, process, kind, done, return_at, where)
        if op is not None:
            ops.append(op)
    return by_key, counted


# -- public entry points -------------------------------------------------------------------------


def check_history_jit(
    events: Iterable[Mapping[str, object]],
    *,
    timeout_s: float | None = None,
    configurations_max: int = CONFIGURATIONS_MAX,
    lines: Sequence[int] | None = None,
) -> JitResult:
    """Decide whether ``events`` (dicts of the JSON Lines format, real-time order) linearize.

    ``lines`` are the events' line numbers in their file, for messages (default: positions).
    Raises ``ValueError`` naming the event for malformed input.  On a violation the result names
    the key and the event where no configuration survives; every key is swept, and the earliest
    such event is reported.
    """
    started = time.monotonic()
    items = list(events)
    labels = _Labels(lines)
    by_key, counted = _split(items, labels)
    deadline = None if timeout_s is None else started + timeout_s
    peak = 1
    operations = sum(len(ops) for ops in by_key.values())
    worst: tuple[int, str, _KeyVerdict] | None = None
    unknown: tuple[str, _KeyVerdict] | None = None
    for key in sorted(by_key):
        verdict = _sweep_key(key, by_key[key], configurations_max, deadline, labels)
        peak = max(peak, verdict.peak)
        if verdict.outcome == "violation":
            assert verdict.event_index is not None
            if worst is None or verdict.event_index < worst[0]:
                worst = (verdict.event_index, key, verdict)
        elif verdict.outcome == "unknown" and unknown is None:
            unknown = (key, verdict)
    elapsed = time.monotonic() - started

    def result(outcome: Outcome, key: str | None, verdict: _KeyVerdict | None) -> JitResult:
        index = None if verdict is None else verdict.event_index
        line = None if index is None else labels.line(index)
        detail = "" if verdict is None else verdict.detail
        return JitResult(
            outcome, counted, operations, len(by_key), elapsed, peak, key, index, line, detail
        )

    if worst is not None:
        return result("violation", worst[1], worst[2])
    if unknown is not None:
        return result("unknown", unknown[0], unknown[1])
    return result("linearizable", None, None)


_decode = msgspec.json.Decoder().decode


def read_jsonl(lines: Iterable[str]) -> tuple[list[Mapping[str, object]], list[int]]:
    """Events of a JSON Lines history and their 1-based line numbers; blank lines skipped.

    Raises ``ValueError`` naming the line for text that is not one JSON object.
    """
    events: list[Mapping[str, object]] = []
    numbers: list[int] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            event = _decode(text)  # msgspec: several times faster than json on long histories
        except msgspec.DecodeError as error:
            raise ValueError(f"line {number}: not JSON ({error})") from None
        if not isinstance(event, dict):
            raise ValueError(f"line {number}: an event must be a JSON object")
        events.append(event)
        numbers.append(number)
    return events, numbers


def check_jsonl_jit(
    lines: Iterable[str],
    *,
    timeout_s: float | None = None,
    configurations_max: int = CONFIGURATIONS_MAX,
) -> JitResult:
    """``check_history_jit`` on JSON Lines text; errors and the verdict name file lines."""
    events, numbers = read_jsonl(lines)
    return check_history_jit(
        events, timeout_s=timeout_s, configurations_max=configurations_max, lines=numbers
    )
