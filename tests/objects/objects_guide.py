"""The guide's example class and workload (docs/guide.md, 'Replicating your own objects'),
kept here so that a test runs them as written."""

from __future__ import annotations

import random

from pypaxos.objects import command, log_time_ms
from pypaxos.testing import Invocation


class Inventory:
    stock: dict[str, int]  # declared fields are the replicated state
    reserved_at_ms: dict[str, int]

    def __init__(self) -> None:
        self.stock = {}
        self.reserved_at_ms = {}

    @command
    def restock(self, item: str, count: int) -> int:
        self.stock[item] = self.stock.get(item, 0) + count
        return self.stock[item]

    @command
    def reserve(self, item: str) -> bool:
        if self.stock.get(item, 0) < 1:  # check first ...
            return False
        self.stock[item] -= 1  # ... then change
        self.reserved_at_ms[item] = log_time_ms()
        return True

    def available(self, item: str) -> int:  # unmarked: a read
        return self.stock.get(item, 0)


def workload(rng: random.Random) -> Invocation:
    if rng.random() < 0.5:
        return Invocation("restock", (rng.choice(["apple", "pear"]), rng.randint(1, 3)))
    return Invocation("reserve", (rng.choice(["apple", "pear"]),))
