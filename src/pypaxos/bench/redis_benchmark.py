"""Run Debian's ``redis-benchmark`` (package redis-tools) and read its ``--csv`` output.

``redis-benchmark -n N`` sends a fixed number of requests, not a duration, so ``requests_for``
sizes N from the rate an earlier run measured: the first (warm-up) run of a point uses a small N
and the counted runs that follow last about the wanted duration.  Keys are random in
``[0, keyspace)`` (``-r``) and values ``value_bytes`` long (``-d``).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from dataclasses import dataclass

TOOL = "redis-benchmark"


class ToolMissingError(Exception):
    """A program the benchmark needs is not installed."""


class BenchmarkAbortedError(RuntimeError):
    """``redis-benchmark`` stopped before its summary (it exits at the first error reply,
    e.g. ``-TRYAGAIN``); ``output`` is what it printed until then."""

    def __init__(self, message: str, output: bytes) -> None:
        super().__init__(message)
        self.output = output


@dataclass(frozen=True, slots=True)
class RedisBenchmarkResult:
    test: str
    rps: float
    avg_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int

    def as_json(self) -> dict[str, object]:
        return {
            "test": self.test,
            "throughput": self.rps,
            "avg_us": self.avg_ms * 1000,
            "p50_us": self.p50_ms * 1000,
            "p99_us": self.p99_ms * 1000,
            "max_us": self.max_ms * 1000,
            "requests": self.requests,
        }


def tool_path() -> str:
    path = shutil.which(TOOL)
    if path is None:
        raise ToolMissingError(
            f"{TOOL} not found: install Debian's redis-tools (`apt-get install redis-tools`)"
        )
    return path


def requests_for(rate_per_s: float, duration_s: float, clients: int, pipeline: int) -> int:
    """``-n`` for a run of about ``duration_s`` at ``rate_per_s``; at least 20 per slot."""
    return max(int(rate_per_s * duration_s), 20 * clients * pipeline, 100)


def command_line(
    port: int,
    test: str,
    requests: int,
    clients: int,
    pipeline: int,
    value_bytes: int = 128,
    keyspace: int = 100_000,
    host: str = "127.0.0.1",
    csv: bool = True,
) -> list[str]:
    return [
        tool_path(),
        "-h", host, "-p", str(port), "-t", test, "-n", str(requests),
        "-c", str(clients), "-P", str(pipeline), "-d", str(value_bytes),
        "-r", str(keyspace), *(["--csv"] if csv else []),
    ]  # fmt: skip


def parse_csv(text: str, requests: int) -> list[RedisBenchmarkResult]:
    """The rows of ``redis-benchmark --csv`` (header ``"test","rps","avg_latency_ms",...``)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    results = []
    for row in rows:
        if not row.get("test") or not row.get("rps"):
            continue
        results.append(
            RedisBenchmarkResult(
                test=row["test"].split()[0].lower(),
                rps=float(row["rps"]),
                avg_ms=float(row.get("avg_latency_ms") or "nan"),
                p50_ms=float(row.get("p50_latency_ms") or "nan"),
                p99_ms=float(row.get("p99_latency_ms") or "nan"),
                max_ms=float(row.get("max_latency_ms") or "nan"),
                requests=requests,
            )
        )
    return results


_SUMMARY = re.compile(
    r"====== (\S+) ======.*?throughput summary: ([0-9.]+) requests per second.*?"
    r"avg\s+min\s+p50\s+p95\s+p99\s+max\s+([0-9.]+)\s+[0-9.]+\s+([0-9.]+)\s+[0-9.]+\s+"
    r"([0-9.]+)\s+([0-9.]+)",
    re.DOTALL,
)


def parse_summary(text: str, requests: int) -> list[RedisBenchmarkResult]:
    """The ``Summary:`` block of each test in ``redis-benchmark``'s plain (not ``--csv``)
    output, which it prints after its progress lines."""
    return [
        RedisBenchmarkResult(
            test=match.group(1).lower(),
            rps=float(match.group(2)),
            avg_ms=float(match.group(3)),
            p50_ms=float(match.group(4)),
            p99_ms=float(match.group(5)),
            max_ms=float(match.group(6)),
            requests=requests,
        )
        for match in _SUMMARY.finditer(text)
    ]


def run(
    port: int,
    test: str,
    requests: int,
    clients: int,
    pipeline: int,
    value_bytes: int = 128,
    timeout_s: float = 300.0,
    keyspace: int = 100_000,
) -> RedisBenchmarkResult:
    """One ``redis-benchmark`` run of one test (``set`` or ``get``)."""
    command = command_line(port, test, requests, clients, pipeline, value_bytes, keyspace)
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    results = parse_csv(done.stdout, requests)
    if done.returncode != 0 or not results:
        raise RuntimeError(
            f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-500:]}"
        )
    return results[0]


def run_with_progress(
    port: int,
    test: str,
    requests: int,
    clients: int,
    pipeline: int,
    value_bytes: int = 128,
    timeout_s: float = 300.0,
    keyspace: int = 100_000,
) -> tuple[RedisBenchmarkResult, bytes]:
    """One run in the tool's plain output mode, which prints a progress line every 250 ms
    (``stall.interval_rates`` reads them) before its summary; returns the summary and the
    whole output.  (``--csv`` output carries no progress lines.)"""
    command = command_line(
        port, test, requests, clients, pipeline, value_bytes, keyspace, csv=False
    )
    done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
    stdout = done.stdout.decode(errors="replace").replace("\r", "\n")
    results = parse_summary(stdout, requests)
    if done.returncode != 0 or not results:
        stderr = done.stderr.decode(errors="replace").strip()
        raise BenchmarkAbortedError(
            f"{' '.join(command)} failed ({done.returncode}): {stderr[-500:]}", done.stdout
        )
    return results[0], done.stdout
