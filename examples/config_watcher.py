"""Watch a configuration hash and react to each change (by polling).

The watcher reads the hash ``app:config`` with ``HGETALL`` every ``--poll-s`` and prints each
version it has not seen.  Reads are linearizable, so a change is seen at most one poll after it
was acknowledged.  ``--set field=value`` instead writes a change (exactly once, through the
client's session).  ``--until-changes N`` stops after N changes seen (for tests and demos).

    pypaxos cluster up
    python examples/config_watcher.py --until-changes 2 &
    python examples/config_watcher.py --set mode=fast
    python examples/config_watcher.py --set mode=safe
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from pypaxos.client import AsyncClient

DEFAULT_ADDRESSES = "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
CONFIG_KEY = "app:config"


async def read_config(client: AsyncClient) -> dict[str, str]:
    reply = await client.execute("HGETALL", CONFIG_KEY)
    if isinstance(reply, dict):  # RESP3 map
        items = list(reply.items())
    elif isinstance(reply, list):
        items = list(zip(reply[::2], reply[1::2], strict=True))
    else:
        items = []
    return {bytes(k).decode(): bytes(v).decode() for k, v in items if isinstance(k, bytes)}


async def watch(addresses: list[str], poll_s: float, until_changes: int | None) -> int:
    async with AsyncClient(addresses) as client:
        seen = await read_config(client)
        print(f"config: {seen}", flush=True)
        changes = 0
        while until_changes is None or changes < until_changes:
            await asyncio.sleep(poll_s)
            now = await read_config(client)
            if now != seen:
                changes += 1
                print(f"changed: {now}", flush=True)
                seen = now
    return 0


async def set_field(addresses: list[str], assignment: str) -> int:
    field, _, value = assignment.partition("=")
    async with AsyncClient(addresses) as client:
        await client.write("HSET", CONFIG_KEY, field, value)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", default=DEFAULT_ADDRESSES)
    parser.add_argument("--poll-s", type=float, default=0.2)
    parser.add_argument("--until-changes", type=int, default=None)
    parser.add_argument("--set", dest="assignment", default=None, help="write field=value")
    args = parser.parse_args(argv)
    addresses = args.addresses.split(",")
    if args.assignment is not None:
        return asyncio.run(set_field(addresses, args.assignment))
    return asyncio.run(watch(addresses, args.poll_s, args.until_changes))


if __name__ == "__main__":
    sys.exit(main())
