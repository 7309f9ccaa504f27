"""PNG plots of one ``make bench`` run (matplotlib, no display needed).

* ``throughput-vs-clients.png``: write throughput against connections, one line per system and
  pipeline depth;
* ``latency-vs-load.png``: p50 and p99 write latency against the throughput reached, for the
  points of pypaxos 3 nodes (fsync always), Redis (always) and etcd;
* ``nodes-3-vs-5.png``: pypaxos best write throughput and one-client p50, 3 against 5 nodes;
* ``scale-vs-keys.png`` (when the run measured data sizes): throughput and worst stall against
  the number of keys, pypaxos and Redis (``report_scale.draw``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import report_scale

Json = dict[str, Any]


def _series(points: list[Json], **match: Any) -> tuple[list[float], list[float]]:
    chosen = sorted(
        (p for p in points if all(p.get(k) == v for k, v in match.items())),
        key=lambda p: p["clients"],
    )
    return [p["clients"] for p in chosen], [p["throughput"]["median"] for p in chosen]


def _throughput(data: Json, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(8, 5))
    for result in data.get("pypaxos", []):
        for pipeline, style in ((1, "-"), (16, "--")):
            x, y = _series(result["points"], tool="loadgen", command="set", pipeline=pipeline)
            if x:
                name = f"pypaxos {result['nodes']}n fsync {result['fsync']} P={pipeline}"
                axes.plot(x, y, style, marker="o", label=name)
    for mode in ("always", "everysec"):
        for pipeline, style in ((1, "-"), (16, "--")):
            x, y = _series(data.get("redis", []), mode=mode, command="set", pipeline=pipeline)
            if x:
                axes.plot(x, y, style, marker="s", label=f"Redis {mode} P={pipeline}")
    if data.get("etcd"):
        x, y = _series(data["etcd"]["gateway"])
        axes.plot(x, y, "-", marker="^", label="etcd 3 members (JSON gateway)")
    for p in data.get("pysyncobj", []):
        if p["nodes"] == 3:
            axes.axhline(p["throughput"]["median"], linestyle=":", color="grey")
            axes.annotate(f"PySyncObj 3n {p['mode']}", (1, p["throughput"]["median"]),
                          fontsize=7, color="grey")  # fmt: skip
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("client connections (each with P requests outstanding)")
    axes.set_ylabel("writes per second (median)")
    axes.set_title("Write throughput against clients (SET, 128-byte values)")
    axes.legend(fontsize=7, ncol=2)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _latency(data: Json, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(8, 5))
    groups: list[tuple[str, list[Json]]] = []
    for result in data.get("pypaxos", []):
        if result["nodes"] == 3:
            points = [
                p for p in result["points"] if p["tool"] == "loadgen" and p["command"] == "set"
            ]
            groups.append((f"pypaxos 3n {result['fsync']}", points))
    groups.append(("Redis always", [p for p in data.get("redis", []) if p["mode"] == "always"]))
    if data.get("etcd"):
        groups.append(("etcd", data["etcd"]["gateway"]))
    for name, points in groups:
        points = sorted(points, key=lambda p: p["throughput"]["median"])
        if not points:
            continue
        x = [p["throughput"]["median"] for p in points]
        for key, style in (("p50_us", "-"), ("p99_us", ":")):
            y = [p[key]["median"] / 1000 for p in points]
            axes.plot(x, y, style, marker="o", label=f"{name} {key[:3]}")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("writes per second reached (median)")
    axes.set_ylabel("latency (ms)")
    axes.set_title("Write latency percentiles against load")
    axes.legend(fontsize=7, ncol=2)
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _nodes(data: Json, path: Path) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    labels, best, single = [], [], []
    for result in data.get("pypaxos", []):
        writes = [p for p in result["points"] if p["command"] == "set"]
        if not writes:
            continue
        labels.append(f"{result['nodes']}n {result['fsync']}")
        best.append(max(p["throughput"]["median"] for p in writes))
        one = [p for p in writes if p["tool"] == "loadgen" and p["clients"] == 1
               and p["pipeline"] == 1]  # fmt: skip
        single.append(one[0]["p50_us"]["median"] / 1000 if one else 0.0)
    left.bar(labels, best, color=["C0", "C1", "C2", "C3"][: len(labels)])
    left.set_title("best writes/s")
    right.bar(labels, single, color=["C0", "C1", "C2", "C3"][: len(labels)])
    right.set_title("one client, p50 (ms)")
    figure.suptitle("pypaxos: 3 against 5 nodes")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def draw(data: Json, directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [
        directory / "throughput-vs-clients.png",
        directory / "latency-vs-load.png",
        directory / "nodes-3-vs-5.png",
    ]
    _throughput(data, paths[0])
    _latency(data, paths[1])
    _nodes(data, paths[2])
    if data.get("scale"):
        paths.append(report_scale.draw(data, directory / report_scale.PLOT_NAME))
    return paths
