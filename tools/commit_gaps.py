"""Watch a running cluster's commits: the longest interval with no commit, and leader changes.

Polls ``INFO paxos`` of every node every ``--interval-ms`` until ``--duration-s`` runs out (or
until interrupted) and prints, for the node that led longest: the longest interval in which its
applied index did not move, the leader changes seen (distinct leader ballots), and the snapshot
counters.  A stalled event loop answers INFO late, so a stall shows as a long interval.  Run it
next to a load, e.g.::

    .venv/bin/pypaxos cluster up --data /tmp/c --base-port 23001
    .venv/bin/python tools/commit_gaps.py --ports 23001,23002,23003 --duration-s 90 &
    redis-benchmark -p LEADER -t set -r 1000000 -n 2000000 -P 32 -c 32 -q
"""

from __future__ import annotations

import argparse
import time

import redis


def info(client: redis.Redis) -> dict[str, str]:
    text = client.execute_command("INFO", "paxos")
    if isinstance(text, bytes):
        text = text.decode()
    if isinstance(text, dict):
        return {str(k): str(v) for k, v in text.items()}
    pairs = (line.split(":", 1) for line in str(text).splitlines() if ":" in line)
    return {key: value for key, value in pairs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", required=True, help="client ports, comma-separated")
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--interval-ms", type=float, default=10.0)
    parser.add_argument("--idle-stop-s", type=float, default=5.0, help="stop after load ends")
    args = parser.parse_args()
    clients = {int(p): redis.Redis(port=int(p), socket_timeout=5) for p in args.ports.split(",")}
    last_change: dict[int, float] = {}
    last_applied: dict[int, int] = {}
    longest: dict[int, float] = dict.fromkeys(clients, 0.0)
    leader_ballots: set[str] = set()
    led: dict[int, int] = dict.fromkeys(clients, 0)
    started = time.monotonic()
    moved_once = False
    moving: set[int] = set()
    latest: dict[int, dict[str, str]] = {}
    while time.monotonic() - started < args.duration_s:
        for port, client in clients.items():
            try:
                fields = info(client)
            except redis.RedisError:
                continue
            latest[port] = fields
            now = time.monotonic()
            applied = int(fields.get("applied_index", "0"))
            if fields.get("paxos_role") == "leader":
                leader_ballots.add(fields.get("ballot", ""))
                led[port] += 1
            if applied != last_applied.get(port):
                if port in moving:  # not the wait before the load's first commit
                    longest[port] = max(longest[port], now - last_change[port])
                if port in last_applied:
                    moving.add(port)
                    moved_once = True
                last_applied[port] = applied
                last_change[port] = now
        if moved_once and all(
            time.monotonic() - last_change.get(p, started) > args.idle_stop_s for p in clients
        ):
            break  # the load ended
        time.sleep(args.interval_ms / 1000)
    leader = max(led, key=lambda p: led[p])
    fields = latest.get(leader, {})
    print(
        f"leader port {leader}: longest interval without a commit "
        f"{longest[leader] * 1000:.0f} ms (every node: "
        + ", ".join(f"{p} {longest[p] * 1000:.0f} ms" for p in sorted(longest))
        + f"); leader ballots seen {len(leader_ballots)} (changes {len(leader_ballots) - 1}); "
        f"snapshots saved {fields.get('snapshots_saved', '?')}, "
        f"last fork {fields.get('snapshot_fork_ms', '?')} ms"
    )


if __name__ == "__main__":
    main()
