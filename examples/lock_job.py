"""A job that must never run twice at once, protected by a ``pypaxos.client.Lock``.

Each worker takes the lock ``job:report`` (blocking up to ``--wait-s``), does its job under the
fencing token it got, and releases.  The "job" appends a line to a shared log kept in the
cluster (the list ``job:report:runs``) after checking its token against the highest one the
job has accepted (``job:report:fence``): the check and the append are one transaction, so a
worker whose lease expired while it was paused is refused, as a real fenced resource refuses.

    pypaxos cluster up
    python examples/lock_job.py --workers 3 --runs 2
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from pypaxos.client import AsyncClient, Lock

DEFAULT_ADDRESSES = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"

FENCED_APPEND = """
local highest = tonumber(redis.call('GET', KEYS[1]) or '0')
local token = tonumber(ARGV[1])
if token < highest then return redis.error_reply('STALE token ' .. token .. ' < ' .. highest) end
redis.call('SET', KEYS[1], token)
return redis.call('RPUSH', KEYS[2], ARGV[2])
"""
"""The resource: accept the action only with a token no lower than any accepted before."""


async def run_job(client: AsyncClient, worker: str, token: int) -> None:
    """The protected work: one fenced append to the job's run log."""
    await client.write(
        "EVAL", FENCED_APPEND, 2, "job:report:fence", "job:report:runs", token, f"{worker}:{token}"
    )
    await asyncio.sleep(0.05)  # the work itself


async def worker(addresses: list[str], name: str, runs: int, wait_s: float) -> list[int]:
    tokens = []
    async with AsyncClient(addresses) as client:
        lock = Lock(client, "job:report", ttl_ms=5_000)
        for _ in range(runs):
            token = await lock.acquire(timeout_s=wait_s)
            try:
                await run_job(client, name, token)
                tokens.append(token)
            finally:
                await lock.release()
    return tokens


async def main_async(args: argparse.Namespace) -> int:
    addresses = args.addresses.split(",")
    results = await asyncio.gather(
        *(worker(addresses, f"w{i}", args.runs, args.wait_s) for i in range(args.workers))
    )
    async with AsyncClient(addresses) as client:
        runs = await client.execute("LRANGE", "job:report:runs", 0, -1)
    assert isinstance(runs, list)
    tokens = [int(bytes(run).split(b":")[1]) for run in runs if isinstance(run, bytes)]
    print(f"runs: {len(tokens)}, tokens in order: {tokens == sorted(tokens)}")
    for i, got in enumerate(results):
        print(f"w{i}: tokens {got}")
    return 0 if tokens == sorted(tokens) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", default=DEFAULT_ADDRESSES)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--runs", type=int, default=2, help="jobs each worker runs")
    parser.add_argument("--wait-s", type=float, default=30.0)
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
