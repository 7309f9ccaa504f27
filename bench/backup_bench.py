"""``pypaxos snapshot save | inspect | restore`` timed on a local 3-node cluster (loopback).

Loads ``--keys`` string keys of 32 bytes (pipelined, 1,000 a round trip) plus a 1,000-field
hash and a 1,000-item list into a new cluster, then times each command as a user runs it (a
process each, so the times include Python's start, about 0.8 s here), brings up a new cluster
restored from the file and checks it holds every key.  Everything it starts it stops, and its
folder is removed.  Run::

    .venv/bin/python bench/backup_bench.py [--keys 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from pypaxos.cluster import LocalCluster, processes


def _timed(*args: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pypaxos", *args], capture_output=True, text=True, check=False
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"pypaxos {' '.join(args)} failed: {done.stderr}")
    return took, done.stdout


def _leader(cluster: LocalCluster) -> redis.Redis:
    for node in cluster.status():
        if node.role == "leader":
            host, port = node.client.rsplit(":", 1)
            return redis.Redis(host=host, port=int(port))
    raise SystemExit("no leader")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000, help="string keys to load (100000)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="pypaxos-backup-bench-"))
    base = processes.find_free_base_port(6)
    old = LocalCluster.create(root / "old", 3, base)
    new = LocalCluster.create(root / "new", 3, base + 3)
    try:
        asyncio.run(old.up(60.0))
        r = _leader(old)
        started = time.perf_counter()
        for start in range(0, args.keys, 1000):
            pipe = r.pipeline(transaction=False)
            for i in range(start, min(start + 1000, args.keys)):
                pipe.set(f"key:{i:07d}", "v" * 32)
            pipe.execute()
        r.hset("hash", mapping={f"f{i}": i for i in range(1000)})
        r.rpush("list", *range(1000))
        print(f"loaded {args.keys:,} keys in {time.perf_counter() - started:.1f}s")
        file = root / "backup.pxb"
        took, out = _timed(
            "snapshot", "save", str(file), "--data", str(old.spec.data_dir), "--json"
        )
        saved = json.loads(out)
        print(f"save: {took:.2f}s, {file.stat().st_size:,} bytes, slot {saved['slot']}")
        took, _ = _timed("snapshot", "inspect", str(file))
        print(f"inspect: {took:.2f}s")
        old.down()
        took, _ = _timed("snapshot", "restore", str(file), "--data", str(new.spec.data_dir))
        print(f"restore of 3 members: {took:.2f}s")
        started = time.perf_counter()
        asyncio.run(new.up(60.0))
        print(f"restored cluster up: {time.perf_counter() - started:.2f}s")
        keys = _leader(new).dbsize()
        assert keys == args.keys + 2, keys
        print(f"restored cluster holds {keys:,} keys")
    finally:
        old.down()
        new.down()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
