"""A deterministic discrete-event simulator for pure actors, generic over messages and effects.

Virtual time is an integer number of ticks; every future event (a message copy arriving, a
timer, a page-cache flush, a scheduled call) sits in one heap ordered by ``(time, sequence
number)``, and ``step()`` feeds the earliest to its actor and carries out the returned effects
in order.  One seeded ``random.Random`` makes every random choice, the actors' own included, so
a seed fixes the whole run, trace included, byte for byte.  Protocol knowledge lives in a world
subclass (``sim.synod.SynodWorld``) through hooks; effects other than ``core.effects`` go to
``on_effect``.  The durability contract holds: every ``Persist`` of a list is written before
any ``Send`` leaves, and a crash loses an unsynced write not yet flushed.

More: docs/testing.md, 'How the simulator works'.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar, final

from pypaxos.core.effects import CancelTimer, Decide, Persist, Send, SetTimer
from pypaxos.sim.disk import Disk
from pypaxos.sim.network import Network

M = TypeVar("M")
M_contra = TypeVar("M_contra", contravariant=True)


class Actor(Protocol[M_contra]):
    """What the simulator drives: one input at a time in, a list of effects out."""

    @property
    def id(self) -> int: ...

    def start(self) -> Sequence[object]: ...

    def handle(self, msg: M_contra) -> Sequence[object]: ...

    def on_timer(self, name: str) -> Sequence[object]: ...


# Builds actor ``id`` from its durable state (None: an empty disk) and the simulator's Random.
ActorFactory = Callable[[int, object | None, random.Random], Actor[M]]


@final
class _Delivery(Generic[M]):
    """One copy of a message arriving at ``dst``."""

    __slots__ = ("dst", "duplicate", "msg", "src")

    def __init__(self, src: int, dst: int, msg: M, duplicate: bool) -> None:
        self.src = src
        self.dst = dst
        self.msg = msg
        self.duplicate = duplicate


@final
class _TimerFire:
    """Timer ``name`` of ``node`` fires, unless re-set or cancelled since (``generation``)."""

    __slots__ = ("generation", "name", "node")

    def __init__(self, node: int, name: str, generation: int) -> None:
        self.node = node
        self.name = name
        self.generation = generation


@final
class _Flush:
    """The page cache of ``node`` is written back (the dirty period ``generation``)."""

    __slots__ = ("generation", "node")

    def __init__(self, node: int, generation: int) -> None:
        self.node = node
        self.generation = generation


@final
class _Call:
    """A scheduled call into the world: a proposal, a crash, a restart, the heal."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn


# The event classes are final so that ``type(event) is _Flush`` (quicker than isinstance in
# the hottest loop) narrows for mypy, in the else branch too.
_Event = _Delivery[M] | _TimerFire | _Flush | _Call


def _default_name(node: int) -> str:
    return f"n{node}"


class Simulator(Generic[M]):
    """Runs actors over a simulated network and disk, one event per ``step()``."""

    def __init__(
        self,
        node_ids: Sequence[int],
        factory: ActorFactory[M],
        rng: random.Random,
        network: Network,
        disk: Disk | None = None,
        *,
        flush_delay_ticks: tuple[int, int] = (10, 100),
        name: Callable[[int], str] = _default_name,
        describe: Callable[[M], str] = str,
        describe_state: Callable[[object | None], str] = str,
        trace: bool = False,
    ) -> None:
        if not 1 <= flush_delay_ticks[0] <= flush_delay_ticks[1]:
            raise ValueError(f"bad flush delay range {flush_delay_ticks}")
        self.node_ids = tuple(node_ids)
        self.factory = factory
        self.rng = rng
        self.network = network
        self.disk = Disk() if disk is None else disk
        self.flush_delay_ticks = flush_delay_ticks
        self.name = name
        self.describe = describe
        self.describe_state = describe_state
        self.trace: list[str] | None = [] if trace else None
        self.now = 0
        self.steps = 0
        self._heap: list[tuple[int, int, _Event[M]]] = []
        self._seq = 0
        self._actors: dict[int, Actor[M] | None] = dict.fromkeys(self.node_ids)
        self._timers: dict[int, dict[str, int]] = {node: {} for node in self.node_ids}
        self._timer_generation = 0
        # Called with the receiver after each delivered message was handled (fault injection).
        self.after_handle: Callable[[int], None] | None = None

    # -- hooks for a world subclass ----------------------------------------------------------

    def on_send(self, src: int, dst: int, msg: M) -> None:
        """Called for every ``Send`` before the network routes it (ghost state goes here)."""

    def on_decide(self, node: int, value: object) -> None:
        """Called for every ``Decide`` effect."""
        if self.trace is not None:
            self.log(f"{self.name(node)} decides {value}")

    def on_effect(self, node: int, effect: object) -> None:
        """Carry out an effect type this simulator does not know; extend in a subclass."""
        raise TypeError(f"{self.name(node)} returned an unknown effect {effect!r}")

    def after_restart(self, node: int) -> None:
        """Called after ``node`` was rebuilt from disk and its start effects carried out."""

    def after_step(self) -> None:
        """Called after every step: check invariants here."""

    # -- trace hooks (only when tracing): the defaults log a line of text ---------------------

    def trace_delivery(self, src: int, dst: int, msg: M, duplicate: bool) -> None:
        """A copy of ``msg`` arrives at ``dst`` (which may be down: then it is lost)."""
        note = "  [dup]" if duplicate else ""
        if self._actors[dst] is None:
            note = f"  [lost: {self.name(dst)} down]"
        self._log_message(src, dst, msg, note)

    def trace_loss(self, src: int, dst: int, msg: M, reason: str) -> None:
        """``msg`` is lost as it is sent (``reason``: the network's word, e.g. ``dropped``)."""
        self._log_message(src, dst, msg, f"  [{reason}]", arrow="-x")

    def trace_crash(self, node: int, lost_unsynced: bool) -> None:
        self.log(f"{self.name(node)} CRASH" + (" (unsynced write lost)" if lost_unsynced else ""))

    def trace_restart(self, node: int, durable: object | None) -> None:
        """``node`` is rebuilt from ``durable`` (before its start effects are carried out)."""
        self.log(f"{self.name(node)} RESTART from disk: {self.describe_state(durable)}")

    def trace_flush(self, node: int) -> None:
        self.log(f"{self.name(node)} page cache flushed to disk")

    def trace_timer(self, node: int, name: str) -> None:
        self.log(f"{self.name(node)} timer {name}")

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        """Build every actor from its (empty) disk and carry out its start effects."""
        for node in self.node_ids:
            actor = self.factory(node, self.disk.read(node), self.rng)
            self._actors[node] = actor
            self.apply(node, actor.start())

    def next_time(self) -> int | None:
        """When the next event happens (``None``: nothing is scheduled)."""
        return self._heap[0][0] if self._heap else None

    def step(self) -> bool:
        """Process the earliest event; False when there was none."""
        if not self._heap:
            return False
        time, _, event = heapq.heappop(self._heap)
        self.now = time
        self.steps += 1
        if type(event) is _Delivery:
            self._deliver(event)
        elif type(event) is _TimerFire:
            self._fire(event)
        elif type(event) is _Flush:
            self._flush(event)
        else:
            event.fn()
        self.after_step()
        return True

    def at(self, time: int, fn: Callable[[], object]) -> None:
        """Call ``fn`` at virtual time ``time`` (not before now); its result is ignored."""
        self._push(max(time, self.now), _Call(fn))

    def log(self, text: str) -> None:
        """Append one trace line stamped with the current virtual time (if tracing)."""
        if self.trace is not None:
            self.trace.append(f"t={self.now:5d}  {text}")

    # -- actors ------------------------------------------------------------------------------

    def is_up(self, node: int) -> bool:
        return self._actors[node] is not None

    def actor(self, node: int) -> Actor[M]:
        actor = self._actors[node]
        if actor is None:
            raise LookupError(f"{self.name(node)} is down")
        return actor

    def inject(self, node: int, fn: Callable[[Actor[M]], Sequence[object]]) -> None:
        """Give ``node`` an input other than a message or timer (e.g. a proposal)."""
        self.apply(node, fn(self.actor(node)))

    def crash(self, node: int) -> bool:
        """Stop ``node``: it loses its memory, its timers and its page cache."""
        if self._actors[node] is None:
            return False
        self._actors[node] = None
        self._timers[node] = {}
        lost = self.disk.crash(node)
        if self.trace is not None:
            self.trace_crash(node, lost)
        return True

    def restart(self, node: int) -> bool:
        """Rebuild a crashed ``node`` from exactly what its disk made durable."""
        if self._actors[node] is not None:
            return False
        durable = self.disk.read(node)
        actor = self.factory(node, durable, self.rng)
        self._actors[node] = actor
        if self.trace is not None:
            self.trace_restart(node, durable)
        self.apply(node, actor.start())
        self.after_restart(node)
        return True

    # -- effects -----------------------------------------------------------------------------

    def apply(self, node: int, effects: Sequence[object]) -> None:
        """Carry out one returned effect list: every Persist first, then the rest in order.

        This is the hot path of every run, hence ``type(e) is`` tests for the core effects;
        anything else (including subclasses) goes through ``_apply_other``.
        """
        if not effects:
            return
        for effect in effects:
            if type(effect) is Persist:
                self._persist(node, effect)
        for effect in effects:
            if type(effect) is Send:
                msg: M = effect.msg  # an Actor[M] sends M: the effects themselves are opaque
                self._send(node, effect.to, msg)
            elif type(effect) is not Persist:
                self._apply_other(node, effect)

    def _apply_other(self, node: int, effect: object) -> None:
        if isinstance(effect, SetTimer):
            self._timer_generation += 1
            self._timers[node][effect.name] = self._timer_generation
            fire = _TimerFire(node, effect.name, self._timer_generation)
            self._push(self.now + effect.delay_ticks, fire)
        elif isinstance(effect, CancelTimer):
            self._timers[node].pop(effect.name, None)
        elif isinstance(effect, Decide):
            self.on_decide(node, effect.value)
        elif isinstance(effect, Send):
            self._send(node, effect.to, effect.msg)
        elif isinstance(effect, Persist):
            pass  # a Persist subclass: already written by the first pass
        else:
            self.on_effect(node, effect)

    def _persist(self, node: int, effect: Persist[object]) -> None:
        generation = self.disk.write(node, effect.state, effect.sync)
        if generation is not None:
            low, high = self.flush_delay_ticks
            delay = low + int(self.rng.random() * (high - low + 1))
            self._push(self.now + delay, _Flush(node, generation))

    def _flush(self, event: _Flush) -> None:
        if self.disk.flush(event.node, event.generation) and self.trace is not None:
            self.trace_flush(event.node)

    def _send(self, src: int, dst: int, msg: M) -> None:
        if dst not in self._actors:
            raise LookupError(f"{self.name(src)} sent {msg!r} to unknown actor {dst}")
        self.on_send(src, dst, msg)
        lost, delays = self.network.route(src, dst)
        if lost:
            if self.trace is not None:
                self.trace_loss(src, dst, msg, lost)
            return
        heap, now = self._heap, self.now
        duplicate = False
        for delay in delays:
            self._seq += 1
            heapq.heappush(heap, (now + delay, self._seq, _Delivery(src, dst, msg, duplicate)))
            duplicate = True

    def _deliver(self, event: _Delivery[M]) -> None:
        actor = self._actors[event.dst]
        msg = event.msg
        if self.trace is not None:
            self.trace_delivery(event.src, event.dst, msg, event.duplicate)
        if actor is None:
            return
        self.apply(event.dst, actor.handle(msg))
        if self.after_handle is not None:
            self.after_handle(event.dst)

    def _fire(self, event: _TimerFire) -> None:
        timers = self._timers[event.node]
        if timers.get(event.name) != event.generation:
            return  # re-set, cancelled, or its actor crashed since
        del timers[event.name]
        actor = self._actors[event.node]
        assert actor is not None, "a crashed actor has no timers"
        if self.trace is not None:
            self.trace_timer(event.node, event.name)
        self.apply(event.node, actor.on_timer(event.name))

    def _log_message(self, src: int, dst: int, msg: M, note: str, arrow: str = "->") -> None:
        self.log(f"{self.name(src)} {arrow} {self.name(dst)}  {self.describe(msg)}{note}")

    def _push(self, time: int, event: _Event[M]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time, self._seq, event))
