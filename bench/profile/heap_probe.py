"""The scale bench with a memory dump of every node each time the bench reads its ``VmRSS``.

Runs ``bench/scale_bench.py`` with ``heap_site`` first on ``PYTHONPATH`` (so every node dumps on
``SIGUSR2``: ``heap_site/sitecustomize.py``) and signals each node when the bench reads its
resident size: once empty, at the end of the load and when settled (labels ``baseline``,
``end``, ``settled``).  Then prints, per node and reading: resident MiB by mapping, glibc's heap
in use and free (``mallinfo2``), pymalloc's arenas::

    PYTHONPATH=src .venv/bin/python bench/profile/heap_probe.py --out /tmp/heap-dumps \\
        -- --sizes 100k,1m --run-s 10 --systems pypaxos --no-recovery

``--settle-extra-s S`` delays the settled reading by S seconds per node; ``--mallopt`` passes
glibc options to the nodes (``M_MMAP_THRESHOLD=131072``).  Add ``PYTHONTRACEMALLOC=1`` to the
environment for allocation sites (the nodes run several times slower).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import glob
import json
import os
import runpy
import signal
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PHASES = ("baseline", "end", "settled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where the dumps go")
    parser.add_argument("--settle-extra-s", type=float, default=0.0)
    parser.add_argument("--mallopt", default="", help="M_NAME=VALUE,... for the nodes")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["PYPAXOS_HEAP_DIR"] = str(args.out)
    os.environ["PYPAXOS_HEAP_MALLOPT"] = args.mallopt
    site = str(HERE / "heap_site")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [site, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    )
    from pypaxos.bench import procstat, scale

    read_rss = procstat.rss_kib
    calls: collections.Counter[int] = collections.Counter()

    def rss_kib(pid: int) -> int:
        count = calls[pid]
        calls[pid] += 1
        if count == 2 and args.settle_extra_s:
            time.sleep(args.settle_extra_s)
        value = read_rss(pid)
        if count < len(PHASES):
            (args.out / f"label-{pid}").write_text(PHASES[count])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR2)
        return value

    procstat.rss_kib = rss_kib
    scale.procstat.rss_kib = rss_kib
    bench = HERE.parent / "scale_bench.py"
    sys.path.insert(0, str(bench.parent))
    sys.argv = [str(bench), *[a for a in args.bench_args if a != "--"]]
    try:
        runpy.run_path(str(bench), run_name="__main__")
    finally:
        time.sleep(1.0)  # the last dumps
        summarize(args.out)


def summarize(out: Path) -> None:
    """One line per node and reading: where its resident MiB are."""
    mib = 1 / 1024
    for path in sorted(glob.glob(str(out / "*-*.json")), key=lambda p: (p.rsplit("-", 1)[1], p)):
        dump = json.loads(Path(path).read_text())
        smaps, malloc = dump["smaps_kib"], dump.get("mallinfo2", {})
        files = sum(v for k, v in smaps.items() if k.startswith("file:") or k == "[files]")
        line = (
            f"{dump['pid']} {dump['label']:8} VmRSS {sum(smaps.values()) * mib:6.1f} "
            f"[heap] {smaps.get('[heap]', 0) * mib:6.1f} "
            f"[anon] {smaps.get('[anon]', 0) * mib:6.1f} "
            f"files {files * mib:5.1f}"
        )
        if malloc:
            line += (
                f" | malloc in use {malloc['uordblks'] / 2**20:6.1f} free "
                f"{malloc['fordblks'] / 2**20:6.1f} mapped {malloc['hblkhd'] / 2**20:5.1f}"
            )
        arenas = dump["pymalloc"].get("arenas allocated current")
        line += f" | pymalloc arenas {arenas}"
        print(line)


if __name__ == "__main__":
    main()
