"""The report of one ``make bench`` run: Markdown tables, targets, PNG plots, console summary.

``render(data, plots_dir, repo_root)`` takes the JSON that ``run_all.py`` collected and returns
the Markdown section appended to bench/RESULTS.md and a plain-text summary for the terminal.
Each figure is ``median (±half the range between runs, in % of the median)``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import report_scale

Json = dict[str, Any]
FSYNC_SLACK_US = 1000.0
CPU_TARGET_US = 25.0
RSS_TARGET = 0.20
CATCH_UP_TARGET_S = 5.0


def fmt(summary: Json | None, scale: float = 1.0, digits: int = 0) -> str:
    if not summary or not summary.get("runs"):
        return "-"
    median = summary["median"] * scale
    if isinstance(median, float) and math.isnan(median):
        return "-"
    text = f"{median:,.{digits}f}"
    if summary["runs"] > 1 and summary["median"]:
        spread = 50 * (summary["high"] - summary["low"]) / abs(summary["median"])
        text += f" (±{spread:.0f}%)"
    return text


def _med(summary: Json | None) -> float:
    return float(summary["median"]) if summary and summary.get("runs") else float("nan")


def _best(points: list[Json], **match: Any) -> Json | None:
    chosen = [p for p in points if all(p.get(k) == v for k, v in match.items())]
    chosen = [p for p in chosen if not math.isnan(_med(p["throughput"]))]
    return max(chosen, key=lambda p: _med(p["throughput"]), default=None)


def _one(points: list[Json], **match: Any) -> Json | None:
    return next((p for p in points if all(p.get(k) == v for k, v in match.items())), None)


def headline(data: Json) -> list[Json]:
    """One row per system/configuration: best write throughput, one-client p50, CPU/write."""
    rows: list[Json] = []
    for result in data.get("pypaxos", []):
        points = result["points"]
        best = _best(points, command="set")
        single = _one(points, tool="loadgen", command="set", clients=1, pipeline=1)
        single_c = _one(points, tool="redis-benchmark", command="set", clients=1, pipeline=1)
        grid_top = _one(points, tool="redis-benchmark", command="set", clients=64, pipeline=16)
        rows.append({
            "system": f"pypaxos {result['nodes']} nodes, fsync {result['fsync']}",
            "key": ("pypaxos", result["nodes"], result["fsync"]),
            "best": best, "single_p50": single["p50_us"] if single else None,
            "single_p50_c": single_c["p50_us"] if single_c else None,
            "grid_top": grid_top["throughput"] if grid_top else None,
            "durable": result["fsync"] == "always",
            "how": f"{best['tool']} c={best['clients']} P={best['pipeline']}" if best else "",
        })  # fmt: skip
    for point in data.get("pysyncobj", []):
        rows.append({
            "system": f"PySyncObj {point['nodes']} nodes, {point['mode']}",
            "key": ("pysyncobj", point["nodes"], point["mode"]),
            "best": point, "single_p50": None, "durable": False,
            "how": f"in the leader, {point['outstanding']:,} outstanding",
        })  # fmt: skip
    redis_points = data.get("redis", [])
    for mode in ("always", "everysec"):
        best = _best(redis_points, mode=mode, command="set")
        single = _one(redis_points, mode=mode, command="set", clients=1, pipeline=1)
        if best:
            rows.append({
                "system": f"Redis 1 node, appendfsync {mode}", "key": ("redis", 1, mode),
                "best": best, "single_p50": single["p50_us"] if single else None,
                "durable": mode == "always",
                "how": f"redis-benchmark c={best['clients']} P={best['pipeline']}",
            })  # fmt: skip
    etcd = data.get("etcd")
    if etcd:
        best = _best(etcd["gateway"])
        single = _one(etcd["gateway"], clients=1)
        rows.append({
            "system": "etcd 3.4, 3 members", "key": ("etcd", 3, "gateway"), "best": best,
            "single_p50": single["p50_us"] if single else None, "durable": True,
            "how": f"JSON gateway, {best['clients']} outstanding" if best else "",
        })  # fmt: skip
    return rows


def _row(rows: list[Json], key: tuple[Any, ...]) -> Json | None:
    return next((r for r in rows if r["key"] == key), None)


def targets(data: Json, rows: list[Json]) -> list[tuple[str, str, bool | None, str]]:
    """(target, measured, met or None when not measured, by how much)."""
    out: list[tuple[str, str, bool | None, str]] = []
    p3 = _row(rows, ("pypaxos", 3, "always"))
    p5 = _row(rows, ("pypaxos", 5, "always"))
    sync_best = max(
        (_med(p["throughput"]) for p in data.get("pysyncobj", []) if p["nodes"] == 3),
        default=float("nan"),
    )
    ours = _med(p3["best"]["throughput"]) if p3 and p3["best"] else float("nan")
    ratio = ours / sync_best if sync_best else float("nan")
    out.append((
        "durable 3-node writes >= 2x PySyncObj's best (in memory)",
        f"{ours:,.0f} vs {sync_best:,.0f} writes/s: {ratio:.2f}x",
        None if math.isnan(ratio) else ratio >= 2, f"{ratio / 2:.0%} of the target",
    ))  # fmt: skip
    cpu = _med(p3["best"]["cpu_us_per_op"]) if p3 and p3["best"] else float("nan")
    out.append((
        f"cluster CPU per durable write <= {CPU_TARGET_US:.0f} us",
        f"{cpu:,.0f} us (all node processes, at the best point)",
        None if math.isnan(cpu) else cpu <= CPU_TARGET_US, f"{cpu / CPU_TARGET_US:.1f}x the limit",
    ))  # fmt: skip
    fsync_p50 = _med(data.get("machine", {}).get("fsync_p50_us"))
    single = _med(p3["single_p50"]) if p3 else float("nan")
    etcd_row = _row(rows, ("etcd", 3, "gateway"))
    etcd_single = _med(etcd_row["single_p50"]) if etcd_row else float("nan")
    limit = min(fsync_p50 + FSYNC_SLACK_US, etcd_single if etcd_single == etcd_single else 1e18)
    out.append((
        "one client, one write at a time: p50 <= fsync p50 + 1 ms and below etcd's",
        f"{single / 1000:.2f} ms vs fsync {fsync_p50 / 1000:.2f} ms + 1, "
        f"etcd {etcd_single / 1000:.2f} ms (both with Python clients; redis-benchmark, a C "
        f"client: {_med(p3.get('single_p50_c')) / 1000 if p3 else float('nan'):.2f} ms)",
        None if math.isnan(single) else single <= limit, f"{single / limit:.1f}x the limit",
    ))  # fmt: skip
    failed, changed = 0, False
    for result in data.get("pypaxos", []):
        for point in result["points"]:
            failed += point["errors"] or 0
            changed = changed or point["leader_changed"]
    points = [p for r in data.get("pypaxos", []) for p in r["points"]]
    moved = sum(1 for p in points if p["leader_changed"])
    elected = ", ".join(
        f"{r['nodes']}n {r['fsync']}: {_count(r, 'became leader') - 1} new leaders, "
        f"{_count(r, 'stepped down')} step-downs"
        for r in data.get("pypaxos", []) if "elections" in r
    )  # fmt: skip
    out.append((
        "under saturation: no failed writes, no leader change (every pypaxos point)",
        f"{failed} failed requests; the leader changed during {moved} of {len(points)} points"
        + (f" (node logs: {elected})" if elected else ""),
        failed == 0 and not changed, "",
    ))  # fmt: skip
    five = _med(p5["best"]["throughput"]) if p5 and p5["best"] else float("nan")
    share = five / ours if ours else float("nan")
    # The grid's heaviest load (1,024 outstanding) for comparison: latency-bound at 5 nodes.
    five_64, three_64 = (_med(r["grid_top"]) if r else float("nan") for r in (p5, p3))
    out.append((
        "5 nodes >= 70% of 3-node throughput (fsync always)",
        f"{five:,.0f} vs {ours:,.0f} writes/s: {share:.0%} (best points: "
        f"{p5['how'] if p5 else '?'} and {p3['how'] if p3 else '?'}; at redis-benchmark c=64 "
        f"P=16 {five_64:,.0f} vs {three_64:,.0f}: "
        f"{five_64 / three_64 if three_64 else float('nan'):.0%})",
        None if math.isnan(share) else share >= 0.7, "",
    ))  # fmt: skip
    rss = next((r["rss"] for r in data.get("pypaxos", []) if r.get("rss")), None)
    out.append((
        "RSS flat: a 10x longer run within 20%",
        f"{rss['after_short_kib'] / 1024:.0f} -> {rss['after_long_kib'] / 1024:.0f} MiB "
        f"({rss['growth']:+.1%})" if rss else "not measured",
        None if not rss else abs(rss["growth"]) <= RSS_TARGET, "",
    ))  # fmt: skip
    catch = next((r["catch_up"] for r in data.get("pypaxos", []) if r.get("catch_up")), None)
    seconds = catch["caught_up_s"] if catch else None
    if catch is None:
        measured = "not measured"
    elif seconds is None:
        measured = f"{catch['entries']:,} entries: not caught up within the timeout"
    else:
        answered = catch["answered_s"] or 0.0
        measured = (
            f"{catch['entries']:,} entries written at {catch['write_rate']:,.0f}/s while it was "
            f"down: caught up {seconds:.1f} s after its restart ({seconds - answered:.1f} s "
            f"after it first answered; the process start took {answered:.1f} s)"
        )
    out.append((
        f"a node restarted after 1M entries catches up in a few s (<= {CATCH_UP_TARGET_S:g} s)",
        measured, None if not catch else seconds is not None and seconds <= CATCH_UP_TARGET_S,
        "",
    ))  # fmt: skip
    return out


def _count(result: Json, words: str) -> int:
    return sum(1 for line in result.get("elections", []) if words in line)


def _mark(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


def render(data: Json, plots_dir: Path, repo_root: Path) -> tuple[str, str]:
    import draw_plots  # matplotlib is only needed here

    rows = headline(data)
    goals = targets(data, rows)
    images = draw_plots.draw(data, plots_dir)
    machine = data.get("machine", {})
    info = machine.get("machine", {})
    lines = [
        f"## Side by side (issue 7), {data.get('started', '?')}",
        "",
        f"Machine: {info.get('cpu_model', '?')}, {info.get('nproc', '?')} CPUs, kernel "
        f"{info.get('kernel', '?')}, {info.get('memory_gib', '?')} GiB, Python "
        f"{info.get('python', '?')}, data on {info.get('filesystem', '?')}. Load average at "
        f"the start {_loads(info.get('load_average'))}, at the end "
        f"{_loads(data.get('load_average_end'))}: other jobs shared the two cores, so absolute "
        "figures are noisy; compare within this section.",
        "",
        f"Command: `make bench` (`{data.get('command', '')}`), {data.get('runs')} runs of "
        f"{data.get('duration_s')} s per point, values of {data.get('value_bytes')} bytes, "
        f"{data.get('elapsed_s', 0) / 60:.0f} minutes in all. Figures: median (± half the "
        "range of the runs, in % of the median).",
        "",
        "### The machine's limits",
        "",
        "| what | p50 | p99 |",
        "| --- | --- | --- |",
        f"| 4 KiB append + fsync (µs) | {fmt(machine.get('fsync_p50_us'))} | "
        f"{fmt(machine.get('fsync_p99_us'))} |",
        f"| sequential fsyncs per second | {fmt(machine.get('fsyncs_per_s'))} | |",
        f"| loopback TCP round trip (µs) | {fmt(machine.get('loopback_rtt_p50_us'))} | "
        f"{fmt(machine.get('loopback_rtt_p99_us'))} |",
        "",
        "### Side by side: writes",
        "",
        "| system | durable | best writes/s | at | p50 there (ms) | p99 there (ms) | "
        "one client p50 (ms) | CPU µs/write |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        best = row["best"] or {}
        cpu = best.get("cpu_us_per_op") or best.get("leader_cpu_us_per_op")
        cpu_text = fmt(cpu) + (" (leader, incl. load)" if "leader_cpu_us_per_op" in best else "")
        lines.append(
            f"| {row['system']} | {'yes' if row['durable'] else 'no'} | "
            f"{fmt(best.get('throughput'))} | {row['how']} | {fmt(best.get('p50_us'), 1e-3, 2)} "
            f"| {fmt(best.get('p99_us'), 1e-3, 2)} | {fmt(row['single_p50'], 1e-3, 2)} | "
            f"{cpu_text} |"
        )
    etcd = data.get("etcd")
    if etcd:
        for perf in etcd["check_perf"]:
            lines.append("")
            lines.append(f"`etcdctl check perf --load {perf['load']}`: "
                         + "; ".join(perf["verdicts"] or ["no verdict"]))  # fmt: skip
    for failure in data.get("failures", []):
        lines += ["", f"**Failed:** {failure.splitlines()[0]}"]
    lines += ["", "### Targets (this run)", "", "| target | measured | verdict |",
              "| --- | --- | --- |"]  # fmt: skip
    for goal, measured, met, by in goals:
        verdict = _mark(met) + (f" ({by})" if by and met is False else "")
        lines.append(f"| {goal} | {measured} | {verdict} |")
    lines += ["", "### pypaxos, every point", "",
              "| nodes | fsync | tool | cmd | c | P | req/s | p50 ms | p99 ms | CPU µs/op | "
              "failed | leader changed |",
              "|" + " --- |" * 12]  # fmt: skip
    for result in data.get("pypaxos", []):
        for p in result["points"]:
            failed = "n/a" if p["errors"] is None else str(p["errors"])
            lines.append(
                f"| {p['nodes']} | {p['fsync']} | {p['tool']} | {p['command']} | "
                f"{p['clients']} | {p['pipeline']} | {fmt(p['throughput'])} | "
                f"{fmt(p['p50_us'], 1e-3, 2)} | {fmt(p['p99_us'], 1e-3, 2)} | "
                f"{fmt(p['cpu_us_per_op'])} | {failed} | {'yes' if p['leader_changed'] else 'no'} |"
            )
    lines += ["", "### Peers, every point", "",
              "| system | c | P | writes/s | p50 ms | p99 ms | CPU µs/op |",
              "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for p in data.get("pysyncobj", []):
        lines.append(
            f"| PySyncObj {p['nodes']} nodes {p['mode']} | in leader | {p['outstanding']:,} | "
            f"{fmt(p['throughput'])} | {fmt(p['p50_us'], 1e-3, 2)} | {fmt(p['p99_us'], 1e-3, 2)}"
            f" | {fmt(p['leader_cpu_us_per_op'])} (leader) |"
        )
    for p in data.get("redis", []):
        lines.append(
            f"| Redis appendfsync {p['mode']} | {p['clients']} | {p['pipeline']} | "
            f"{fmt(p['throughput'])} | {fmt(p['p50_us'], 1e-3, 2)} | {fmt(p['p99_us'], 1e-3, 2)}"
            f" | {fmt(p['cpu_us_per_op'])} |"
        )
    for p in (etcd or {}).get("gateway", []):
        lines.append(
            f"| etcd gateway (httpload) | {p['clients']} | 1 | {fmt(p['throughput'])} | "
            f"{fmt(p['p50_us'], 1e-3, 2)} | {fmt(p['p99_us'], 1e-3, 2)} | "
            f"{fmt(p['cpu_us_per_op'])} |"
        )
    scale_plot = next((i for i in images if i.name == report_scale.PLOT_NAME), None)
    link = os.path.relpath(scale_plot, repo_root / "bench") if scale_plot else ""
    lines += ["", *report_scale.section(data, link)]
    lines += ["", "Plots: " + ", ".join(
        f"[{image.name}]({os.path.relpath(image, repo_root / 'bench')})" for image in images
    ), ""]  # fmt: skip
    summary = "\n".join([_console(rows, goals), *report_scale.console(data)])
    return "\n".join(lines), summary


def _loads(loads: Any) -> str:
    return "/".join(f"{x:.1f}" for x in loads) if loads else "?"


def _console(rows: list[Json], goals: list[tuple[str, str, bool | None, str]]) -> str:
    lines = [f"{'system':<40}{'best writes/s':>22}{'one-client p50 ms':>20}"]
    for row in rows:
        best = row["best"] or {}
        lines.append(f"{row['system']:<40}{fmt(best.get('throughput')):>22}"
                     f"{fmt(row['single_p50'], 1e-3, 2):>20}")  # fmt: skip
    lines.append("")
    for goal, measured, met, by in goals:
        lines.append(f"[{_mark(met)}] {goal}: {measured}" + (f" ({by})" if by else ""))
    return "\n".join(lines)
