"""Large data: throughput, stalls, memory per key and recovery at growing keyspaces.

For each size N (keys of 128-byte values, as ``redis-benchmark -d 128``) and each system (a
local pypaxos cluster, ``--fsync always``; a ``redis-server`` with ``appendfsync always``), on a
fresh data directory:

1. fill: every key ``key:000000000000`` .. ``key:{N-1}`` (the names ``redis-benchmark -r N``
   draws from), written once by ``fill`` over a few pipelined connections;
2. load: ``redis-benchmark -t set -r N -d 128 -c 32 -P 32`` for about ``run_s`` seconds, the
   throughput at that size;
3. during both, the stall detectors of ``pypaxos.bench.stall``: the longest interval without a
   commit (pypaxos: ``INFO paxos`` every 50 ms on each node), the longest interval between two
   acknowledged writes of an independent probe client (both systems), redis-benchmark's own
   quarter-second intervals without a reply, and leader changes (new ballots);
4. memory: each process's resident set (``VmRSS``) after the load, per key; and again
   ``SETTLE_S`` later (``settled_*``: a node compacts its log and gives freed heap back once
   the load stops, so the first reading holds some of the load's transient memory);
5. recovery: a follower killed (SIGKILL) and restarted, timed until it answers and until it has
   applied everything committed before it was killed; the same follower's directory wiped and the
   node started again, timed until it is caught up, with the bytes of the snapshot it received
   (whatever files named ``snapshot*`` its directory holds then, else the whole directory) over
   that time (the whole rebuild's rate: process start, recovery, transfer and catch-up), and
   the transfer alone as the node itself timed it (``INFO snapshot_receive_bytes`` over
   ``snapshot_receive_ms``, from its first chunk to the snapshot installed); and redis-server
   killed and started on its append-only file, timed until it serves.  Recovery is measured
   from outside, so it measures whatever the node does.  The nodes keep their compiled
   bytecode (``cached_bytecode``), as an installed package does: a restart is timed without
   compiling the node's modules again.

A size runs only when its memory, estimated from the bytes per key of the size before (or a
prior guess), fits in a fraction of the machine's available memory, and its disk need in the
free space; otherwise it is recorded as skipped with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pypaxos.bench import procstat, redis_benchmark, redis_server, stall
from pypaxos.client.aio import fetch_info
from pypaxos.cluster import processes
from pypaxos.cluster.local import ClusterError, LocalCluster
from pypaxos.runtime.config import LIMIT_KEYS, LOG_FILE, limit_range, write_config

Log = Callable[[str], None]
Json = dict[str, Any]

SIZE_NAMES = {"k": 1_000, "m": 1_000_000}
DEFAULT_SIZES = (100_000, 1_000_000, 10_000_000)
QUICK_SIZES = (10_000, 50_000)
PRIOR_BYTES_PER_KEY = 1024  # memory guess per key and process before the first size is measured
DISK_BYTES_PER_KEY = 600  # log, snapshot and its temporary copy, per node
FILL_CONNECTIONS = 8
FILL_BATCH = 256
RECOVERY_TIMEOUT_S = 900.0  # until a restarted node first answers and catches up
# Once it answers, how long its applied index may stand still: a minute, and a second more per
# 100,000 keys (a snapshot is installed at once after it has all arrived).
PROGRESS_TIMEOUT_S = 60.0
PROGRESS_KEYS_PER_S = 100_000
LOAD_ATTEMPTS = 2
KEY_DIGITS = 12  # redis-benchmark's __rand_int__ is 12 digits, zero-padded
SETTLE_S = 2.0  # after the load, until the second memory reading (both systems)


@contextlib.contextmanager
def cached_bytecode(cache_dir: Path) -> Iterator[None]:
    """Node processes started inside find the package's compiled bytecode under ``cache_dir``,
    as an installed package has it (compiled here first, as an installer does), and keep what
    they compile there.  A development shell's ``PYTHONDONTWRITEBYTECODE`` would otherwise make
    every start compile each module of the node again, and a restart or a rebuild would be
    timed with that compilation in it; and a first start that compiles leaves its garbage in
    the empty process's resident memory, which the memory per key counts."""
    names = ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(cache_dir)
    package_dir = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(package_dir)],
        check=False, stdout=subprocess.DEVNULL, timeout=300,
    )  # fmt: skip
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _quiet(_: str) -> None:
    pass


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"100k,1m,10m"`` (or plain integers) as key counts; raises ``ValueError``."""
    sizes = []
    for part in text.lower().split(","):
        part = part.strip()
        if not part:
            continue
        scale = SIZE_NAMES.get(part[-1], 1)
        number = part[:-1] if part[-1] in SIZE_NAMES else part
        value = int(float(number) * scale)
        if value < 1:
            raise ValueError(f"a size must be at least 1 key, not {part!r}")
        sizes.append(value)
    if not sizes:
        raise ValueError("no sizes given")
    return tuple(sizes)


def size_name(keys: int) -> str:
    for suffix, scale in (("m", 1_000_000), ("k", 1_000)):
        if keys >= scale and keys % scale == 0:
            return f"{keys // scale}{suffix}"
    return str(keys)


def bytes_per_key(rss_kib: int, baseline_kib: int, keys: int) -> tuple[float, float]:
    """Resident bytes per key: all of it, and the growth over the empty process's."""
    if keys <= 0:
        return float("nan"), float("nan")
    return rss_kib * 1024 / keys, (rss_kib - baseline_kib) * 1024 / keys


@dataclass(frozen=True, slots=True)
class ScaleConfig:
    sizes: tuple[int, ...] = DEFAULT_SIZES
    systems: tuple[str, ...] = ("pypaxos", "redis")
    nodes: int = 3
    value_bytes: int = 128
    clients: int = 32
    pipeline: int = 32
    run_s: float = 20.0
    recovery: bool = True
    data_root: Path | None = None
    keep_logs: Path | None = None  # the nodes' logs are copied here before their dirs go
    memory_fraction: float = 0.7  # of MemAvailable a size may be estimated to need
    # ``[limits]`` keys written into the cluster's cluster.toml over the runtime's defaults
    # (``parse_limits``): an A/B of a limit needs no other tool.
    limits: dict[str, int] = field(default_factory=dict)
    log: Log = field(default=_quiet, compare=False)


class LimitsError(ValueError):
    """A ``--limits`` item that is not ``KEY=VALUE`` with a known ``[limits]`` key and an
    integer in its range."""

    def __init__(self, item: str, reason: str) -> None:
        super().__init__(f"--limits {item!r}: {reason}")
        self.item = item
        self.reason = reason


def parse_limits(text: str) -> dict[str, int]:
    """``KEY=VALUE[,KEY=VALUE]`` of ``[limits]`` keys (runtime.config ``LIMIT_KEYS``) as a
    dict; raises ``LimitsError`` for an unknown key, a value that is not an integer, one out
    of the key's range, or a key given twice."""
    limits: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value_text = item.partition("=")
        key = key.strip()
        if not sep:
            raise LimitsError(item, "not KEY=VALUE")
        if key not in LIMIT_KEYS:
            raise LimitsError(item, f"unknown [limits] key (known: {', '.join(LIMIT_KEYS)})")
        if key in limits:
            raise LimitsError(item, "given twice")
        try:
            value = int(value_text.strip())
        except ValueError:
            raise LimitsError(item, "the value is not an integer") from None
        lowest, highest = limit_range(key)
        if not lowest <= value <= highest:
            raise LimitsError(item, f"out of range [{lowest}, {highest}]")
        limits[key] = value
    return limits


# --- fill ------------------------------------------------------------------------------------


class FillError(Exception):
    """The server answered the fill with something that is not a SET reply."""


def set_commands(first: int, count: int, value: bytes) -> bytes:
    """``SET key:%012d value`` for ``count`` consecutive keys, as one pipelined write."""
    head = b"*3\r\n$3\r\nSET\r\n$%d\r\nkey:%%0%dd\r\n$%d\r\n" % (
        4 + KEY_DIGITS, KEY_DIGITS, len(value)
    )  # fmt: skip
    template = head + value.replace(b"%", b"%%") + b"\r\n"
    return b"".join(template % i for i in range(first, first + count))


def split_replies(buffer: bytes, wanted: int) -> tuple[list[bytes], bytes]:
    """Up to ``wanted`` one-line replies from ``buffer`` and what is left.  A ``SET`` is
    answered ``+OK`` or an error line, never anything longer; anything else is refused."""
    lines: list[bytes] = []
    start = 0
    while len(lines) < wanted:
        end = buffer.find(b"\r\n", start)
        if end < 0:
            break
        line = buffer[start:end]
        if line != b"+OK" and not line.startswith(b"-"):
            raise FillError(f"unexpected reply to SET: {line[:80]!r}")
        lines.append(line)
        start = end + 2
    return lines, buffer[start:]


@dataclass(slots=True)
class FillResult:
    keys: int
    seconds: float = 0.0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> Json:
        return {
            "keys": self.keys,
            "seconds": self.seconds,
            "rate": self.keys / self.seconds if self.seconds > 0 else float("nan"),
            "errors_retried": self.errors,
            "error_kinds": self.error_kinds,
        }


async def _fill_worker(
    host: str,
    port: int,
    queue: Iterator[tuple[int, int]],
    value: bytes,
    refused: list[int],
    result: FillResult,
) -> None:
    """One connection of ``fill``: takes batches from the shared ``queue`` until it is empty."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for first, count in queue:
            writer.write(set_commands(first, count, value))
            buffer, lines = b"", list[bytes]()
            while len(lines) < count:
                data = await reader.read(65536)
                if not data:
                    raise FillError("the server closed the connection")
                more, buffer = split_replies(buffer + data, count - len(lines))
                lines += more
            for offset, line in enumerate(lines):
                if line != b"+OK":
                    refused.append(first + offset)
                    kind = line[1:].split(b" ")[0].decode(errors="replace")
                    result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1
    finally:
        writer.close()


async def fill(
    address: str,
    keys: int,
    value_bytes: int = 128,
    connections: int = FILL_CONNECTIONS,
    batch: int = FILL_BATCH,
    attempts_max: int = 20,
) -> FillResult:
    """Write every key once (``key:000000000000`` ..), keys refused with an error reply are
    written again later; raises ``FillError`` when some are still refused after
    ``attempts_max`` rounds."""
    host, _, port = address.rpartition(":")
    value = b"x" * value_bytes
    result = FillResult(keys)
    pending: list[tuple[int, int]] = [(a, min(batch, keys - a)) for a in range(0, keys, batch)]
    began = time.monotonic()
    for _ in range(attempts_max):
        refused: list[int] = []
        queue = iter(pending)
        workers = (
            _fill_worker(host, int(port), queue, value, refused, result) for _ in range(connections)
        )
        await asyncio.gather(*workers)
        result.errors += len(refused)
        if not refused:
            result.seconds = time.monotonic() - began
            return result
        await asyncio.sleep(0.2)
        pending = [(index, 1) for index in sorted(refused)]
    raise FillError(f"{len(pending)} keys still refused after {attempts_max} rounds")


# --- the stall detectors around one phase ----------------------------------------------------


@dataclass(slots=True)
class Watch:
    """The stall detectors of one system, started once and read per phase."""

    probe: stall.WriteProbe
    poller: stall.InfoPoller | None
    phases: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def start(cls, probe_address: str, info_addresses: Sequence[str]) -> Watch:
        probe = stall.WriteProbe(probe_address)
        probe.start()
        poller = stall.InfoPoller(info_addresses) if info_addresses else None
        if poller is not None:
            poller.start()
        return cls(probe, poller)

    async def stop(self) -> None:
        await self.probe.stop()
        if self.poller is not None:
            await self.poller.stop()

    def summary(self, phase: str, rb_rates: Sequence[float] = ()) -> Json:
        began, ended = self.phases[phase]
        acked = [t for t in self.probe.acked_s if began <= t <= ended]
        # The probe's gap includes the time from the phase's start to its first ack and from
        # its last ack to the phase's end: a probe stuck throughout still shows.
        probe_gaps = stall.longest_gap([began, *acked, ended])
        out: Json = {
            "seconds": ended - began,
            "probe_acks": len(acked),
            "probe_gap": probe_gaps.as_json(),
            "probe_errors": self.probe.errors,
        }
        if self.poller is not None:
            samples = [s for s in self.poller.samples if began <= s.at_s <= ended]
            out["commit_gap"] = stall.progress_gaps(samples).as_json()
            out["leader_changes"] = stall.leader_changes(samples)
            out["info_samples"] = len(samples)
        if rb_rates:
            zeros, longest = stall.zero_intervals(rb_rates)
            out["rb_zero_intervals"] = zeros
            out["rb_longest_zero_s"] = longest
        out["worst_s"] = max(probe_gaps.longest_s, out.get("commit_gap", {}).get("longest_s", 0.0))
        return out


async def _phase(watch: Watch, name: str, work: Any) -> Any:
    began = time.monotonic()
    try:
        return await work
    finally:
        watch.phases[name] = (began, time.monotonic())


async def _load(port: int, keys: int, rate: float, cfg: ScaleConfig) -> tuple[Json, list[float]]:
    """``redis-benchmark`` for about ``run_s`` at ``rate``, tried again once when it stops at
    an error reply; a run that stopped both times reports the rate it reached until then."""
    requests = redis_benchmark.requests_for(rate, cfg.run_s, cfg.clients, cfg.pipeline)
    aborted: list[str] = []
    rates: list[float] = []
    partial: float | None = None
    for _ in range(LOAD_ATTEMPTS):
        try:
            result, progress = await asyncio.to_thread(
                redis_benchmark.run_with_progress, port, "set", requests, cfg.clients,
                cfg.pipeline, cfg.value_bytes, max(600.0, 20 * cfg.run_s), keys,
            )  # fmt: skip
        except redis_benchmark.BenchmarkAbortedError as error:
            aborted.append(str(error).strip().splitlines()[-1])
            rates += stall.interval_rates(error.output)
            reached = stall.overall_rate(error.output)
            partial = max(partial or 0.0, reached or 0.0) or partial
            cfg.log(f"redis-benchmark stopped: {aborted[-1]}")
            continue
        out = result.as_json()
        out["aborted"] = aborted
        return out, rates + stall.interval_rates(progress)
    nan = float("nan")
    out = {"throughput": partial if partial is not None else nan, "p50_us": nan,
           "p99_us": nan, "max_us": nan, "requests": requests, "aborted": aborted,
           "partial": True}  # fmt: skip
    return out, rates


# --- pypaxos ---------------------------------------------------------------------------------


async def _info(address: str) -> dict[str, str] | None:
    try:
        return await fetch_info(address, 2.0)
    except (OSError, TimeoutError):
        return None


async def _memory_breakdown(address: str) -> dict[str, int]:
    """``INFO``'s integer fields of one node's memory (the log kept, sessions, heap trims)
    and of its snapshots (taken and installed in this lifetime)."""
    info = await _info(address) or {}
    fields = ("log_retained_slots", "log_retained_bytes", "log_votes_in_memory", "sessions",
              "heap_trims", "snapshots_saved", "snapshots_installed")  # fmt: skip
    return {name: int(info[name]) for name in fields if str(info.get(name, "")).isdigit()}


async def _key_count(address: str) -> int:
    info = await _info(address)
    text = (info or {}).get("db0", "")
    fields = dict(part.split("=", 1) for part in text.split(",") if "=" in part)
    return int(fields.get("keys", "0"))


def _leaders_elected(cluster: LocalCluster) -> int:
    """``became leader`` lines in the nodes' logs so far: every election won, including one a
    poll of ``INFO`` was too slow to see."""
    count = 0
    for member in cluster.spec.members:
        with contextlib.suppress(OSError):
            text = cluster.spec.log_file(member.id).read_text(errors="replace")
            count += text.count("became leader")
    return count


def snapshot_bytes(node_dir: Path) -> tuple[int, int]:
    """The bytes of files named ``snapshot*`` (not ``*.tmp``) under ``node_dir``, and of the
    whole directory without the node's own log."""
    snapshots = whole = 0
    for path in node_dir.rglob("*"):
        if not path.is_file() or path.name == LOG_FILE:
            continue
        size = path.stat().st_size
        whole += size
        if path.name.startswith("snapshot") and not path.name.endswith(".tmp"):
            snapshots += size
    return snapshots, whole


class RecoveryStuckError(RuntimeError):
    """A restarted node did not catch up: no answer within the timeout, or an applied index
    that stopped moving for ``PROGRESS_TIMEOUT_S``."""


async def _wait_caught_up(
    address: str, goal: int, timeout_s: float, still_s: float = PROGRESS_TIMEOUT_S
) -> tuple[float | None, float]:
    """Seconds until ``address`` answers ``INFO``, and until its applied index reaches
    ``goal``; raises ``RecoveryStuckError`` at ``timeout_s``, or once the node answers but its
    applied index has not moved for ``still_s``."""
    began = time.monotonic()
    answered: float | None = None
    last_applied, moved_at = -1, began
    while (now_mono := time.monotonic()) - began < timeout_s:
        info = await _info(address)
        now = time.monotonic() - began
        if info is not None:
            answered = now if answered is None else answered
            text = info.get("applied_index", "")
            applied = int(text) if text.isdigit() else -1
            if applied >= goal:
                return answered, now
            if applied != last_applied:
                last_applied, moved_at = applied, now_mono
            elif now_mono - moved_at > still_s:
                raise RecoveryStuckError(
                    f"{address} stayed at index {applied} for {still_s:g} s (goal {goal})"
                )
        await asyncio.sleep(0.02)
    raise RecoveryStuckError(f"{address} did not reach index {goal} within {timeout_s:g} s")


def _log_errors(log_file: Path, limit: int = 3) -> list[str]:
    """The last distinct ERROR lines of a node's log (what explains a stuck recovery)."""
    try:
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return []
    found: list[str] = []
    for line in reversed(lines):
        text = line.partition(" ")[2]  # without the time, so repeats compare equal
        if " ERROR " in f" {text}" and text not in found:
            found.append(text)
            if len(found) == limit:
                break
    return found


async def _recover(
    cluster: LocalCluster, node_id: int, leader_id: int, wipe: bool, keys: int
) -> Json:
    """``_restart_follower``, a stuck recovery recorded (with the cluster's error lines)."""
    still_s = PROGRESS_TIMEOUT_S + keys / PROGRESS_KEYS_PER_S
    try:
        return await _restart_follower(cluster, node_id, leader_id, wipe, still_s)
    except RecoveryStuckError as error:
        errors = [e for m in cluster.spec.members for e in _log_errors(cluster.spec.log_file(m.id))]
        return {"node": node_id, "error": str(error), "log_errors": errors[:6],
                "caught_up_s": None, "transfer_mb_per_s": None}  # fmt: skip


async def _restart_follower(
    cluster: LocalCluster, node_id: int, leader_id: int, wipe: bool, still_s: float
) -> Json:
    """Kill follower ``node_id``, optionally wipe its directory, start it again and time it
    until it has applied what the leader had committed before the kill."""
    spec = cluster.spec
    leader = spec.member(leader_id).client
    info = await _info(leader)
    source_snapshot, _ = snapshot_bytes(spec.node_dir(leader_id))
    goal = int((info or {}).get("commit_index", "0") or 0)
    cluster.kill(node_id, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while processes.node_pids(spec, node_id) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    node_dir = spec.node_dir(node_id)
    kept_snapshot, kept_total = snapshot_bytes(node_dir)
    if wipe:
        for path in node_dir.iterdir():
            if path.name == LOG_FILE:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    # A wiped voter coming back is unsafe in general (it forgot its promises; the safe way is
    # remove + rejoin): this measures the transfer alone, with the explicit override.
    cluster.start_node(node_id, unsafe_empty_voter=wipe)
    answered_s, caught_up_s = await _wait_caught_up(
        spec.member(node_id).client, goal, RECOVERY_TIMEOUT_S, still_s
    )
    received_snapshot, received_total = snapshot_bytes(node_dir)
    for _ in range(50):  # a snapshot the node installed may reach its disk a moment later
        if not wipe or received_snapshot:
            break
        await asyncio.sleep(0.1)
        received_snapshot, received_total = snapshot_bytes(node_dir)
    out: Json = {
        "node": node_id, "goal_index": goal, "answered_s": answered_s,
        "caught_up_s": caught_up_s, "dir_bytes_before": kept_total,
        "snapshot_bytes_before": kept_snapshot, "snapshot_bytes_after": received_snapshot,
        "dir_bytes_after": received_total,
    }  # fmt: skip
    if wipe:
        # What had to cross: the state the leader's snapshot holds (the follower's own copy
        # once written, when larger: it may be a later one).
        moved = max(source_snapshot, received_snapshot)
        out["leader_snapshot_bytes"] = source_snapshot
        out["moved_bytes"] = moved
        # The whole rebuild's rate, from the process started to caught up.
        out["transfer_mb_per_s"] = moved / 1e6 / caught_up_s if moved and caught_up_s else None
        after_answer_s = caught_up_s - (answered_s or 0.0)
        out["transfer_mb_per_s_after_answer"] = (
            moved / 1e6 / after_answer_s if moved and after_answer_s > 0 else None
        )
        out.update(received_snapshot_timing(await _info(spec.member(node_id).client) or {}))
    return out


def received_snapshot_timing(info: dict[str, str]) -> Json:
    """The last snapshot a node installed from a peer, as its ``INFO`` times it: ms from the
    node's start to the first chunk, ms from there to the snapshot installed, its bytes, and
    those bytes over that time (``snapshot_transfer_mb_per_s``; None when none was timed)."""
    names = ("snapshot_first_chunk_ms", "snapshot_receive_ms", "snapshot_receive_bytes")
    out: Json = {name: int(info[name]) if info.get(name, "").isdigit() else None for name in names}
    received, receive_ms = out["snapshot_receive_bytes"], out["snapshot_receive_ms"]
    out["snapshot_transfer_mb_per_s"] = (
        received / 1e6 / (receive_ms / 1000) if received and receive_ms else None
    )
    return out


async def _pypaxos_size(keys: int, cfg: ScaleConfig, root: Path) -> Json:
    cluster = LocalCluster.create(
        root / "cluster", cfg.nodes, processes.find_free_base_port(cfg.nodes), "always"
    )
    out: Json = {"system": "pypaxos", "nodes": cfg.nodes, "fsync": "always"}
    if cfg.limits:
        cluster.spec = dataclasses.replace(
            cluster.spec, protocol={**cluster.spec.protocol, **cfg.limits}
        )
        write_config(cluster.spec)
        out["limits"] = dict(cfg.limits)
    try:
        leader = await cluster.up(timeout_s=60)
        pids = {m.id: processes.node_pids(cluster.spec, m.id)[0] for m in cluster.spec.members}
        node_pids = list(pids.values())
        baseline = {node: procstat.rss_kib(pid) for node, pid in pids.items()}
        addresses = cluster.spec.client_addresses
        watch = Watch.start(leader.client, addresses)
        try:
            cpu_start_s = procstat.cpu_seconds_with_children(node_pids)
            filled = await _phase(watch, "fill", fill(leader.client, keys, cfg.value_bytes))
            cpu_filled_s = procstat.cpu_seconds_with_children(node_pids)
            out["fill"] = filled.as_json()
            cfg.log(f"scale pypaxos {size_name(keys)}: filled at {out['fill']['rate']:,.0f}/s")
            port = int(leader.client.rpartition(":")[2])
            out["load"], rates = await _phase(
                watch, "load", _load(port, keys, out["fill"]["rate"], cfg)
            )
            cpu_loaded_s = procstat.cpu_seconds_with_children(node_pids)
        finally:
            await watch.stop()
        out["stall"] = {"fill": watch.summary("fill"), "load": watch.summary("load", rates)}
        # The node processes' CPU with their reaped children (snapshot writers), all nodes
        # together: per write, a measure that moves less with the machine's load than rates.
        # (a run that stopped at an error reply has no count: NaN; after one that was tried
        # again, the first attempt's writes are in the CPU but not in the count)
        load_json = out["load"]
        completed = 0 if load_json.get("partial") else int(load_json.get("requests", 0))
        out["node_cpu"] = {
            "fill_s": cpu_filled_s - cpu_start_s,
            "load_s": cpu_loaded_s - cpu_filled_s,
            "fill_us_per_key": procstat.cpu_us_per_op(cpu_start_s, cpu_filled_s, keys),
            "load_us_per_set": procstat.cpu_us_per_op(cpu_filled_s, cpu_loaded_s, completed),
        }
        out["leader_changes_logged"] = _leaders_elected(cluster) - 1  # the first one is no change
        rss = {node: procstat.rss_kib(pid) for node, pid in pids.items()}
        breakdown = {str(m.id): await _memory_breakdown(a) for m, a in zip(
            cluster.spec.members, addresses, strict=True)}  # fmt: skip
        counted = await _key_count(leader.client)
        per_node = {
            str(node): dict(zip(("bytes_per_key", "growth_bytes_per_key"),
                                bytes_per_key(rss[node], baseline[node], counted), strict=True))
            for node in rss
        }  # fmt: skip
        out["memory"] = {
            "keys": counted, "rss_kib": {str(n): k for n, k in rss.items()},
            "baseline_kib": {str(n): k for n, k in baseline.items()},
            "max_rss_kib": max(rss.values()), "per_node": per_node, "info": breakdown,
            "bytes_per_key": max(v["bytes_per_key"] for v in per_node.values()),
        }  # fmt: skip
        await asyncio.sleep(SETTLE_S)
        settled = {str(node): procstat.rss_kib(pid) for node, pid in pids.items()}
        out["memory"]["settled_rss_kib"] = settled
        out["memory"]["settled_bytes_per_key"] = max(settled.values()) * 1024 / counted
        load, worst = out["load"], max(out["stall"][p]["worst_s"] for p in ("fill", "load"))
        cfg.log(
            f"scale pypaxos {size_name(keys)}: {load['throughput']:,.0f} SET/s, worst stall "
            f"{worst * 1000:.0f} ms, leader changes "
            f"{sum(out['stall'][p].get('leader_changes', 0) for p in ('fill', 'load'))}, "
            f"{out['memory']['bytes_per_key']:.0f} B/key ({counted:,} keys)"
        )
        if cfg.recovery and leader.id is not None:
            follower = max(n for n in pids if n != leader.id)
            for name, wipe in (("restart", False), ("wipe", True)):
                out[name] = step = await _recover(cluster, follower, leader.id, wipe, keys)
                what = "wiped follower caught up" if wipe else "restarted follower caught up"
                if step.get("error"):
                    cfg.log(f"scale pypaxos {size_name(keys)}: {what}: no: {step['error']}; "
                            f"{step['log_errors'][:1]}")  # fmt: skip
                    break
                rate = (
                    f" ({step['transfer_mb_per_s'] or 0:.1f} MB/s whole rebuild, snapshot "
                    f"transfer {step.get('snapshot_transfer_mb_per_s') or 0:.1f} MB/s)"
                    if wipe else ""
                )  # fmt: skip
                cfg.log(f"scale pypaxos {size_name(keys)}: {what} in "
                        f"{step['caught_up_s']:.2f} s{rate}")  # fmt: skip
        return out
    finally:
        with contextlib.suppress(Exception):
            cluster.down(timeout_s=10)
        if cfg.keep_logs is not None:
            _keep_logs(cluster, cfg.keep_logs / size_name(keys))


def _keep_logs(cluster: LocalCluster, into: Path) -> None:
    """Copy each node's log into ``into`` (the data directories are removed after a size)."""
    into.mkdir(parents=True, exist_ok=True)
    for member in cluster.spec.members:
        source = cluster.spec.log_file(member.id)
        if source.exists():
            shutil.copyfile(source, into / f"node{member.id}.log")


# --- redis-server ----------------------------------------------------------------------------


async def _redis_size(keys: int, cfg: ScaleConfig, root: Path) -> Json:
    directory = root / "redis"
    directory.mkdir()
    process, port = redis_server.start(directory, "always")
    out: Json = {"system": "redis", "appendfsync": "always"}
    try:
        baseline = procstat.rss_kib(process.pid)
        address = f"127.0.0.1:{port}"
        watch = Watch.start(address, ())
        try:
            filled = await _phase(watch, "fill", fill(address, keys, cfg.value_bytes))
            out["fill"] = filled.as_json()
            out["load"], rates = await _phase(
                watch, "load", _load(port, keys, out["fill"]["rate"], cfg)
            )
        finally:
            await watch.stop()
        out["stall"] = {"fill": watch.summary("fill"), "load": watch.summary("load", rates)}
        rss = procstat.rss_kib(process.pid)
        counted = await asyncio.to_thread(_redis_dbsize, port)
        total, growth = bytes_per_key(rss, baseline, counted)
        out["memory"] = {
            "keys": counted, "rss_kib": rss, "baseline_kib": baseline, "max_rss_kib": rss,
            "bytes_per_key": total, "growth_bytes_per_key": growth,
        }  # fmt: skip
        await asyncio.sleep(SETTLE_S)
        settled_kib = procstat.rss_kib(process.pid)
        out["memory"]["settled_rss_kib"] = settled_kib
        out["memory"]["settled_bytes_per_key"] = settled_kib * 1024 / counted
        cfg.log(
            f"scale redis {size_name(keys)}: {out['load']['throughput']:,.0f} SET/s, "
            f"{total:.0f} B/key ({counted:,} keys)"
        )
        if cfg.recovery:
            process, restart = await asyncio.to_thread(
                redis_server.restart_time, process, port, directory, "always", RECOVERY_TIMEOUT_S
            )
            out["restart"] = restart.as_json()
            cfg.log(f"scale redis {size_name(keys)}: restart {restart.serving_s:.2f} s")
        return out
    finally:
        redis_server.stop(process)


def _redis_dbsize(port: int) -> int:
    reply = redis_server._answer(port, b"*1\r\n$6\r\nDBSIZE\r\n")
    return int(reply[1:].split(b"\r\n")[0]) if reply.startswith(b":") else 0


# --- the sizes -------------------------------------------------------------------------------


def available_kib() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def bytes_per_key_estimate(measured: dict[int, float]) -> float:
    """Memory per key to expect of a larger size: what the largest size measured so far took
    (the smaller sizes' figures carry the empty process's share, which more keys divide
    away), or ``PRIOR_BYTES_PER_KEY`` before any."""
    return measured[max(measured)] if measured else PRIOR_BYTES_PER_KEY


def fits(keys: int, bytes_per_key_seen: float, cfg: ScaleConfig, root: Path) -> str | None:
    """Why ``keys`` cannot run here (memory or disk), or None when it can."""
    processes_count = cfg.nodes if "pypaxos" in cfg.systems else 1
    need_kib = keys * bytes_per_key_seen * processes_count / 1024
    have_kib = available_kib()
    if have_kib and need_kib > cfg.memory_fraction * have_kib:
        return (
            f"needs about {need_kib / 2**20:.1f} GiB ({bytes_per_key_seen:.0f} B/key x "
            f"{processes_count} processes), {have_kib / 2**20:.1f} GiB available"
        )
    need_disk = keys * DISK_BYTES_PER_KEY * (processes_count + 1)
    free = shutil.disk_usage(root).free
    if need_disk > free:
        return f"needs about {need_disk / 1e9:.1f} GB of disk, {free / 1e9:.1f} GB free"
    return None


async def bench_scale(cfg: ScaleConfig) -> list[Json]:
    """Every size of ``cfg`` on every system; a failure is recorded and the rest runs."""
    unknown = set(cfg.systems) - {"pypaxos", "redis"}
    if unknown:
        raise ValueError(f"unknown system(s) {sorted(unknown)}")
    redis_benchmark.tool_path()
    results: list[Json] = []
    measured_bytes_per_key: dict[int, float] = {}  # keys -> a pypaxos node's B/key there
    for keys in cfg.sizes:
        entry: Json = {"keys": keys, "name": size_name(keys)}
        results.append(entry)
        root = Path(tempfile.mkdtemp(prefix="pypaxos-scale-", dir=cfg.data_root))
        try:
            reason = fits(keys, bytes_per_key_estimate(measured_bytes_per_key), cfg, root)
            if reason is not None:
                entry["skipped"] = reason
                cfg.log(f"scale {size_name(keys)} skipped: {reason}")
                continue
            for system in cfg.systems:
                where = root / system
                where.mkdir()
                try:
                    if system == "pypaxos":
                        with cached_bytecode(where / "pycache"):
                            entry[system] = await _pypaxos_size(keys, cfg, where)
                        entry[system]["bytecode_cached"] = True
                        measured = entry[system]["memory"]["bytes_per_key"]
                        measured_bytes_per_key[keys] = measured
                    else:
                        entry[system] = await _redis_size(keys, cfg, where)
                except (ClusterError, OSError, RuntimeError, FillError, ValueError) as error:
                    cfg.log(f"scale {system} {size_name(keys)} failed: {error!r}")
                    entry[system] = {"system": system, "failed": repr(error)}
                finally:
                    shutil.rmtree(where, ignore_errors=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return results
