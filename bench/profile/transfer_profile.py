"""How fast a wiped follower is rebuilt from the leader's snapshot, and where the time goes.

It starts a 3-node local cluster (``--fsync always``) in a fresh temporary directory, writes
``--keys`` keys of 128-byte values (``pypaxos.bench.scale.fill``), waits until the leader's
durable snapshot holds them, and then, ``--rounds`` times: kills a follower (SIGKILL), wipes
its directory, starts it again with ``--unsafe-allow-empty-voter`` and times it until it has
applied everything the leader had committed (``pypaxos.bench.scale`` does the same once per
size).  For each round it prints:

- ``answered``: seconds from the start until the node answers ``INFO`` (the process start);
- ``caught up``: seconds from the start until its applied index reaches the goal;
- the follower's own account (``INFO`` ``snapshot_receive_*``): from its first chunk to the
  installed state, the bytes received, and the same as a rate;
- the CPU seconds the leader and the follower used over the round (``/proc``, every thread);
- ``MB/s``: the leader's snapshot bytes over ``caught up``, the scale bench's figure.

With ``--cprofile DIR`` the follower of the last round runs under cProfile from its start (its
event-loop thread, CPU time) and the leader during that round, and the top functions of both
are printed (``transfer_site/sitecustomize.py``).  ``--src TREE`` runs the nodes from another
source tree (its ``src/`` first on ``PYTHONPATH``), for A/B runs against
``git archive REV src | tar -x -C TREE``.

    .venv/bin/python bench/profile/transfer_profile.py --keys 1000000 --rounds 3
        [--src /tmp/tree-a] [--cprofile /tmp/prof] [--json out.json]

``--inproc`` measures the same path in one process, in CPU time (less at the mercy of the
neighbours than wall-clock time on a shared machine): a store of ``--keys`` keys written as a
snapshot file, then per phase, ``--rounds`` times (the best kept): the leader's reads of the
chunks off the file (CRC checked), their encoding as peer frames, the follower's framing
(``FrameDecoder.feed`` in 256 KiB pieces, as a socket hands them over), its loading of every
chunk, and ``finish``.  With ``--src`` it runs on that tree (A/B).

    .venv/bin/python bench/profile/transfer_profile.py --inproc --keys 1000000 --rounds 5

Everything it starts it stops, and the temporary directory goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pstats
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pypaxos.bench import procstat, redis_benchmark
from pypaxos.bench.scale import _info, _restart_follower, cached_bytecode, fill, snapshot_bytes
from pypaxos.cluster import processes
from pypaxos.cluster.local import LocalCluster

HERE = Path(__file__).resolve().parent
PIECE = 256 * 1024  # --inproc: what one socket read hands the framing
Json = dict[str, Any]


async def _wait_snapshot_covers(cluster: LocalCluster, leader_id: int, timeout_s: float) -> int:
    """Wait until the leader's durable snapshot stops growing after the fill; its bytes."""
    leader_dir = cluster.spec.node_dir(leader_id)
    deadline = time.monotonic() + timeout_s
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        size, _ = snapshot_bytes(leader_dir)
        writing = any(p.name.endswith(".tmp") for p in leader_dir.rglob("*"))
        if size != last or writing:  # a forked child is still writing a newer one
            last, stable_since = size, time.monotonic()
        elif size and time.monotonic() - stable_since > 3.0:
            return size
        await asyncio.sleep(0.2)
    return last


async def _round(
    cluster: LocalCluster, follower: int, leader_id: int, keys: int, profile_dir: Path | None
) -> Json:
    spec = cluster.spec
    leader_pid = processes.node_pids(spec, leader_id)[0]
    if profile_dir is not None:
        os.environ["PYPAXOS_TRANSFER_PROFILE_FROM_START"] = "1"
        os.kill(leader_pid, signal.SIGUSR1)
    leader_cpu = procstat.cpu_seconds([leader_pid])
    began = time.monotonic()
    step = await _restart_follower(cluster, follower, leader_id, True, 60.0 + keys / 100_000)
    step["leader_cpu_s"] = procstat.cpu_seconds([leader_pid]) - leader_cpu
    step["round_s"] = time.monotonic() - began
    follower_pid = processes.node_pids(spec, follower)[0]
    step["follower_cpu_s"] = procstat.cpu_seconds([follower_pid])  # its whole life so far
    info = await _info(spec.member(follower).client) or {}
    for name in ("snapshot_receive_ms", "snapshot_receive_bytes", "snapshot_first_chunk_ms"):
        text = info.get(name, "")
        step[name] = int(text) if text.isdigit() else None
    if profile_dir is not None:
        os.environ.pop("PYPAXOS_TRANSFER_PROFILE_FROM_START", None)
        os.kill(leader_pid, signal.SIGUSR2)
        os.kill(follower_pid, signal.SIGUSR2)
        step["profiles"] = {"leader": leader_pid, "follower": follower_pid}
    return step


def _print_round(index: int, step: Json) -> None:
    receive_ms, received = step.get("snapshot_receive_ms"), step.get("snapshot_receive_bytes")
    inner = (
        f"first chunk at {step['snapshot_first_chunk_ms']} ms, "
        f"{received / 1e6:.1f} MB in {receive_ms} ms "
        f"({received / 1e3 / max(receive_ms, 1):.1f} MB/s)"
        if receive_ms is not None and received
        else "no INFO snapshot_receive_*"
    )
    print(
        f"round {index}: answered {step['answered_s']:.2f} s, caught up "
        f"{step['caught_up_s']:.2f} s, {step['transfer_mb_per_s']:.1f} MB/s "
        f"({step['leader_snapshot_bytes'] / 1e6:.1f} MB); follower: {inner}; CPU leader "
        f"{step['leader_cpu_s']:.2f} s, follower {step['follower_cpu_s']:.2f} s",
        flush=True,
    )


def _print_profile(path: Path, title: str, top: int) -> None:
    if not path.exists():
        print(f"{title}: no profile at {path}")
        return
    print(f"--- {title}: top {top} by own time ---")
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(top)
    print(f"--- {title}: top {top} by cumulative time ---")
    stats.sort_stats("cumulative").print_stats(top)


async def run(args: argparse.Namespace) -> Json:
    with tempfile.TemporaryDirectory(prefix="pypaxos-transfer-") as tmp:
        root = Path(tmp)
        cluster = LocalCluster.create(
            root / "cluster", 3, processes.find_free_base_port(3), "always"
        )
        out: Json = {"keys": args.keys, "rounds": [], "load_before": os.getloadavg()}
        bytecode = (
            contextlib.nullcontext() if args.compile_each_start
            else cached_bytecode(root / "pycache")
        )  # fmt: skip
        with bytecode:
            await _rounds(args, cluster, out)
        out["load_after"] = os.getloadavg()
        return out


async def _rounds(args: argparse.Namespace, cluster: LocalCluster, out: Json) -> None:
    try:
        leader = await cluster.up(timeout_s=60)
        assert leader.id is not None
        filled = await fill(leader.client, args.keys)
        out["fill_rate"] = filled.keys / filled.seconds
        print(f"filled {args.keys:,} keys at {out['fill_rate']:,.0f}/s", flush=True)
        if args.load_s > 0:  # as the scale bench does before its recovery rounds
            port = int(leader.client.rpartition(":")[2])
            requests = int(40_000 * args.load_s)
            await asyncio.to_thread(
                redis_benchmark.run_with_progress, port, "set", requests, 32, 32, 128,
                600.0, args.keys,
            )  # fmt: skip
            print(f"loaded {requests:,} SETs", flush=True)
        out["leader_snapshot_bytes"] = await _wait_snapshot_covers(cluster, leader.id, 120)
        follower = max(m.id for m in cluster.spec.members if m.id != leader.id)
        for index in range(args.rounds):
            last = index == args.rounds - 1
            profile = args.cprofile if last else None
            step = await _round(cluster, follower, leader.id, args.keys, profile)
            out["rounds"].append(step)
            _print_round(index, step)
    finally:
        with contextlib.suppress(Exception):
            cluster.down(timeout_s=10)
        if args.keep_logs is not None:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for member in cluster.spec.members:
                source = cluster.spec.log_file(member.id)
                if source.exists():
                    shutil.copyfile(source, args.keep_logs / f"node{member.id}.log")


def inproc(args: argparse.Namespace) -> Json:
    """The rebuild's CPU per phase, in one process (module docstring, ``--inproc``)."""
    from pypaxos.kv.state_machine import KVStateMachine
    from pypaxos.multi.messages import SnapshotChunk
    from pypaxos.runtime.wire import CODEC
    from pypaxos.storage.file import FileStorage

    machine = KVStateMachine()
    value = b"x" * 128
    for first in range(0, args.keys, 10_000):
        for i in range(first, min(first + 10_000, args.keys)):
            machine._data[b"key:%012d" % i] = value
    chunk_bytes = args.chunk_kib * 1024
    phases: dict[str, list[float]] = {}

    def timed(name: str, work: Any) -> Any:
        began = time.process_time()
        result = work()
        phases.setdefault(name, []).append(time.process_time() - began)
        return result

    with tempfile.TemporaryDirectory(prefix="pypaxos-transfer-") as tmp:
        storage = FileStorage(Path(tmp), fsync="never")
        storage.write_snapshot_chunks(1, list(machine.snapshot_chunks(chunk_bytes)), compact=False)
        total = 0
        for _ in range(args.rounds):
            reader = storage.open_snapshot()
            assert reader is not None
            count = reader.chunk_count
            chunks = timed("leader: read chunks", lambda r=reader, n=count: [
                r.read_chunk(seq) for seq in range(n)])  # fmt: skip
            reader.close()
            total = sum(map(len, chunks))
            frames = timed("leader: encode frames", lambda c=chunks: [
                CODEC.encode_frame(SnapshotChunk(1, 1, seq, len(c), data))
                for seq, data in enumerate(c)])  # fmt: skip
            stream = b"".join(frames)
            del frames
            decoder = CODEC.decoder()
            got = timed("follower: framing", lambda d=decoder, b=stream: [
                m for at in range(0, len(b), PIECE) for m in d.feed(b[at:at + PIECE])])  # fmt: skip
            del stream
            loader = KVStateMachine(state_digest=args.digest).snapshot_loader()
            timed("follower: load chunks", lambda g=got, lo=loader: [
                lo.load(m.data) for m in g])  # fmt: skip
            timed("follower: finish", loader.finish)
            del got, loader
        storage.close()
    best = {name: min(times) for name, times in phases.items()}
    for name, seconds in best.items():
        print(f"{name:24} {seconds * 1000:8.1f} ms CPU  {total / 1e6 / seconds:8.1f} MB/s")
    follower = sum(v for k, v in best.items() if k.startswith("follower"))
    print(f"{'follower: all':24} {follower * 1000:8.1f} ms CPU  {total / 1e6 / follower:8.1f} MB/s"
          f"  ({total / 1e6:.1f} MB, {args.keys:,} keys)")  # fmt: skip
    return {"keys": args.keys, "bytes": total, "best_cpu_s": best, "all_cpu_s": phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inproc", action="store_true", help="CPU per phase in one process")
    parser.add_argument("--digest", action="store_true", help="--inproc: keep a state digest")
    parser.add_argument("--chunk-kib", type=int, default=1024, help="--inproc chunk size")
    parser.add_argument("--load-s", type=float, default=0.0, help="redis-benchmark SETs first")
    parser.add_argument("--src", type=Path, help="run the nodes from this tree's src/")
    parser.add_argument("--cprofile", type=Path, help="profile the last round into this dir")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--compile-each-start",
        action="store_true",
        help="no bytecode cache for the nodes (as with PYTHONDONTWRITEBYTECODE set)",
    )
    parser.add_argument("--keep-logs", type=Path, help="copy the nodes' logs into this dir")
    args = parser.parse_args()
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if args.cprofile is not None:
        args.cprofile.mkdir(parents=True, exist_ok=True)
        os.environ["PYPAXOS_TRANSFER_PROFILE_DIR"] = str(args.cprofile.resolve())
        paths.insert(0, str(HERE / "transfer_site"))
    if args.src is not None:
        paths.insert(0, str(args.src.resolve() / "src"))
    if paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    print(f"load average {os.getloadavg()}; nodes from {args.src or 'this tree'}", flush=True)
    if args.inproc:
        if args.src is not None:  # run again on that tree
            os.execv(sys.executable, [sys.executable, *sys.argv[: sys.argv.index("--src")],
                                      *sys.argv[sys.argv.index("--src") + 2:]])  # fmt: skip
        result = inproc(args)
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=1))
        return
    out = asyncio.run(run(args))
    rates = [r["transfer_mb_per_s"] for r in out["rounds"] if r.get("transfer_mb_per_s")]
    if rates:
        print(f"MB/s: median {sorted(rates)[len(rates) // 2]:.1f}, rounds {rates}")
    print(f"load average after {out['load_after']}")
    if args.cprofile is not None and out["rounds"]:
        pids = out["rounds"][-1].get("profiles", {})
        time.sleep(1.0)  # the dumps are written by the nodes' signal handlers
        for role in ("follower", "leader"):
            if role in pids:
                _print_profile(args.cprofile / f"{pids[role]}.prof", role, args.top)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    sys.exit(0 if rates else 1)


if __name__ == "__main__":
    main()
