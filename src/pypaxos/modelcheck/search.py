"""Exhaustive model checking of single-decree Paxos, running the real actors.

Breadth-first search over every state reachable from the start, up to the bounds, with the
safety invariants of ``pypaxos.sim.checkers`` asserted in every state; BFS means the first
violation found is reached by a *shortest* execution, which is printed step by step.  A global
state is a flat tuple of ints (each actor's interned local state, the bitmask of every message
ever sent, who has proposed, crashes used); a transition feeds one input to one actor through
the real ``Acceptor`` / ``Proposer`` / ``Learner`` code.  The network is the set of messages
ever sent, as in Lamport's TLA+ specification of Paxos: one model for loss, duplication,
reordering and delay.  Memoised macro steps, symmetry (``symmetry.py``) and 64-bit fingerprints
keep it quick; it runs on one core.

More: docs/testing.md, 'The state model' and 'Inside the fast paths'.
"""

from __future__ import annotations

import hashlib
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass

from pypaxos.modelcheck.model import CRASH, ExploreOptions, Step, SynodModel, decided_of
from pypaxos.modelcheck.symmetry import Symmetry
from pypaxos.sim import steps as steps_
from pypaxos.sim.checkers import chosen_values, safety_violations

__all__ = [
    "ExploreOptions",
    "ExploreResult",
    "Progress",
    "TraceStep",
    "Violation",
    "explore",
    "render_trace",
]

_PROGRESS_EVERY_STATES = 1 << 10


@dataclass(frozen=True, slots=True)
class TraceStep:
    step: steps_.Step  # the input, as the typed record explorers and reports share
    action: str  # ``render_step(step)``: "A1 <- Prepare 0.4 from P1"
    effects: str  # "syncs its disk; sends Promise 0.4 (nothing accepted) to P1"


@dataclass(frozen=True, slots=True)
class Violation:
    problems: tuple[str, ...]
    trace: tuple[TraceStep, ...]  # a shortest execution reaching the violation
    final_state: tuple[str, ...]  # one line per actor


@dataclass(frozen=True, slots=True)
class Progress:
    states: int
    transitions: int
    depth: int
    frontier: int
    elapsed_seconds: float


@dataclass(frozen=True, slots=True)
class ExploreResult:
    options: ExploreOptions
    states: int
    transitions: int
    depth: int  # BFS depth reached (the longest shortest path, if the search finished)
    elapsed_seconds: float
    messages: int  # distinct messages ever sent in some state
    local_states: int  # distinct actor local states
    violation: Violation | None
    decision_trace: tuple[TraceStep, ...] | None  # a shortest execution to a learned decision

    @property
    def states_per_second(self) -> float:
        return self.states / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def decision_reached(self) -> bool:
        return self.decision_trace is not None


State = tuple[int, ...]
# A macro step out of one state: (new local, new network, new acceptances, new proposed, mind
# change, via id, number of single steps, is a crash).
Macro = tuple[int, int, int, int, str | None, int, int, bool]


class _Invariants:
    """The safety check of a state, memoised on the parts of the state it reads."""

    def __init__(self, model: SynodModel) -> None:
        self.model = model
        self.quorum = model.config.true_quorum()
        self.names = {i: model.config.name(i) for i in model.ids}
        self.values = [model.config.proposal_for(p) for p in model.config.proposer_ids]
        self._cache: dict[tuple[int, int, tuple[int, ...]], tuple[list[str], bool]] = {}

    def check(self, state: State) -> tuple[list[str], bool]:
        """The broken invariants, and whether a value is chosen (and learned, if learners)."""
        model = self.model
        n = len(model.ids)
        learners = tuple(state[node] for node in model.learner_nodes)
        key = (state[n + 1], state[n + 2], learners)
        found = self._cache.get(key)
        if found is None:
            found = self._compute(*key)
            self._cache[key] = found
        return found

    def _compute(
        self, accepts: int, proposed: int, learners: tuple[int, ...]
    ) -> tuple[list[str], bool]:
        model = self.model
        acceptances = [model.acceptances[k] for k in _bits(accepts)]
        values = [v for k, v in enumerate(self.values) if proposed >> k & 1]
        decisions = {}
        for node, local in zip(model.learner_nodes, learners, strict=True):
            decided = decided_of(model.actor(node, local))
            if decided is not None:
                decisions[model.ids[node]] = decided
        problems = safety_violations(acceptances, self.quorum, values, decisions, self.names)
        chosen = bool(chosen_values(acceptances, self.quorum))
        learned = bool(decisions) or not model.learner_nodes
        return problems, chosen and learned


def _bits(mask: int) -> list[int]:
    out = []
    while mask:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


_VIOLATING = 1
_DECIDED = 2


class _Search:
    """One exhaustive search; see ``explore``."""

    def __init__(self, options: ExploreOptions, progress: Callable[[Progress], None] | None):
        self.options = options
        self.progress = progress
        self.started = time.perf_counter()
        self.model = SynodModel(options)
        self.invariants = _Invariants(self.model)
        self.n = len(self.model.ids)
        # Per stored state (by index): its best distance (single steps from the start), the
        # state it was reached from, the macro step taken, and its flags.  The states
        # themselves are kept only while in the frontier; the visited set holds fingerprints.
        self.index: dict[int, int] = {}
        self.dist = array("l")
        self.parent = array("l")
        self.via = array("l")
        self.flags = bytearray()
        self.problems: dict[int, list[str]] = {}
        self.buckets: list[list[tuple[int, State]]] = []
        self.symmetry: Symmetry | None = None
        self.stored = 0  # distinct representatives (the index also maps renamed states)
        # Interned macro steps, for traces: (node, input codes).
        self.macros: list[tuple[int, tuple[int, ...]]] = []
        self._macro_ids: dict[tuple[int, tuple[int, ...]], int] = {}
        self.transitions = 0
        self.depth = 0
        # Per "may still crash", actor and local state: the messages that matter, and the local
        # state stored instead (see ``SynodModel.relevance`` and ``_canonical``).
        self.relevance: dict[bool, list[list[int]]] = {}
        self.canonicals: dict[bool, list[list[int]]] = {}
        self._walks: dict[tuple[int, ...], list[Macro]] = {}

    # -- bookkeeping -----------------------------------------------------------------------------

    def _add(self, state: State, distance: int, parent: int, via: int, key: int | None) -> int:
        index = len(self.dist)
        if key is not None:
            self.index[key] = index
        self.dist.append(distance)
        self.parent.append(parent)
        self.via.append(via)
        problems, decided = self.invariants.check(state)
        flags = _DECIDED if decided else 0
        if problems:
            flags |= _VIOLATING
            self.problems[index] = problems
        self.flags.append(flags)
        self._push(distance, index, state)
        return index

    def _push(self, distance: int, index: int, state: State) -> None:
        while len(self.buckets) <= distance:
            self.buckets.append([])
        self.buckets[distance].append((index, state))

    def _macro_id(self, node: int, codes: tuple[int, ...]) -> int:
        key = (node, codes)
        found = self._macro_ids.get(key)
        if found is None:
            found = len(self.macros)
            self.macros.append(key)
            self._macro_ids[key] = found
        return found

    def _normalise(self, state: State) -> State:
        """Canonical locals and only relevant messages, for the state's crash budget."""
        n = self.n
        regime = state[n + 3] < self.options.max_crashes
        if regime not in self.relevance:
            return state  # not reducing
        relevant, canonical = self.relevance[regime], self.canonicals[regime]
        locals_ = [canonical[node][state[node]] for node in range(n)]
        keep = 0
        for node, local in enumerate(locals_):
            keep |= relevant[node][local]
        return (*locals_, state[n] & keep, *state[n + 1 :])

    def _canonical(self, node: int, live: list[bool]) -> list[int]:
        """Map each dead local state (nothing visible can ever follow) to one representative.

        A dead actor never takes another macro step and no message to it is relevant, so only
        what the invariants read of it (a learner's decision) tells its dead states apart.
        """
        representative: dict[object, int] = {}
        mapping = []
        for local, alive in enumerate(live):
            if alive:
                mapping.append(local)
            else:
                decided = decided_of(self.model.actor(node, local))
                mapping.append(representative.setdefault(decided, local))
        return mapping

    # -- successors --------------------------------------------------------------------------------

    def macro_steps(self, state: State, node: int) -> list[Macro]:
        """Every macro step of actor ``node``: silent steps, then one that others can see."""
        n = self.n
        network, accepts, proposed, crashes = state[n], state[n + 1], state[n + 2], state[n + 3]
        start = state[node]
        can_crash = crashes < self.options.max_crashes
        relevant = self.relevance.get(can_crash)
        if relevant is None:
            others = -1  # no garbage collection: every message stays
        else:
            others = 0
            for other in range(n):
                if other != node:
                    others |= relevant[other][state[other]]
        # The walk reads only this actor's inbox and what the rest of the state says about the
        # messages, acceptances and proposals this actor can produce: memoise it on those.
        own = self.model.sends[node]
        key = (
            node,
            start,
            can_crash,
            network & self.model.dest_mask[node],
            network & own,
            others & own,
            accepts & self.model.announces[node],
            proposed & self.model.proposes[node],
        )
        walked = self._walks.get(key)
        if walked is None:
            walked = self._walk(node, start, can_crash, network, accepts, proposed, others)
            self._walks[key] = walked
        out: list[Macro] = []
        for raw_local, sent, out_accepts, out_proposed, mind, via, length, crash in walked:
            new_local = raw_local
            new_network = network | sent
            if relevant is not None:
                new_local = self.canonicals[can_crash][node][raw_local]
                new_network &= others | relevant[node][new_local]
            if (
                new_local == start
                and new_network == network
                and not out_accepts & ~accepts
                and not out_proposed & ~proposed
            ):
                continue  # back where it started: changes nothing
            out.append(
                (
                    new_local,
                    new_network,
                    accepts | out_accepts,
                    proposed | out_proposed,
                    mind,
                    via,
                    length,
                    crash,
                )
            )
        return out

    def _walk(
        self,
        node: int,
        start: int,
        can_crash: bool,
        network: int,
        accepts: int,
        proposed: int,
        others: int,
    ) -> list[Macro]:
        """The macro steps of ``node`` from local ``start``, before relevance and dedup.

        Each is (new local, sent, acceptances, proposals, mind change, via, length, crash).
        """
        model = self.model
        ghosts = (network, accepts, proposed)
        message_codes = _bits(network & model.dest_mask[node])
        reduce = self.options.reduce
        out: list[Macro] = []
        frontier: list[tuple[int, tuple[int, ...]]] = [(start, ())]
        visited = {start}
        while frontier:
            later: list[tuple[int, tuple[int, ...]]] = []
            for local, path in frontier:
                for code in (*message_codes, *model.inputs(node, local)):
                    crash = code == CRASH
                    if crash and not can_crash:
                        continue
                    outcome = model.step(node, local, code)
                    if outcome is None:
                        continue  # beyond the ballot bound
                    if crash and outcome.local == local and not outcome.sent:
                        continue  # a crash that loses nothing only spends the crash budget
                    codes = (*path, code)
                    loud = crash or self._loud(ghosts, others, outcome)
                    if loud and path and self._postponable(ghosts, node, start, others, path, code):
                        continue  # the same as doing the loud step first (see below)
                    if loud or not reduce:
                        out.append(
                            (
                                outcome.local,
                                outcome.sent,
                                outcome.accepts,
                                outcome.proposed,
                                outcome.mind_change,
                                self._macro_id(node, codes),
                                len(codes),
                                crash,
                            )
                        )
                    elif outcome.local not in visited:
                        visited.add(outcome.local)
                        later.append((outcome.local, codes))
            frontier = later
        return out

    @staticmethod
    def _loud(ghosts: tuple[int, int, int], others: int, outcome: Step) -> bool:
        network, accepts, proposed = ghosts
        return bool(
            outcome.decides
            or outcome.sent & others & ~network
            or outcome.accepts & ~accepts
            or outcome.proposed & ~proposed
        )

    def _postponable(
        self,
        ghosts: tuple[int, int, int],
        node: int,
        start: int,
        others: int,
        path: tuple[int, ...],
        code: int,
    ) -> bool:
        """Could one silent step of ``path`` wait until after the loud step ``code``?

        If taking ``path`` without step ``j``, then ``code``, then step ``j`` ends in the same
        local state with the same effects, this macro step is redundant: the one without step
        ``j`` reaches a state that can do everything this one can (step ``j`` then opens the
        actor's next macro step) and that the invariants cannot tell apart.  Preferring loud
        steps first keeps irrelevant silent steps (a learner noting votes before its catch-up
        timer fires) from multiplying the states.
        """
        model = self.model
        network = ghosts[0]
        full = self._replay(node, start, (*path, code))
        assert full is not None
        for j in range(len(path)):
            local = start
            ok = True
            for c in path[:j] + path[j + 1 :]:
                if not model.enabled(node, local, c):
                    ok = False
                    break
                outcome = model.step(node, local, c)
                if outcome is None or c == CRASH or self._loud(ghosts, others, outcome):
                    ok = False
                    break
                local = outcome.local
            if not ok:
                continue
            moved = self._replay(node, local, (code, path[j]))
            if moved is None:
                continue
            first = model.step(node, local, code)
            if first is None or not self._loud(ghosts, others, first):
                continue
            if (
                moved[0] == full[0]
                and (moved[1] | network) & others == (full[1] | network) & others
                and moved[2:] == full[2:]
            ):
                return True
        return False

    def _replay(
        self, node: int, local: int, codes: tuple[int, ...]
    ) -> tuple[int, int, int, int, bool, str | None] | None:
        """Run ``codes`` from ``local``: final local, and the union of sends and ghost effects."""
        sent = accepts = proposed = 0
        decides = False
        mind: str | None = None
        for code in codes:
            if not self.model.enabled(node, local, code):
                return None
            outcome = self.model.step(node, local, code)
            if outcome is None:
                return None
            local = outcome.local
            sent |= outcome.sent
            accepts |= outcome.accepts
            proposed |= outcome.proposed
            decides = decides or outcome.decides
            mind = mind or outcome.mind_change
        return local, sent, accepts, proposed, decides, mind

    # -- the search ------------------------------------------------------------------------

    def _successor(self, state: State, node: int, macro: Macro) -> State:
        """The state after ``macro`` of ``node``, normalised (not yet renamed)."""
        n = self.n
        local, network, accepts, proposed, _, _, _, crash = macro
        successor = list(state)
        successor[node] = local
        successor[n] = network
        successor[n + 1] = accepts
        successor[n + 2] = proposed
        if crash:
            successor[n + 3] += 1
            return self._normalise(tuple(successor))
        return tuple(successor)

    def _representative(self, state: State) -> tuple[State, int]:
        """The state stored for ``state``: its orbit's representative, and the renaming."""
        if self.symmetry is None:
            return state, 0
        regime = state[self.n + 3] < self.options.max_crashes
        return self.symmetry.canonical(state, regime)

    def run(self) -> ExploreResult:
        model = self.model
        n = self.n
        locals_, network = model.initial()
        if self.options.reduce:
            model.close()
            for crashes in {False, self.options.max_crashes > 0}:
                relevant, live = model.relevance(crashes)
                self.relevance[crashes] = relevant
                self.canonicals[crashes] = [self._canonical(node, live[node]) for node in range(n)]
            if self.options.symmetry and len(model.config.acceptor_ids) > 1:
                self.symmetry = Symmetry(model, self.canonicals)
        initial, _ = self._representative(self._normalise((*locals_, network, 0, 0, 0)))
        self._add(initial, 0, -1, -1, fingerprint(initial))
        self.stored = 1
        decision_at = -1
        distance = 0
        expanded = 0
        while distance < len(self.buckets):
            bucket = self.buckets[distance]
            self.depth = distance
            for index, state in bucket:
                if self.dist[index] != distance:
                    continue  # reached again by a shorter path; expanded from there
                flags = self.flags[index]
                if flags & _VIOLATING:
                    return self._finish(index, decision_at)
                if flags & _DECIDED and decision_at < 0:
                    decision_at = index
                expanded += 1
                if self.progress is not None and expanded % _PROGRESS_EVERY_STATES == 0:
                    self._report(len(self.dist) - expanded)
                for node in range(n):
                    for macro in self.macro_steps(state, node):
                        self.transitions += 1
                        raw = self._successor(state, node, macro)
                        new_distance = distance + macro[6]
                        via = macro[5]
                        if macro[4] is not None:
                            # A transition property: record it as its own (violating) state.
                            new_state = self._representative(raw)[0]
                            found = self._add(new_state, new_distance, index, via, None)
                            self.flags[found] |= _VIOLATING
                            self.problems[found] = [macro[4]]
                            continue
                        # A renamed state seen before is looked up by its own fingerprint too,
                        # which saves renaming it again.
                        raw_key = fingerprint(raw)
                        found = self.index.get(raw_key, -1)
                        if found < 0:
                            new_state, which = self._representative(raw)
                            key = fingerprint(new_state) if which else raw_key
                            found = self.index.get(key, -1)
                            if which:
                                self.index[raw_key] = found if found >= 0 else len(self.dist)
                            if found < 0:
                                self.stored += 1
                                self._add(new_state, new_distance, index, via, key)
                                continue
                        if new_distance < self.dist[found]:
                            self.dist[found] = new_distance
                            self.parent[found] = index
                            self.via[found] = via
                            self._push(new_distance, found, self._representative(raw)[0])
            self.buckets[distance] = []
            distance += 1
        return self._finish(-1, decision_at)

    def _report(self, frontier: int) -> None:
        assert self.progress is not None
        elapsed = time.perf_counter() - self.started
        self.progress(Progress(self.stored, self.transitions, self.depth, frontier, elapsed))

    def _finish(self, violating: int, decision_at: int) -> ExploreResult:
        violation = None
        if violating >= 0:
            trace, state = self._trace(violating)
            final = tuple(self.model.describe_local(node, state[node]) for node in range(self.n))
            problems = tuple(self.problems[violating])
            violation = Violation(problems, trace, final)
        decision = self._trace(decision_at)[0] if decision_at >= 0 else None
        return ExploreResult(
            options=self.options,
            states=self.stored,
            transitions=self.transitions,
            depth=self.depth,
            elapsed_seconds=time.perf_counter() - self.started,
            messages=len(self.model.messages),
            local_states=sum(len(table) for table in self.model.locals),
            violation=violation,
            decision_trace=decision,
        )

    def _trace(self, index: int) -> tuple[tuple[TraceStep, ...], State]:
        """The single steps from the start to state ``index``, and the state reached."""
        macros = self._relabel(self._concrete_path(index))
        model = self.model
        locals_, network = model.initial()
        state = self._normalise((*locals_, network, 0, 0, 0))
        steps: list[TraceStep] = []
        for node, codes in macros:
            local = state[node]
            for code in codes:
                outcome = model.step(node, local, code)
                assert outcome is not None
                step = model.input_step(node, local, code)
                action = steps_.render_step(step, model.config)
                steps.append(TraceStep(step, action, model.describe_effects(node, local, code)))
                local = outcome.local
            state = self._successor(state, node, self._find_macro(state, node, (node, codes)))
        return tuple(steps), state

    def _concrete_path(self, index: int) -> list[tuple[int, tuple[int, ...]]]:
        """The macro steps from the real initial state to (a renaming of) state ``index``.

        Only fingerprints were kept, so the path is replayed from the start.  Each macro step
        was taken in a representative; it is renamed back into the concrete execution.
        """
        vias: list[int] = []
        while self.parent[index] >= 0:
            vias.append(self.via[index])
            index = self.parent[index]
        locals_, network = self.model.initial()
        state = self._normalise((*locals_, network, 0, 0, 0))
        path: list[tuple[int, tuple[int, ...]]] = []
        for via in reversed(vias):
            representative, which = self._representative(state)
            node, codes = self.macros[via]
            macro = self._find_macro(representative, node, (node, codes))
            expected, _ = self._representative(self._successor(representative, node, macro))
            if self.symmetry is not None and which:
                back = self.symmetry.inverse[which]
                renamed = [self.symmetry.rename_input(back, node, code) for code in codes]
                node = renamed[0][0]
                codes = tuple(code for _, code in renamed)
            path.append((node, codes))
            state = self._successor(state, node, self._find_macro(state, node, (node, codes)))
            assert self._representative(state)[0] == expected, "renaming broke the trace"
        return path

    def _relabel(
        self, path: list[tuple[int, tuple[int, ...]]]
    ) -> list[tuple[int, tuple[int, ...]]]:
        """The same execution with the acceptors renamed in order of their first step.

        Any renaming of an execution is one (see ``symmetry``); this one reads naturally and
        does not depend on which representative the search happened to store.
        """
        symmetry = self.symmetry
        if symmetry is None:
            return path
        order: list[int] = []
        for node, _ in path:
            if node < symmetry.count and node not in order:
                order.append(node)
        order.extend(node for node in range(symmetry.count) if node not in order)
        perm = [0] * symmetry.count
        for rank, node in enumerate(order):
            perm[node] = rank
        which = symmetry.perms.index(tuple(perm))
        out = []
        for node, codes in path:
            renamed = [symmetry.rename_input(which, node, code) for code in codes]
            out.append((renamed[0][0], tuple(code for _, code in renamed)))
        return out

    def _find_macro(self, state: State, node: int, step: tuple[int, tuple[int, ...]]) -> Macro:
        via = self._macro_id(*step)
        for macro in self.macro_steps(state, node):
            if macro[5] == via:
                return macro
        raise AssertionError(f"macro step {step} is not enabled in {state}")


def fingerprint(state: State) -> int:
    """A 64-bit hash of a state's canonical encoding, stored instead of the state.

    As in TLC and in SPIN's hash compaction, two distinct states with one fingerprint would
    make the search skip the second one.  With ``n`` states the chance of any such collision is
    about ``n * n / 2**65``: below one in a million for ten million states.
    """
    digest = hashlib.blake2b(repr(state).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def explore(
    options: ExploreOptions,
    progress: Callable[[Progress], None] | None = None,
) -> ExploreResult:
    """Search every reachable state, nearest first; stop at the first violation.

    ``progress`` is called every few thousand states with the search's counters.
    """
    return _Search(options, progress).run()


def render_trace(steps: tuple[TraceStep, ...]) -> list[str]:
    """One numbered line per step: ``2. A1 <- Prepare 0.4 from P1  => sends ...``."""
    width = max((len(s.action) for s in steps), default=0)
    lines = []
    for number, s in enumerate(steps, start=1):
        line = f"{number:>3}. {s.action:<{width}}"
        if s.effects:
            line += f"  => {s.effects}"
        lines.append(line.rstrip())
    return lines
