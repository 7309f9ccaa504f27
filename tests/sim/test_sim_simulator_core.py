"""The generic simulator core, driven by toy actors with their own message and effect types."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import pytest

from pypaxos.core.effects import CancelTimer, Decide, Persist, Send, SetTimer
from pypaxos.sim.network import Network, NetworkSettings
from pypaxos.sim.simulator import Simulator


@dataclass(frozen=True)
class Note:
    """A message type the core knows nothing about."""

    text: str


@dataclass(frozen=True)
class Shout:
    """An effect type the core knows nothing about (as Multi-Paxos will add its own)."""

    text: str


Reaction = Callable[["Toy", object], Sequence[object]]


class Toy:
    """Records its inputs; reacts with whatever the test scripted."""

    def __init__(self, node_id: int, durable: object | None, script: dict[str, Reaction]) -> None:
        self.id = node_id
        self.durable = durable
        self.script = script
        self.inputs: list[str] = []

    def start(self) -> Sequence[object]:
        return self._react("start", None)

    def handle(self, msg: Note) -> Sequence[object]:
        return self._react(f"msg {msg.text}", msg)

    def on_timer(self, name: str) -> Sequence[object]:
        return self._react(f"timer {name}", None)

    def _react(self, what: str, msg: object) -> Sequence[object]:
        self.inputs.append(what)
        reaction = self.script.get(what.removeprefix("msg "))
        return [] if reaction is None else reaction(self, msg)


class ToyWorld(Simulator[Note]):
    def __init__(self, script: dict[str, Reaction], flush_ticks: int = 5) -> None:
        self.built: list[tuple[int, object | None]] = []
        self.sent: list[tuple[int, int, str, object | None]] = []  # src, dst, text, src's disk
        self.shouts: list[tuple[int, str]] = []
        self.decided: list[tuple[int, object]] = []

        def factory(node: int, durable: object | None, rng: random.Random) -> Toy:
            self.built.append((node, durable))
            return Toy(node, durable, script)

        rng = random.Random(0)
        network = Network(rng, NetworkSettings(delay_min_ticks=2, delay_max_ticks=2))
        super().__init__(
            [1, 2], factory, rng, network, flush_delay_ticks=(flush_ticks, flush_ticks), trace=True
        )

    def toy(self, node: int) -> Toy:
        actor = self.actor(node)
        assert isinstance(actor, Toy)
        return actor

    def on_send(self, src: int, dst: int, msg: Note) -> None:
        self.sent.append((src, dst, msg.text, self.disk.read(src)))

    def on_effect(self, node: int, effect: object) -> None:
        if isinstance(effect, Shout):
            self.shouts.append((node, effect.text))
        else:
            super().on_effect(node, effect)

    def on_decide(self, node: int, value: object) -> None:
        self.decided.append((node, value))

    def run_all(self) -> None:
        while self.step():
            pass


def test_persist_is_durable_before_a_send_of_the_same_list_leaves() -> None:
    # The Persist comes *after* the Send in the list: the contract still holds.
    world = ToyWorld({"start": lambda toy, _: [Send(2, Note("hi")), Persist("state-1")]})
    world.start()
    assert "state-1" in (durable for src, _, _, durable in world.sent if src == 1)
    assert (1, 2, "hi", "state-1") in world.sent


def test_messages_arrive_after_the_delay_in_send_order() -> None:
    world = ToyWorld(
        {"start": lambda toy, _: [Send(2, Note("a")), Send(2, Note("b"))] if toy.id == 1 else []}
    )
    world.start()
    world.run_all()
    assert world.toy(2).inputs == ["start", "msg a", "msg b"]
    assert world.now == 2
    assert world.trace is not None
    assert world.trace[-2:] == [
        "t=    2  n1 -> n2  Note(text='a')",
        "t=    2  n1 -> n2  Note(text='b')",
    ]


def test_unsynced_write_is_lost_by_a_crash_before_the_flush() -> None:
    world = ToyWorld({"start": lambda toy, _: [Persist("dirty", sync=False)]}, flush_ticks=5)
    world.start()
    world.at(4, partial(world.crash, 1))
    world.at(6, partial(world.restart, 1))
    world.run_all()
    assert world.built[-1] == (1, None)
    assert world.trace is not None and "t=    4  n1 CRASH (unsynced write lost)" in world.trace


def test_unsynced_write_survives_a_crash_after_the_flush() -> None:
    world = ToyWorld({"start": lambda toy, _: [Persist("dirty", sync=False)]}, flush_ticks=5)
    world.start()
    world.at(6, partial(world.crash, 1))
    world.at(7, partial(world.restart, 1))
    world.run_all()
    assert (1, "dirty") in world.built


def test_restart_rebuilds_from_exactly_what_was_durable() -> None:
    world = ToyWorld(
        {
            "start": lambda toy, _: [Persist(("synced", toy.durable))],
            "go": lambda toy, _: [Persist("unsynced", sync=False)],
        }
    )
    world.start()
    world.inject(1, lambda actor: [Send(1, Note("go"))])
    world.at(3, partial(world.crash, 1))
    world.at(4, partial(world.restart, 1))
    world.run_all()
    assert world.built == [(1, None), (2, None), (1, ("synced", None))]
    assert world.toy(1).inputs == ["start"]  # a fresh actor: memory is gone


def test_timers_fire_once_and_a_reset_replaces_the_pending_one() -> None:
    world = ToyWorld(
        {
            "start": lambda toy, _: [SetTimer("t", 10), SetTimer("t", 3)] if toy.id == 1 else [],
        }
    )
    world.start()
    world.run_all()
    assert world.toy(1).inputs == ["start", "timer t"]
    assert world.trace is not None
    assert [line for line in world.trace if "timer" in line] == ["t=    3  n1 timer t"]


def test_cancelled_timers_and_timers_of_crashed_actors_never_fire() -> None:
    world = ToyWorld(
        {
            "start": lambda toy, _: [SetTimer("a", 5), SetTimer("b", 5), CancelTimer("a")],
        }
    )
    world.start()
    world.at(1, partial(world.crash, 2))
    world.run_all()
    assert world.toy(1).inputs == ["start", "timer b"]
    assert not world.is_up(2)


def test_messages_to_a_crashed_actor_are_lost() -> None:
    world = ToyWorld({"start": lambda toy, _: [Send(2, Note("x"))] if toy.id == 1 else []})
    world.start()
    world.crash(2)
    world.at(5, partial(world.restart, 2))
    world.run_all()
    assert world.toy(2).inputs == ["start"]
    assert world.trace is not None
    assert "t=    2  n1 -> n2  Note(text='x')  [lost: n2 down]" in world.trace


def test_decide_and_extra_effect_kinds_go_to_the_world_hooks() -> None:
    world = ToyWorld({"start": lambda toy, _: [Decide(f"v{toy.id}"), Shout("hey")]})
    world.start()
    assert world.decided == [(1, "v1"), (2, "v2")]
    assert world.shouts == [(1, "hey"), (2, "hey")]


def test_an_unknown_effect_is_an_error_not_silently_ignored() -> None:
    world = ToyWorld({"start": lambda toy, _: [object()]})
    with pytest.raises(TypeError, match="unknown effect"):
        world.start()


def test_events_at_the_same_time_run_in_scheduling_order() -> None:
    world = ToyWorld({})
    order: list[int] = []
    for i in range(5):
        world.at(7, partial(order.append, i))
    world.at(3, lambda: order.append(-1))
    world.run_all()
    assert order == [-1, 0, 1, 2, 3, 4]
    assert world.steps == 6


def test_a_send_to_an_unknown_actor_is_an_error() -> None:
    world = ToyWorld({"start": lambda toy, _: [Send(99, Note("lost"))]})
    with pytest.raises(LookupError, match="unknown actor 99"):
        world.start()
