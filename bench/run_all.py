"""``make bench``: every system of issue 7 side by side, in one run on this machine.

Order: the machine's limits, pypaxos (3 and 5 nodes, ``--fsync always`` and ``never``, through
``pypaxos.bench``: redis-benchmark and the project's own load generator), PySyncObj, Redis
(``appendfsync always`` and ``everysec``), etcd (3 members), and the large-data scenario
(``pypaxos.bench.scale``: throughput, stalls, memory per key and recovery of pypaxos and Redis at
keyspaces of ``--sizes``).  Every figure is a median of
``--runs`` runs with its spread; the ratios and targets compare medians from this same run,
since absolute figures drift on a shared machine.  The raw results go to ``bench/last-run.json``
after every stage (``--report-only`` rebuilds the report from it), the report becomes the first
section of ``bench/RESULTS.md`` (the one it replaces moves to ``bench/history/``) and the plots
go to ``bench/plots/``.

    .venv/bin/python bench/run_all.py [--runs 3] [--duration-s 3] [--catch-up-entries 1000000]
                                      [--quick] [--skip pysyncobj,redis,etcd,reads,objects,scale]
                                      [--sizes 100k,1m,10m] [--scale-run-s 20] [--report-only]

After the reads, ``bench/objects_bench.py``: replicated objects in-process beside PySyncObj.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import machine_limits
import peer_etcd
import peer_pysyncobj
import peer_redis
import report
import results_file

from pypaxos.bench import scale
from pypaxos.bench.cluster_bench import ClusterBenchConfig, bench_cluster
from pypaxos.cli.bench import run_async
from pypaxos.cluster.local import ClusterError

HERE = Path(__file__).resolve().parent
Json = dict[str, Any]


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def pypaxos_configs(args: argparse.Namespace) -> list[ClusterBenchConfig]:
    clients = (1, 16, 64)
    pipelines = (1, 16)
    # One load past the grid (4,096 outstanding): at c=64 P=16 a 5-node cluster on two cores
    # is latency-bound, so the best throughput is measured where each cluster saturates.
    common: Json = {
        "clients": clients, "pipelines": pipelines, "extra_points": ((128, 32),),
        "duration_s": args.duration_s,
        "runs": args.runs, "one_client_runs": args.one_client_runs,
        "data_root": args.data_root, "log": log,
    }  # fmt: skip
    full = ClusterBenchConfig(
        nodes=3, fsync="always", commands=("set", "get"), rss_check=not args.quick,
        catch_up_entries=args.catch_up_entries, **common,
    )  # fmt: skip
    others = [
        ClusterBenchConfig(nodes=n, fsync=f, commands=("set",), **common)
        for n, f in ((3, "never"), (5, "always"), (5, "never"))
    ]
    return [full, *others]


def reads_stage(args: argparse.Namespace, data: Json, save: Callable[[], None]) -> None:
    """Reads in every mode beside Redis's GET and etcd's reads (``bench/reads_bench.py``)."""
    import reads_bench

    peers_skipped = {"redis", "etcd"} & set(args.skip.split(","))
    log("reads: every read mode, 3 and 5 nodes; Redis GET; etcd reads")
    data["reads"] = reads_bench.measure(
        [3, 5], list(reads_bench.MODES), args.duration_s, peers_skipped, args.data_root
    )
    save()


def reads_section(data: Json) -> str:
    import reads_bench

    if not data.get("reads"):
        return ""
    return "\n### Reads (bench/reads_bench.py)\n\n" + reads_bench.render(data["reads"]) + "\n"


def add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    """The large-data scenario's options (``pypaxos.bench.scale``)."""
    parser.add_argument(
        "--sizes", default=None,
        help="keyspaces of the large-data scenario, e.g. 100k,1m,10m (the default; --quick: "
        "10k,50k); skip it with --skip scale",
    )  # fmt: skip
    parser.add_argument(
        "--scale-run-s", type=float, default=None,
        help="seconds of redis-benchmark load per size, after the fill (20; --quick: 5)",
    )  # fmt: skip


def run_scale(args: argparse.Namespace, data: Json, save: Callable[[], None]) -> None:
    """The large-data scenario: throughput, stalls, memory and recovery at each size."""
    quick = args.quick
    sizes = scale.parse_sizes(args.sizes or ("10k,50k" if quick else "100k,1m,10m"))
    run_s = args.scale_run_s or (5.0 if quick else 20.0)
    config = scale.ScaleConfig(sizes=sizes, run_s=run_s, data_root=args.data_root, log=log)
    data["scale_config"] = {
        "sizes": list(sizes), "run_s": run_s, "clients": config.clients,
        "pipeline": config.pipeline, "value_bytes": config.value_bytes, "nodes": config.nodes,
    }  # fmt: skip
    try:
        data["scale"] = run_async(scale.bench_scale(config))
    except Exception as error:  # the rest of the report still stands
        log(f"scale failed: {error!r}")
        data.setdefault("failures", []).append(f"scale: {error!r}")
    save()


def objects_stage(args: argparse.Namespace, data: Json, save: Callable[[], None]) -> None:
    """Replicated objects in-process beside PySyncObj (``bench/objects_bench.py``)."""
    import objects_bench

    log("objects: replicated counter and dict in-process, pypaxos and PySyncObj")
    modes = [] if "pysyncobj" in set(args.skip.split(",")) else ["default", "best"]
    data["objects"] = objects_bench.measure(
        ["counter", "dict"], ["always", "never"], modes, 256, max(args.duration_s, 3.0), log=log
    )
    save()


def objects_section(data: Json) -> str:
    import objects_bench

    if not data.get("objects"):
        return ""
    title = "\n### Replicated objects in-process (bench/objects_bench.py)\n\n"
    return title + objects_bench.render(data["objects"]) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--one-client-runs", type=int, default=5,
        help="runs of the one-client points (pypaxos and etcd), the noisiest (5; at least --runs)",
    )  # fmt: skip
    parser.add_argument("--duration-s", type=float, default=3.0)
    parser.add_argument("--catch-up-entries", type=int, default=1_000_000)
    parser.add_argument("--etcd-check-perf", default="l", help="etcdctl check perf loads")
    parser.add_argument("--quick", action="store_true", help="2 runs of 1.5 s, no long checks")
    parser.add_argument(
        "--skip", default="", help="comma-separated: pysyncobj,redis,etcd,reads,objects,scale"
    )  # fmt: skip
    add_scale_arguments(parser)
    parser.add_argument("--data-root", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--json", type=Path, default=HERE / "last-run.json")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--plots", type=Path, default=HERE / "plots")
    parser.add_argument("--report-only", action="store_true", help="rebuild from --json")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.duration_s, args.catch_up_entries = 2, 1.5, 0
        args.one_client_runs = 2
    args.one_client_runs = max(args.one_client_runs, args.runs)
    skip = set(args.skip.split(",")) - {""}

    if args.report_only:
        data: Json = json.loads(args.json.read_text())
    else:
        began = time.time()
        data = {
            "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(began)),
            "command": " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
            "runs": args.runs, "duration_s": args.duration_s, "value_bytes": 128,
        }  # fmt: skip

        def save() -> None:
            data["elapsed_s"] = time.time() - began
            args.json.write_text(json.dumps(data, indent=1, default=str) + "\n")

        log("machine limits")
        data["machine"] = machine_limits.measure(args.data_root, args.runs)
        save()
        data["pypaxos"] = []
        for config in pypaxos_configs(args):
            try:
                data["pypaxos"].append(run_async(bench_cluster(config)))
            except (ClusterError, OSError, RuntimeError) as error:  # reported; the rest runs
                log(f"pypaxos {config.nodes} nodes fsync {config.fsync} failed: {error}")
                data.setdefault("failures", []).append(
                    f"pypaxos {config.nodes} nodes, fsync {config.fsync}: {error}"
                )
            save()
        loads = [] if args.quick else [x for x in args.etcd_check_perf.split(",") if x]
        peers: list[tuple[str, Callable[[], Any]]] = [
            ("pysyncobj", lambda: peer_pysyncobj.measure(
                [3, 5], ["default", "best", "nobatch"], args.runs, max(args.duration_s, 3.0),
                log=log)),
            ("redis", lambda: peer_redis.measure(
                ["always", "everysec"], args.runs, args.duration_s, data_root=args.data_root,
                log=log, commands=("set",))),
            ("etcd", lambda: peer_etcd.measure(
                [1, 16, 64, 256], loads, args.runs, args.duration_s, data_root=args.data_root,
                log=log, one_client_runs=args.one_client_runs)),
        ]  # fmt: skip
        for name, measure in peers:
            if name in skip:
                continue
            try:
                data[name] = measure()
            except Exception as error:  # one peer failing must not lose the others' figures
                log(f"{name} failed: {error!r}")
                data.setdefault("failures", []).append(f"{name}: {error!r}")
            save()
        if "reads" not in skip:
            reads_stage(args, data, save)
        if "objects" not in skip:
            try:
                objects_stage(args, data, save)
            except Exception as error:  # reported; the other figures stand
                log(f"objects failed: {error!r}")
                data.setdefault("failures", []).append(f"objects: {error!r}")
                save()
        if "scale" not in skip:
            run_scale(args, data, save)
        data["load_average_end"] = os.getloadavg()
        save()
        log(f"measured in {data['elapsed_s'] / 60:.1f} min; results in {args.json}")

    text, summary = report.render(data, args.plots, HERE.parent)
    text += reads_section(data)
    text += objects_section(data)
    moved = results_file.publish(args.results, args.results.parent / "history", text)
    print(summary)
    print(
        f"\nreport first in {args.results}; the run it replaced in {moved}; plots in {args.plots}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
