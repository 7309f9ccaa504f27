"""The lock recipe under torture: holders of ``client.Lock`` acting on a fenced resource.

Each lock worker loops: take the lock ``torture:lock`` (``Lock``, short TTL, kept alive), then
act twice on the resource, a ``begin`` and an ``end`` write carrying its fencing token, then
release.  Now and then a holder stalls inside its critical section for longer than the TTL with
its keep-alive stopped (a process pause, a long GC): its lease expires, another worker takes
the lock, and the stalled holder's ``end`` arrives late, as it does in real systems.

The resource is a key the cluster keeps (``torture:resource:fence``, the highest token
accepted) with a log of accepted writes (``torture:resource:log``), changed by one Lua script
per write: a token lower than the highest seen is refused, as a real fenced resource refuses
it.  The script runs as one log entry, so the accepted log is in log order.

The verdict (``check_resource_log``): every accepted write carries a token no lower than all
earlier accepted ones, and the accepted writes of two holds never interleave: between a hold's
first and last accepted write, no other hold's write was accepted.  A hold is a (token, holder)
pair: two holders with the same token are two holds, which is exactly what a lock that does not
bump its token produces.

Planted bugs (``LockBug``): a lock whose acquisition does not bump the token (every hold gets
the same one, so a stalled holder's late ``end`` passes the fence), and a resource that does not
check tokens (the stalled holder acts unfenced).  Each lets two holders act at once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

from pypaxos.client import AsyncClient, ClientError, CommandError, Lock, LockTimeoutError
from pypaxos.core.bugs import PlantedBug

LOCK_NAME = "torture:lock"
FENCE_KEY = "torture:resource:fence"
LOG_KEY = "torture:resource:log"
LOCK_TTL_MS = 600
STALL_CHANCE = 0.25  # of a hold: stall past the TTL inside the critical section
STALL_S = 2 * LOCK_TTL_MS / 1000
ACQUIRE_TIMEOUT_S = 3.0

FENCED_WRITE = """
local highest = tonumber(redis.call('GET', KEYS[1]) or '0')
local token = tonumber(ARGV[1])
if token < highest then return 0 end
redis.call('SET', KEYS[1], token)
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
"""
"""The fenced resource: accept (1) a write whose token is no lower than any accepted, else 0."""

UNFENCED_WRITE = """
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
"""

ACQUIRE_WITHOUT_BUMP = """
local current = redis.call('GET', KEYS[1])
if current then return {0, current} end
local token = tonumber(redis.call('GET', KEYS[2]) or '1')
local record = token .. ' ' .. ARGV[1] .. ' ' .. ARGV[3]
redis.call('SET', KEYS[1], record, 'PX', ARGV[2])
return {token, record}
"""
"""``client.recipes.ACQUIRE_SCRIPT`` without its ``INCR``: every hold gets token 1."""


class LockBug(PlantedBug):
    """Planted mistakes in the lock recipe's use (torture's lock workload)."""

    TOKEN_NOT_BUMPED = (
        "lock-token-not-bumped",
        "taking the lock does not bump the fencing token, so every holder has the same one",
    )
    UNFENCED_RESOURCE = (
        "lock-resource-unfenced",
        "the resource does not check tokens, so a holder whose lease expired still acts",
    )


def entry(token: int, holder: str, step: str) -> str:
    return f"{token} {holder} {step}"


def check_resource_log(entries: list[str]) -> list[str]:
    """Problems in the accepted writes (module docstring), in log order; ``[]``: clean."""
    problems: list[str] = []
    highest = 0
    last_index: dict[tuple[int, str], int] = {}
    parsed: list[tuple[int, str]] = []
    for index, line in enumerate(entries):
        parts = line.split(" ")
        if len(parts) != 3 or not parts[0].isdigit():
            problems.append(f"resource log entry {index} unreadable: {line!r}")
            continue
        token, holder = int(parts[0]), parts[1]
        if token < highest:
            problems.append(f"write {index} accepted with token {token} after token {highest}")
        highest = max(highest, token)
        parsed.append((token, holder))
        last_index[(token, holder)] = len(parsed) - 1
    current: tuple[int, str] | None = None
    finished: set[tuple[int, str]] = set()
    for position, hold in enumerate(parsed):
        if hold != current:
            if current is not None and last_index[current] > position:
                problems.append(
                    f"holds overlap: {hold[1]} (token {hold[0]}) acted while {current[1]} "
                    f"(token {current[0]}) had not finished"
                )
                break
            if hold in finished:
                problems.append(f"hold {hold[1]} (token {hold[0]}) acted again after another")
                break
            if current is not None:
                finished.add(current)
            current = hold
    return problems


class LockWorkload:
    """``workers`` lock workers against one cluster; ``counts`` of what they saw."""

    def __init__(
        self,
        make_client: Callable[[int], AsyncClient],
        rng: random.Random,
        bugs: frozenset[LockBug] = frozenset(),
    ) -> None:
        self.make_client = make_client
        self.rng = rng
        self.bugs = bugs
        self.counts: dict[str, int] = {
            "holds": 0, "accepted": 0, "refused": 0, "stalls": 0, "timeouts": 0, "errors": 0,
        }  # fmt: skip

    async def worker(self, w: int, stop: asyncio.Event) -> None:
        rng = random.Random(self.rng.random())
        client = self.make_client(w)
        holds = 0
        try:
            while not stop.is_set():
                holds += 1
                name = f"L{w}.{holds}"  # one name per hold: a hold is (token, name)
                lock = Lock(client, LOCK_NAME, ttl_ms=LOCK_TTL_MS)
                if LockBug.TOKEN_NOT_BUMPED in self.bugs:
                    lock.use_acquire_script(ACQUIRE_WITHOUT_BUMP)
                try:
                    token = await lock.acquire(timeout_s=ACQUIRE_TIMEOUT_S)
                except LockTimeoutError:
                    self.counts["timeouts"] += 1
                    continue
                except ClientError:
                    self.counts["errors"] += 1
                    await asyncio.sleep(0.1)
                    continue
                self.counts["holds"] += 1
                try:
                    await self.act(client, token, name, "begin")
                    if rng.random() < STALL_CHANCE:
                        self.counts["stalls"] += 1
                        await lock.stop_keep_alive()  # the whole process stops: no renewals
                        await asyncio.sleep(STALL_S)
                    else:
                        await asyncio.sleep(rng.uniform(0.0, LOCK_TTL_MS / 4000))
                    await self.act(client, token, name, "end")
                except ClientError:
                    self.counts["errors"] += 1
                finally:
                    try:
                        await lock.release()
                    except ClientError:
                        self.counts["errors"] += 1
                await asyncio.sleep(rng.uniform(0.0, 0.02))
        finally:
            await client.aclose()

    async def act(self, client: AsyncClient, token: int, holder: str, step: str) -> None:
        script = UNFENCED_WRITE if LockBug.UNFENCED_RESOURCE in self.bugs else FENCED_WRITE
        try:
            reply = await client.write(
                "EVAL", script, 2, FENCE_KEY, LOG_KEY, token, entry(token, holder, step)
            )
        except CommandError:
            self.counts["errors"] += 1
            return
        self.counts["accepted" if reply == 1 else "refused"] += 1

    async def verdict(self, client: AsyncClient) -> dict[str, Any]:
        """Read the accepted log back and check it."""
        reply = await client.execute("LRANGE", LOG_KEY, 0, -1)
        entries = [item.decode() for item in reply if isinstance(item, bytes)] if isinstance(
            reply, list
        ) else []  # fmt: skip
        return {
            "entries": len(entries),
            "problems": check_resource_log(entries),
            "counts": dict(self.counts),
        }
