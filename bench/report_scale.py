"""The large-data part of the report: a table per size, the scale targets, and their plot.

``section(data)`` reads ``data["scale"]`` (a list with one entry per size, as
``pypaxos.bench.scale.bench_scale`` returns it) and returns Markdown lines; ``draw(data, path)``
draws throughput and worst stall against the number of keys.  Kept apart from ``report.py`` so
that the side-by-side report and this one change independently.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

Json = dict[str, Any]
STALL_TARGET_S = 0.1
KEEP_THROUGHPUT = 0.9
MEMORY_TARGET = 1.5
RESTART_TARGET = 2.0
TRANSFER_TARGET_MB_S = 100.0
PLOT_NAME = "scale-vs-keys.png"


def _get(entry: Json, *path: str) -> Any:
    value: Any = entry
    for name in path:
        if not isinstance(value, dict) or name not in value:
            return None
        value = value[name]
    return value


def worst_stall_s(system: Json) -> float | None:
    """The longest stall any detector saw in any phase (fill and load), in seconds."""
    phases = [p for p in (system.get("stall") or {}).values() if isinstance(p, dict)]
    if not phases:
        return None
    return max(p["worst_s"] for p in phases)


def leader_changes(system: Json) -> int | None:
    counts = [
        p["leader_changes"]
        for p in (system.get("stall") or {}).values()
        if isinstance(p, dict) and "leader_changes" in p
    ]
    return sum(counts) if counts else None


def _leader_cell(row: Json) -> str:
    """Leader changes the polls saw, and the elections the nodes logged when they differ."""
    polled, logged = row["leader_changes"], row.get("leader_changes_logged")
    if logged is None or logged == polled:
        return _num(polled)
    return f"{_num(polled)} ({logged} logged)"


def _phase_max(system: Json, *path: str, add: bool = False) -> float | None:
    """The largest (or with ``add`` the sum) of a stall figure over the phases."""
    values = [_get(phase, *path) for phase in (system.get("stall") or {}).values()]
    present = [float(v) for v in values if v is not None]
    if not present:
        return None
    return sum(present) if add else max(present)


def _num(value: float | None, digits: int = 0, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value * scale:,.{digits}f}"


def _snapshot_cell(row: Json) -> str:
    """The snapshot transfer's own rate and its receive time, as the wiped node timed it."""
    if row.get("snapshot_mb_s") is None:
        return "-"
    return f"{row['snapshot_mb_s']:.1f} ({_num(row.get('snapshot_receive_ms'))})"


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b:
        return None
    return a / b


def rows(data: Json) -> list[Json]:
    """One row per size with the figures the table and the targets use."""
    out = []
    for entry in data.get("scale", []):
        ours, redis = entry.get("pypaxos") or {}, entry.get("redis") or {}
        row: Json = {
            "keys": entry["keys"], "name": entry["name"], "skipped": entry.get("skipped"),
            "failed": [s.get("failed") for s in (ours, redis) if s.get("failed")],
            "tput": _get(ours, "load", "throughput"),
            "redis_tput": _get(redis, "load", "throughput"),
            "fill_rate": _get(ours, "fill", "rate"),
            "redis_fill_rate": _get(redis, "fill", "rate"),
            "stall_s": worst_stall_s(ours) if ours.get("stall") else None,
            "commit_gap_s": _phase_max(ours, "commit_gap", "longest_s"),
            "probe_max_s": _phase_max(ours, "probe_gap", "longest_s"),
            "over_100ms": _phase_max(ours, "commit_gap", "over_100ms", add=True),
            "rb_zero": _get(ours, "stall", "load", "rb_zero_intervals"),
            "aborted": _get(ours, "load", "aborted") or [],
            "recovery_errors": [
                (step, ours[step]["error"], ours[step].get("log_errors") or [])
                for step in ("restart", "wipe") if (ours.get(step) or {}).get("error")
            ],
            "partial": bool(_get(ours, "load", "partial")),
            "redis_stall_s": worst_stall_s(redis) if redis.get("stall") else None,
            "leader_changes": leader_changes(ours),
            "leader_changes_logged": ours.get("leader_changes_logged"),
            "bytes_per_key": _get(ours, "memory", "bytes_per_key"),
            "redis_bytes_per_key": _get(redis, "memory", "bytes_per_key"),
            "settled_bytes_per_key": _get(ours, "memory", "settled_bytes_per_key"),
            "redis_settled_bytes_per_key": _get(redis, "memory", "settled_bytes_per_key"),
            "restart_s": _get(ours, "restart", "caught_up_s"),
            "restart_answered_s": _get(ours, "restart", "answered_s"),
            "redis_restart_s": _get(redis, "restart", "serving_s"),
            "redis_logged_load_s": _get(redis, "restart", "logged_load_s"),
            "wipe_s": _get(ours, "wipe", "caught_up_s"),
            "transfer_mb_s": _get(ours, "wipe", "transfer_mb_per_s"),  # the whole rebuild
            "snapshot_mb_s": _get(ours, "wipe", "snapshot_transfer_mb_per_s"),
            "snapshot_receive_ms": _get(ours, "wipe", "snapshot_receive_ms"),
            "moved_mb": (_get(ours, "wipe", "moved_bytes") or 0) / 1e6 or None,
        }  # fmt: skip
        row["memory_ratio"] = _ratio(row["bytes_per_key"], row["redis_bytes_per_key"])
        row["settled_ratio"] = _ratio(
            row["settled_bytes_per_key"], row["redis_settled_bytes_per_key"]
        )
        row["restart_ratio"] = _ratio(row["restart_s"], row["redis_restart_s"])
        row["tput_ratio"] = _ratio(row["tput"], row["redis_tput"])
        out.append(row)
    return out


def targets(table: list[Json]) -> list[tuple[str, str, bool | None]]:
    """Issue 18's scale targets over the sizes measured: (target, measured, met or None)."""
    measured = [r for r in table if r["tput"] is not None]
    if not measured:
        return []
    goals: list[tuple[str, str, bool | None]] = []
    stalls = [r["stall_s"] for r in measured if r["stall_s"] is not None]
    changes = sum(
        max(r["leader_changes"] or 0, r.get("leader_changes_logged") or 0) for r in measured
    )
    goals.append((
        "no leader change and no interval over 100 ms without a commit, at every size",
        f"worst {max(stalls, default=0) * 1000:,.0f} ms; {changes} leader changes",
        bool(stalls) and max(stalls) <= STALL_TARGET_S and changes == 0,
    ))  # fmt: skip
    small, large = measured[0], measured[-1]
    keep = _ratio(large["tput"], small["tput"])
    goals.append((
        f"throughput at the largest size >= {KEEP_THROUGHPUT:.0%} of the smallest's",
        f"{large['name']}: {_num(large['tput'])} vs {small['name']}: {_num(small['tput'])} "
        f"SET/s ({_num(keep, 2)}x)",
        None if keep is None or large is small else keep >= KEEP_THROUGHPUT,
    ))  # fmt: skip
    for name, key, limit, above_bad, what in (
        ("resident memory per node <= 1.5x Redis's", "memory_ratio", MEMORY_TARGET, True, "x"),
        ("restart within 2x Redis's load time", "restart_ratio", RESTART_TARGET, True, "x"),
        ("3-node durable writes >= a Redis with appendfsync always", "tput_ratio", 1.0, False, "x"),
    ):
        values = [(r["name"], r[key]) for r in measured if r[key] is not None]
        if not values:
            goals.append((name, "not measured", None))
            continue
        text = ", ".join(f"{size}: {value:.2f}{what}" for size, value in values)
        met = (
            all(v <= limit for _, v in values) if above_bad else all(v >= limit for _, v in values)
        )
        goals.append((name, text, met))
    rates = [(r, r["transfer_mb_s"]) for r in measured if r["transfer_mb_s"] is not None]
    goals.append((
        f"snapshot transfer to a wiped follower >= {TRANSFER_TARGET_MB_S:.0f} MB/s",
        ", ".join(
            f"{r['name']}: {rate:.1f} MB/s whole rebuild"
            + (f" ({r['snapshot_mb_s']:.1f} MB/s the transfer alone)" if r["snapshot_mb_s"] else "")
            for r, rate in rates
        ) or "not measured",
        None if not rates else all(rate >= TRANSFER_TARGET_MB_S for _, rate in rates),
    ))  # fmt: skip
    return goals


def section(data: Json, plot_link: str = "") -> list[str]:
    """Markdown lines of the large-data section; empty when the run measured no sizes."""
    table = rows(data)
    if not table:
        return []
    config = data.get("scale_config", {})
    lines = [
        "### Large data: throughput, stalls, memory and recovery against the keyspace",
        "",
        f"Per size: a fresh 3-node pypaxos (`--fsync always`) and a fresh redis-server "
        f"(`appendfsync always`), each filled with every key once (128-byte values), then "
        f"`redis-benchmark -t set -r N -d 128 -c {config.get('clients', 32)} "
        f"-P {config.get('pipeline', 32)}` for about {config.get('run_s', '?')} s. Stall: the "
        "longest interval without a commit (INFO commit_index of every node, polled every "
        "50 ms) or between two acknowledged writes of a probe client (one SET at a time), "
        "over the fill and the load. Memory: VmRSS after the load, per key (the largest "
        "node). Restart: a follower killed (SIGKILL) and started again, until it has applied "
        "what was committed; Redis: killed and started on its AOF, until it answers without "
        "`-LOADING`. Wiped follower: its directory removed, until caught up; rebuild MB/s is "
        "the leader's snapshot size over that whole time (process start, transfer, catch-up); "
        "snapshot MB/s is the transfer alone as the node timed it (`INFO` "
        "`snapshot_receive_bytes` over `snapshot_receive_ms`, first chunk to installed).",
        "",
        "| keys | pypaxos SET/s | Redis SET/s | ratio | worst stall ms (commit / probe) "
        "| >100 ms gaps | leader changes | Redis worst stall ms | B/key pypaxos | B/key Redis "
        "| memory ratio | restart s | Redis load s | wiped follower s | rebuild MB/s "
        "| snapshot MB/s (receive ms) |",
        "|" + " --- |" * 16,
    ]
    for r in table:
        if r["skipped"]:
            lines.append(f"| {r['name']} | skipped: {r['skipped']} |" + " |" * 14)
            continue
        if r["failed"] and r["tput"] is None:
            lines.append(f"| {r['name']} | failed: {'; '.join(r['failed'])[:200]} |" + " |" * 14)
            continue
        lines.append(
            f"| {r['name']} | {_num(r['tput'])} | {_num(r['redis_tput'])} | "
            f"{_num(r['tput_ratio'], 2)} | {_num(r['commit_gap_s'], 0, 1000)} / "
            f"{_num(r['probe_max_s'], 0, 1000)} | {_num(r['over_100ms'])} | "
            f"{_leader_cell(r)} | {_num(r['redis_stall_s'], 0, 1000)} | "
            f"{_num(r['bytes_per_key'])} | {_num(r['redis_bytes_per_key'])} | "
            f"{_num(r['memory_ratio'], 2)} | {_num(r['restart_s'], 2)} | "
            f"{_num(r['redis_restart_s'], 2)} | {_num(r['wipe_s'], 2)} | "
            f"{_num(r['transfer_mb_s'], 1)} | {_snapshot_cell(r)} |"
        )
    settled = [r for r in table if r["settled_ratio"] is not None]
    if settled:
        parts = [
            f"{r['name']}: {_num(r['settled_bytes_per_key'])} against Redis's "
            f"{_num(r['redis_settled_bytes_per_key'])} B/key ({_num(r['settled_ratio'], 2)}x)"
            for r in settled
        ]
        lines += ["", "Memory again 2 s after the load (each node's post-load compaction and "
                  f"heap trim done): {'; '.join(parts)}."]  # fmt: skip
    for r in table:
        if r["aborted"]:
            how = "its rate until then is shown" if r["partial"] else "the next attempt finished"
            lines += ["", f"At {r['name']} keys redis-benchmark stopped at an error reply "
                      f"{len(r['aborted'])} time(s) ({r['aborted'][0]}); {how}."]  # fmt: skip
    for r in table:
        for step, error, log_errors in r["recovery_errors"]:
            what = "the wiped follower" if step == "wipe" else "the restarted follower"
            logged = f"; the nodes logged `{log_errors[0][:200]}`" if log_errors else ""
            lines += ["", f"At {r['name']} keys {what} did not catch up: {error}{logged}."]
    goals = targets(table)
    if goals:
        lines += ["", "| scale target | measured | verdict |", "| --- | --- | --- |"]
        marks = {True: "met", False: "**missed**", None: "not measured"}
        lines += [f"| {goal} | {text} | {marks[met]} |" for goal, text, met in goals]
    if plot_link:
        lines += ["", f"Plot: [{PLOT_NAME}]({plot_link})"]
    lines.append("")
    return lines


def console(data: Json) -> list[str]:
    """The scale targets as terminal lines."""
    marks = {True: "met", False: "missed", None: "not measured"}
    return [f"[{marks[met]}] {goal}: {text}" for goal, text, met in targets(rows(data))]


def draw(data: Json, path: Path) -> Path:
    """Throughput (left) and worst stall (right) against keys, log-scaled keys."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = [r for r in rows(data) if r["tput"] is not None or r["redis_tput"] is not None]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label, marker in (("tput", "pypaxos 3n fsync always", "o"),
                               ("redis_tput", "Redis appendfsync always", "s")):  # fmt: skip
        points = [(r["keys"], r[key]) for r in table if r[key] is not None]
        if points:
            left.plot(*zip(*points, strict=True), marker=marker, label=label)
    left.set_xscale("log")
    left.set_ylim(bottom=0)
    left.set_xlabel("keys")
    left.set_ylabel("SET/s (redis-benchmark -c 32 -P 32)")
    left.set_title("throughput against data size")
    left.legend(fontsize=7)
    left.grid(True, which="both", alpha=0.3)
    for key, label, marker in (("commit_gap_s", "pypaxos: no commit", "o"),
                               ("probe_max_s", "pypaxos: probe client", "^"),
                               ("redis_stall_s", "Redis: probe client", "s")):  # fmt: skip
        points = [(r["keys"], r[key] * 1000) for r in table if r[key] is not None]
        if points:
            right.plot(*zip(*points, strict=True), marker=marker, label=label)
    right.axhline(STALL_TARGET_S * 1000, linestyle=":", color="grey")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("keys")
    right.set_ylabel("longest interval without a write (ms)")
    right.set_title("worst stall against data size")
    right.legend(fontsize=7)
    right.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
