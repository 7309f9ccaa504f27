"""Stall detection: the longest interval in which no write committed, and leader changes.

Three independent views of one run, since each has a blind spot:

* ``InfoPoller`` asks every node ``INFO paxos`` every ``interval_s`` over its own persistent
  connection and records ``(time, node, commit_index, ballot, leader_id)``.  ``progress_gaps``
  turns the samples into the times at which the cluster's highest known commit index moved and
  the longest interval between two such moves (its resolution is the poll interval: a steady
  stream shows gaps of about one interval).  A node whose event loop is stuck answers late; the
  poll waits for it, so the stuck time shows as a gap, not as a missing sample.  The ballots of
  nodes answering as leader give the leader changes (``leader_changes``); a candidate's ballot
  that won nothing is not counted.  Polling can miss a leader that lived less than one
  interval, so the count is a lower bound.
* ``WriteProbe`` is a client of its own doing one timestamped ``SET`` at a time; the longest
  interval between two acknowledged probe writes is the stall a client saw.  It needs nothing
  from the server beyond ``SET``, so it measures redis-server the same way.
* ``interval_rates`` parses ``redis-benchmark``'s own progress lines (one every 250 ms, in its
  plain output; ``--csv`` has none): the intervals in which it saw no request complete.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pypaxos.client.replies import ErrorReply, ReplyParser, ReplyProtocolError
from pypaxos.transport.resp import encode_command

POLL_INTERVAL_S = 0.05
POLL_TIMEOUT_S = 30.0  # a reply later than this drops the connection (a new one is opened)
PROBE_INTERVAL_S = 0.01
REDIS_BENCHMARK_INTERVAL_S = 0.25  # redis-benchmark prints its rate four times a second


@dataclass(frozen=True, slots=True)
class InfoSample:
    """One node's answer to ``INFO paxos`` and when it arrived (``time.monotonic``)."""

    at_s: float
    node: str
    commit_index: int
    ballot: str
    leader_id: str
    role: str = ""


@dataclass(frozen=True, slots=True)
class Gaps:
    """Where the cluster's commit index moved, and the longest interval between two moves."""

    moves: int
    longest_s: float
    longest_from_s: float  # when the longest gap began (same clock as the samples)
    over_100ms: int  # gaps longer than 100 ms
    # (start, length) of each gap longer than 100 ms, in seconds: to line them up with the
    # nodes' own timings (the same monotonic clock as the nodes' ``slow batch`` lines)
    spans_over_100ms: tuple[tuple[float, float], ...] = ()

    def as_json(self) -> dict[str, float | list[list[float]]]:
        return {
            "moves": self.moves,
            "longest_s": self.longest_s,
            "longest_from_s": self.longest_from_s,
            "over_100ms": self.over_100ms,
            "spans_over_100ms": [list(span) for span in self.spans_over_100ms],
        }


def longest_gap(times_s: Sequence[float]) -> Gaps:
    """The longest interval between consecutive ``times_s`` (sorted first), and how many
    intervals exceed 100 ms; no interval (fewer than two times) gives 0."""
    ordered = sorted(times_s)
    longest, began = 0.0, ordered[0] if ordered else 0.0
    spans: list[tuple[float, float]] = []
    for earlier, later in itertools.pairwise(ordered):
        gap = later - earlier
        if gap > 0.1:
            spans.append((earlier, gap))
        if gap > longest:
            longest, began = gap, earlier
    return Gaps(len(ordered), longest, began, len(spans), tuple(spans))


def progress_times(samples: Sequence[InfoSample]) -> list[float]:
    """The times at which a sample showed a commit index above every one seen before it on
    any node: the cluster's commit point moving.  The first sample sets the starting point."""
    times: list[float] = []
    highest: int | None = None
    for sample in sorted(samples, key=lambda s: s.at_s):
        if highest is None:
            highest = sample.commit_index
        elif sample.commit_index > highest:
            highest = sample.commit_index
            times.append(sample.at_s)
    return times


def progress_gaps(samples: Sequence[InfoSample]) -> Gaps:
    """``longest_gap`` over ``progress_times``: the run's longest interval without a commit,
    from the first to the last time the commit point moved."""
    return longest_gap(progress_times(samples))


def leader_changes(samples: Sequence[InfoSample]) -> int:
    """Leaders seen after the first one: the distinct ballots of nodes answering as leader
    (a candidate's new ballot is an election started, not a leader; samples without a role
    count every ballot)."""
    known = any(s.role for s in samples)
    ballots = {s.ballot for s in samples if s.ballot and (not known or s.role == "leader")}
    return max(len(ballots) - 1, 0)


def parse_info(text: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.decode(errors="replace").splitlines():
        name, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            fields[name.strip()] = value.strip()
    return fields


async def _roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: ReplyParser, wire: bytes
) -> object:
    writer.write(wire)
    while True:
        replies = parser.feed(await reader.read(65536) or b"")
        if replies:
            return replies[0]
        if reader.at_eof():
            raise ConnectionError("connection closed")


async def _end(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel ``tasks`` and wait until they have ended, cancelling again while one is still
    running (a cancellation can be lost when it races a completing await), without taking
    this task's own cancellation."""
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=1.0)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved, so an error in a detector is not reported at exit


@dataclass(slots=True)
class InfoPoller:
    """Polls ``INFO paxos`` of every address in ``addresses`` until ``stop``."""

    addresses: Sequence[str]
    interval_s: float = POLL_INTERVAL_S
    samples: list[InfoSample] = field(default_factory=list)
    failures: int = 0
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._poll(a)) for a in self.addresses]

    async def stop(self) -> list[InfoSample]:
        await _end(self._tasks)
        return self.samples

    def _record(self, address: str, info: dict[str, str]) -> None:
        commit = info.get("commit_index", "")
        if commit.isdigit():
            ballot, leader = info.get("ballot", ""), info.get("leader_id", "")
            role = info.get("paxos_role", "")
            sample = InfoSample(time.monotonic(), address, int(commit), ballot, leader, role)
            self.samples.append(sample)

    async def _poll(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        wire = encode_command(b"INFO", b"paxos")
        while True:
            try:
                async with asyncio.timeout(POLL_TIMEOUT_S):
                    reader, writer = await asyncio.open_connection(host, int(port))
            except (OSError, TimeoutError):
                self.failures += 1
                await asyncio.sleep(self.interval_s)
                continue
            parser = ReplyParser()
            try:
                while True:
                    asked = time.monotonic()
                    async with asyncio.timeout(POLL_TIMEOUT_S):
                        reply = await _roundtrip(reader, writer, parser, wire)
                    if isinstance(reply, bytes):
                        self._record(address, parse_info(reply))
                    await asyncio.sleep(max(self.interval_s - (time.monotonic() - asked), 0))
            except (OSError, TimeoutError, ReplyProtocolError):
                self.failures += 1
                await asyncio.sleep(self.interval_s)
            finally:
                writer.close()


@dataclass(slots=True)
class WriteProbe:
    """One ``SET probe:N <time>`` at a time to ``address``, every ``interval_s`` at most;
    records when each acknowledged write's reply arrived and its latency."""

    address: str
    interval_s: float = PROBE_INTERVAL_S
    acked_s: list[float] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    errors: int = 0
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await _end([self._task] if self._task is not None else [])

    def gaps(self) -> Gaps:
        return longest_gap(self.acked_s)

    def max_latency_s(self) -> float:
        return max(self.latencies_s, default=0.0)

    async def _run(self) -> None:
        host, _, port = self.address.rpartition(":")
        index = 0
        while True:
            try:
                reader, writer = await asyncio.open_connection(host, int(port))
            except OSError:
                self.errors += 1
                await asyncio.sleep(self.interval_s)
                continue
            parser = ReplyParser()
            try:
                while True:
                    began = time.monotonic()
                    wire = encode_command(b"SET", b"probe:%d" % (index % 64), b"%.6f" % began)
                    reply = await _roundtrip(reader, writer, parser, wire)
                    done = time.monotonic()
                    index += 1
                    if isinstance(reply, ErrorReply):
                        self.errors += 1
                    else:
                        self.acked_s.append(done)
                        self.latencies_s.append(done - began)
                    await asyncio.sleep(max(self.interval_s - (done - began), 0))
            except (OSError, ReplyProtocolError):
                self.errors += 1
                await asyncio.sleep(self.interval_s)
            finally:
                writer.close()


_RATE = re.compile(rb"rps=(-?[0-9.]+|-?nan)")


def interval_rates(stderr: bytes) -> list[float]:
    """The per-interval rates ``redis-benchmark`` printed (``SET: rps=1234.5 (overall: ...``,
    separated by carriage returns), in order; ``nan`` counts as 0."""
    rates = []
    for match in _RATE.finditer(stderr):
        text = match.group(1)
        value = float(text) if b"nan" not in text else 0.0
        rates.append(value)
    return rates


_OVERALL = re.compile(rb"rps=\S+ \(overall: ([0-9.]+)\)")


def overall_rate(output: bytes) -> float | None:
    """The last ``overall`` rate ``redis-benchmark`` printed: its throughput so far, the only
    figure left when it stopped at an error before its summary."""
    found = _OVERALL.findall(output)
    return float(found[-1]) if found else None


def zero_intervals(rates: Sequence[float]) -> tuple[int, float]:
    """How many intervals had no completed request, and the longest run of them in seconds,
    ignoring the leading ones (before the first request completes)."""
    first = next((i for i, r in enumerate(rates) if r > 0), len(rates))
    last = max((i for i, r in enumerate(rates) if r > 0), default=-1)
    zeros, run, longest = 0, 0, 0
    for rate in rates[first : last + 1]:
        if rate <= 0:
            zeros += 1
            run += 1
            longest = max(longest, run)
        else:
            run = 0
    return zeros, longest * REDIS_BENCHMARK_INTERVAL_S
