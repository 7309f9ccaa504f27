"""The client port: Redis protocol (RESP2) connections served by the replicated store.

Each connection is an ``asyncio.Protocol`` (cheaper per byte than streams, and pipelining falls
out naturally).  ``data_received`` parses every complete command (``RespParser``, which cuts a
whole pipelined buffer at once), turns each into a plan (``commands.plain_single`` for plain
``GET``/``SET``/``INCR``, else ``commands.plan``) and reserves a reply slot in a FIFO; replies
are written as soon as the slot at the head of the FIFO is filled, so a pipelining client gets
its answers in order however the log interleaves its commands with other clients'.  An input
that is a whole run of plain ``GET`` s, on a connection where each would take that fast path
anyway, skips the per-command steps (``RespParser.feed_gets``, ``_run_gets``).

Batching, sessions and reads: how a connection's commands become requests to the router
(one log entry per group, the connection's session, the read paths) is ``runtime.requests``.

Protocol: RESP2, and RESP3 after ``HELLO 3`` (redis-py 8 sends it by default).  The replies of
this store differ between the two only in how null is spelled (``$-1`` or ``_``) and in
``HELLO``'s own map, so a connection just remembers its version.

Errors follow ``docs/runtime-contract.md``: ``-ERR`` for bad commands (the connection stays
open), ``-TRYAGAIN``/``-BUSY`` for the cluster's transient states, and on bytes that are not
RESP an ``-ERR Protocol error`` after the replies already due, then the connection closes.

Flow control: a connection with ``pending_replies_max`` replies outstanding, or whose socket
buffer is full (``pause_writing``), stops being read until it drains.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from ssl import SSLContext
from typing import cast

from pypaxos.kv import (
    Command,
)
from pypaxos.kv.commands import DATABASES
from pypaxos.kv.glob import glob_matcher
from pypaxos.kv.pubsub import format_notify_flags
from pypaxos.runtime.auth import Access, User, Users
from pypaxos.runtime.blocking import BlockedClients, Blocking, attempt_once
from pypaxos.runtime.commands import REDIS_VERSION, plain_single, plan, required_access
from pypaxos.runtime.databases import OUT_OF_RANGE as DB_OUT_OF_RANGE
from pypaxos.runtime.databases import SelectDb
from pypaxos.runtime.plans import (
    OK,
    Auth,
    ClientCommand,
    ConfigGet,
    Custom,
    Hello,
    Immediate,
    Info,
    Ops,
    Plan,
    ReadMode,
    ServerTime,
    TxCommand,
)
from pypaxos.runtime.pubsub import (
    SUBSCRIBE_MODE_COMMANDS,
    PublicationSource,
    PubSubCommand,
    PubSubHub,
    ping_reply,
    subscribe_mode_error,
)
from pypaxos.runtime.replies import NULL_ARRAY_RESP2, NULL_RESP2, NULL_RESP3, Combine
from pypaxos.runtime.requests import (
    GROUP_BYTES_MAX,
    GROUP_OPS_MAX,
    Call,
    Group,
    NodeState,
    ReadBurst,
    RequestPath,
    auth_of,
)
from pypaxos.runtime.router import Router
from pypaxos.runtime.server_commands import MEMBER_KIND, NodeCommand, node_reply
from pypaxos.runtime.transactions import NOT_IN_MULTI, Transaction
from pypaxos.transport.resp import (
    RespParser,
    RespProtocolError,
    encode_array,
    encode_bulk,
    encode_error,
    encode_integer,
)
from pypaxos.transport.tcp import parse_address

log = logging.getLogger(__name__)

NOAUTH = encode_error("NOAUTH Authentication required.")
NOAUTH_HELLO = encode_error(
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
    "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client"
)
WRONGPASS = encode_error("WRONGPASS invalid username-password pair or user is disabled.")
NO_USERS = encode_error(
    "ERR AUTH called without any password configured for the default user: this cluster "
    "has no [[users]]; are you sure your configuration is correct?"
)
MAX_CLIENTS = encode_error("ERR max number of clients reached")
CLIENTS_MAX = 10_000  # Redis's maxclients default
OUTPUT_BYTES_MAX = 64 * 1024 * 1024  # unread replies per client before it is dropped
BULK_BYTES_MAX = 4 * 1024 * 1024  # above the value limit, so a big value gets a clear error
TLS_HANDSHAKE_TIMEOUT_S = 10.0  # a client that starts TLS and stalls holds no socket longer

InfoSource = Callable[[str | None], str]
Planner = Callable[[list[bytes]], Plan]
CustomHandler = Callable[["RespConnection", Custom], None]


def new_client_id() -> int:
    """A random id in [2**62, 2**63): positive, 63-bit, and unlikely to meet a chosen one."""
    return secrets.randbits(62) | (1 << 62)


class _Slot:
    """A place in a connection's reply FIFO: one command's reply, or a whole group's."""

    __slots__ = ("data", "replies")

    def __init__(self, data: bytes | None = None, replies: int = 1) -> None:
        self.data = data
        self.replies = replies


class RespServer:
    """Listens on the client address and owns the open connections."""

    def __init__(
        self,
        router: Router,
        info: InfoSource,
        address: str,
        *,
        pending_replies_max: int = 4096,
        users: Users | None = None,
        clients_max: int = CLIENTS_MAX,
        output_bytes_max: int = OUTPUT_BYTES_MAX,
        ssl: SSLContext | None = None,
        read_index: bool = False,
        planner: Planner | None = None,
        custom: CustomHandler | None = None,
        databases: int = DATABASES,
    ) -> None:
        self.router = router
        self.databases = databases  # SELECT's bound (the store has kv.DATABASES)
        # A machine other than the key-value store: its own command table (``planner``, no
        # batched fast path) and the handler of its ``Custom`` plans (``runtime.objects_port``).
        self.planner = planner
        self.custom = custom
        # ``PAXOS.MEMBER``'s handler (``runtime.members_admin``), set by the node.
        self.member_admin: Callable[[RespConnection, NodeCommand], None] | None = None
        self.read_index = read_index  # plain reads on the read-index path (module docstring)
        self.ssl = ssl  # TLS on the client port (``rediss://``); reloaded in place on SIGHUP
        self.info = info
        self.users = users  # None: no authentication (runtime.auth)
        self.clients_max = clients_max
        self.output_bytes_max = output_bytes_max
        # Password checks cost a scrypt each: one thread, off the event loop.
        self.auth_executor = ThreadPoolExecutor(1, thread_name_prefix="pypaxos-auth")
        self.host, self.port = parse_address(address)
        self.pending_replies_max = pending_replies_max
        self.connections: set[RespConnection] = set()
        self.connections_opened = 0
        # Read commands sent through the log and answered READONLY from the local state (the
        # other read paths are counted by the router, ``RouterStats``).
        self.reads_log = 0
        self.reads_stale = 0
        # CONFIG GET's answers (runtime.app fills in the real ones), by lower-case name.
        # "save" is empty: no RDB snapshots (the WAL is the persistence, Redis's AOF).
        self.settings: dict[str, str] = {
            "maxclients": str(clients_max),
            "databases": str(databases),
            "save": "",
            "timeout": "0",
            "notify-keyspace-events": "",
            "maxmemory": "0",
            "maxmemory-policy": "noeviction",
        }
        self.cluster_size = 1  # members in the configuration (WAIT's answer); app sets it
        # INFO stats (CONFIG RESETSTAT zeroes them; CLIENT ID's counter is connections_opened).
        self.connections_received = 0
        self.rejected_connections = 0
        self.commands_processed = 0
        self._server: asyncio.Server | None = None
        self._blocked: BlockedClients | None = None  # made when a client first blocks
        self.pubsub: PubSubHub | None = None  # made at start (runtime.pubsub)
        self.read_burst = ReadBurst(router)  # read-index groups of one pass of the loop
        self._flush_due: list[RespConnection] = []  # connections with replies to write
        self._flush_pass_scheduled = False

    def reset_stats(self) -> None:
        """``CONFIG RESETSTAT``: the counters ``INFO stats`` shows start again from zero."""
        self.connections_received = self.rejected_connections = self.commands_processed = 0
        self.reads_log = self.reads_stale = 0

    @property
    def blocked_count(self) -> int:
        """Connections waiting in a blocking command (``INFO``'s ``blocked_clients``)."""
        return sum(c.blocked_slot is not None for c in self.connections)

    @property
    def blocked(self) -> BlockedClients:
        """The clients blocked on this node (``runtime.blocking``), woken after each batch
        the node applies."""
        if self._blocked is None:
            self._blocked = BlockedClients(NodeState(self.router))
            self.router.driver.applied_listeners.append(self._blocked.on_applied)
        return self._blocked

    def start_pubsub(self) -> None:
        """Deliver this node's publications from its applied log (``runtime.pubsub``), and
        keep their history from now on, subscribers or not (a client may resume here)."""
        machine = getattr(getattr(self.router.driver, "node", None), "replica", None)
        machine = getattr(machine, "machine", None)
        if self.pubsub is None and hasattr(machine, "take_publications"):
            self.pubsub = PubSubHub(cast(PublicationSource, machine))
            self.router.driver.applied_listeners.append(self.pubsub.on_applied)

    def schedule_flush(self, connection: RespConnection, loop: asyncio.AbstractEventLoop) -> None:
        """Write ``connection``'s filled replies at the end of the driver's batch (or of this
        pass of the loop, whichever comes first): one write per connection per batch."""
        self._flush_due.append(connection)
        if not self._flush_pass_scheduled:
            self._flush_pass_scheduled = True
            loop.call_soon(self.flush_due)

    def flush_due(self) -> None:
        """Write every connection's replies filled since the last flush.  Called after each
        batch the driver answers, so a reply leaves in the pass that answered it rather than
        one pass later, and once per pass for replies filled elsewhere."""
        self._flush_pass_scheduled = False
        due, self._flush_due = self._flush_due, []
        for connection in due:
            connection.flush()

    async def start(self) -> None:
        self.start_pubsub()
        driver = getattr(self.router, "driver", None)
        if driver is not None:
            driver.applied_listeners.append(self.flush_due)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: RespConnection(self),
            self.host,
            self.port,
            reuse_address=True,
            ssl=self.ssl,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S if self.ssl else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        self.auth_executor.shutdown(wait=False, cancel_futures=True)
        self.stop_accepting()
        for connection in list(self.connections):
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


class RespConnection(asyncio.Protocol):
    def __init__(self, server: RespServer) -> None:
        self.server = server
        self.router = server.router
        self.parser = RespParser(bulk_bytes_max=BULK_BYTES_MAX)
        self.transport: asyncio.Transport | None = None
        self.slots: deque[_Slot] = deque()
        self.pending_replies = 0  # replies reserved in ``slots`` and not yet written
        self.closing = False  # no more commands; close once the queued replies are written
        self.closed = False
        self.read_paused = False
        self.write_paused = False
        self.flush_scheduled = False
        self.client_id = new_client_id()
        server.connections_opened += 1
        self.connection_id = server.connections_opened  # CLIENT ID: 1, 2... per server
        self.name = b""  # CLIENT SETNAME
        self.seq = 0
        self.protocol = 2
        self.db = 0  # SELECT's database: every key-value command runs in it (kv.InDb)
        self.peer = "unknown"
        self.feed_bytes = 0  # the last input's size, buffered bytes included (``ReadBurst``)
        self.user: User | None = None  # who authenticated (runtime.auth), when users exist
        self.held: list[list[bytes]] | None = None  # commands waiting for an AUTH check
        self.stale_reads = False  # READONLY: reads from the local state (module docstring)
        self.reads_out = 0  # router submissions on the read-index path not answered yet
        self.log_out = 0  # ... and through the log
        self.deferred: deque[Group | Call] = deque()  # log work waiting for reads_out == 0
        self.blocked_slot: _Slot | None = None  # a blocking command's place while it waits
        self.tx = Transaction()  # MULTI's queue and WATCH (runtime.transactions)
        self.pushes_held_bytes = 0  # pub/sub messages queued behind unanswered replies
        self.opened_s = self.active_s = time.monotonic()  # CLIENT LIST's age and idle
        self.local_address = ""  # CLIENT LIST's laddr
        self.lib_name = self.lib_version = ""  # CLIENT SETINFO
        self.close_after_reply = False  # CLIENT KILL of this very connection

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.loop = asyncio.get_running_loop()  # looked up once: each lookup is a getpid()
        peername = transport.get_extra_info("peername")
        if peername:
            self.peer = f"{peername[0]}:{peername[1]}"
        sockname = transport.get_extra_info("sockname")
        if sockname:
            self.local_address = f"{sockname[0]}:{sockname[1]}"
        self.server.connections_received += 1
        if len(self.server.connections) >= self.server.clients_max:
            self.server.rejected_connections += 1
            log.warning(
                "client %s: refused, %d clients already", self.peer, len(self.server.connections)
            )
            self.transport.write(MAX_CLIENTS)
            self.transport.close()
            self.closing = self.closed = True
            return
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.blocked_slot is not None:
            self.server.blocked.release(self)
        if self.server.pubsub is not None:
            self.server.pubsub.drop(self)
        self.slots.clear()
        self.pending_replies = 0
        self.server.connections.discard(self)
        if exc is not None:
            log.warning("client %s: connection lost: %s", self.peer, exc)

    def pause_writing(self) -> None:
        self.write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._update_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if (
            self.held is None
            and len(data) <= GROUP_BYTES_MAX
            and not self.tx.active
            and not self.gated
            and self.server.planner is None
            and not self.subscribe_mode
        ):
            keys = self.parser.feed_gets(data)
            if keys is not None:
                self._run_gets(keys, len(data))
                return
        # Count bytes per command only when this feed could exceed one group's byte bound.
        self.feed_bytes = len(data) + self.parser.buffered_bytes
        count_bytes = self.feed_bytes > GROUP_BYTES_MAX
        try:
            commands = self.parser.feed(data)
        except RespProtocolError as error:
            self._protocol_error(error)
            return
        self.server.commands_processed += len(commands)
        self.active_s = time.monotonic()
        self._run(commands, count_bytes)

    def _run_gets(self, keys: list[bytes], feed_bytes: int) -> None:
        """A feed that was a run of plain ``GET`` s only (``RespParser.feed_gets``), in a
        state where ``_run`` would give each to ``_run_fast``: the same groups, built without
        Python code per command, on the same paths (lease, read-index, log, ``READONLY``)."""
        self.feed_bytes = feed_bytes  # within one group's byte bound (the caller's check)
        self.server.commands_processed += len(keys)
        self.active_s = time.monotonic()
        if len(keys) <= GROUP_OPS_MAX:
            Group.of_gets(self, keys).submit()
        else:
            for start in range(0, len(keys), GROUP_OPS_MAX):
                Group.of_gets(self, keys[start : start + GROUP_OPS_MAX]).submit()
        self._update_reading()

    def _run(self, commands: list[list[bytes]], count_bytes: bool = False) -> None:
        """Run parsed commands in order; an ``AUTH`` being checked, or a blocking command
        waiting, holds the ones after it; between ``MULTI`` and ``EXEC`` they are queued."""
        if self.held is not None:
            self.held.extend(commands)
            self._update_reading()
            return
        while commands:
            if self.tx.active:
                done = self._run_queued(commands)
            elif self.subscribe_mode:
                done = self._run_subscribed(commands)
            elif self.gated:
                done = self._run_gated(commands)
            else:
                done = self._run_fast(commands, count_bytes)
            if self.closing or self.held is not None:
                return
            commands = commands[done:]
        if self.parser.error is not None:
            self._protocol_error(self.parser.error)
            return
        self._update_reading()

    @property
    def gated(self) -> bool:
        """Must each command be checked against the connection's user (slow path)?"""
        users = self.server.users
        return users is not None and (self.user is None or not self.user.may(Access.WRITE))

    @property
    def subscribe_mode(self) -> bool:
        """RESP2 with subscriptions: only the pub/sub commands run (Redis's subscribe mode)."""
        hub = self.server.pubsub
        return self.protocol == 2 and hub is not None and hub.count(self) > 0

    def _run_subscribed(self, commands: list[list[bytes]]) -> int:
        """In subscribe mode: the pub/sub commands, ``PING``, ``RESET`` and ``QUIT`` run,
        the others are refused, until no subscription is left: how many it consumed."""
        for index, args in enumerate(commands):
            name = args[0].upper()
            if name not in SUBSCRIBE_MODE_COMMANDS:
                self._reply_now(subscribe_mode_error(name))
                continue
            planned = plan(args)
            refused = self._refusal(args, planned)
            if refused is not None:
                self._reply_now(refused)
            elif name == b"PING" and isinstance(planned, Immediate) and len(args) <= 2:
                self._reply_now(ping_reply(args, self.protocol))
            else:
                self._command(planned)
            if self.closing:
                return len(commands)
            if not self.subscribe_mode:
                return index + 1
        return len(commands)

    def _run_fast(self, commands: list[list[bytes]], count_bytes: bool) -> int:
        """Run ``commands`` until the end or a ``MULTI``: how many it consumed."""
        if self.server.planner is not None:  # one plan at a time, through the machine's table
            return self._run_gated(commands)
        group: Group | None = None
        # Bounds are checked per command only when this feed could reach one.
        check = count_bytes or len(commands) > GROUP_OPS_MAX
        for index, args in enumerate(commands):
            single = plain_single(args)
            if single is not None:
                if group is None:
                    group = Group(self)
                group.ops.append(single[0])
                group.replies.append(single[1])
                if check and group.full(args, count_bytes):
                    group.submit()
                    group = None
                continue
            planned = plan(args)
            if type(planned) is Ops and planned.session is None:
                # Plain key-value commands that arrived together become one log entry.
                if group is None:
                    group = Group(self)
                group.add(planned)
                if check and group.full(args, count_bytes):
                    group.submit()
                    group = None
                continue
            if group is not None:  # keep the connection's order: the group goes first
                group.submit()
                group = None
            auth = auth_of(planned)
            if auth is not None and self.server.users is not None:
                self._authenticate(auth, planned, commands[index + 1 :])
                return len(commands)
            if type(planned) is NodeCommand and self.server.users is not None:
                refused = self._refusal(args, planned)  # a read-write user is not an admin
                if refused is not None:
                    self._reply_now(refused)
                    continue
            self._command(planned)
            if self.closing:
                return len(commands)
            if self.held is not None:  # a blocking command: the rest waits for its answer
                self.held.extend(commands[index + 1 :])
                return len(commands)
            if self.tx.active or self.subscribe_mode:
                return index + 1
        if group is not None:
            group.submit()
        return len(commands)

    def _run_gated(self, commands: list[list[bytes]]) -> int:
        """One command at a time, each checked against the user (or its absence), until the
        end, a ``MULTI`` or an ``AUTH`` that lifts the checks: how many it consumed.  A machine
        with its own planner (``runtime.objects_port``) always takes this path."""
        planner = self.server.planner or plan
        for index, args in enumerate(commands):
            planned = planner(args)
            auth = auth_of(planned)
            if auth is not None and self.server.users is not None:
                self._authenticate(auth, planned, commands[index + 1 :])
                return len(commands)
            refused = self._refusal(args, planned)
            if refused is not None:
                self._reply_now(refused)
            else:
                self._command(planned)
            if self.closing:
                return len(commands)
            if self.held is not None:  # a blocking command: the rest waits for its answer
                self.held.extend(commands[index + 1 :])
                return len(commands)
            if (
                self.tx.active
                or self.subscribe_mode
                or (not self.gated and self.server.planner is None)
            ):  # MULTI, subscribe mode, or a role that needs no checks: the fast path
                return index + 1
        return len(commands)

    def _refusal(self, args: list[bytes], planned: Plan) -> bytes | None:
        """Why the connection's user may not run ``planned`` (``None``: it may)."""
        if self.server.users is None:
            return None
        access = required_access(args[0].upper(), planned)
        if self.user is None and (access is not Access.CONNECTION or type(planned) is Hello):
            return NOAUTH_HELLO if type(planned) is Hello else NOAUTH
        if self.user is not None and not self.user.may(access):
            name = args[0].decode(errors="replace").lower()
            return encode_error(f"NOPERM this user has no permission to run '{name}'")
        return None

    def _run_queued(self, commands: list[list[bytes]]) -> int:
        """Between ``MULTI`` and ``EXEC``: queue each command (``runtime.transactions``) until
        ``EXEC`` or ``DISCARD``: how many it consumed."""
        tx = self.tx
        for index, args in enumerate(commands):
            planned = plan(args)
            refused = self._refusal(args, planned)
            if refused is not None:
                self._reply_now(tx.refuse(refused))
            elif isinstance(planned, TxCommand):
                self._command(planned)
                if self.held is not None:  # an EXEC deciding the database: the rest waits
                    self.held.extend(commands[index + 1 :])
                    return len(commands)
                if not tx.active:
                    return index + 1
            elif isinstance(planned, Immediate) and planned.close:  # QUIT: at once
                self._command(planned)
                return len(commands)
            elif isinstance(planned, NodeCommand) and planned.kind == "RESET":  # at once too
                self._command(planned)
                return index + 1
            elif isinstance(planned, (Auth, Hello, Custom)) or (  # Custom: another machine's
                isinstance(planned, NodeCommand) and planned.kind == MEMBER_KIND
            ):
                self._reply_now(tx.refuse(NOT_IN_MULTI))
            elif isinstance(planned, PubSubCommand):
                hub = self.server.pubsub
                if planned.name == b"PUBLISH" and hub is not None:
                    self._reply_now(tx.add(args, Ops(*hub.publish_ops(planned))))
                else:
                    self._reply_now(tx.refuse(NOT_IN_MULTI))
            elif isinstance(planned, Ops):
                if planned.session is not None:  # PAXOS.REQ names its own session
                    self._reply_now(tx.refuse(NOT_IN_MULTI))
                else:
                    self._reply_now(tx.add(args, planned))
            elif isinstance(planned, Blocking):  # as in Redis: one attempt, never a wait
                self._reply_now(tx.add(args, Ops(planned.ops, attempt_once(planned))))
            elif isinstance(planned, SelectDb):  # at EXEC, for the commands after it
                if 0 <= planned.index < min(self.server.databases, DATABASES):
                    self._reply_now(tx.select(args, planned.index))
                else:
                    self._reply_now(tx.add(args, DB_OUT_OF_RANGE))
            else:
                self._reply_now(tx.add(args, self._reply_of(planned)))
        return len(commands)

    def _authenticate(self, auth: Auth, planned: Plan, rest: list[list[bytes]]) -> None:
        """Check ``auth`` off the event loop (a scrypt hash); hold ``rest`` until it answers."""
        users = self.server.users
        assert users is not None
        slot = self.new_slot(1)
        self.held = list(rest)
        self._update_reading()
        future = self.loop.run_in_executor(
            self.server.auth_executor, users.authenticate, auth.user, auth.password
        )

        def checked(done: asyncio.Future[User | None]) -> None:
            user = None if done.cancelled() or done.exception() else done.result()
            if user is None:
                self.fill(slot, WRONGPASS)
            else:
                self.user = user
                if isinstance(planned, Hello) and planned.protocol is not None:
                    self.protocol = planned.protocol
                self.fill(slot, self._hello_reply() if isinstance(planned, Hello) else OK)
            held, self.held = self.held or [], None
            if not self.closed:
                self._run(held, True)

        future.add_done_callback(checked)

    def eof_received(self) -> bool | None:
        # The client half-closed: answer what it sent, then close.  TLS has no half-close
        # (asyncio closes an SSL transport after EOF whatever this returns, and warns if True).
        # A blocking command waiting is answered as timed out: nothing will come to serve it.
        self.closing = True
        if self.blocked_slot is not None:
            self.server.blocked.release(self)
        self._flush()
        return self.server.ssl is None

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()

    # -- commands ----------------------------------------------------------------------------

    def _command(self, planned: Plan) -> None:
        if isinstance(planned, Immediate):
            self._reply_now(planned.reply)
            if planned.close:
                self.closing = True
                self._flush()
        elif isinstance(planned, Info):
            self._reply_now(encode_bulk(self.server.info(planned.section).encode()))
        elif isinstance(planned, Auth) or (isinstance(planned, Hello) and planned.auth):
            self._reply_now(NO_USERS)  # there is no password to check: say so, never accept
        elif isinstance(planned, Hello):
            if planned.protocol is not None:
                self.protocol = planned.protocol
            self._reply_now(self._hello_reply())
        elif isinstance(planned, ReadMode):
            self.stale_reads = planned.stale
            self._reply_now(OK)
        elif isinstance(planned, SelectDb):
            self._reply_now(self._select(planned.index))
        elif isinstance(planned, (ClientCommand, ConfigGet, ServerTime)):
            self._reply_now(self._local_reply(planned))
        elif isinstance(planned, Custom):
            assert self.server.custom is not None  # only its planner makes them
            self.server.custom(self, planned)
        elif isinstance(planned, NodeCommand) and planned.kind == MEMBER_KIND:
            if self.server.member_admin is None:
                self._reply_now(encode_error("ERR membership commands are not served here"))
            else:
                self.server.member_admin(self, planned)
        elif isinstance(planned, NodeCommand):
            self._reply_now(node_reply(self, planned))
            if self.close_after_reply:
                self.closing = True
                self._flush()
        elif isinstance(planned, Blocking):
            self.blocked_slot = self.new_slot(1)
            self.held = []  # as in Redis, nothing else runs until it is answered
            self._update_reading()
            self.server.blocked.block(self, planned)
        elif isinstance(planned, PubSubCommand):
            self._pubsub_command(planned)
        elif isinstance(planned, TxCommand):
            selected, watching = self.tx.selected, self.tx.watching
            outcome = self.tx.command(planned)
            if isinstance(outcome, bytes):
                self._reply_now(outcome)
            elif planned.name == b"EXEC" and selected is not None:
                self._exec_selecting(outcome, selected, watching)
            else:
                self.dispatch(Call(self, self.new_slot(1), outcome))
        else:
            self.dispatch(Call(self, self.new_slot(1), planned))

    def _exec_selecting(self, outcome: Ops, selected: int, watching: bool) -> None:
        """An ``EXEC`` with a ``SELECT`` queued: the connection stays in that database after
        it, as in Redis, unless a watched key aborts it (then nothing ran, ``SELECT``
        included).  Only the answer tells, so a watching connection holds the commands after
        it until then (as it does behind a blocking command)."""
        if not watching:
            self.dispatch(Call(self, self.new_slot(1), outcome))
            self.db = selected
            return
        slot = self.new_slot(1)
        self.held = []
        self._update_reading()

        def answered(reply: bytes) -> None:
            if reply not in (NULL_ARRAY_RESP2, NULL_RESP3):  # not aborted
                self.db = selected
            self.fill(slot, reply)
            held, self.held = self.held or [], None
            if not self.closed:
                self._run(held, True)

        self.dispatch(Call(self, _Slot(), outcome, answered))

    # -- publish/subscribe (runtime.pubsub) -----------------------------------------------------

    def _pubsub_command(self, planned: PubSubCommand) -> None:
        hub = self.server.pubsub
        if hub is None:
            self._reply_now(encode_error("ERR publish/subscribe is not available on this node"))
            return
        reply = hub.run(self, planned)
        if reply is not None:
            self._reply_now(reply)

    def push(self, data: bytes) -> None:
        """Messages for this subscriber, after the replies already due.  Held behind a reply
        not yet answered (a blocking command in RESP3), they count towards the output bound:
        past it the subscriber is dropped, as one that does not read is."""
        if self.slots:
            self.pushes_held_bytes += len(data)
            if self.pushes_held_bytes > self.server.output_bytes_max and self.transport:
                log.warning("client %s: messages held past the output bound, closing", self.peer)
                self.transport.abort()
                self.closing = self.closed = True
                return
        self._reply_now(data)

    def send_ops(self, ops: tuple[Command, ...], combine: Combine) -> None:
        """Run ``ops`` as this connection's next command, its reply in the FIFO."""
        self.dispatch(Call(self, self.new_slot(1), Ops(ops, combine)))

    # -- blocking commands (runtime.blocking) --------------------------------------------------

    def run_ops(
        self, ops: tuple[Command, ...], combine: Combine, on_reply: Callable[[bytes], None]
    ) -> None:
        """Run ``ops`` as this connection's plain command, its reply to ``on_reply``."""
        self.dispatch(Call(self, _Slot(), Ops(ops, combine), on_reply))

    def unblock(self, reply: bytes) -> None:
        """Answer the blocking command, then run the commands held behind it."""
        slot, self.blocked_slot = self.blocked_slot, None
        if slot is not None:
            self.fill(slot, reply)
        held, self.held = self.held or [], None
        if not self.closed:
            self._run(held, True)

    def _select(self, index: int) -> bytes:
        """``SELECT index``: within the store's databases and the ``databases`` setting."""
        if not 0 <= index < min(self.server.databases, DATABASES):
            return DB_OUT_OF_RANGE
        self.db = index
        return OK

    def _reply_of(
        self,
        planned: Immediate | Info | ReadMode | ClientCommand | ConfigGet | ServerTime | NodeCommand,
    ) -> bytes:
        """The reply to a command this node answers itself, queued inside ``MULTI``."""
        if isinstance(planned, Immediate):
            return planned.reply
        if isinstance(planned, Info):
            return encode_bulk(self.server.info(planned.section).encode())
        if isinstance(planned, ReadMode):
            self.stale_reads = planned.stale
            return OK
        if isinstance(planned, NodeCommand):
            return node_reply(self, planned)
        return self._local_reply(planned)

    def _local_reply(self, planned: ClientCommand | ConfigGet | ServerTime) -> bytes:
        """What this connection and node answer themselves (not replicated)."""
        if isinstance(planned, ServerTime):
            micros = time.time_ns() // 1000
            return encode_array([b"%d" % (micros // 1_000_000), b"%d" % (micros % 1_000_000)])
        if isinstance(planned, ConfigGet):
            machine = getattr(self.server.pubsub, "source", None)
            bits = getattr(machine, "notify_bits", None)
            if isinstance(bits, int):
                self.server.settings["notify-keyspace-events"] = format_notify_flags(bits).decode()
            found: dict[str, str] = {}
            for pattern in planned.patterns:
                match = glob_matcher(pattern.lower())
                found.update((k, v) for k, v in self.server.settings.items() if match(k.encode()))
            items = [part.encode() for pair in sorted(found.items()) for part in pair]
            if self.protocol == 3:
                return b"%%%d\r\n" % len(found) + b"".join(encode_bulk(i) for i in items)
            return encode_array(items)
        if planned.subcommand == b"ID":
            return encode_integer(self.connection_id)
        if planned.subcommand == b"SETNAME":
            self.name = planned.name
            return OK
        return encode_bulk(self.name) if self.name else self.null

    def reset(self) -> None:
        """``RESET``: the connection as it was when it opened (RESP2, no name, no
        transaction or watch, no subscriptions, linearizable reads, and when users exist not
        authenticated)."""
        self.tx = Transaction()
        self.protocol = 2
        self.db = 0
        self.name = b""
        self.stale_reads = False
        self.lib_name = self.lib_version = ""
        if self.server.users is not None:
            self.user = None
        if self.server.pubsub is not None:  # no subscriptions either
            self.server.pubsub.drop(self)

    # -- the read paths and the connection's order (module docstring, "Reads") -------------

    def dispatch(self, job: Group | Call) -> None:
        """Route ``job`` now, or once this connection's read-index reads are answered."""
        if self.deferred or (self.reads_out and not job.reads_only):
            self.deferred.append(job)
        else:
            job.route()

    def path_for(self, reads_only: bool) -> RequestPath:
        if not reads_only or self.log_out:
            return RequestPath.LOG
        if self.stale_reads:
            return RequestPath.LOCAL
        return RequestPath.READ_INDEX if self.server.read_index else RequestPath.LOG

    def count_reads(self, path: RequestPath, reads: int) -> None:
        """``reads`` read commands leave on ``path`` (``INFO``'s read counters)."""
        if path is RequestPath.LOG:
            self.server.reads_log += reads
        elif path is RequestPath.LOCAL:
            self.server.reads_stale += reads

    def sent(self, path: RequestPath) -> None:
        if path is RequestPath.LOG:
            self.log_out += 1
        elif path is RequestPath.READ_INDEX:
            self.reads_out += 1

    def answered(self, path: RequestPath) -> None:
        if path is RequestPath.LOG:
            self.log_out -= 1
        elif path is RequestPath.READ_INDEX:
            self.reads_out -= 1
        deferred = self.deferred
        while deferred and not (self.reads_out and not deferred[0].reads_only):
            deferred.popleft().route()

    def _protocol_error(self, error: RespProtocolError) -> None:
        log.warning("client %s: protocol error, closing: %s", self.peer, error)
        self._reply_now(encode_error(f"ERR Protocol error: {error}"))
        self.closing = True
        self._flush()

    def _reply_now(self, data: bytes) -> None:
        if not self.slots and self.transport is not None and not self.closed:
            self.transport.write(data)
            if self.write_paused:
                self._check_output(self.transport)
        else:
            self.slots.append(_Slot(data))
            self.pending_replies += 1

    def new_slot(self, replies: int) -> _Slot:
        """Reserve the next place in the reply FIFO for ``replies`` replies."""
        slot = _Slot(None, replies)
        self.slots.append(slot)
        self.pending_replies += replies
        return slot

    def fill(self, slot: _Slot, data: bytes) -> None:
        """Answer ``slot``; the write happens once the current batch of answers is done."""
        if self.closed:
            return
        slot.data = data
        if not self.flush_scheduled and self.slots and self.slots[0] is slot:
            # The driver answers a whole batch in one go: one write per connection per batch
            # instead of one per reply (a pipelining client gets its 16 answers in one packet).
            self.flush_scheduled = True
            self.server.schedule_flush(self, self.loop)

    def flush(self) -> None:
        """Write the replies due, if a flush is still scheduled."""
        if self.flush_scheduled:
            self._flush()

    def _flush(self) -> None:
        self.flush_scheduled = False
        slots = self.slots
        out: list[bytes] = []
        while slots and slots[0].data is not None:
            slot = slots.popleft()
            assert slot.data is not None
            out.append(slot.data)
            self.pending_replies -= slot.replies
        if not slots:
            self.pushes_held_bytes = 0
        transport = self.transport
        if transport is None or self.closed:
            return
        if out:
            transport.write(b"".join(out))
            if self.write_paused:
                self._check_output(transport)
        if self.closed:
            return
        if self.closing and not slots:
            transport.close()
            self.closed = True
        else:
            self._update_reading()

    def _check_output(self, transport: asyncio.Transport) -> None:
        """Drop a client that lets more than ``output_bytes_max`` of replies pile up unread
        (Redis's client-output-buffer-limit): its replies would otherwise grow without bound."""
        queued = transport.get_write_buffer_size()
        if queued > self.server.output_bytes_max:
            log.warning("client %s: %d bytes of replies unread, closing", self.peer, queued)
            transport.abort()
            self.closing = self.closed = True

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or self.closed:
            return
        pause = (
            self.write_paused
            or self.pending_replies >= self.server.pending_replies_max
            or self._holding()
        )
        if pause and not self.read_paused:
            self.read_paused = True
            transport.pause_reading()
        elif not pause and self.read_paused:
            self.read_paused = False
            transport.resume_reading()

    def _holding(self) -> bool:
        """Are commands held so that reading must pause?  While an ``AUTH`` is checked, yes;
        while a blocking command waits, only once ``pending_replies_max`` commands are held:
        the connection keeps reading so that a client that goes away is noticed."""
        held = self.held
        if held is None:
            return False
        return self.blocked_slot is None or len(held) >= self.server.pending_replies_max

    @property
    def null(self) -> bytes:
        return NULL_RESP3 if self.protocol == 3 else NULL_RESP2

    def _hello_reply(self) -> bytes:
        fields: list[tuple[bytes, bytes]] = [
            (b"server", encode_bulk(b"pypaxos")),
            (b"version", encode_bulk(REDIS_VERSION.encode())),
            (b"proto", encode_integer(self.protocol)),
            (b"id", encode_integer(self.connection_id)),
            (b"mode", encode_bulk(b"standalone")),
            (b"role", encode_bulk(b"master")),
            (b"modules", b"*0\r\n"),
        ]
        head = b"%%%d\r\n" % len(fields) if self.protocol == 3 else b"*%d\r\n" % (2 * len(fields))
        return head + b"".join(encode_bulk(key) + value for key, value in fields)

    def next_session(self, rotate_from: int | None = None) -> tuple[int, int]:
        """The plain session's next ``(client_id, seq)``; a fresh session if asked to rotate."""
        if rotate_from is not None and rotate_from == self.client_id:
            self.client_id, self.seq = new_client_id(), 0
        self.seq += 1
        return self.client_id, self.seq
