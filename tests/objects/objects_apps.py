"""Replicated classes the real-process tests serve with ``pypaxos node --machine``."""

from __future__ import annotations

from pypaxos.objects import command


class MyCounter:
    """PySyncObj's README counter, ported (docs/migrating-from-pysyncobj.md)."""

    counter: int

    def __init__(self) -> None:
        self.counter = 0

    @command
    def inc_counter(self) -> int:
        self.counter += 1
        return self.counter

    @command
    def add_value(self, value: int) -> int:
        self.counter += value
        return self.counter

    def get_counter(self) -> int:
        return self.counter


class NotReplicable:
    """Refused by ``--machine``: an attribute without a declared field."""

    def __init__(self) -> None:
        self.hidden = 1

    @command
    def poke(self) -> int:
        return self.hidden
