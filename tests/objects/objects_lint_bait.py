"""A class with one planted source of nondeterminism per method, for the linter's tests."""

from __future__ import annotations

import datetime
import os
import random
import threading
import time
import uuid
from time import monotonic as tick

from pypaxos.objects import command

COUNTER = [0]


class Bait:
    names: set[str]
    total: int

    def __init__(self) -> None:
        self.names = set()
        self.total = 0

    @command
    def clock(self) -> float:
        return time.time()

    @command
    def clock_alias(self) -> float:
        return tick()

    @command
    def today(self) -> str:
        return datetime.datetime.now().isoformat()

    @command
    def dice(self) -> int:
        return random.randint(1, 6)

    @command
    def unique(self) -> str:
        return str(uuid.uuid4())

    @command
    def pid(self) -> int:
        return os.getpid()

    @command
    def identity(self) -> int:
        return id(self)

    @command
    def hashed(self, name: str) -> int:
        return hash(name)

    @command
    def loop_over_set(self) -> list[str]:
        out = []
        for name in self.names:
            out.append(name)
        return out

    @command
    def joined(self) -> str:
        return ",".join(self.names)

    @command
    def listed(self) -> list[str]:
        return list(self.names | {"extra"})

    @command
    def popped(self) -> str:
        return self.names.pop()

    @command
    def local_set(self, items: list[str]) -> list[str]:
        seen = set(items)
        return [x for x in seen]

    @command
    def via_helper(self) -> int:
        return self._helper()

    def _helper(self) -> int:
        return random.getrandbits(8)

    @command
    def global_state(self) -> int:
        global COUNTER
        COUNTER = [COUNTER[0] + 1]
        return COUNTER[0]

    @command
    def thread(self) -> None:
        threading.Thread(target=print).start()

    @command
    def io(self) -> str:
        with open("/etc/hostname") as handle:
            return handle.read()

    @command
    def imports_inside(self) -> float:
        import time as clock_module

        return clock_module.perf_counter()

    @command
    def fine(self, name: str) -> list[str]:
        self.names.add(name)
        self.total += len(self.names)
        return sorted(self.names)

    def read_only(self) -> float:
        return time.time()  # a read, not a command: not linted


class Entropy:
    seed: int

    def __init__(self) -> None:
        self.seed = 0

    @command
    def reseed(self) -> int:
        self.seed = int.from_bytes(os.urandom(4), "big")
        return self.seed
