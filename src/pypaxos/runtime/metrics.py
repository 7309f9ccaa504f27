"""Prometheus metrics of one node, served on the member's ``metrics`` address at ``/metrics``,
beside the health probes ``/health``, ``/ready`` and ``/live`` (``runtime.health``).

Every node has its own ``CollectorRegistry`` (not prometheus-client's global one), so several
nodes in one process (the in-process test cluster) never share or clash on series.  The
endpoint is a tiny HTTP/1.1 server (``asyncio.start_server``) on the node's own event loop: no
extra thread, and a scrape sees values between two batches, never half-way through one.  Not
aiohttp: importing it took most of a second of every node's start-up (a restarted node answers
that much later), for one ``GET`` that needs a request line and a ``Content-Length``.

Series (all prefixed ``pypaxos_``):

* ``commands_committed_total``: client commands applied here (each command of a batch);
  ``rate()`` of it is the commit rate.
* ``commit_latency_seconds``: histogram, from a client command's arrival at this node to its
  reply (including forwarding to the leader and back).
* ``fsync_seconds``: histogram of ``storage.sync()`` durations, one per batch (group commit).
* ``leader_changes_total``: times this node saw the leader change (a new leader id or ballot).
* ``log_records``: records in the write-ahead log (snapshots compact it).
* ``role``: 1 for the node's current role (``leader``, ``follower``, ``candidate``), 0 else.
* ``applied_index``, ``ballot_round``: progress and the ballot round the node knows.
* ``reads_total{path}``: the node's clients' read commands by the path that served them
  (``READ_PATHS``: ``read-index`` and ``lease`` on this node as leader, ``follower`` from its
  own state, ``forwarded`` to the leader, ``stale`` after ``READONLY``, ``log``); summed over
  the nodes, every client read counts once.  ``read_rounds_total``: confirmation rounds the
  node led for waiting reads.  Read at scrape time from plain integers the server, router and
  node keep, so the read path pays no metric call per read.
* ``healthy``, ``ready``: 1 or 0, as ``/health`` and ``/ready`` answer (``runtime.health``).
* ``process_resident_memory_bytes`` and the other ``process_*`` series of prometheus-client's
  process collector (memory, CPU seconds, open files).

A node without a metrics address never imports this module (``runtime.app``): the Prometheus
client and the HTTP modules it pulls in cost every start time and resident memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from ssl import SSLContext

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, Metric

from pypaxos.multi import Role, Status
from pypaxos.runtime.health import Health
from pypaxos.runtime.read_counts import READ_PATHS, ReadCounts
from pypaxos.transport.tcp import parse_address

log = logging.getLogger(__name__)

REQUEST_HEAD_BYTES_MAX = 16 * 1024
REQUEST_TIMEOUT_S = 10.0

LATENCY_BUCKETS_S = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
)


class _ReadCollector:
    """``reads_total`` and ``read_rounds_total`` from ``NodeMetrics.read_counts`` at scrape."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self.metrics = metrics

    def _families(self, counts: ReadCounts | None) -> list[Metric]:
        reads = CounterMetricFamily(
            "pypaxos_reads", "Read commands served, by path", labels=["path"]
        )
        rounds = CounterMetricFamily(
            "pypaxos_read_rounds", "Confirmation rounds led for waiting reads"
        )
        if counts is not None:
            for path in READ_PATHS:
                reads.add_metric([path], counts.by_path.get(path, 0))
            rounds.add_metric([], counts.rounds)
        return [reads, rounds]

    def describe(self) -> Iterator[Metric]:
        return iter(self._families(None))

    def collect(self) -> Iterator[Metric]:
        source = self.metrics.read_counts
        return iter(self._families(None if source is None else source()))


class NodeMetrics:
    """The metric objects of one node, in their own registry."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.commands_committed = Counter(
            "pypaxos_commands_committed", "Commands applied by this node", registry=reg
        )
        self.commit_latency = Histogram(
            "pypaxos_commit_latency_seconds",
            "Client command arrival to reply",
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.fsync_latency = Histogram(
            "pypaxos_fsync_seconds",
            "Duration of one storage sync (one per batch)",
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self.leader_changes = Counter(
            "pypaxos_leader_changes", "Leader changes seen by this node", registry=reg
        )
        self.log_records = Gauge(
            "pypaxos_log_records", "Records in the write-ahead log", registry=reg
        )
        self.log_retained_slots = Gauge(
            "pypaxos_log_retained_slots", "Decided log values kept in memory", registry=reg
        )
        self.log_retained_bytes = Gauge(
            "pypaxos_log_retained_bytes",
            "Bytes of commands in the decided log values kept in memory",
            registry=reg,
        )
        self.sessions = Gauge(
            "pypaxos_sessions", "Clients' exactly-once sessions in the state machine", registry=reg
        )
        self.role = Gauge("pypaxos_role", "1 for the current role", ["role"], registry=reg)
        self.applied_index = Gauge("pypaxos_applied_index", "Slots applied", registry=reg)
        self.ballot_round = Gauge("pypaxos_ballot_round", "Round of the ballot", registry=reg)
        self.healthy = Gauge("pypaxos_healthy", "1 if /health answers 200", registry=reg)
        self.ready = Gauge("pypaxos_ready", "1 if /ready answers 200", registry=reg)
        ProcessCollector(registry=reg)
        for role in Role:
            self.role.labels(role.value).set(1 if role is Role.FOLLOWER else 0)
        # Set by the node once its server and router exist (``runtime.app``).
        self.read_counts: Callable[[], ReadCounts] | None = None
        reg.register(_ReadCollector(self))

    def committed(self, commands: int) -> None:
        self.commands_committed.inc(commands)

    def observe_fsync(self, seconds: float, log_records: int) -> None:
        self.fsync_latency.observe(seconds)
        self.log_records.set(log_records)

    def observe_commit(self, seconds: float) -> None:
        self.commit_latency.observe(seconds)

    def status_changed(self, old: Status, new: Status) -> None:
        if new.role is not old.role:
            for role in Role:
                self.role.labels(role.value).set(1 if role is new.role else 0)
        if new.leader_id is not None and (new.leader_id, new.ballot) != (
            old.leader_id,
            old.ballot,
        ):
            self.leader_changes.inc()
        self.ballot_round.set(max(new.ballot.round, 0))

    def refresh(self, status: Status, log_records: int, health: Health | None = None) -> None:
        """Gauges that are cheap to read at scrape time."""
        self.applied_index.set(status.applied_index)
        self.log_records.set(log_records)
        if health is not None:
            self.healthy.set(1 if health.healthy else 0)
            self.ready.set(1 if health.ready else 0)

    def refresh_memory(self, retained_slots: int, retained_bytes: int, sessions: int) -> None:
        """The memory bound's gauges: the log kept in memory and the sessions."""
        self.log_retained_slots.set(retained_slots)
        self.log_retained_bytes.set(retained_bytes)
        self.sessions.set(sessions)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """``GET /metrics`` on ``address`` (``refresh`` runs before every scrape), and the probes
    ``/health``, ``/ready`` (200 or 503 with the ``Health`` as JSON) and ``/live`` (200 while
    the event loop answers), when ``health`` is given.

    One request per connection (``Connection: close``), as Prometheus, curl and orchestrators'
    probes are happy with; any other path gets a 404 (405 for a method but ``GET``/``HEAD``), a
    request head that is too large or too slow is dropped."""

    def __init__(
        self,
        metrics: NodeMetrics,
        address: str,
        refresh: Callable[[], None] | None = None,
        *,
        ssl: SSLContext | None = None,  # HTTPS, for scrapers that speak it (``[tls] metrics``)
        health: Callable[[], Health] | None = None,
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.ssl = ssl
        self.host, self.port = parse_address(address)
        self._refresh = refresh
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve,
            self.host,
            self.port,
            limit=REQUEST_HEAD_BYTES_MAX,
            ssl=self.ssl,
            ssl_handshake_timeout=REQUEST_TIMEOUT_S if self.ssl else None,
        )
        log.debug("node %d: metrics on %s:%d", self.metrics.node_id, self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(self._answer(head))
                await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the scraper went away or sent garbage: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _answer(self, head: bytes) -> bytes:
        method, _, rest = head.partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0]
        probes = (b"/health", b"/ready", b"/live") if self.health is not None else ()
        if path != b"/metrics" and path not in probes:
            return _response(b"404 Not Found", b"text/plain", b"not found\n")
        if method not in (b"GET", b"HEAD"):
            return _response(b"405 Method Not Allowed", b"text/plain", b"GET only\n")
        if path == b"/live":
            answer = _response(b"200 OK", b"text/plain", b"live\n")
        elif path in probes:
            assert self.health is not None
            health = self.health()
            passed = health.healthy if path == b"/health" else health.ready
            status = b"200 OK" if passed else b"503 Service Unavailable"
            answer = _response(status, b"application/json", health.to_json())
        else:
            if self._refresh is not None:
                self._refresh()
            exposition = self.metrics.exposition()
            answer = _response(b"200 OK", CONTENT_TYPE_LATEST.encode(), exposition)
        if method == b"HEAD":
            return answer.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
        return answer


def _response(status: bytes, content_type: bytes, body: bytes) -> bytes:
    head = (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type
        + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
    )  # fmt: skip
    return head + body
