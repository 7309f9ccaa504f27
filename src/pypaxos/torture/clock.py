"""A node whose clock the harness can jump and skew (run by ``pypaxos.cli.skewed_node``).

Usage: ``python -m pypaxos.cli.skewed_node --clock-file F -- --config C --id N [node flags]``
runs the ordinary ``pypaxos node`` (``cli.node.run``) on an asyncio loop whose
``time()`` the harness controls.  On SIGUSR1 the node reads ``F`` (``{"seq": n, "jump_s": j,
"rate": r}``) and, if ``seq`` is new, jumps its clock by ``j`` seconds (forward or back) and
lets it run at ``r`` times real speed from then on.

Why the loop clock: it is the only clock a node's timing depends on.  The driver fires
protocol ticks by it (heartbeats, election timeouts, a leader's step-down), the router times
out requests by it, the transport backs off by it.  Without leases no answer depends on time
(reads go through the log or a confirmation round); a skewed clock can only trigger needless
elections, keep a deposed leader believing it leads, or time requests out, and the history
checker judges what follows.  With leases (``--reads lease``) a clock skewed beyond the stated
drift breaks the lease's assumption on purpose; ``clock-drift`` stays within it (``reads.py``).
A forward jump fires at most ``Driver.ticks_per_batch_max`` ticks at once (the driver lets its
clock run late after a stall); a backward jump freezes the node's timers for that long; a rate
below 1 makes a leader's heartbeats slow and its step-down late.  The selector's waits are
scaled by the rate too, so a fast clock really wakes the node sooner.

The loop is the standard library's selector loop (uvloop's clock cannot be replaced), so a
torture run with the clock nemesis uses it for every node, skewed or not.
"""

from __future__ import annotations

import asyncio
import json
import selectors
import time
from pathlib import Path

from pypaxos.torture.disk import write_atomic


class SkewedClock:
    """Piecewise linear in real monotonic time: ``at + (monotonic() - real_at) * rate``."""

    def __init__(self) -> None:
        self.real_at = time.monotonic()
        self.at = self.real_at
        self.rate = 1.0
        self.seq = -1

    def now(self) -> float:
        return self.at + (time.monotonic() - self.real_at) * self.rate

    def change(self, jump_s: float, rate: float) -> None:
        now = self.now()
        self.real_at = time.monotonic()
        self.at = now + jump_s
        self.rate = max(0.01, rate)


class _ScaledSelector(selectors.DefaultSelector):
    """Waits ``timeout / rate`` real seconds for a timeout in clock seconds."""

    clock: SkewedClock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0:
            timeout /= self.clock.rate
        return super().select(timeout)


class SkewedLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: SkewedClock) -> None:
        selector = _ScaledSelector()
        selector.clock = clock
        super().__init__(selector)
        self.clock = clock

    def time(self) -> float:
        return self.clock.now()


def reload(clock: SkewedClock, path: Path) -> None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if int(data.get("seq", -1)) != clock.seq:
        clock.seq = int(data["seq"])
        clock.change(float(data.get("jump_s", 0.0)), float(data.get("rate", 1.0)))


def write_clock_file(path: Path, seq: int, jump_s: float, rate: float) -> None:
    write_atomic(path, json.dumps({"seq": seq, "jump_s": jump_s, "rate": rate}))
