"""An asyncio TCP transport: one listening socket per node, one outbound connection per peer.

Connections are one-way (a node sends only on connections it opened) and open with a ``Hello``
frame (``codec``).  ``send`` never blocks: it encodes at once and queues the frame in the peer's
queue, bounded in frames and bytes, dropping the oldest (or newest) when full, since Paxos
tolerates loss (Paxos Made Simple, section 2.1).  A writer task per peer coalesces queued frames
into one write, reconnects with capped, jittered exponential backoff (reset only after a
connection stayed up ``reconnect_delay_max_s``), and aborts a ``drain()`` longer than
``drain_timeout_s``.  A peer's ``Hello`` cuts our backoff towards it short, and ``dial`` reaches
every peer at start.  Inbound bytes are decoded in an ``asyncio.Protocol``'s ``data_received``
(no task per read); a bad frame or handshake closes only that connection.  A connection the
peer closed is redialled even with nothing queued, as a dialled peer is, until connected.
Portable asyncio only, so any loop works (``preferred_loop_factory`` picks uvloop's when
installed).  More: docs/design.md, "The peer transport".

With ``tls`` (``transport.tls``) the peer port listens and dials with mutual TLS against the
cluster's CA: an accepted connection's certificate must name (``pypaxos:node:N``) the node its
``Hello`` claims, and a dialled peer's the node we meant to reach, else ``HandshakeRejected``
with reason ``"certificate"``; a shared secret, when there is one too, is checked inside TLS.

Every Hello announces the peer protocol version (``codec.PROTOCOL_VERSION``).  An acceptor
that refuses a Hello for another version, or (once the dialling node has proved who it is)
because no configuration it knows has that node, sends a ``Refusal`` before it closes, so the
dialling node logs why (both versions), or hears that it was removed (``RemovalNotice``,
handed to ``on_notice`` only when the refusal is authenticated: TLS or ``auth.refusal_proof``,
and names this node's cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import math
import random
import ssl
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar, cast

import msgspec

from pypaxos.multi.membership import RemovalNotice
from pypaxos.transport.auth import (
    Challenge,
    hello_proof,
    new_nonce,
    proof_matches,
    refusal_proof,
)
from pypaxos.transport.base import Deliver, UnknownPeer
from pypaxos.transport.codec import (
    FRAME_VERSION,
    HEADER,
    HEADER_BYTES,
    PROTOCOL_VERSION,
    REFUSAL_BYTES_MAX,
    Codec,
    FrameDecoder,
    Hello,
    ProtocolError,
    Refusal,
    RefusalReason,
)
from pypaxos.transport.tls import TlsContexts, node_ids_named

logger = logging.getLogger(__name__)

M = TypeVar("M")

DropPolicy = Literal["drop_oldest", "drop_new"]


class HandshakeRejected(ProtocolError):
    """The remote peer's Hello speaks another protocol version, names another cluster, is not
    a member, is not the node its certificate names, or fails its proof.  ``refusal``: what
    the acceptor tells the dialling node before it closes (``None``: nothing)."""

    def __init__(self, reason: str, detail: str, refusal: Refusal | None = None) -> None:
        super().__init__(detail)
        self.reason = reason  # "version", "cluster", "member", "certificate" or "proof"
        self.refusal = refusal


NoticeFor = Callable[[int], RemovalNotice | None]
"""What to tell a node that proved who it is but is in no configuration this node knows."""

OnNotice = Callable[[int, RemovalNotice], None]
"""Called with a peer's id and its authenticated notice that this node is not in its
configuration (the caller judges it: ``multi.membership.judge_removal``)."""


REFUSAL_LINGER_S = 1.0
"""How long an acceptor keeps a connection it refused open for its ``Refusal`` to be read
(unless the dialling node closes first): closing on bytes not yet read resets the connection,
and a reset can discard the refusal on the dialling side before it is read."""

REFUSAL_LOG_INTERVAL_S = 30.0
"""A peer that keeps refusing this node for the same reason, or that this node keeps refusing
for the same reason, is logged at most this often (a refused node redials every few seconds)."""

REFUSALS_TRACKED_MAX = 1024
"""How many (peer, reason) pairs an acceptor keeps the last refusal warning of."""


READ_TLS_BYTES = 256 * 1024
"""The most plaintext an inbound TLS connection takes from its session in one read."""

CHALLENGE_BYTES_MAX = 256
"""The largest challenge frame a dialling node reads before its Hello."""


class SenderMismatch(ProtocolError):
    """A message's ``sender`` is not the node id the connection's Hello announced."""


@dataclass(frozen=True, slots=True)
class TcpConfig:
    """Bounds and timings; units are in the names."""

    send_queue_frames_max: int = 4096
    send_queue_bytes_max: int = 32 * 1024 * 1024
    drop_policy: DropPolicy = "drop_oldest"
    reconnect_delay_initial_s: float = 0.05
    reconnect_delay_max_s: float = 2.0
    connect_timeout_s: float = 2.0
    handshake_timeout_s: float = 5.0
    drain_timeout_s: float = 10.0
    """A peer that accepts no bytes for this long (host gone, no FIN) is dropped and redialled."""
    drop_log_interval_s: float = 10.0
    check_sender: bool = True
    """Refuse a message whose ``sender`` attribute differs from the handshake's node id."""

    def __post_init__(self) -> None:
        if self.send_queue_frames_max < 1 or self.send_queue_bytes_max < 1:
            raise ValueError("send queue bounds must be positive")
        if not 0 < self.reconnect_delay_initial_s <= self.reconnect_delay_max_s:
            raise ValueError("need 0 < reconnect_delay_initial_s <= reconnect_delay_max_s")
        if self.drop_policy not in ("drop_oldest", "drop_new"):
            raise ValueError(f"unknown drop_policy {self.drop_policy!r}")


@dataclass(slots=True)
class PeerStats:
    """Counters for one outbound peer."""

    frames_queued: int = 0
    frames_sent: int = 0
    frames_dropped: int = 0
    bytes_sent: int = 0
    writes: int = 0
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    writer_crashes: int = 0  # the writer task failed on a bug and was started again


@dataclass(slots=True)
class InboundStats:
    """Counters for the listening side."""

    connections: int = 0
    protocol_errors: int = 0
    messages_received: int = 0


def parse_address(address: str) -> tuple[str, int]:
    """Split ``host:port`` (or ``[v6]:port``) into a host and a port number."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ValueError(f"address must be host:port, got {address!r}")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port out of range in {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def backoff_delay_s(attempt: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Capped exponential backoff with equal jitter: in ``[ceiling/2, ceiling]``."""
    ceiling: float = min(max_s, initial_s * 2.0 ** min(attempt, 62))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def preferred_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop factory when uvloop is installed, else asyncio's default one.

    For ``asyncio.Runner(loop_factory=...)``; the transport itself works on either.
    """
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return asyncio.new_event_loop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


class _RateLimit:
    """Lets an event through at most once per interval."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._last = -math.inf

    def ready(self, now: float) -> bool:
        if now - self._last >= self._interval_s:
            self._last = now
            return True
        return False


class _Peer:
    """One outbound peer: its address, bounded frame queue and writer task.

    The writer sleeps on ``waiter``, a bare future: cheaper than an ``asyncio.Event`` on the
    send path, where waking an already-awake writer must cost one attribute test.  No wake-up
    is lost because the writer tests its condition and creates the future in one loop step.
    """

    def __init__(self, node_id: int, address: str) -> None:
        self.node_id = node_id
        self.address = address
        self.frames: deque[bytes] = deque()
        self.queued_bytes = 0
        self.waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.connection_lost = False
        self.connected = False
        self.dial_requested = False  # connect even with nothing queued (``TcpTransport.dial``)
        self.backoff: asyncio.Future[None] | None = None  # set while sleeping between attempts
        self.stats = PeerStats()
        self.dropped_unlogged = 0
        self.writer: asyncio.StreamWriter | None = None  # while connected (``flush``)
        self.refused: Refusal | None = None  # why the peer closed the last connection
        self.refusal_log = _RateLimit(REFUSAL_LOG_INTERVAL_S)
        self.refusal_logged: str | None = None  # the reason last logged

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def sleep(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter

    async def back_off(self, delay_s: float) -> None:
        """Sleep ``delay_s`` before the next attempt, unless ``cut_backoff`` ends it sooner.

        Its own future, not ``waiter``: a ``send`` must not cut the backoff short, or a busy
        sender would redial an unreachable peer in a tight loop."""
        loop = asyncio.get_running_loop()
        self.backoff = loop.create_future()
        timer = loop.call_later(delay_s, _resolve, self.backoff)
        try:
            await self.backoff
        finally:
            timer.cancel()
            self.backoff = None

    def cut_backoff(self) -> None:
        if self.backoff is not None:
            _resolve(self.backoff)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class TcpTransport(Generic[M]):
    """The TCP ``Transport`` for node ``node_id``; see the module docstring for the design.

    ``peers`` maps node ids to ``host:port`` addresses (the node's own entry, if present, is
    ignored: a send to oneself is delivered locally with ``loop.call_soon``, never encoded).
    """

    def __init__(
        self,
        node_id: int,
        listen_address: str,
        peers: Mapping[int, str],
        codec: Codec[M],
        deliver: Deliver[M],
        *,
        cluster_id: str | None = None,
        config: TcpConfig | None = None,
        rng: random.Random | None = None,
        secret: bytes | None = None,
        members: Collection[int] | None = None,
        tls: TlsContexts | None = None,
        notice_for: NoticeFor | None = None,
        on_notice: OnNotice | None = None,
        protocol_version: int = PROTOCOL_VERSION,
    ) -> None:
        self._node_id = node_id
        self._protocol = protocol_version  # another build's, in tests only
        self._notice_for = notice_for
        self._on_notice = on_notice
        self._listen_host, self._listen_port = parse_address(listen_address)
        self._codec = codec
        self._deliver = deliver
        self._cluster_id = cluster_id
        self._secret = secret  # with one, peers must answer a challenge (transport.auth)
        self._tls = tls  # with it, mutual TLS and certificates that name the node
        # Who may dial in: the members, or else the peers this node dials.
        self._members = None if members is None else frozenset(members)
        self._config = config or TcpConfig()
        self._rng = rng or random.Random()
        hello = Hello(node_id=node_id, cluster_id=cluster_id, protocol=protocol_version)
        self._hello_frame = codec.encode_hello(hello)
        self._peers: dict[int, _Peer] = {}
        for peer_id, address in sorted(peers.items()):
            self.set_peer(peer_id, address)
        self._server: asyncio.Server | None = None
        self._inbound: set[_Inbound[M]] = set()
        self._started = False
        self._closed = False
        self._drop_log = _RateLimit(self._config.drop_log_interval_s)
        # (node id or host, error) -> (when last logged, refusals not logged since)
        self._refusals_logged: dict[tuple[object, str], tuple[float, int]] = {}
        self.inbound_stats = InboundStats()
        # The last message encoded and its frame (holding the message keeps its id unique).
        self._last_msg: object = None
        self._last_frame = b""
        self._corked = False  # between ``cork`` and ``flush``: sends leave the wake-up to ``flush``

    # -- the Transport protocol -----------------------------------------------------------

    @property
    def node_id(self) -> int:
        return self._node_id

    async def start(self) -> None:
        """Bind and listen on ``listen_address`` (port 0 picks a free port)."""
        if self._started:
            raise RuntimeError("transport already started")
        self._started = True
        loop = asyncio.get_running_loop()
        # Plain TCP even with TLS: each connection runs its TLS session itself (``_Inbound``).
        self._server = await loop.create_server(
            self._inbound_connection, self._listen_host, self._listen_port
        )
        self._listen_port = self._server.sockets[0].getsockname()[1]
        logger.debug("node %d listening on %s", self._node_id, self.listen_address)

    def send(self, to: int, msg: M) -> None:
        """Queue ``msg`` for ``to``; never blocks.  Dropped silently once closed."""
        if not self._started:
            raise RuntimeError("send before start()")
        if self._closed:
            return
        if to == self._node_id:
            asyncio.get_running_loop().call_soon(self._deliver_local, msg)
            return
        peer = self._peers.get(to)
        if peer is None:
            raise UnknownPeer(to)
        if msg is self._last_msg:  # a broadcast: the same message to each peer, encoded once
            frame = self._last_frame
        else:
            frame = self._codec.encode_frame(msg)  # MessageTooLarge is the caller's to handle
            self._last_msg, self._last_frame = msg, frame
        size = len(frame)
        if (
            len(peer.frames) < self._config.send_queue_frames_max
            and peer.queued_bytes + size <= self._config.send_queue_bytes_max
        ):
            peer.frames.append(frame)
            peer.queued_bytes += size
            peer.stats.frames_queued += 1
        else:
            self._enqueue_full(peer, frame)
        if peer.waiter is not None:
            if self._corked:
                return  # ``flush`` writes it or wakes the writer
            peer.wake()
        elif peer.task is None:
            peer.task = asyncio.get_running_loop().create_task(
                self._run_peer(peer), name=f"pypaxos-tcp-{self._node_id}->{peer.node_id}"
            )

    def cork(self) -> None:
        """Hold back the writer tasks' wake-ups until ``flush``: the caller is about to send a
        batch of messages and will hand them to the sockets itself."""
        self._corked = True

    def flush(self) -> None:
        """Write what is queued for each idle peer now, in one write, from the caller.

        A peer is idle when its writer task sleeps with nothing queued and the socket took
        every byte written so far: the write cannot block and needs no drain, and it saves the
        writer task's wake-up (a loop step) per message on the latency path, which matters most
        when the caller is about to block (a node's fsync).  Anything else (connecting, a
        backed-up socket, a closed connection) is left to the writer task, which keeps flow
        control and reconnection as they were."""
        self._corked = False
        for peer in self._peers.values():
            if not peer.frames:
                continue
            writer = peer.writer
            if writer is None:
                if peer.waiter is not None:
                    peer.wake()
                continue
            transport = writer.transport
            if (
                peer.waiter is not None
                and not peer.connection_lost
                and not transport.is_closing()
                and transport.get_write_buffer_size() == 0
            ):
                count = len(peer.frames)
                data = b"".join(peer.frames)
                peer.frames.clear()
                peer.queued_bytes = 0
                transport.write(data)  # (``StreamWriter.write`` does this, one call more)
                peer.stats.frames_sent += count
                peer.stats.bytes_sent += len(data)
                peer.stats.writes += 1
            elif peer.waiter is not None:
                peer.wake()

    async def close(self) -> None:
        """Stop listening, cancel every writer and reader task, close every socket."""
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        inbound = [connection.gone for connection in self._inbound]
        for connection in list(self._inbound):
            connection.close()
        writers = [p.task for p in self._peers.values() if p.task is not None]
        for task in writers:
            task.cancel()
        await asyncio.gather(*writers, *inbound, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def dial(self, node_id: int) -> None:
        """Connect to ``node_id`` now, even with nothing to send, cutting any backoff short
        (and again, with backoff, until a connection is made).

        A node calls it for each peer when it starts: its ``Hello`` tells a peer that has been
        backing off from our dead predecessor that we are back (``_peer_is_back``), so the
        peer's messages (a leader's heartbeats) reach us at once rather than after up to
        ``reconnect_delay_max_s``, by which time we may have started a needless election.
        """
        if not self._started:
            raise RuntimeError("dial before start()")
        if self._closed:
            return
        peer = self._peer(node_id)
        if peer.connected:
            return
        peer.dial_requested = True
        if peer.task is None:
            peer.task = asyncio.get_running_loop().create_task(
                self._run_peer(peer), name=f"pypaxos-tcp-{self._node_id}->{peer.node_id}"
            )
        else:
            peer.wake()
            peer.cut_backoff()

    # -- introspection and configuration --------------------------------------------------

    @property
    def listen_address(self) -> str:
        """``host:port`` actually bound (after ``start``, the real port for port 0)."""
        return format_address(self._listen_host, self._listen_port)

    def set_peer(self, node_id: int, address: str) -> None:
        """Add a peer or change its address (used from the next connection attempt on)."""
        parse_address(address)  # validate now, not in the writer task
        if node_id == self._node_id:
            return
        peer = self._peers.get(node_id)
        if peer is None:
            self._peers[node_id] = _Peer(node_id, address)
        else:
            peer.address = address

    def set_members(self, members: Collection[int]) -> None:
        """Accept Hellos from ``members`` only from now on (a reconfiguration), and close the
        inbound connections of nodes that are no longer members."""
        self._members = frozenset(members)
        for connection in list(self._inbound):
            hello = connection.hello
            if hello is not None and hello.node_id not in self._members:
                logger.info(
                    "node %d: closing the connection of node %d: no longer a member",
                    self._node_id,
                    hello.node_id,
                )
                connection.close()

    def remove_peer(self, node_id: int) -> None:
        """Stop dialling ``node_id`` and drop what is queued for it (it left the cluster)."""
        peer = self._peers.pop(node_id, None)
        if peer is None:
            return
        peer.frames.clear()
        peer.queued_bytes = 0
        if peer.task is not None:
            peer.task.cancel()
        if peer.writer is not None:
            peer.writer.close()

    @property
    def peer_ids(self) -> tuple[int, ...]:
        """The nodes this transport dials."""
        return tuple(sorted(self._peers))

    def peer_stats(self, node_id: int) -> PeerStats:
        return self._peer(node_id).stats

    def queued_frames(self, node_id: int) -> int:
        return len(self._peer(node_id).frames)

    def queued_bytes(self, node_id: int) -> int:
        return self._peer(node_id).queued_bytes

    def _peer(self, node_id: int) -> _Peer:
        try:
            return self._peers[node_id]
        except KeyError:
            raise UnknownPeer(node_id) from None

    # -- sending --------------------------------------------------------------------------

    def _enqueue_full(self, peer: _Peer, frame: bytes) -> None:
        """The slow path of ``send``: the queue is at a bound, so apply the drop policy."""
        cfg = self._config
        size = len(frame)
        dropped = 1  # this frame can never fit, or the policy keeps the queued ones
        if size <= cfg.send_queue_bytes_max and cfg.drop_policy == "drop_oldest":
            dropped = 0
            while peer.frames and (
                len(peer.frames) >= cfg.send_queue_frames_max
                or peer.queued_bytes + size > cfg.send_queue_bytes_max
            ):
                peer.queued_bytes -= len(peer.frames.popleft())
                dropped += 1
            peer.frames.append(frame)
            peer.queued_bytes += size
            peer.stats.frames_queued += 1
        self._note_drops(peer, dropped)

    def _note_drops(self, peer: _Peer, count: int) -> None:
        peer.stats.frames_dropped += count
        peer.dropped_unlogged += count
        if self._drop_log.ready(asyncio.get_running_loop().time()):
            logger.warning(
                "node %d: send queue to node %d (%s) full, dropped %d frame(s) (%s); "
                "%d frames dropped in total",
                self._node_id,
                peer.node_id,
                peer.address,
                peer.dropped_unlogged,
                self._config.drop_policy,
                peer.stats.frames_dropped,
            )
            peer.dropped_unlogged = 0

    async def _run_peer(self, peer: _Peer) -> None:
        """``_run_peer_forever``, started again after a crash: a bug there must not stop all
        traffic to this peer for the rest of the process's life, so it is logged loudly (with
        its traceback, counted in ``writer_crashes``) and the writer starts over."""
        while True:
            try:
                await self._run_peer_forever(peer)
                return
            except Exception:
                peer.stats.writer_crashes += 1
                logger.exception(
                    "node %d: writer to node %d crashed; starting it again",
                    self._node_id,
                    peer.node_id,
                )
            await peer.back_off(self._config.reconnect_delay_max_s)

    async def _run_peer_forever(self, peer: _Peer) -> None:
        """The writer task: connect, pump frames, and reconnect with backoff, until closed."""
        cfg = self._config
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            # lazy: (re)connect only when there is something to send, when asked to, or when
            # the peer hung up
            while not peer.frames and not peer.dial_requested:
                await peer.sleep()
            requested, peer.dial_requested = peer.dial_requested, False
            try:
                reader, writer, nonce = await self._connect(peer)
            except (OSError, TimeoutError, EOFError, ProtocolError) as exc:
                # EOFError and ProtocolError: the acceptor hung up or sent no valid challenge.
                peer.dial_requested = peer.dial_requested or requested  # until connected
                peer.stats.connect_failures += 1
                log = logger.info if attempt == 0 else logger.debug
                log(
                    "node %d: cannot connect to node %d at %s: %s",
                    self._node_id,
                    peer.node_id,
                    peer.address,
                    exc or type(exc).__name__,
                )
            else:
                peer.stats.connects += 1
                connected_at = loop.time()
                try:
                    await self._pump(peer, reader, writer, nonce)
                except (OSError, EOFError) as exc:
                    peer.stats.disconnects += 1
                    logger.info(
                        "node %d: connection to node %d at %s lost: %s",
                        self._node_id,
                        peer.node_id,
                        peer.address,
                        exc,
                    )
                finally:
                    writer.close()
                # The peer hung up: dial it again even with nothing to send, so that a node
                # whose peers all closed on it (a learner removed while cut off sends nothing)
                # still hears why at the next handshake.
                peer.dial_requested = peer.dial_requested or peer.connection_lost
                if loop.time() - connected_at >= cfg.reconnect_delay_max_s:
                    attempt = 0
            delay_s = backoff_delay_s(
                attempt, cfg.reconnect_delay_initial_s, cfg.reconnect_delay_max_s, self._rng
            )
            attempt += 1
            await peer.back_off(delay_s)

    async def _connect(
        self, peer: _Peer
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes | None]:
        """A connection to ``peer`` with our Hello written, and the nonce that Hello carries
        (with a secret: what the acceptor's refusal must prove itself with)."""
        host, port = parse_address(peer.address)
        tls = self._tls
        async with asyncio.timeout(self._config.connect_timeout_s):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=None if tls is None else tls.peer_client
            )
        if tls is not None:
            named = node_ids_named(writer.get_extra_info("peercert"))
            if peer.node_id not in named:
                writer.close()
                raise HandshakeRejected(
                    "certificate",
                    f"node {peer.node_id}'s address shows a certificate for {_describe_ids(named)}",
                )
        if self._secret is None:
            writer.write(self._hello_frame)
            return reader, writer, None
        try:
            async with asyncio.timeout(self._config.handshake_timeout_s):
                nonce = await _read_challenge(reader)
        except BaseException:
            writer.close()
            raise
        proof = hello_proof(self._secret, self._cluster_id, self._node_id, peer.node_id, nonce)
        own_nonce = new_nonce()
        hello = Hello(self._node_id, self._cluster_id, proof, self._protocol, own_nonce)
        writer.write(self._codec.encode_hello(hello))
        return reader, writer, own_nonce

    async def _pump(
        self,
        peer: _Peer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        nonce: bytes | None,
    ) -> None:
        """Write coalesced batches until the connection fails (raises OSError or EOFError)."""
        peer.connection_lost = False
        peer.connected = True
        peer.refused = None
        watcher = asyncio.get_running_loop().create_task(self._watch_eof(peer, reader, nonce))
        peer.writer = writer
        try:
            while True:
                if peer.connection_lost:
                    refused = peer.refused
                    raise EOFError(
                        "closed by the peer"
                        if refused is None
                        else f"refused by the peer ({refused.reason})"
                    )
                if not peer.frames:
                    await peer.sleep()
                    continue
                if writer.transport.is_closing():
                    # Closed before the EOF watcher ran (a reset, an abort): writing would raise
                    # on the closed handle; the frames stay queued for the next connection.
                    raise EOFError("the connection closed")
                count = len(peer.frames)
                data = b"".join(peer.frames)
                peer.frames.clear()
                peer.queued_bytes = 0
                writer.write(data)
                try:
                    async with asyncio.timeout(self._config.drain_timeout_s):
                        await writer.drain()
                except TimeoutError:
                    writer.transport.abort()  # do not wait for a flush that will not come
                    raise TimeoutError(
                        f"peer accepted no bytes for {self._config.drain_timeout_s} s"
                    ) from None
                peer.stats.frames_sent += count
                peer.stats.bytes_sent += len(data)
                peer.stats.writes += 1
        finally:
            peer.connected = False
            peer.writer = None
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch_eof(
        self, peer: _Peer, reader: asyncio.StreamReader, nonce: bytes | None
    ) -> None:
        """Outbound connections carry nothing back but a refusal: EOF, an error or any bytes
        end them (a refusal is read first, bounded, and handled)."""
        with contextlib.suppress(OSError, EOFError, TimeoutError, ProtocolError):
            refusal = await _read_refusal(reader, self._codec, self._config.handshake_timeout_s)
            if refusal is not None:
                peer.refused = refusal
                self._peer_refused(peer, refusal, nonce)
        peer.connection_lost = True
        peer.wake()

    def _peer_refused(self, peer: _Peer, refusal: Refusal, nonce: bytes | None) -> None:
        """Log why ``peer`` refused this node; hand an authenticated removal notice on."""
        notice = refusal.notice
        if refusal.reason == RefusalReason.VERSION.value:
            self._log_refusal(
                peer,
                logging.ERROR,
                "node %d: node %d at %s refuses this node: it speaks peer protocol version %d, "
                "this node speaks %d (nodes of different versions cannot serve together)",
                refusal.protocol,
                self._protocol,
            )
            return
        if refusal.reason != RefusalReason.NOT_MEMBER.value or notice is None:
            self._log_refusal(
                peer,
                logging.WARNING,
                "node %d: node %d at %s refuses this node (%s)",
                refusal.reason,
            )
            return
        doubt = self._doubt(peer, refusal, nonce)
        if doubt is not None:
            self._log_refusal(
                peer,
                logging.WARNING,
                "node %d: node %d at %s says configuration epoch %d does not have this node; "
                "ignored: %s",
                notice.epoch,
                doubt,
            )
            return
        if self._on_notice is not None:
            self._on_notice(peer.node_id, notice)

    def _doubt(self, peer: _Peer, refusal: Refusal, nonce: bytes | None) -> str | None:
        """Why a refusal's notice cannot be trusted (``None``: it can)."""
        if refusal.node_id != peer.node_id:
            return f"it claims to be node {refusal.node_id}"
        if self._cluster_id is None or refusal.cluster_id != self._cluster_id:
            return "it names another cluster"
        if self._secret is not None:
            if nonce is None:
                return "no nonce was sent"
            unproved = msgspec.structs.replace(refusal, proof=None)
            body = self._codec.encode_refusal(unproved)
            expected = refusal_proof(
                self._secret, self._cluster_id, peer.node_id, self._node_id, nonce, body
            )
            if not proof_matches(expected, refusal.proof):
                return "its proof does not match the cluster secret"
            return None
        if self._tls is None:
            return "the link is not authenticated (no peer secret, no TLS)"
        return None

    def _log_refusal(self, peer: _Peer, level: int, text: str, *args: object) -> None:
        reason = peer.refused.reason if peer.refused is not None else ""
        now = asyncio.get_running_loop().time()
        if reason != peer.refusal_logged or peer.refusal_log.ready(now):
            peer.refusal_logged = reason
            logger.log(level, text, self._node_id, peer.node_id, peer.address, *args)

    # -- receiving ------------------------------------------------------------------------

    def _inbound_connection(self) -> _Inbound[M]:
        return _Inbound(self)

    def _peer_is_back(self, node_id: int) -> None:
        """A peer dialled us: it is up, so stop backing off from it and redial now."""
        peer = self._peers.get(node_id)
        if peer is not None and not peer.connected and peer.task is not None:
            peer.cut_backoff()

    def _check_hello(self, hello: Hello, nonce: bytes | None, cert_ids: frozenset[int]) -> None:
        # The messages name neither this node's cluster id nor anything about the secret.
        # The membership is checked last: only a node that proved who it is hears about it.
        if hello.protocol != self._protocol:
            raise HandshakeRejected(
                "version",
                f"node {hello.node_id} speaks peer protocol version {hello.protocol}, this node "
                f"speaks {self._protocol}",
                Refusal(self._node_id, RefusalReason.VERSION.value, self._protocol),
            )
        if self._cluster_id is not None and hello.cluster_id != self._cluster_id:
            raise HandshakeRejected(
                "cluster", f"Hello from node {hello.node_id} names another cluster"
            )
        if self._tls is not None and hello.node_id not in cert_ids:
            raise HandshakeRejected(
                "certificate",
                f"Hello claims node {hello.node_id}; its certificate names "
                f"{_describe_ids(cert_ids)}",
            )
        if self._secret is not None:
            assert nonce is not None
            expected = hello_proof(
                self._secret, self._cluster_id, hello.node_id, self._node_id, nonce
            )
            if not proof_matches(expected, hello.proof):
                raise HandshakeRejected("proof", f"node {hello.node_id} failed the challenge")
        members = self._peers.keys() if self._members is None else self._members
        if hello.node_id not in members or hello.node_id == self._node_id:
            notice = None
            if self._notice_for is not None and hello.node_id != self._node_id:
                notice = self._notice_for(hello.node_id)
            refusal = None
            if notice is not None:
                refusal = Refusal(
                    self._node_id,
                    RefusalReason.NOT_MEMBER.value,
                    self._protocol,
                    self._cluster_id,
                    notice,
                )
            raise HandshakeRejected("member", f"node {hello.node_id} is not a member", refusal)

    def _proved_refusal(self, refusal: Refusal, hello: Hello | None) -> Refusal:
        """``refusal`` with its proof, when there is a secret and the Hello sent a nonce."""
        if self._secret is None or hello is None or hello.nonce is None:
            return refusal
        body = self._codec.encode_refusal(refusal)
        proof = refusal_proof(
            self._secret, self._cluster_id, self._node_id, hello.node_id, hello.nonce, body
        )
        return msgspec.structs.replace(refusal, proof=proof)

    def _refusal_warning_due(self, key: tuple[object, str]) -> int | None:
        """``None`` when a refusal like this one was logged less than ``REFUSAL_LOG_INTERVAL_S``
        ago, else how many went unlogged since the last."""
        now = asyncio.get_running_loop().time()
        last = self._refusals_logged.get(key)
        if last is not None and now - last[0] < REFUSAL_LOG_INTERVAL_S:
            self._refusals_logged[key] = (last[0], last[1] + 1)
            return None
        if len(self._refusals_logged) >= REFUSALS_TRACKED_MAX:
            self._refusals_logged.clear()
        self._refusals_logged[key] = (now, 0)
        return 0 if last is None else last[1]

    def _deliver_all(self, hello: Hello, messages: list[M]) -> None:
        if self._config.check_sender:
            node_id = hello.node_id
            for msg in messages:
                sender = getattr(msg, "sender", node_id)
                if sender != node_id:
                    raise SenderMismatch(
                        f"{type(msg).__name__} claims sender {sender} on a connection "
                        f"whose Hello named node {node_id}"
                    )
        self.inbound_stats.messages_received += len(messages)
        deliver = self._deliver
        for msg in messages:
            try:
                deliver(msg)
            except Exception:
                self._deliver_failed()

    def _deliver_local(self, msg: M) -> None:
        if self._closed:
            return
        try:
            self._deliver(msg)
        except Exception:
            self._deliver_failed()

    def _deliver_failed(self) -> None:
        # The runtime's bug, not the peer's: keep the connection, drop the message.
        logger.exception("node %d: deliver callback raised; message dropped", self._node_id)


class _Inbound(asyncio.Protocol, Generic[M]):
    """One accepted connection: a Hello, then frames, decoded and delivered as they arrive.

    A protocol rather than a stream reader and a task: bytes are decoded and handed to
    ``deliver`` in the loop's read callback, which saves a task wake-up (a loop step) per
    read on the path of every message, in each node, on both ends of a round."""

    def __init__(self, owner: TcpTransport[M]) -> None:
        self.owner = owner
        self.decoder: FrameDecoder[M] = owner._codec.decoder(handshake=True)
        self.hello: Hello | None = None
        self.remote = "unknown address"
        self.transport: asyncio.Transport | None = None
        self.handshake_timer: asyncio.TimerHandle | None = None
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.nonce: bytes | None = None  # the challenge sent, when the cluster has a secret
        self.cert_ids: frozenset[int] = frozenset()  # the node ids its TLS certificate names
        # With TLS: the session, fed from and writing to memory buffers (see ``_decrypt``).
        self.tls: ssl.SSLObject | None = None
        self.tls_ready = False  # the handshake is done
        self.tls_in = ssl.MemoryBIO()
        self.tls_out = ssl.MemoryBIO()
        self.refused = False  # a refusal was sent: the rest is read and dropped until close
        self.linger_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        owner = self.owner
        if owner._closed:
            self.close()
            return
        owner._inbound.add(self)
        owner.inbound_stats.connections += 1
        peername = transport.get_extra_info("peername")
        if peername:
            self.remote = format_address(*peername[:2])
        # One deadline for the whole handshake, so a trickle of bytes cannot stretch it.
        self.handshake_timer = asyncio.get_running_loop().call_later(
            owner._config.handshake_timeout_s, self._handshake_timed_out
        )
        if owner._tls is None:
            self._greet()
        else:
            self.tls = owner._tls.peer_server.wrap_bio(self.tls_in, self.tls_out, server_side=True)

    def _greet(self) -> None:
        """The acceptor's first frame: a challenge, when the cluster has a secret."""
        if self.owner._secret is not None:
            self.nonce = new_nonce()
            payload = msgspec.msgpack.encode(Challenge(self.nonce))
            self._write(HEADER.pack(len(payload) + 1, FRAME_VERSION) + payload)

    def _write(self, data: bytes) -> None:
        if self.tls is not None:
            self.tls.write(data)
            data = self.tls_out.read()
        assert self.transport is not None
        self.transport.write(data)

    def _decrypt(self, data: bytes, tls: ssl.SSLObject) -> bytes:
        """Feed TLS records to the session: the handshake first (the certificate it verified
        names the peer: ``cert_ids``; then the greeting), then whatever plaintext is complete.

        TLS in memory (RFC 8446 over ``ssl.MemoryBIO``) rather than a TLS server or
        ``start_tls``: it behaves the same on every event loop (uvloop's ``start_tls`` loses the
        bytes that arrive before it runs), and a refused handshake is reported here like any
        other refused peer.  Raises ``HandshakeRejected``.
        """
        self.tls_in.write(data)
        chunks: list[bytes] = []
        try:
            if not self.tls_ready:
                tls.do_handshake()  # SSLWantReadError until the dialler's last flight is in
                self.tls_ready = True
                self.cert_ids = node_ids_named(tls.getpeercert())
                self._greet()
            while chunk := tls.read(READ_TLS_BYTES):
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass  # the rest of a record is still on its way
        except ssl.SSLZeroReturnError:
            self.close()  # the peer's close_notify
        except ssl.SSLError as error:
            reason = error.reason or error.strerror or type(error).__name__
            raise HandshakeRejected("certificate", f"TLS: {reason}") from None
        finally:
            answer = self.tls_out.read()  # handshake flights, session tickets, an alert
            if answer and self.transport is not None and not self.transport.is_closing():
                self.transport.write(answer)
        return b"".join(chunks)

    def data_received(self, data: bytes) -> None:
        if self.closed or self.refused:
            return
        owner = self.owner
        try:
            tls = self.tls
            if tls is not None:
                data = self._decrypt(data, tls)
                if not data or self.closed:
                    return
            messages = self.decoder.feed(data)
            hello = self.hello
            if hello is None:
                hello = self.decoder.hello
                if hello is None:
                    return
                owner._check_hello(hello, self.nonce, self.cert_ids)
                self.hello = hello
                if self.handshake_timer is not None:
                    self.handshake_timer.cancel()
                owner._peer_is_back(hello.node_id)
            owner._deliver_all(hello, messages)
        except ProtocolError as exc:
            self._refuse(exc)

    def _refuse(self, exc: ProtocolError) -> None:
        owner = self.owner
        owner.inbound_stats.protocol_errors += 1
        decoded = self.decoder.hello
        who = decoded.node_id if decoded else self.remote.rpartition(":")[0]
        reason = exc.reason if isinstance(exc, HandshakeRejected) else type(exc).__name__
        unlogged = owner._refusal_warning_due((who, reason))
        logger.log(
            logging.DEBUG if unlogged is None else logging.WARNING,
            "node %d: closing inbound connection from %s (node %s): %s: %s%s",
            owner._node_id,
            self.remote,
            decoded.node_id if decoded else "unknown",
            type(exc).__name__,
            exc,
            f" ({unlogged} more like it since the last warning)" if unlogged else "",
        )
        refusal = exc.refusal if isinstance(exc, HandshakeRejected) else None
        if refusal is None or self.transport is None or self.transport.is_closing():
            self.close()
            return
        # Say why, then wait for the dialling node to hang up (or ``REFUSAL_LINGER_S``).
        self._write(owner._codec.encode_refusal(owner._proved_refusal(refusal, decoded)))
        self.refused = True
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
        self.linger_timer = asyncio.get_running_loop().call_later(REFUSAL_LINGER_S, self.close)

    def eof_received(self) -> bool:
        return False  # the dialling node hung up: close our side too

    def _handshake_timed_out(self) -> None:
        if self.hello is not None or self.closed or self.refused:
            return
        owner = self.owner
        owner.inbound_stats.protocol_errors += 1
        logger.warning(
            "node %d: closing inbound connection from %s: no Hello within %.1f s",
            owner._node_id,
            self.remote,
            owner._config.handshake_timeout_s,
        )
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
        if self.linger_timer is not None:
            self.linger_timer.cancel()
        if exc is not None:
            logger.info(
                "node %d: inbound connection from %s: %s", self.owner._node_id, self.remote, exc
            )
        self.owner._inbound.discard(self)
        if not self.gone.done():
            self.gone.set_result(None)


__all__ = [
    "DropPolicy",
    "HandshakeRejected",
    "InboundStats",
    "NoticeFor",
    "OnNotice",
    "PeerStats",
    "SenderMismatch",
    "TcpConfig",
    "TcpTransport",
    "backoff_delay_s",
    "format_address",
    "parse_address",
    "preferred_loop_factory",
]


def _describe_ids(node_ids: frozenset[int]) -> str:
    if not node_ids:
        return "no node"
    return "node " + ", ".join(str(i) for i in sorted(node_ids))


async def _read_challenge(reader: asyncio.StreamReader) -> bytes:
    """The nonce of the acceptor's ``Challenge`` frame; ``HandshakeRejected`` if it is not one."""
    length, version = HEADER.unpack(await reader.readexactly(HEADER_BYTES))
    if version != FRAME_VERSION or not 1 < length <= CHALLENGE_BYTES_MAX:
        raise HandshakeRejected("proof", f"expected a challenge, got a {length}-byte frame")
    payload = await reader.readexactly(length - 1)
    try:
        return msgspec.msgpack.decode(payload, type=Challenge).nonce
    except msgspec.DecodeError:  # ValidationError included
        raise HandshakeRejected("proof", "the acceptor's challenge is malformed") from None


async def _read_refusal(
    reader: asyncio.StreamReader, codec: Codec[M], rest_timeout_s: float
) -> Refusal | None:
    """The acceptor's ``Refusal``, if the first bytes it sends back are one; ``None`` at EOF.

    ``EOFError`` (a cut frame), ``TimeoutError`` (the rest of the frame not within
    ``rest_timeout_s`` of its first bytes) or ``ProtocolError`` for anything else: no correct
    acceptor sends other bytes on a connection it accepted."""
    header = await reader.read(HEADER_BYTES)
    if not header:
        return None
    async with asyncio.timeout(rest_timeout_s):
        if len(header) < HEADER_BYTES:
            header += await reader.readexactly(HEADER_BYTES - len(header))
        length, version = HEADER.unpack(header)
        if version != FRAME_VERSION or not 1 < length <= REFUSAL_BYTES_MAX:
            raise ProtocolError(f"expected a refusal, got a {length}-byte frame")
        return codec.decode_refusal(await reader.readexactly(length - 1))
