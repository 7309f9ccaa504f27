"""Workloads for the batteries and the planted classes, shared by the tests in tests/objects.

Module-level on purpose: ``pypaxos.testing``'s replay imports a factory by name in a child
interpreter, so the factories below must be importable (this directory is on ``sys.path``).
"""

from __future__ import annotations

import random
import time

from pypaxos.objects import (
    Counter,
    Dict,
    Group,
    List,
    LockManager,
    PriorityQueue,
    Queue,
    Set,
    command,
)
from pypaxos.testing import Invocation

KEYS = ("a", "b", "c")
OWNERS = ("alice", "bob", "carol")


def counter(rng: random.Random) -> Invocation:
    roll = rng.random()
    if roll < 0.6:
        return Invocation("add", (rng.randint(-3, 5),))
    if roll < 0.85:
        return Invocation("get")
    return Invocation("set", (rng.randint(0, 9),))


def dict_calls(rng: random.Random) -> Invocation:
    key = rng.choice(KEYS)
    roll = rng.random()
    if roll < 0.4:
        return Invocation("set", (key, rng.randint(0, 99)))
    if roll < 0.5:
        return Invocation("set_default", (key, rng.randint(0, 99)))
    if roll < 0.6:
        return Invocation("pop", (key,))
    if roll < 0.8:
        return Invocation("get", (key,))
    return Invocation("to_dict")


def list_calls(rng: random.Random) -> Invocation:
    roll = rng.random()
    if roll < 0.4:
        return Invocation("append", (rng.randint(0, 99),))
    if roll < 0.5:
        return Invocation("insert", (0, rng.randint(0, 99)))
    if roll < 0.65:
        return Invocation("pop")  # raises IndexError when empty: a result like any other
    if roll < 0.75:
        return Invocation("set", (rng.randint(0, 3), rng.randint(0, 99)))
    return Invocation("to_list")


def set_calls(rng: random.Random) -> Invocation:
    member = rng.choice(("x", "y", "z", "w"))
    roll = rng.random()
    if roll < 0.45:
        return Invocation("add", (member,))
    if roll < 0.6:
        return Invocation("discard", (member,))
    if roll < 0.7:
        return Invocation("pop")
    if roll < 0.85:
        return Invocation("contains", (member,))
    return Invocation("to_list")


def queue_calls(rng: random.Random) -> Invocation:
    roll = rng.random()
    if roll < 0.5:
        return Invocation("put", (rng.randint(0, 99),))
    if roll < 0.85:
        return Invocation("get")
    return Invocation("size")


def priority_queue_calls(rng: random.Random) -> Invocation:
    roll = rng.random()
    if roll < 0.5:
        return Invocation("put", (rng.randint(0, 99),), {"priority": rng.randint(0, 3)})
    if roll < 0.85:
        return Invocation("get")
    return Invocation("peek")


def lock_calls(rng: random.Random) -> Invocation:
    name = rng.choice(("l1", "l2"))
    owner = rng.choice(OWNERS)
    roll = rng.random()
    if roll < 0.5:
        return Invocation("acquire", (name, owner, rng.choice((5, 50, 500))))
    if roll < 0.75:
        return Invocation("release", (name, owner, rng.randint(1, 6)))
    if roll < 0.9:
        return Invocation("holder", (name,))
    return Invocation("is_locked", (name,))


def small_queue() -> Queue:
    return Queue(max_size=3)


def group() -> Group:
    return Group(hits=Counter(), locks=LockManager(), names=Set())


def group_calls(rng: random.Random) -> Invocation:
    roll = rng.random()
    if roll < 0.35:
        call = counter(rng)
        return Invocation(call.method, call.args, call.kwargs, "hits")
    if roll < 0.7:
        call = lock_calls(rng)
        return Invocation(call.method, call.args, call.kwargs, "locks")
    call = set_calls(rng)
    return Invocation(call.method, call.args, call.kwargs, "names")


BATTERIES = {
    "counter": (Counter, counter),
    "dict": (Dict, dict_calls),
    "list": (List, list_calls),
    "set": (Set, set_calls),
    "queue": (small_queue, queue_calls),
    "priority-queue": (PriorityQueue, priority_queue_calls),
    "lock-manager": (LockManager, lock_calls),
    "group": (group, group_calls),
}


# -- planted nondeterminism ---------------------------------------------------------------------


class ClockStamped:
    """Planted: a command stores the replica's clock."""

    stamps: list[float]

    def __init__(self) -> None:
        self.stamps = []

    @command
    def stamp(self) -> int:
        self.stamps.append(time.time())
        return len(self.stamps)


class DiceRoller:
    """Planted: a command returns a random number."""

    rolls: int

    def __init__(self) -> None:
        self.rolls = 0

    @command
    def roll(self) -> float:
        self.rolls += 1
        return random.random()


class TagList:
    """Planted: a command lists a set of strings in its iteration order."""

    tags: set[str]

    def __init__(self) -> None:
        self.tags = set()

    @command
    def add(self, tag: str) -> None:
        self.tags.add(tag)

    @command
    def listing(self) -> str:
        return ",".join(self.tags)


def stamp_calls(rng: random.Random) -> Invocation:
    return Invocation("stamp")


def roll_calls(rng: random.Random) -> Invocation:
    return Invocation("roll")


def tag_calls(rng: random.Random) -> Invocation:
    if rng.random() < 0.6:
        return Invocation("add", (f"tag-{rng.randint(0, 30)}",))
    return Invocation("listing")


class SneakyCounter:
    """Planted: an unmarked method (a read) changes state."""

    value: int

    def __init__(self) -> None:
        self.value = 0

    @command
    def add(self) -> int:
        self.value += 1
        return self.value

    def get_and_bump(self) -> int:
        self.value += 100
        return self.value


def sneaky_calls(rng: random.Random) -> Invocation:
    return Invocation("add") if rng.random() < 0.7 else Invocation("get_and_bump")
