"""``Lock`` and ``Election``: leases with fencing tokens, built on a pypaxos cluster.

Both keep one record under a key, written by a Lua script that runs as one log entry (so on
every replica alike, at one point of the log):

* taking it: if the key is absent, ``INCR`` the token counter (``KEY:token``) and set the key to
  ``"<token> <owner> <value>"`` with a TTL (``PX``), all in the same atomic step; else answer
  the current record.  The token therefore grows with every acquisition, whoever makes it;
* renewing it (the keep-alive): ``PEXPIRE`` the key if it still holds our record;
* releasing it: ``DEL`` the key if it still holds our record.

The TTL runs on the log's clock (the state machine's, stamped by the leader), not a replica's:
a lease expires at one point of the log for everyone.  The holder's own clock still decides when
it *thinks* it holds the lease, and a pause (GC, a stopped process, a partition) can outlast the
TTL: a holder can act after another took over.  That is what the token is for (Kleppmann, "How
to do distributed locking", 2016; Chubby's sequencers, Burrows 2006): every action on the
protected resource carries the token, and the resource keeps the highest token it has accepted
and refuses any lower one (``FencedResource`` is the rule in a few lines).  A stale holder's
writes are then refused, whatever its clock believed.

Every script runs through the client's session (``PAXOS.REQ``), so a retried acquisition is
applied once and does not take a second token.  An answer lost for good
(``OutcomeUnknownError``) may leave the lock taken by us until the TTL ends: ``acquire`` then
looks at the record, and takes it as ours if it carries our owner id.

Like etcd's ``concurrency`` package (``Mutex``, ``Election``), with a plain key and a TTL in
place of etcd's leases and revisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from pypaxos.client.aio import AsyncClient
from pypaxos.client.errors import ClientError, ClientProtocolError, OutcomeUnknownError

ACQUIRE_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if current then return {0, current} end
local token = redis.call('INCR', KEYS[2])
local record = token .. ' ' .. ARGV[1] .. ' ' .. ARGV[3]
redis.call('SET', KEYS[1], record, 'PX', ARGV[2])
return {token, record}
"""
"""Take the lease if free: ``{token, record}``; else ``{0, current record}``."""

RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
"""Extend the lease if ``ARGV[1]`` (our record) still holds it: 1, else 0."""

RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
"""Drop the lease if ``ARGV[1]`` (our record) still holds it: 1, else 0."""

POLL_S = 0.05  # how often a blocked ``acquire`` looks again


class LockTimeoutError(ClientError):
    """``acquire`` (or ``campaign``) did not get the lease within its timeout."""


class StaleTokenError(Exception):
    """A ``FencedResource`` refused an action: its token is lower than one already seen."""

    def __init__(self, token: int, highest: int) -> None:
        super().__init__(f"token {token} is stale: {highest} was already seen")
        self.token = token
        self.highest = highest


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: the fencing token of its acquisition, its owner id and its value."""

    token: int
    owner: str
    value: str


def parse_record(record: bytes) -> Holder:
    """``"<token> <owner> <value>"`` as a ``Holder`` (the value may contain spaces)."""
    parts = record.decode("utf-8", "replace").split(" ", 2)
    if len(parts) < 2 or not parts[0].isdigit():
        raise ClientProtocolError(f"not a lease record: {record[:64]!r}")
    return Holder(int(parts[0]), parts[1], parts[2] if len(parts) == 3 else "")


class FencedResource:
    """The resource's side of fencing: keep the highest token accepted, refuse lower ones.

    A real resource (a database row, a file store, an API) does the same check atomically with
    the action it guards, e.g. ``UPDATE ... WHERE fence <= :token`` or a compare-and-set on a
    stored token.  Equal tokens are accepted: one holder acts several times under one lease.
    """

    def __init__(self) -> None:
        self.highest = 0

    def check(self, token: int) -> None:
        """Accept ``token`` (remembering it) or raise ``StaleTokenError``."""
        if token < self.highest:
            raise StaleTokenError(token, self.highest)
        self.highest = token


class _Lease:
    """The lease under ``key`` shared by ``Lock`` and ``Election``."""

    def __init__(self, client: AsyncClient, key: str, ttl_ms: int, value: str) -> None:
        if ttl_ms < 1:
            raise ValueError("ttl_ms must be at least 1")
        if not key or " " in key:
            raise ValueError("the key must be non-empty and have no spaces")
        self.client = client
        self.key = key
        self.ttl_ms = ttl_ms
        self.value = value
        self.owner = secrets.token_hex(8)
        self.acquire_script = ACQUIRE_SCRIPT
        self._record: bytes | None = None
        self._keeper: asyncio.Task[None] | None = None
        self.lost = asyncio.Event()

    @property
    def token_key(self) -> str:
        return f"{self.key}:token"

    @property
    def holder(self) -> Holder | None:
        """Our own hold (token, owner, value) while we believe we hold the lease."""
        return None if self._record is None else parse_record(self._record)

    async def try_acquire(self) -> Holder | None:
        """One attempt: our ``Holder`` if we took the lease (or already hold it), else
        ``None``."""
        if self._record is not None:
            return self.holder
        try:
            reply = await self.client.write(
                "EVAL", self.acquire_script, 2, self.key, self.token_key,
                self.owner, self.ttl_ms, self.value,
            )  # fmt: skip
        except OutcomeUnknownError:
            reply = None  # it may have been applied: the record will tell
        if reply is None:
            current = await self.client.get(self.key)
            if current is not None and parse_record(current).owner == self.owner:
                return self._took(current)
            return None
        if not (isinstance(reply, list) and len(reply) == 2):
            raise ClientProtocolError(f"acquire answered {reply!r}")
        token, record = reply
        if not isinstance(record, bytes):
            raise ClientProtocolError(f"acquire answered {reply!r}")
        if token == 0:
            if parse_record(record).owner == self.owner:  # an earlier lost answer was ours
                return self._took(record)
            return None
        return self._took(record)

    def _took(self, record: bytes) -> Holder:
        self._record = record
        self.lost.clear()
        holder = parse_record(record)
        return holder

    async def acquire(self, timeout_s: float | None, keep_alive: bool) -> Holder:
        """Take the lease, waiting up to ``timeout_s`` (``None``: forever)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            holder = await self.try_acquire()
            if holder is not None:
                if keep_alive:
                    self._start_keeper()
                return holder
            if deadline is not None and loop.time() >= deadline:
                raise LockTimeoutError(f"{self.key}: not acquired in {timeout_s} s")
            pause = POLL_S if deadline is None else min(POLL_S, deadline - loop.time())
            await asyncio.sleep(max(pause, 0.0))

    async def renew(self) -> bool:
        """Extend the lease by ``ttl_ms`` from now (log time); ``False`` (and ``lost`` set)
        when it is no longer ours."""
        record = self._record
        if record is None:
            return False
        reply = await self.client.write("EVAL", RENEW_SCRIPT, 1, self.key, record, self.ttl_ms)
        if reply == 1:
            return True
        self._record = None
        self.lost.set()
        return False

    async def release(self) -> bool:
        """Give the lease up; ``True`` if it was still ours."""
        await self._stop_keeper()
        record, self._record = self._record, None
        if record is None:
            return False
        reply = await self.client.write("EVAL", RELEASE_SCRIPT, 1, self.key, record)
        return reply == 1

    async def current(self) -> Holder | None:
        """The lease's holder now, as the cluster sees it (a linearizable read)."""
        record = await self.client.get(self.key)
        return None if record is None else parse_record(record)

    def _start_keeper(self) -> None:
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.create_task(self._keep_alive())

    async def _stop_keeper(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None and not keeper.done():
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_alive(self) -> None:
        """Renew every third of the TTL; stop (``lost`` set) once the lease is gone."""
        while self._record is not None:
            await asyncio.sleep(self.ttl_ms / 3000)
            try:
                if not await self.renew():
                    return
            except ClientError:
                continue  # unknown or unavailable: try again; fencing covers the rest


class Lock:
    """A mutual-exclusion lease under ``name`` with a TTL, kept alive while held.

    ``acquire`` blocks up to ``timeout_s`` and returns the fencing token of this acquisition
    (higher than every earlier one); pass it to the protected resource with each action.
    ``keep_alive`` renews the lease every third of ``ttl_ms`` until ``release``; ``lost`` is set
    when a renewal finds the lease gone.  ``async with lock:`` acquires and releases.
    """

    def __init__(
        self, client: AsyncClient, name: str, *, ttl_ms: int = 10_000, keep_alive: bool = True
    ) -> None:
        self._lease = _Lease(client, name, ttl_ms, "")
        self.keep_alive = keep_alive

    @property
    def name(self) -> str:
        return self._lease.key

    @property
    def owner(self) -> str:
        return self._lease.owner

    @property
    def lost(self) -> asyncio.Event:
        return self._lease.lost

    @property
    def token(self) -> int | None:
        """The fencing token of the current hold (``None``: not held)."""
        holder = self._lease.holder
        return None if holder is None else holder.token

    async def acquire(self, timeout_s: float | None = None) -> int:
        return (await self._lease.acquire(timeout_s, self.keep_alive)).token

    async def try_acquire(self) -> int | None:
        """One attempt, no waiting: the token, or ``None`` if another holds the lock."""
        holder = await self._lease.try_acquire()
        return None if holder is None else holder.token

    async def renew(self) -> bool:
        return await self._lease.renew()

    async def stop_keep_alive(self) -> None:
        """Stop renewing (the lease then lapses after its TTL unless renewed by hand)."""
        await self._lease._stop_keeper()

    def use_acquire_script(self, script: str) -> None:
        """Take the lease with another script of ``ACQUIRE_SCRIPT``'s contract: for checking
        that a broken one is caught (the torture harness plants one)."""
        self._lease.acquire_script = script

    async def release(self) -> bool:
        return await self._lease.release()

    async def holder(self) -> Holder | None:
        """Who holds the lock now, as the cluster sees it."""
        return await self._lease.current()

    async def __aenter__(self) -> Self:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.release()


class Election:
    """Leader election under ``name``: ``campaign`` until elected, ``observe`` the leader,
    ``resign``.

    The leader's lease carries its ``value`` (an address, a name) for observers, and the
    fencing token of its term: a new leader always has a higher one, so whatever the leader
    does on a shared resource can be fenced as with ``Lock``.
    """

    def __init__(self, client: AsyncClient, name: str, *, ttl_ms: int = 10_000) -> None:
        self._client = client
        self._name = name
        self._ttl_ms = ttl_ms
        self._lease: _Lease | None = None

    @property
    def lost(self) -> asyncio.Event | None:
        """Set when our leadership lapsed (``None``: never campaigned)."""
        return None if self._lease is None else self._lease.lost

    async def campaign(self, value: str, timeout_s: float | None = None) -> int:
        """Wait to become the leader, announcing ``value``; the term's fencing token."""
        if self._lease is not None and self._lease.holder is not None:
            return self._lease.holder.token
        self._lease = _Lease(self._client, self._name, self._ttl_ms, value)
        return (await self._lease.acquire(timeout_s, keep_alive=True)).token

    async def leader(self) -> Holder | None:
        """The current leader (token, owner, value), or ``None`` if there is none."""
        record = await self._client.get(self._name)
        return None if record is None else parse_record(record)

    async def observe(self, poll_s: float = POLL_S) -> Holder:
        """Wait until the leader differs from the last one observed here, and return it."""
        last = await self.leader()
        while True:
            await asyncio.sleep(poll_s)
            now = await self.leader()
            if now != last and now is not None:
                return now
            last = now

    async def is_leader(self) -> bool:
        """Do we hold the leadership, as the cluster sees it now?"""
        if self._lease is None or self._lease.holder is None:
            return False
        current = await self.leader()
        return current is not None and current.owner == self._lease.owner

    async def resign(self) -> bool:
        """Step down (if leader); ``True`` if we were."""
        if self._lease is None:
            return False
        return await self._lease.release()
