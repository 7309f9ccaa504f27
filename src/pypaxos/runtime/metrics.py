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

The series are plain numbers until a scrape turns them into Prometheus metric families: the
Prometheus client, and the HTTP and email modules it imports, cost start time and resident
memory, so a node loads it at its first scrape, and a node without a metrics address makes no
``NodeMetrics`` at all (``runtime.app``).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Callable, Iterator
from ssl import SSLContext
from typing import TYPE_CHECKING

from pypaxos.multi import Role, Status
from pypaxos.runtime.health import Health
from pypaxos.runtime.read_counts import READ_PATHS, ReadCounts
from pypaxos.transport.tcp import parse_address

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

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


class _Histogram:
    """Observations counted into fixed buckets (each bucket its own count, summed into
    Prometheus's cumulative ``le`` buckets at scrape time), their sum and their count."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, observations at or below it)`` per bound, then ``+Inf``."""
        running, out = 0, []
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class NodeMetrics:
    """The series of one node, kept as plain numbers and turned into Prometheus metric
    families only when scraped: an update on the write path is an addition, and the Prometheus
    client (with the HTTP and email modules it imports) is loaded at the first scrape, not at
    start.  Each node has its own registry, made at that scrape."""

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.commands_committed = 0
        self.commit_latency = _Histogram(LATENCY_BUCKETS_S)
        self.fsync_latency = _Histogram(LATENCY_BUCKETS_S)
        self.leader_changes = 0
        self.log_records = 0
        self.log_retained_slots = 0
        self.log_retained_bytes = 0
        self.sessions = 0
        self.role = Role.FOLLOWER
        self.applied_index = 0
        self.ballot_round = 0
        self.healthy = 0
        self.ready = 0
        # Set by the node once its server and router exist (``runtime.app``).
        self.read_counts: Callable[[], ReadCounts] | None = None
        self._registry: CollectorRegistry | None = None

    def committed(self, commands: int) -> None:
        self.commands_committed += commands

    def observe_fsync(self, seconds: float, log_records: int) -> None:
        self.fsync_latency.observe(seconds)
        self.log_records = log_records

    def observe_commit(self, seconds: float) -> None:
        self.commit_latency.observe(seconds)

    def status_changed(self, old: Status, new: Status) -> None:
        self.role = new.role
        if new.leader_id is not None and (new.leader_id, new.ballot) != (
            old.leader_id,
            old.ballot,
        ):
            self.leader_changes += 1
        self.ballot_round = max(new.ballot.round, 0)

    def refresh(self, status: Status, log_records: int, health: Health | None = None) -> None:
        """Gauges that are cheap to read at scrape time."""
        self.applied_index = status.applied_index
        self.log_records = log_records
        if health is not None:
            self.healthy = 1 if health.healthy else 0
            self.ready = 1 if health.ready else 0

    def refresh_memory(self, retained_slots: int, retained_bytes: int, sessions: int) -> None:
        """The memory bound's gauges: the log kept in memory and the sessions."""
        self.log_retained_slots = retained_slots
        self.log_retained_bytes = retained_bytes
        self.sessions = sessions

    def exposition(self) -> bytes:
        """The Prometheus text exposition of every series (loads the client the first time)."""
        from prometheus_client import generate_latest

        return generate_latest(self._scrape_registry())

    @staticmethod
    def content_type() -> str:
        from prometheus_client import CONTENT_TYPE_LATEST

        return CONTENT_TYPE_LATEST

    def _scrape_registry(self) -> CollectorRegistry:
        if self._registry is None:
            from prometheus_client import CollectorRegistry, ProcessCollector

            registry = CollectorRegistry(auto_describe=True)
            ProcessCollector(registry=registry)
            registry.register(_NodeCollector(self))
            self._registry = registry
        return self._registry


class _NodeCollector:
    """The node's own series, built from ``NodeMetrics`` 's numbers at each scrape."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterator[Metric]:
        return iter(self._families(with_reads=False))

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(with_reads=True))

    def _families(self, with_reads: bool) -> list[Metric]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        m = self.metrics
        role = GaugeMetricFamily("pypaxos_role", "1 for the current role", labels=["role"])
        for each in Role:
            role.add_metric([each.value], 1 if each is m.role else 0)
        gauges = (
            ("pypaxos_log_records", "Records in the write-ahead log", m.log_records),
            ("pypaxos_log_retained_slots", "Decided log values kept in memory",
             m.log_retained_slots),
            ("pypaxos_log_retained_bytes",
             "Bytes of commands in the decided log values kept in memory", m.log_retained_bytes),
            ("pypaxos_sessions", "Clients' exactly-once sessions in the state machine",
             m.sessions),
            ("pypaxos_applied_index", "Slots applied", m.applied_index),
            ("pypaxos_ballot_round", "Round of the ballot", m.ballot_round),
            ("pypaxos_healthy", "1 if /health answers 200", m.healthy),
            ("pypaxos_ready", "1 if /ready answers 200", m.ready),
        )  # fmt: skip
        families: list[Metric] = [
            CounterMetricFamily(
                "pypaxos_commands_committed", "Commands applied by this node",
                value=m.commands_committed,
            ),
            HistogramMetricFamily(
                "pypaxos_commit_latency_seconds", "Client command arrival to reply",
                buckets=m.commit_latency.cumulative(), sum_value=m.commit_latency.sum,
            ),
            HistogramMetricFamily(
                "pypaxos_fsync_seconds", "Duration of one storage sync (one per batch)",
                buckets=m.fsync_latency.cumulative(), sum_value=m.fsync_latency.sum,
            ),
            CounterMetricFamily(
                "pypaxos_leader_changes", "Leader changes seen by this node",
                value=m.leader_changes,
            ),
            role,
            *(GaugeMetricFamily(name, text, value=value) for name, text, value in gauges),
        ]  # fmt: skip
        reads = CounterMetricFamily(
            "pypaxos_reads", "Read commands served, by path", labels=["path"]
        )
        rounds = CounterMetricFamily(
            "pypaxos_read_rounds", "Confirmation rounds led for waiting reads"
        )
        source = m.read_counts
        if with_reads and source is not None:
            counts = source()
            for path in READ_PATHS:
                reads.add_metric([path], counts.by_path.get(path, 0))
            rounds.add_metric([], counts.rounds)
        return [*families, reads, rounds]


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
            answer = _response(b"200 OK", self.metrics.content_type().encode(), exposition)
        if method == b"HEAD":
            return answer.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
        return answer


def _response(status: bytes, content_type: bytes, body: bytes) -> bytes:
    head = (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: " + content_type
        + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
    )  # fmt: skip
    return head + body
