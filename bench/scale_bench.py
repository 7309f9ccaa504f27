"""The large-data scenario alone (``pypaxos.bench.scale``), without the rest of ``make bench``.

Runs every size on pypaxos and redis-server, writes the raw results as JSON, prints the report's
large-data section (``report_scale.section``) and draws ``scale-vs-keys.png``::

    .venv/bin/python bench/scale_bench.py [--sizes 100k,1m] [--run-s 20] [--systems pypaxos,redis]
                                          [--no-recovery] [--json out.json] [--plots bench/plots]
                                          [--limits snapshot_growth_percent=100,...]
    .venv/bin/python bench/scale_bench.py --report-only --json out.json

``make bench`` runs the same scenario after the side-by-side part (``--sizes``, ``--skip scale``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import report_scale

from pypaxos.bench import scale
from pypaxos.cli.bench import run_async

HERE = Path(__file__).resolve().parent


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100k,1m", help="key counts, a list (100k,1m,10m)")
    parser.add_argument(
        "--run-s", type=float, default=20.0, help="seconds of load after each size is loaded"
    )
    parser.add_argument(
        "--systems", default="pypaxos,redis", help="what to measure, a list (pypaxos,redis)"
    )
    parser.add_argument(
        "--no-recovery", action="store_true", help="skip the restart and wiped-follower runs"
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="where the data directories go",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=Path(tempfile.gettempdir()) / "scale.json",
        help="where the raw results are written",
    )
    parser.add_argument(
        "--plots", type=Path, default=HERE / "plots", help="where the plots are written"
    )
    parser.add_argument(
        "--keep-logs", type=Path, default=None, help="copy the nodes' logs into this folder"
    )
    parser.add_argument(
        "--limits",
        default="",
        help="[limits] keys written into the cluster's cluster.toml, KEY=VALUE[,KEY=VALUE]",
    )
    parser.add_argument("--report-only", action="store_true", help="rebuild from --json")
    args = parser.parse_args()
    try:
        limits = scale.parse_limits(args.limits)
    except scale.LimitsError as error:
        parser.error(str(error))
    if args.data_root is not None and not args.data_root.is_dir():
        parser.error(f"--data-root {args.data_root}: not a directory")
    if args.report_only:
        data: dict[str, Any] = json.loads(args.json.read_text())
    else:
        config = scale.ScaleConfig(
            sizes=scale.parse_sizes(args.sizes), systems=tuple(args.systems.split(",")),
            run_s=args.run_s, recovery=not args.no_recovery, data_root=args.data_root, log=log,
            keep_logs=args.keep_logs, limits=limits,
        )  # fmt: skip
        began = time.time()
        data = {
            "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(began)),
            "command": " ".join([os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
            "load_average_start": os.getloadavg(),
            "scale_config": {
                "sizes": list(config.sizes), "run_s": config.run_s, "clients": config.clients,
                "pipeline": config.pipeline, "value_bytes": config.value_bytes,
                "nodes": config.nodes, "limits": config.limits,
            },
        }  # fmt: skip
        data["scale"] = run_async(scale.bench_scale(config))
        data["load_average_end"] = os.getloadavg()
        data["elapsed_s"] = time.time() - began
        args.json.write_text(json.dumps(data, indent=1, default=str) + "\n")
        log(f"measured in {data['elapsed_s'] / 60:.1f} min; results in {args.json}")
    if importlib.util.find_spec("matplotlib") is None:
        log("plot not drawn: matplotlib is missing (`make bench` installs it)")
        print("\n".join(report_scale.section(data)))
    else:
        plot = report_scale.draw(data, args.plots / report_scale.PLOT_NAME)
        print("\n".join(report_scale.section(data, os.path.relpath(plot, HERE))))
    print("\n".join(report_scale.console(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
