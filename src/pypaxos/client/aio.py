"""``AsyncClient``: a Redis-protocol client for a pypaxos cluster that retries safely.

It keeps one connection, to the leader (found with ``INFO``), moving on along its address list
when a connection fails.  Writes go out as ``PAXOS.REQ client_id seq ...``; a retry repeats the
same pair and the state machine answers it from its session table, so a retried write is
applied at most once (Raft thesis section 6.3).  Reads are plain commands and need no session:
the cluster serves them linearizably on its configured read path (read-index, lease or
follower reads, or the log), so a read costs no log slot unless the cluster says so.  Errors
say what is known: ``OutcomeUnknownError`` or ``UnavailableError``.  Pass ``ssl`` for TLS,
``db`` for a database other than 0 (``SELECT``, sent on every connection the client opens).
Sessions allow one outstanding request per client id, so one object runs one request at a time
(calls queue on an ``asyncio.Lock``): use one client per concurrent worker.

Replicated objects (a node run with ``--machine``): ``call(method, *args)`` sends a command as
``PAXOS.CALL`` in the client's object session (exactly once, retried with the same bytes),
``query(method, *args)`` a read as ``PAXOS.QUERY``; ``proxy(cls)`` gives an ``objects.AsyncStub``
(``await proxy.increment()``) checked against ``cls``, in a session of its own.

More: docs/design.md, 'The client'.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from ssl import SSLContext
from types import TracebackType
from typing import Any, Self

from pypaxos.client.errors import (
    ClientProtocolError,
    CommandError,
    OutcomeUnknownError,
    SessionExpiredError,
    UnavailableError,
)
from pypaxos.client.members import MembershipInfo, change_error, parse_membership
from pypaxos.client.replies import (
    ErrorReply,
    Reply,
    ReplyParser,
    ReplyProtocolError,
    Simple,
    parse_info,
)
from pypaxos.objects import (
    AsyncStub,
    Caller,
    SessionExpired,
    decode_call,
    decode_result,
    encode_call,
    unwrap,
)
from pypaxos.transport.resp import encode_command

CLIENT_ID_MAX = 2**63 - 1
READ_BYTES = 64 * 1024

Address = tuple[str, int]
Arg = str | bytes | int
FailedSet = set[Address]  # named here: inside the class, `set` is the SET method


def parse_address(address: str | Address) -> Address:
    """``"host:port"`` (or an already split pair) as ``(host, port)``."""
    if isinstance(address, tuple):
        return address
    host, separator, port = address.rpartition(":")
    if not separator or not host or not port.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    return host, int(port)


def format_address(address: Address) -> str:
    return f"{address[0]}:{address[1]}"


def _arg(value: Arg) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


class _ConnectionLost(Exception):
    """The server closed the connection before the reply was complete."""


class _Connection:
    """One TCP connection speaking RESP2: write a command, read exactly one reply."""

    def __init__(
        self, address: Address, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.address = address
        self._reader = reader
        self._writer = writer
        self._parser = ReplyParser()
        self._ready: list[Reply] = []

    @classmethod
    async def open(cls, address: Address, ssl: SSLContext | None = None) -> _Connection:
        reader, writer = await asyncio.open_connection(address[0], address[1], ssl=ssl)
        return cls(address, reader, writer)

    async def roundtrip(self, wire: bytes) -> Reply:
        self._writer.write(wire)
        await self._writer.drain()
        while not self._ready:
            data = await self._reader.read(READ_BYTES)
            if not data:
                raise _ConnectionLost(f"{format_address(self.address)} closed the connection")
            self._ready.extend(self._parser.feed(data))
        return self._ready.pop(0)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await self._writer.wait_closed()


_TRANSIENT = (OSError, TimeoutError, _ConnectionLost, ReplyProtocolError)


class AsyncClient:
    """A client of a pypaxos cluster; see the module docstring for the retry rules.

    ``addresses`` are the nodes' client ports (``"127.0.0.1:7001"``...).  ``timeout_s`` bounds
    each attempt (connecting plus one round trip); ``retries`` is how many more attempts follow
    a failed one, with exponential backoff from ``backoff_s`` up to ``backoff_max_s``.
    ``follow_leader=False`` keeps the client on the first node that answers (a follower then
    forwards every request): for reading through one particular node.  ``ssl`` makes every
    connection TLS with that context (see the module docstring).
    """

    def __init__(
        self,
        addresses: Sequence[str | Address],
        *,
        timeout_s: float = 2.0,
        retries: int = 10,
        backoff_s: float = 0.05,
        backoff_max_s: float = 1.0,
        rng: random.Random | None = None,
        client_id: int | None = None,
        follow_leader: bool = True,
        ssl: SSLContext | None = None,
        db: int = 0,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        if not addresses:
            raise ValueError("AsyncClient needs at least one address")
        if db < 0:
            raise ValueError("db must not be negative")
        if timeout_s <= 0 or retries < 0:
            raise ValueError("timeout_s must be positive and retries not negative")
        self.addresses: tuple[Address, ...] = tuple(parse_address(a) for a in addresses)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.follow_leader = follow_leader
        self.ssl = ssl
        self.db = db  # the database every command runs in (its connections SELECT it)
        self.credentials = credentials  # (user, password): AUTH on every new connection
        self._rng = rng if rng is not None else random.Random()
        self._client_id = client_id if client_id is not None else self._new_client_id()
        self._seq = 0
        self._call_client_id = self._client_id  # the object session of ``call``
        self._call_seq = 0
        self._lock = asyncio.Lock()
        self._connection: _Connection | None = None
        self._next_index = 0
        self.attempts = 0  # requests sent on the wire, retries included (for tests and views)

    # --- identity ---------------------------------------------------------------------------

    def _new_client_id(self) -> int:
        return self._rng.randint(1, CLIENT_ID_MAX)

    @property
    def client_id(self) -> int:
        return self._client_id

    @property
    def seq(self) -> int:
        """The sequence number of the last session request (0 before the first)."""
        return self._seq

    @property
    def connected_to(self) -> str | None:
        """The node this client currently talks to, if any."""
        connection = self._connection
        return None if connection is None else format_address(connection.address)

    # --- commands ---------------------------------------------------------------------------

    async def get(self, key: Arg) -> bytes | None:
        reply = await self.execute("GET", key)
        if reply is not None and not isinstance(reply, bytes):
            raise ClientProtocolError(f"GET answered {reply!r}")
        return reply

    async def set(self, key: Arg, value: Arg) -> None:
        reply = await self.write("SET", key, value)
        if reply != "OK":
            raise ClientProtocolError(f"SET answered {reply!r}")

    async def delete(self, *keys: Arg) -> int:
        """Delete ``keys``; the number that existed.  Several keys are several requests (a
        session request takes one key), each applied once: the whole is not atomic."""
        existed = 0
        for key in keys:
            existed += _integer(await self.write("DEL", key), "DEL")
        return existed

    async def incr(self, key: Arg) -> int:
        return _integer(await self.write("INCR", key), "INCR")

    async def cas(self, key: Arg, expected: Arg, new: Arg) -> bool:
        """Set ``key`` to ``new`` if it holds ``expected``; ``True`` when it was swapped."""
        return _integer(await self.write("CAS", key, expected, new), "CAS") == 1

    async def exists(self, *keys: Arg) -> int:
        return _integer(await self.execute("EXISTS", *keys), "EXISTS")

    async def mget(self, *keys: Arg) -> list[bytes | None]:
        reply = await self.execute("MGET", *keys)
        if not isinstance(reply, list) or not all(
            item is None or isinstance(item, bytes) for item in reply
        ):
            raise ClientProtocolError(f"MGET answered {reply!r}")
        return [item if isinstance(item, bytes) else None for item in reply]

    async def ping(self) -> bool:
        reply = await self.execute("PING")
        return reply in ("PONG", b"PONG")

    async def info(self) -> dict[str, str]:
        """``INFO`` of the node this client talks to, as ``{"paxos_role": "leader", ...}``."""
        reply = await self.execute("INFO")
        if not isinstance(reply, bytes):
            raise ClientProtocolError(f"INFO answered {reply!r}")
        return parse_info(reply)

    async def write(self, *args: Arg) -> Reply:
        """Run a command as the next request of this client's session (exactly once)."""
        async with self._lock:
            self._seq += 1
            wire = encode_command(
                b"PAXOS.REQ", _arg(self._client_id), _arg(self._seq), *map(_arg, args)
            )
            return await self._attempt(wire)

    async def execute(self, *args: Arg) -> Reply:
        """Run any command as a plain request, retried on failure (use for reads)."""
        async with self._lock:
            return await self._attempt(encode_command(*map(_arg, args)))

    # --- replicated objects (module docstring) -------------------------------------------

    async def call(self, method: str, *args: Any, target: str = "", **kwargs: Any) -> Any:
        """Run the command ``method`` of the served object (``target`` in a ``Group``) through
        the log, exactly once; its return value, or the ``objects.CallFailed`` it became."""
        async with self._lock:
            self._call_seq += 1
            command = encode_call(
                self._call_client_id,
                self._call_seq,
                method,
                args,
                kwargs,
                target=target,
                now_ms=_now_ms(),
            )
            result = await self._submit_locked(command, read=False)
            renewed = await self._renewed(command, result, self._renew_call_session, locked=True)
            return unwrap(renewed)

    def _renew_call_session(self) -> int:
        self._call_client_id, self._call_seq = self._new_client_id(), 1
        return self._call_client_id

    async def query(self, method: str, *args: Any, target: str = "", **kwargs: Any) -> Any:
        """Run the read ``method`` (an unmarked one) on the cluster's read path."""
        command = encode_call(
            self._call_client_id, 0, method, args, kwargs, target=target, now_ms=_now_ms()
        )
        return unwrap(await self.submit_call(command, read=True))

    def proxy(self, cls: type, target: str = "") -> AsyncStub:
        """``await proxy.method(...)`` for the served object of class ``cls`` (checked here
        against ``cls`` before anything is sent), in a new session of its own."""
        caller = Caller(cls, self._new_client_id(), target)
        return AsyncStub(caller, self.session_submit(caller), _now_ms)

    def session_submit(self, caller: Caller) -> Callable[[bytes, bool], Coroutine[Any, Any, bytes]]:
        """``submit_call`` for ``caller``'s session, which it renews when the cluster answers
        that the session expired (the call was not applied: it runs once in the new one)."""

        def renew() -> int:
            caller.renew(self._new_client_id())
            caller.seq = 1  # the resent call is the new session's first
            return caller.client_id

        async def submit(command: bytes, read: bool) -> bytes:
            result = await self.submit_call(command, read)
            return result if read else await self._renewed(command, result, renew, locked=False)

        return submit

    async def _renewed(
        self, command: bytes, result: bytes, renew: Callable[[], int], *, locked: bool
    ) -> bytes:
        """``result``, or if it says the session expired, the result of ``command`` sent again
        as the first call of a new session (``renew`` draws it); ``locked``: the caller holds
        the client's lock."""
        try:
            expired = isinstance(decode_result(result), SessionExpired)
        except ValueError:
            return result  # unwrap reports it
        if not expired:
            return result
        call = decode_call(command)
        fresh = encode_call(
            renew(), 1, call.method, call.args, call.kwargs, target=call.target, now_ms=call.now_ms
        )
        if locked:
            return await self._submit_locked(fresh, read=False)
        return await self.submit_call(fresh, read=False)

    async def submit_call(self, command: bytes, read: bool) -> bytes:
        """``objects.AsyncSubmit``: call bytes out, result bytes back."""
        async with self._lock:
            return await self._submit_locked(command, read)

    async def _submit_locked(self, command: bytes, read: bool) -> bytes:
        wire = encode_command(b"PAXOS.QUERY" if read else b"PAXOS.CALL", command)
        reply = await self._attempt(wire)
        if not isinstance(reply, bytes):
            raise ClientProtocolError(f"PAXOS.CALL answered {reply!r}")
        return reply

    # --- membership (``runtime.members_admin``) -----------------------------------------------

    async def member_list(self) -> MembershipInfo:
        """The membership as the node this client talks to knows it (the leader's view says
        which learners are caught up)."""
        return parse_membership(await self.execute("PAXOS.MEMBER", "LIST"))

    async def member_add(self, node_id: int, peer: str, client: str) -> int:
        """Add ``node_id`` as a learner reached at ``peer`` (peers) and ``client`` (clients);
        the new configuration's epoch.  ``MembershipRefusedError`` if refused."""
        return await self._member_change("ADD", node_id, peer, client)

    async def member_promote(self, node_id: int) -> int:
        """Make the caught-up learner ``node_id`` a voter (``learner-behind`` until it is)."""
        return await self._member_change("PROMOTE", node_id)

    async def member_remove(self, node_id: int) -> int:
        """Remove the voter or learner ``node_id`` (the leader too: another takes over)."""
        return await self._member_change("REMOVE", node_id)

    async def member_replace(self, old_id: int, new_id: int) -> int:
        """Promote the caught-up learner ``new_id`` and remove the voter ``old_id`` at once."""
        return await self._member_change("REPLACE", old_id, new_id)

    async def _member_change(self, *args: Arg) -> int:
        try:
            reply = await self.execute("PAXOS.MEMBER", *args)
        except CommandError as error:
            raise change_error(error) from None
        return _integer(reply, "PAXOS.MEMBER")

    # --- retry loop -------------------------------------------------------------------------

    async def _attempt(self, wire: bytes) -> Reply:
        uncertain = False  # may an attempt have been applied without our hearing of it?
        failed: FailedSet = set()  # addresses that failed during this request
        last_problem = "no attempt"
        hurry = False  # the last failure was one node's: try another at once
        for attempt in range(self.retries + 1):
            if attempt > 0 and not (hurry and len(failed) < len(self.addresses)):
                await self._pause(attempt)
                if len(failed) >= len(self.addresses):
                    failed.clear()  # every node failed: start a new round
            hurry = True
            try:
                connection = await asyncio.wait_for(self._connect(failed), self.timeout_s)
            except _TRANSIENT as error:
                last_problem = f"connect: {_describe(error)}"
                self._next_index = (self._next_index + 1) % len(self.addresses)
                continue
            try:
                self.attempts += 1
                reply = await asyncio.wait_for(connection.roundtrip(wire), self.timeout_s)
            except _TRANSIENT as error:
                # The reply may still be on its way: this connection is out of step, drop it.
                uncertain = True
                failed.add(connection.address)
                await self._drop()
                last_problem = f"{format_address(connection.address)}: {_describe(error)}"
                continue
            if isinstance(reply, ErrorReply):
                if reply.kind in ("TRYAGAIN", "BUSY"):
                    # No leader yet, or the leader is changing: wait, then look for it afresh.
                    # Only a TRYAGAIN that says so leaves the outcome open (the contract).
                    uncertain = uncertain or "unknown" in reply.message
                    last_problem = f"{format_address(connection.address)}: {reply}"
                    hurry = False
                    await self._drop()
                    continue
                if reply.message.startswith("session expired"):
                    # The cluster closed this id for good (its tombstone refuses every later
                    # request under it, a late copy of an earlier one too): go on under a
                    # fresh id, so this client stays usable and nothing old can run.
                    self._client_id = self._new_client_id()
                    self._seq = 0
                    raise SessionExpiredError(str(reply))
                raise CommandError(reply)
            return reply
        if uncertain:
            raise OutcomeUnknownError(
                f"no answer after {self.retries + 1} attempts ({last_problem}); "
                "the request may or may not have been applied"
            )
        raise UnavailableError(
            f"not applied: no attempt got through in {self.retries + 1} ({last_problem})"
        )

    async def _select(self, connection: _Connection) -> None:
        """``SELECT db`` on a new connection; ``CommandError`` if the node refuses it."""
        reply = await connection.roundtrip(encode_command(b"SELECT", b"%d" % self.db))
        if isinstance(reply, ErrorReply):
            raise CommandError(reply)
        if reply != "OK":
            raise ClientProtocolError(f"SELECT answered {reply!r}")

    async def _pause(self, attempt: int) -> None:
        delay = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
        await asyncio.sleep(delay * (0.5 + self._rng.random() / 2))

    async def _connect(self, failed: FailedSet) -> _Connection:
        if self._connection is not None:
            return self._connection
        candidates = [
            self.addresses[(self._next_index + i) % len(self.addresses)]
            for i in range(len(self.addresses))
        ]
        candidates = [a for a in candidates if a not in failed] or candidates
        last_error: BaseException | None = None
        for address in candidates:
            try:
                connection = await self._open(address)
            except OSError as error:
                failed.add(address)
                last_error = error
                continue
            try:
                leader = await self._leader_of(connection) if self.follow_leader else None
            except _TRANSIENT as error:
                failed.add(address)
                last_error = error
                await connection.close()
                continue
            except BaseException:
                await connection.close()
                raise
            self._next_index = (self.addresses.index(address) + 1) % len(self.addresses)
            if leader is not None and leader != address and leader not in failed:
                try:
                    moved = await self._open(leader)
                except OSError:
                    failed.add(leader)  # the leader it names is gone: stay with this node
                else:
                    await connection.close()
                    connection = moved
            if self.db:
                try:
                    await self._select(connection)
                except _TRANSIENT as error:
                    failed.add(connection.address)
                    last_error = error
                    await connection.close()
                    continue
                except BaseException:
                    await connection.close()
                    raise
            self._connection = connection
            return connection
        if last_error is not None:
            raise last_error
        raise OSError("no address to connect to")

    async def _open(self, address: Address) -> _Connection:
        """A new connection to ``address``, authenticated with ``credentials`` if any
        (``CommandError`` if the node refuses them)."""
        connection = await _Connection.open(address, self.ssl)
        if self.credentials is None:
            return connection
        user, password = self.credentials
        try:
            answer = await connection.roundtrip(
                encode_command(b"AUTH", user.encode(), password.encode())
            )
        except BaseException:
            await connection.close()
            raise
        if isinstance(answer, ErrorReply):
            await connection.close()
            raise CommandError(answer)
        return connection

    @staticmethod
    async def _leader_of(connection: _Connection) -> Address | None:
        """The leader's client address according to ``connection``'s node, if it knows."""
        reply = await connection.roundtrip(encode_command(b"INFO"))
        if not isinstance(reply, bytes):
            return None
        leader = parse_info(reply).get("leader_client", "")
        try:
            return parse_address(leader) if leader else None
        except ValueError:
            return None

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def _now_ms() -> int:
    """The caller's clock stamped on a call (``objects.log_time_ms`` is built from these)."""
    return time.time_ns() // 1_000_000


def _integer(reply: Reply, command: str) -> int:
    if not isinstance(reply, int):
        raise ClientProtocolError(f"{command} answered {reply!r}")
    return reply


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__


async def fetch_info(
    address: str | Address,
    timeout_s: float = 1.0,
    ssl: SSLContext | None = None,
    credentials: tuple[str, str] | None = None,
) -> dict[str, str]:
    """``INFO`` of one node over a fresh connection (TLS with ``ssl``, ``AUTH user password``
    first with ``credentials``); raises ``OSError``/``TimeoutError``, and ``CommandError``
    if the node refuses the credentials."""

    async def once() -> dict[str, str]:
        connection = await _Connection.open(parse_address(address), ssl)
        try:
            if credentials is not None:
                user, password = credentials
                answer = await connection.roundtrip(
                    encode_command(b"AUTH", user.encode(), password.encode())
                )
                if isinstance(answer, ErrorReply):
                    raise CommandError(answer)
            reply = await connection.roundtrip(encode_command(b"INFO"))
        finally:
            await connection.close()
        if not isinstance(reply, bytes):
            raise ClientProtocolError(f"INFO answered {reply!r}")
        return parse_info(reply)

    try:
        return await asyncio.wait_for(once(), timeout_s)
    except (_ConnectionLost, ReplyProtocolError) as error:
        raise OSError(str(error)) from error


class NodeConnection:
    """One connection to one node, for commands that must stay on it (``PAXOS.BACKUP``'s
    chunks live on the node that took the backup): no retries, no leader following."""

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    @classmethod
    async def open(
        cls,
        address: str | Address,
        ssl: SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> NodeConnection:
        """Connect (TLS with ``ssl``; ``AUTH`` first with ``credentials``): raises ``OSError``
        if the node is unreachable, ``CommandError`` if it refuses the credentials."""
        try:
            connection = await _Connection.open(parse_address(address), ssl)
        except ReplyProtocolError as error:
            raise OSError(str(error)) from error
        opened = cls(connection)
        if credentials is not None:
            user, password = credentials
            try:
                await opened.command(b"AUTH", user.encode(), password.encode())
            except BaseException:
                await opened.close()
                raise
        return opened

    async def command(self, *args: Arg) -> Reply:
        """One command's reply; ``CommandError`` for an error reply, ``OSError`` if the
        connection is lost."""
        try:
            reply = await self._connection.roundtrip(encode_command(*map(_arg, args)))
        except (_ConnectionLost, ReplyProtocolError) as error:
            raise OSError(str(error)) from error
        if isinstance(reply, ErrorReply):
            raise CommandError(reply)
        return reply

    async def close(self) -> None:
        await self._connection.close()


__all__ = [
    "AsyncClient",
    "NodeConnection",
    "Simple",
    "fetch_info",
    "format_address",
    "parse_address",
]
