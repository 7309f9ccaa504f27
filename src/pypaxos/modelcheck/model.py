"""The transition relation the model checker explores, computed by the real actors.

Each actor's local state (volatile fields, durable and unsynced disk contents, armed timers) is
interned to a small integer, and each message to a bit, so a global state is a flat tuple of
ints.  ``SynodModel.step(node, local, code)`` clones the representative actor for that local
state, calls the real ``handle`` / ``on_timer`` / ``propose`` (or rebuilds it from its durable
state for a crash) and applies the effects.  An actor's reaction is a deterministic function of
its local state and the input, so each (actor, local state, input) runs the actor code once.
The key leaves out only what chooses delays (``Proposer.retries``, the random source, timer
delays), which the checker ignores; it keeps dict insertion orders a buggy actor may read.

More: docs/testing.md, 'Inside the fast paths'.
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from pypaxos.core.acceptor import Acceptor
from pypaxos.core.effects import CancelTimer, Decide, Effect, Persist, Send, SetTimer
from pypaxos.core.learner import Learner
from pypaxos.core.messages import (
    Accepted,
    Message,
)
from pypaxos.core.proposer import Proposer
from pypaxos.core.synod import SynodActor, SynodConfig
from pypaxos.core.types import Value
from pypaxos.sim import steps as steps_
from pypaxos.sim.checkers import Acceptance

# Input codes: a delivered message is its (non-negative) message id; the rest are negative.
PROPOSE = -1
CRASH = -2
FLUSH = -3
_TIMER_BASE = -16  # timer ``k`` (index into ``SynodModel.timer_names``) is ``_TIMER_BASE - k``
_CODE_OFFSET = 1 << 8  # added to a code so that memo keys are non-negative
_LOCAL_STRIDE = 1 << 32  # memo key = local * stride + code + offset

# The defaults answer in seconds: two competing ballots (``0.4`` against ``0.5``) and a crash.
# A higher ``max_ballot`` lets proposers retry, which multiplies the states (see the README).
DEFAULT_MAX_BALLOT = 0
DEFAULT_MAX_CRASHES = 1


@dataclass(frozen=True, slots=True)
class ExploreOptions:
    """What to explore: the deployment plus the bounds that keep the state space finite."""

    config: SynodConfig
    max_ballot: int = DEFAULT_MAX_BALLOT  # proposers may use ballot rounds 0..max_ballot
    max_crashes: int = DEFAULT_MAX_CRASHES  # crash-and-restart actions in one execution
    crash_proposers: bool = False  # may proposers crash too (acceptors always may)
    reduce: bool = True  # explore macro steps (see ``explore``); False: single steps
    symmetry: bool = True  # store one state per renaming of the acceptors (``symmetry.py``)

    def __post_init__(self) -> None:
        if self.max_ballot < 0:
            raise ValueError("max_ballot must be >= 0")
        if self.max_crashes < 0:
            raise ValueError("max_crashes must be >= 0")


@dataclass(frozen=True, slots=True)
class NodeState:
    """One interned local state of one actor; ``actor`` is a representative, never mutated."""

    actor: SynodActor
    durable: object  # what survives a crash (``None``: nothing written yet)
    pending: object  # an unsynced write (``Persist(sync=False)``) a crash would lose, or None
    timers: frozenset[str]


@dataclass(frozen=True, slots=True)
class Step:
    """The memoised outcome of one input to one actor in one local state."""

    local: int  # the actor's new local state id
    sent: int  # bitmask of the message ids it sent
    accepts: int  # bitmask of the acceptance ids its Accepted messages announce (ghost state)
    proposed: int  # bitmask of proposer indices that proposed (ghost state for the invariants)
    decides: bool  # a learner's decision changed (the invariants read decisions)
    mind_change: str | None  # set when a learner's decision changed (an invariant violation)


def describe_message(msg: Message) -> str:
    """A short readable form: ``Prepare 0.4``, ``Accept 0.4=v1``, ... (``steps`` words it)."""
    return steps_.render_message(msg)


def _shallow_copy(actor: SynodActor) -> SynodActor:
    """``copy.copy`` for the slotted actor classes, without its generic machinery."""
    cls = type(actor)
    twin = cls.__new__(cls)
    for name in _slots(cls):
        setattr(twin, name, getattr(actor, name))
    return twin


@functools.cache
def _slots(cls: type) -> tuple[str, ...]:
    names: list[str] = []
    for klass in cls.__mro__[:-1]:  # every class but ``object`` must declare its slots
        if "__slots__" not in klass.__dict__:
            raise TypeError(f"{klass.__name__} has no __slots__; the checker copies slots only")
        slots = klass.__dict__["__slots__"]
        names.extend((slots,) if isinstance(slots, str) else slots)
    return tuple(names)


def clone(actor: SynodActor) -> SynodActor:
    """A copy that shares nothing mutable with ``actor`` (cheaper than ``deepcopy``)."""
    twin = _shallow_copy(actor)
    if isinstance(twin, Proposer):
        twin.promises = dict(twin.promises)
        twin.accepted_from = set(twin.accepted_from)
    elif isinstance(twin, Learner):
        twin.latest = dict(twin.latest)
        twin.votes = Counter(twin.votes)
    elif not isinstance(twin, Acceptor):
        raise TypeError(f"the model checker does not know how to copy {type(actor).__name__}")
    return twin


def volatile_key(actor: SynodActor) -> Hashable:
    """Everything in an actor's memory its future behaviour can depend on (see module doc)."""
    if isinstance(actor, Acceptor):
        return actor.state
    if isinstance(actor, Proposer):
        return (
            actor.highest_seen,
            actor.ballot,
            actor.phase,
            actor.own_value,
            actor.proposal,
            tuple(actor.promises.items()),
            tuple(sorted(actor.accepted_from)),
            actor.chosen,
        )
    if isinstance(actor, Learner):
        return (actor.decided, tuple(actor.latest.items()), tuple(actor.votes.items()))
    raise TypeError(f"the model checker does not know {type(actor).__name__}")


def decided_of(actor: SynodActor) -> Value | None:
    return actor.decided if isinstance(actor, Learner) else None


def _spread(
    marked: list[bool],
    edges: list[tuple[int, int, int, bool, bool]],
    into: list[list[int]],
    follow: Callable[[tuple[int, int, int, bool, bool]], bool],
) -> None:
    """Mark every source of a followed edge into a marked state, to a fixpoint."""
    pending = [local for local, flag in enumerate(marked) if flag]
    while pending:
        target = pending.pop()
        for index in into[target]:
            edge = edges[index]
            if not marked[edge[1]] and follow(edge):
                marked[edge[1]] = True
                pending.append(edge[1])


class SynodModel:
    """Interning tables and the memoised transition function for one ``ExploreOptions``."""

    def __init__(self, options: ExploreOptions) -> None:
        self.options = options
        self.config = options.config
        self.ids = self.config.all_ids
        self.index_of = {node_id: index for index, node_id in enumerate(self.ids)}
        self.proposer_index = {p: k for k, p in enumerate(self.config.proposer_ids)}
        self.learner_nodes = tuple(self.index_of[i] for i in self.config.learner_ids)
        # The proposer's RandomSource only draws backoff delays, which the checker ignores.
        self._rng = random.Random(0)
        self.timer_names: list[str] = []
        # Per node: interned local states and their keys.
        self.locals: list[list[NodeState]] = [[] for _ in self.ids]
        self._local_ids: list[dict[Hashable, int]] = [{} for _ in self.ids]
        self._inputs: list[list[tuple[int, ...]]] = [[] for _ in self.ids]
        # Interned messages: (destination node index, message).
        self.messages: list[tuple[int, Message]] = []
        self._message_ids: dict[tuple[int, Message], int] = {}
        self.dest_mask: list[int] = [0 for _ in self.ids]
        self.inbox: list[list[int]] = [[] for _ in self.ids]  # message ids per destination
        # Acceptance ids: what an Accepted from an acceptor announces; -1 for other messages.
        self.acceptances: list[Acceptance] = []
        self._acceptance_ids: dict[Acceptance, int] = {}
        self.acceptance_of: list[int] = []
        # Memo: per node, key -> Step, or None when the step leaves the ballot bound.
        self.memo: list[dict[int, Step | None]] = [{} for _ in self.ids]
        crashable = set(self.config.acceptor_ids)
        if options.crash_proposers:
            crashable.update(self.config.proposer_ids)
        self._crashable = tuple(i in crashable and options.max_crashes > 0 for i in self.ids)
        self.closed = False  # set by close(): from then on no new state or message may appear
        # Per node, once closed: every message it may send, acceptance it may announce and
        # proposal it may make (all ones until then, meaning "unknown: any").
        self.sends: list[int] = [-1 for _ in self.ids]
        self.announces: list[int] = [-1 for _ in self.ids]
        self.proposes: list[int] = [-1 for _ in self.ids]

    # -- interning --------------------------------------------------------------------------

    def intern_message(self, dest: int, msg: Message) -> int:
        key = (dest, msg)
        found = self._message_ids.get(key)
        if found is not None:
            return found
        if self.closed:
            raise RuntimeError(f"message outside the closed model: {key!r}")
        mid = len(self.messages)
        self.messages.append(key)
        self._message_ids[key] = mid
        self.dest_mask[dest] |= 1 << mid
        self.inbox[dest].append(mid)
        acceptance = -1
        if isinstance(msg, Accepted) and msg.sender in self.config.acceptor_ids:
            announced = (msg.sender, msg.ballot, msg.value)
            acceptance = self._acceptance_ids.setdefault(announced, len(self.acceptances))
            if acceptance == len(self.acceptances):
                self.acceptances.append(announced)
        self.acceptance_of.append(acceptance)
        return mid

    def message_id(self, dest: int, msg: Message) -> int:
        """The id of an interned message (``KeyError`` if it was never sent)."""
        return self._message_ids[(dest, msg)]

    def acceptance_id(self, acceptance: Acceptance) -> int:
        """The id of an announced acceptance (``KeyError`` if none announced it)."""
        return self._acceptance_ids[acceptance]

    def local_keys(self, node: int) -> list[Hashable]:
        """The keys of ``node``'s interned local states, indexed by local id."""
        return list(self._local_ids[node])

    def local_id(self, node: int, key: Hashable) -> int | None:
        return self._local_ids[node].get(key)

    def _intern_local(self, node: int, state: NodeState) -> int:
        key = (volatile_key(state.actor), state.durable, state.pending, state.timers)
        table = self._local_ids[node]
        found = table.get(key)
        if found is not None:
            return found
        if self.closed:
            raise RuntimeError(f"local state outside the closed model: {key!r}")
        local = len(self.locals[node])
        self.locals[node].append(state)
        table[key] = local
        self._inputs[node].append(self._inputs_for(node, state))
        return local

    def _timer_code(self, name: str) -> int:
        if name not in self.timer_names:
            self.timer_names.append(name)
        return _TIMER_BASE - self.timer_names.index(name)

    def _inputs_for(self, node: int, state: NodeState) -> tuple[int, ...]:
        codes = [self._timer_code(name) for name in sorted(state.timers)]
        actor = state.actor
        if isinstance(actor, Proposer) and actor.own_value is None:
            codes.append(PROPOSE)
        if state.pending is not None:
            codes.append(FLUSH)
        if self._crashable[node]:
            codes.append(CRASH)
        return tuple(codes)

    # -- the initial state --------------------------------------------------------------------

    def initial(self) -> tuple[list[int], int]:
        """Every actor freshly built and started: its local ids and the messages sent."""
        locals_: list[int] = []
        sent = 0
        for node, node_id in enumerate(self.ids):
            actor = self.config.build(node_id, None, self._rng)
            effects = actor.start()
            assert all(not isinstance(e, Send) for e in effects), "actors send nothing at start"
            timers = frozenset(e.name for e in effects if isinstance(e, SetTimer))
            locals_.append(self._intern_local(node, NodeState(actor, None, None, timers)))
        return locals_, sent

    # -- transitions ----------------------------------------------------------------------------

    def inputs(self, node: int, local: int) -> tuple[int, ...]:
        """The non-message inputs (timers, propose, flush, crash) enabled in a local state."""
        return self._inputs[node][local]

    def enabled(self, node: int, local: int, code: int) -> bool:
        """Messages can always be delivered (if sent); other inputs depend on the state."""
        return code >= 0 or code in self._inputs[node][local]

    @staticmethod
    def memo_key(local: int, code: int) -> int:
        return local * _LOCAL_STRIDE + code + _CODE_OFFSET

    def step(self, node: int, local: int, code: int) -> Step | None:
        """Feed input ``code`` to actor ``node`` in state ``local`` (``None``: beyond bounds)."""
        key = self.memo_key(local, code)
        memo = self.memo[node]
        if key in memo:
            return memo[key]
        result = self._compute(node, local, code)
        memo[key] = result
        return result

    def _run(
        self, node: int, local: int, code: int
    ) -> tuple[SynodActor, list[Effect], object, object, frozenset[str]]:
        """Run the real actor on one input: the new actor, its effects, disk and timers."""
        state = self.locals[node][local]
        node_id = self.ids[node]
        if code < 0 and code not in self._inputs[node][local]:
            raise ValueError(f"input {code} is not enabled in local state {local} of {node_id}")
        timers, pending, durable = state.timers, state.pending, state.durable
        if code >= 0:
            actor = clone(state.actor)
            effects = actor.handle(self.messages[code][1])
        elif code == PROPOSE:
            actor = clone(state.actor)
            assert isinstance(actor, Proposer)
            effects = actor.propose(self.config.proposal_for(node_id))
        elif code == CRASH:
            # The volatile state is gone and so is any unsynced write: rebuild from the disk.
            actor = self.config.build(node_id, durable, self._rng)
            effects = actor.start()
            timers, pending = frozenset(), None
        elif code == FLUSH:
            actor, effects = state.actor, []
            durable, pending = pending, None
        else:
            name = self.timer_names[_TIMER_BASE - code]
            actor = clone(state.actor)
            timers = timers - {name}  # a timer fires once; the actor may re-arm it
            effects = actor.on_timer(name)
        return actor, effects, durable, pending, timers

    def _compute(self, node: int, local: int, code: int) -> Step | None:
        actor, effects, durable, pending, timers = self._run(node, local, code)
        if isinstance(actor, Proposer) and actor.ballot.round > self.options.max_ballot:
            return None
        sent = accepts = 0
        for effect in effects:
            match effect:
                case Send(to=to, msg=msg):
                    assert isinstance(msg, Message), f"not a message: {msg!r}"
                    assert to != self.ids[node], "an actor sent a message to itself"
                    mid = self.intern_message(self.index_of[to], msg)
                    sent |= 1 << mid
                    if self.acceptance_of[mid] >= 0:
                        accepts |= 1 << self.acceptance_of[mid]
                case Persist(state=written, sync=True):
                    durable, pending = written, None
                case Persist(state=written, sync=False):
                    pending = written
                case SetTimer(name=name):
                    timers = timers | {name}
                case CancelTimer(name=name):
                    timers = timers - {name}
                case Decide():
                    pass  # the learner's ``decided`` field, read by the invariants, says it
        before, after = decided_of(self.locals[node][local].actor), decided_of(actor)
        mind_change = None
        if before is not None and after != before:
            who = self.config.name(self.ids[node])
            mind_change = f"learner {who} changed its decision from {before!r} to {after!r}"
        new_local = self._intern_local(node, NodeState(actor, durable, pending, timers))
        proposed = 1 << self.proposer_index[self.ids[node]] if code == PROPOSE else 0
        return Step(new_local, sent, accepts, proposed, before != after, mind_change)

    def describe_effects(self, node: int, local: int, code: int) -> str:
        """What the actor did on this input (run again: the memo keeps no text)."""
        _, effects, _, _, _ = self._run(node, local, code)
        sends: dict[str, list[str]] = {}
        notes: list[str] = []
        for effect in effects:
            match effect:
                case Send(to=to, msg=msg):
                    assert isinstance(msg, Message), f"not a message: {msg!r}"
                    sends.setdefault(describe_message(msg), []).append(self.config.name(to))
                case Persist(sync=True):
                    notes.append("syncs its disk")
                case Persist(sync=False):
                    notes.append("writes its disk WITHOUT syncing")
                case Decide(value=value):
                    notes.append(f"DECIDES {value}")
                case SetTimer() | CancelTimer():
                    pass
        notes.extend(f"sends {text} to {','.join(to)}" for text, to in sends.items())
        return "; ".join(notes)

    # -- closing the model and finding what still matters --------------------------------------

    def close(self) -> None:
        """Run every actor on every input it could ever get, until no new message appears.

        Starting from the initial local states, each actor is fed every message ever sent to it
        (by any actor, in any local state found so far) and every other input; new messages
        feed the next round.  The result over-approximates what each actor can ever receive and
        every local state it can reach, which ``relevance`` needs, and fills the memo so that
        the search itself only looks steps up.
        """
        done: list[list[int]] = [[] for _ in self.ids]  # per local: inbox messages processed
        changed = True
        while changed:
            changed = False
            for node in range(len(self.ids)):
                inbox = self.inbox[node]
                processed = done[node]
                local = 0
                while local < len(self.locals[node]):
                    if local == len(processed):
                        processed.append(0)
                        changed = True
                        for code in self._inputs[node][local]:
                            self.step(node, local, code)
                    while processed[local] < len(inbox):
                        self.step(node, local, inbox[processed[local]])
                        processed[local] += 1
                        changed = True
                    local += 1
        self.closed = True
        for node, memo in enumerate(self.memo):
            sends = announces = proposes = 0
            for outcome in memo.values():
                if outcome is not None:
                    sends |= outcome.sent
                    announces |= outcome.accepts
                    proposes |= outcome.proposed
            self.sends[node], self.announces[node], self.proposes[node] = sends, announces, proposes

    def relevance(self, crashes: bool) -> tuple[list[list[int]], list[list[bool]]]:
        """Per actor and local state: the messages to it that may still make a difference.

        A delivery *matters* if it changes the actor and the actor may then, before any crash,
        do something others can see (send a message, decide or propose), or may change its disk
        and later, perhaps after a crash and restart from that disk, do so.  A change that a
        crash wipes before anything visible happens makes no difference.  ``relevant[i][l]`` is
        the set of messages that matter in some local state reachable from ``l`` under any
        input, so a message outside it can never make a difference to actor ``i`` again and
        the search drops it from the network.  ``live[i][l]`` says whether actor ``i`` may still
        do anything visible from ``l``.  ``crashes`` says whether crash edges are followed (the
        search uses the other answer once the crash budget is spent).  Needs ``close()``.
        """
        assert self.closed, "close() the model first"
        result: list[list[int]] = []
        lives: list[list[bool]] = []
        for node in range(len(self.ids)):
            count = len(self.locals[node])
            states = self.locals[node]
            # Edges that change something, as (code, source, target, visible, keeps).
            # ``keeps``: the step changes the disk, so its effect can outlive a crash.
            edges: list[tuple[int, int, int, bool, bool]] = []
            for key, outcome in self.memo[node].items():
                if outcome is None:
                    continue
                local, code = divmod(key, _LOCAL_STRIDE)
                code -= _CODE_OFFSET
                if code == CRASH and not crashes:
                    continue
                visible = bool(
                    outcome.sent or outcome.accepts or outcome.proposed or outcome.decides
                )
                if outcome.local != local or visible:
                    keeps = states[outcome.local].durable != states[local].durable
                    edges.append((code, local, outcome.local, visible, keeps))
            into: list[list[int]] = [[] for _ in range(count)]  # edge indices by target
            for index, (_, _, target, _, _) in enumerate(edges):
                into[target].append(index)
            # live: a visible step is reachable (through any edge).
            live = [False] * count
            for _, source, _, visible, _ in edges:
                if visible:
                    live[source] = True
            _spread(live, edges, into, lambda edge: True)
            # survives: a change made now may still be seen (no crash in between, or the disk).
            survives = [False] * count
            for code, source, target, visible, keeps in edges:
                if code != CRASH and (visible or (keeps and live[target])):
                    survives[source] = True
            _spread(survives, edges, into, lambda edge: edge[0] != CRASH)
            relevant = [0] * count
            for code, source, target, visible, keeps in edges:
                if code >= 0 and (visible or (keeps and live[target]) or survives[target]):
                    relevant[source] |= 1 << code
            pending = list(range(count))
            while pending:  # relevant[l] |= relevant[t] along every edge l -> t, to a fixpoint
                target = pending.pop()
                mask = relevant[target]
                for index in into[target]:
                    source = edges[index][1]
                    if mask & ~relevant[source]:
                        relevant[source] |= mask
                        pending.append(source)
            result.append(relevant)
            lives.append(live)
        return result, lives

    # -- reading states -------------------------------------------------------------------------

    def actor(self, node: int, local: int) -> SynodActor:
        return self.locals[node][local].actor

    def input_step(self, node: int, local: int, code: int) -> steps_.Step:
        """The input ``code`` to ``node`` in ``local``, as a typed step record."""
        node_id = self.ids[node]
        if code >= 0:
            return steps_.Deliver(node_id, self.messages[code][1])
        if code == PROPOSE:
            return steps_.Propose(node_id, self.config.proposal_for(node_id))
        if code == CRASH:
            return steps_.Reboot(node_id, self.locals[node][local].pending is not None)
        if code == FLUSH:
            return steps_.Flush(node_id)
        return steps_.Timer(node_id, self.timer_names[_TIMER_BASE - code])

    def describe_input(self, node: int, local: int, code: int) -> str:
        return steps_.render_step(self.input_step(node, local, code), self.config)

    def describe_local(self, node: int, local: int) -> str:
        state = self.locals[node][local]
        actor = state.actor
        who = self.config.name(self.ids[node])
        if isinstance(actor, Acceptor):
            s = actor.state
            accepted = (
                "nothing" if s.accepted_value is None else f"{s.accepted_ballot}={s.accepted_value}"
            )
            text = f"{who}: promised {s.promised}, accepted {accepted}"
        elif isinstance(actor, Proposer):
            text = f"{who}: ballot {actor.ballot}, {actor.phase.value}"
            if actor.proposal is not None:
                text += f", proposing {actor.proposal}"
        elif isinstance(actor, Learner):
            text = f"{who}: decided {actor.decided if actor.decided is not None else 'nothing'}"
        else:
            text = f"{who}: {actor!r}"
        if state.pending is not None:
            text += " (unsynced write pending)"
        return text
