"""A worker that does its work only while elected leader (``pypaxos.client.Election``).

Several copies run; each campaigns for ``worker:leader``, announcing its name.  The leader
ticks ``--ticks`` times (each tick a write fenced by its term's token, as in lock_job.py), then
resigns and the next candidate takes over with a higher token.  The others wait meanwhile.

    pypaxos cluster up
    python examples/leader_worker.py --candidates 3 --ticks 3
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from pypaxos.client import AsyncClient, Election

DEFAULT_ADDRESSES = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"

FENCED_TICK = """
local highest = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) < highest then return redis.error_reply('STALE') end
redis.call('SET', KEYS[1], ARGV[1])
return redis.call('RPUSH', KEYS[2], ARGV[2])
"""


async def candidate(addresses: list[str], name: str, ticks: int) -> int:
    """Campaign, work while leader, resign; the term's token."""
    async with AsyncClient(addresses) as client:
        election = Election(client, "worker:leader", ttl_ms=5_000)
        token = await election.campaign(name, timeout_s=60)
        print(f"{name}: elected, term token {token}")
        for tick in range(ticks):
            if not await election.is_leader():
                print(f"{name}: lost the leadership")
                break
            await client.write(
                "EVAL", FENCED_TICK, 2, "worker:fence", "worker:ticks", token, f"{name}:{tick}"
            )
            await asyncio.sleep(0.05)
        await election.resign()
        return token


async def main_async(args: argparse.Namespace) -> int:
    addresses = args.addresses.split(",")
    terms = await asyncio.gather(
        *(candidate(addresses, f"worker-{i}", args.ticks) for i in range(args.candidates))
    )
    async with AsyncClient(addresses) as client:
        ticks = await client.execute("LRANGE", "worker:ticks", 0, -1)
    assert isinstance(ticks, list)
    names = [bytes(t).split(b":")[0].decode() for t in ticks if isinstance(t, bytes)]
    # Each leader's ticks are contiguous: no two leaders worked at once.
    runs = [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]
    print(f"terms: {sorted(terms)}; leaders in tick order: {runs}")
    return 0 if len(runs) == len(set(runs)) == args.candidates else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", default=DEFAULT_ADDRESSES)
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--ticks", type=int, default=3)
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
