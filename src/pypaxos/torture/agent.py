"""The client side of a torture run: workload, history, status polls and final checks.

Run as its own process (``python -m pypaxos.torture.agent``) in the clients' place: in
network-namespace mode inside the client namespace, the only place the nodes' addresses are
used from.  The harness drives it over a Unix socket (a file path, reachable across network
namespaces) with one JSON object a line: ``status``, ``start``, ``stop``, ``final``,
``read_all``, ``member`` (a ``PAXOS.MEMBER`` request for the ``member`` nemesis), ``members``
(the current members' client addresses: every client made afterwards uses them, and a worker
whose client predates them makes a new one), ``exit``.

The workload: ``clients`` concurrent ``AsyncClient`` workers (worker W starts on node W, in
turn, and moves to the next node only when its node fails it), each doing reads, writes and
compare-and-sets on a few shared keys (``k0``..), and now and then a write of a unique key
(``u:W:N``) that nobody overwrites, so "every acknowledged write is present" has a direct
check.  Every call is an ``invoke`` then ``ok`` / ``fail`` (certainly not applied) / ``info``
(a timeout: outcome unknown) in ``pypaxos.lincheck.wgl``'s JSON Lines format, appended
to the history file as it happens.  After an ``info`` the worker continues as a new process
number, as in Jepsen: the timed-out operation stays pending forever.  ``read_fraction`` of a
worker's operations on shared keys are reads (0.45 by default; the rest 30:25 writes and CAS).

Readers (``readers``, 0 by default): read-only clients, reader R bound to node R for good (its
client knows no other address), reading a shared key every ``READER_PAUSE_S``.  A node cut off
from the others keeps being read while the rest of the cluster writes, so a deposed leader or a
lagging follower that answers a read it must not is caught (``torture.reads``).

Lock workers (``locks`` in ``start``, 0 by default): holders of ``client.Lock`` acting on a
fenced resource (``torture.locks``); ``locks`` answers their verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

from pypaxos.client import (
    AsyncClient,
    ClientError,
    CommandError,
    MembershipRefusedError,
    SessionExpiredError,
    UnavailableError,
)
from pypaxos.client.aio import fetch_info
from pypaxos.core.bugs import parse_bugs
from pypaxos.torture.locks import LockBug, LockWorkload

UNIQUE_EVERY_OPS = 5  # every Nth operation of a worker writes a fresh unique key
PROCESS_SPAN = 1000  # worker W's process numbers are W*1000, W*1000+1, ... (one per info)
STOP_GRACE_S = 8.0
MGET_KEYS = 128
READER_PAUSE_S = 0.005  # between a reader's reads: dense enough, and a history lincheck can take
WRITE_SHARE = 0.30 / 0.55  # of a worker's non-read operations on shared keys (the rest: CAS)


class Recorder:
    """The history, appended to a file event by event (an interrupted run keeps it)."""

    def __init__(self, path: Path) -> None:
        self.file: IO[str] = path.open("a", buffering=1)
        self.counts: Counter[str] = Counter()

    def event(self, process: int | str, kind: str, f: str, key: str, value: Any) -> None:
        if kind != "invoke" and isinstance(process, int):  # workload only, not final reads
            self.counts[kind] += 1
        line = {"process": process, "type": kind, "f": f, "key": key, "value": value}
        self.file.write(json.dumps(line) + "\n")

    def close(self) -> None:
        self.file.close()


class Agent:
    def __init__(self, addresses: list[str], history: Path, seed: int) -> None:
        self.members = {i: address for i, address in enumerate(addresses, start=1)}
        self.members_version = 0  # bumped by every ``members``: workers renew their clients
        self.rec = Recorder(history)
        self.rng = random.Random(seed)
        self.keys: list[str] = []
        self.last_seen: dict[str, str | None] = {}
        self.unique_acked: dict[str, str] = {}
        self.unique_unknown: dict[str, str] = {}
        self.stop = asyncio.Event()
        self.workers: list[asyncio.Task[None]] = []
        self.started = 0.0
        self.read_fraction = 0.45
        self.locks: LockWorkload | None = None  # the lock workload (torture.locks), if asked

    @property
    def addresses(self) -> list[str]:
        return [self.members[i] for i in sorted(self.members)]

    def set_members(self, members: dict[int, str]) -> None:
        self.members = dict(members)
        self.members_version += 1

    def client(self, home: int | None = None, **kwargs: Any) -> AsyncClient:
        """A client; with ``home``, one that starts on node ``home`` (by position) and stays on
        its node until that fails it, as Jepsen binds each client to a node: a node cut off from
        the others still has clients of its own, so a leader that should stop answering is
        caught answering."""
        options: dict[str, Any] = {"timeout_s": 1.0, "retries": 3, "backoff_max_s": 0.5}
        options.update(kwargs)
        addresses = self.addresses
        if home is not None:
            start = home % len(addresses)
            addresses = addresses[start:] + addresses[:start]
            options["follow_leader"] = False
        return AsyncClient(addresses, rng=random.Random(self.rng.random()), **options)

    # -- commands ----------------------------------------------------------------------------

    async def status(self) -> list[dict[str, Any]]:
        ids = sorted(self.members)
        infos = await asyncio.gather(
            *(fetch_info(self.members[i], 0.5) for i in ids), return_exceptions=True
        )
        out: list[dict[str, Any]] = []
        for index, info in zip(ids, infos, strict=True):
            if not isinstance(info, dict):
                out.append({"id": index, "role": "down"})
                continue
            out.append(
                {
                    "id": int(info.get("node_id", index)),
                    "role": info.get("paxos_role", "unknown"),
                    "leader_id": _int(info.get("leader_id")),
                    "commit_index": _int(info.get("commit_index")),
                    "applied_index": _int(info.get("applied_index")),
                    "state_digest": info.get("state_digest") or None,
                    "state_digest_slot": _int(info.get("state_digest_slot")),
                }
            )
        return out

    def start(self, clients: int, keys: int, readers: int = 0, read_fraction: float = 0.45) -> None:
        self.keys = [f"k{i}" for i in range(keys)]
        self.last_seen = {key: None for key in self.keys}
        self.read_fraction = read_fraction
        self.started = time.monotonic()
        loop = asyncio.get_running_loop()
        self.workers = [loop.create_task(self.worker(w + 1)) for w in range(clients)]
        # Readers' process numbers follow the workers' (each worker has PROCESS_SPAN of them).
        self.workers += [
            loop.create_task(self.reader(clients + r + 1, r % len(self.addresses)))
            for r in range(readers)
        ]

    def start_locks(self, workers: int, bugs: list[str]) -> None:
        """Start ``workers`` lock workers (``torture.locks``) beside the register workload."""
        if workers <= 0:
            return
        planted = frozenset(parse_bugs(bugs, LockBug))
        self.locks = LockWorkload(lambda w: self.client(home=w), self.rng, planted)
        loop = asyncio.get_running_loop()
        self.workers += [loop.create_task(self.locks.worker(w, self.stop)) for w in range(workers)]

    async def lock_verdict(self) -> dict[str, Any]:
        if self.locks is None:
            return {"entries": 0, "problems": [], "counts": {}}
        async with self.client(timeout_s=2.0, retries=5) as client:
            return await self.locks.verdict(client)

    async def stop_workload(self) -> dict[str, Any]:
        self.stop.set()
        if self.workers:
            _, pending = await asyncio.wait(self.workers, timeout=STOP_GRACE_S)
            for task in pending:
                task.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)
        return self.summary()

    def summary(self) -> dict[str, Any]:
        counts = self.rec.counts
        return {
            "ops": counts["ok"] + counts["fail"] + counts["info"],
            "ok": counts["ok"],
            "fail": counts["fail"],
            "info": counts["info"],
            "unique_acked": len(self.unique_acked),
        }

    async def available(self, timeout_s: float) -> float | None:
        """Seconds until a write succeeds again (``None``: not within ``timeout_s``)."""
        began = time.monotonic()
        async with self.client(timeout_s=1.0, retries=0) as client:
            attempt = 0
            while time.monotonic() - began < timeout_s:
                attempt += 1
                try:
                    await client.set("torture:probe", str(attempt))
                    return time.monotonic() - began
                except ClientError:
                    await asyncio.sleep(0.1)
        return None

    async def final(self) -> dict[str, Any]:
        """Read every key back; name each acknowledged unique write that is not there (a key
        whose read timed out is unverified, not lost)."""
        values = await self.read_all("final")
        missing = [
            f"{key}: wrote {value!r}, read {values[key]!r}"
            for key, value in sorted(self.unique_acked.items())
            if key in values and values[key] != value
        ]
        unread = sum(1 for key in self.unique_acked if key not in values)
        return {"missing": missing, "values": values, "unread": unread}

    async def read_all(self, tag: str) -> dict[str, str | None]:
        """Read every shared and unique key, ``MGET_KEYS`` at a time: one MGET is one read of
        each of its keys (one log command per key), so each key is a process of its own."""
        keys = self.keys + sorted(self.unique_acked) + sorted(self.unique_unknown)
        values: dict[str, str | None] = {}
        async with self.client(timeout_s=2.0, retries=5) as client:
            for start in range(0, len(keys), MGET_KEYS):
                chunk = keys[start : start + MGET_KEYS]
                for key in chunk:
                    self.rec.event(f"{tag}:{key}", "invoke", "read", key, None)
                try:
                    raws = await client.mget(*chunk)
                except ClientError:
                    for key in chunk:
                        self.rec.event(f"{tag}:{key}", "info", "read", key, None)
                    break  # the cluster does not answer: the rest stay unread (and unrecorded)
                for key, raw in zip(chunk, raws, strict=True):
                    value = None if raw is None else raw.decode()
                    values[key] = value
                    self.rec.event(f"{tag}:{key}", "ok", "read", key, value)
        return values

    async def member(self, request: dict[str, Any]) -> dict[str, Any]:
        """One ``PAXOS.MEMBER`` request through the current members (the client follows the
        leader): ``{"epoch"}``, ``{"refused", "detail"}``, ``{"error"}``, or for ``list``
        the membership as ``MembershipInfo.as_json``."""
        action = str(request["action"])
        addresses = self.addresses
        if action == "list":  # the leader's view: only it knows whether learners caught up
            nodes = await self.status()
            leaders = [n["id"] for n in nodes if n.get("role") == "leader"]
            if len(leaders) == 1 and leaders[0] in self.members:
                addresses = [self.members[leaders[0]]]
        rng = random.Random(self.rng.random())
        async with AsyncClient(addresses, timeout_s=2.0, retries=5, rng=rng) as client:
            try:
                if action == "list":
                    return {"list": (await client.member_list()).as_json()}
                node = int(request["id"])
                if action == "add":
                    epoch = await client.member_add(node, request["peer"], request["client"])
                elif action == "promote":
                    epoch = await client.member_promote(node)
                elif action == "remove":
                    epoch = await client.member_remove(node)
                elif action == "replace":
                    epoch = await client.member_replace(node, int(request["new"]))
                else:
                    return {"error": f"unknown member action {action!r}"}
            except MembershipRefusedError as refused:
                return {"refused": refused.reason, "detail": refused.detail}
            except ClientError as error:
                return {"error": f"{type(error).__name__}: {error}"}
        return {"epoch": epoch}

    # -- the workload ------------------------------------------------------------------------

    async def worker(self, w: int) -> None:
        rng = random.Random(self.rng.random())
        process = w * PROCESS_SPAN
        n = 0
        client = self.client(home=w - 1)
        version = self.members_version
        try:
            while not self.stop.is_set():
                if version != self.members_version:  # the members changed: their addresses
                    version = self.members_version
                    await client.aclose()
                    client = self.client(home=w - 1)
                n += 1
                if n % UNIQUE_EVERY_OPS == 0:
                    key, value = f"u:{w}:{n}", f"{w}-{n}"
                    outcome = await self.op(client, process, "write", key, value)
                    if outcome == "ok":
                        self.unique_acked[key] = value
                    elif outcome == "info":
                        self.unique_unknown[key] = value
                else:
                    key = rng.choice(self.keys)
                    roll = rng.random()
                    if roll < self.read_fraction:
                        outcome = await self.op(client, process, "read", key, None)
                    elif roll < self.read_fraction + (1 - self.read_fraction) * WRITE_SHARE:
                        outcome = await self.op(client, process, "write", key, f"{w}-{n}")
                    elif (expected := self.last_seen.get(key)) is not None:
                        pair = [expected, f"{w}-{n}"]
                        outcome = await self.op(client, process, "cas", key, pair)
                    else:  # CAS never matches an absent key: learn the value first
                        outcome = await self.op(client, process, "read", key, None)
                if outcome == "info":
                    process += 1  # the timed-out operation stays open: a new process goes on
                elif outcome == "expired":
                    await client.aclose()
                    client = self.client(home=w - 1)
                if outcome != "ok":
                    await asyncio.sleep(rng.uniform(0.0, 0.05))
        finally:
            await client.aclose()

    async def reader(self, w: int, node: int) -> None:
        """Read shared keys through node ``node`` only, until stopped (module docstring)."""
        rng = random.Random(self.rng.random())
        process = w * PROCESS_SPAN
        address = self.addresses[node]
        client = AsyncClient([address], timeout_s=1.0, retries=0, rng=random.Random(rng.random()))
        try:
            while not self.stop.is_set():
                outcome = await self.op(client, process, "read", rng.choice(self.keys), None)
                if outcome == "info":
                    process += 1
                await asyncio.sleep(READER_PAUSE_S if outcome == "ok" else 0.05)
        finally:
            await client.aclose()

    async def op(self, client: AsyncClient, process: int, f: str, key: str, value: Any) -> str:
        self.rec.event(process, "invoke", f, key, value)
        try:
            if f == "read":
                raw = await client.get(key)
                result: Any = None if raw is None else raw.decode()
                self.last_seen[key] = result
            elif f == "write":
                await client.set(key, value)
                result = value
                self.last_seen[key] = value
            else:
                expected, new = value
                swapped = await client.cas(key, expected, new)
                if not swapped:
                    self.rec.event(process, "fail", f, key, value)
                    return "fail"
                result = value
                self.last_seen[key] = new
        except (UnavailableError, CommandError):
            self.rec.event(process, "fail", f, key, value)  # certainly not applied
            return "fail"
        except SessionExpiredError:
            self.rec.event(process, "fail", f, key, value)
            return "expired"
        except ClientError:  # OutcomeUnknownError, or a reply we cannot trust
            self.rec.event(process, "info", f, key, value)
            return "info"
        self.rec.event(process, "ok", f, key, result)
        return "ok"


def _int(text: str | None) -> int | None:
    try:
        return None if text in (None, "") else int(str(text))
    except ValueError:
        return None


async def serve(agent: Agent, path: str) -> None:
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                request = json.loads(line)
                reply = await dispatch(agent, request)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
                if request.get("op") == "exit":
                    done.set()
                    return
        except (ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, done.set)
    with contextlib.suppress(FileNotFoundError):
        Path(path).unlink()
    server = await asyncio.start_unix_server(handle, path)
    try:
        await done.wait()
    finally:
        server.close()
        agent.stop.set()
        for task in agent.workers:
            task.cancel()
        await asyncio.gather(*agent.workers, return_exceptions=True)
        agent.rec.close()
        with contextlib.suppress(FileNotFoundError):
            Path(path).unlink()


async def dispatch(agent: Agent, request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "status":
        return {"nodes": await agent.status()}
    if op == "start":
        agent.start(
            int(request["clients"]),
            int(request["keys"]),
            int(request.get("readers", 0)),
            float(request.get("read_fraction", 0.45)),
        )
        agent.start_locks(int(request.get("locks", 0)), list(request.get("lock_bugs", [])))
        return {"ok": True}
    if op == "stop":
        return await agent.stop_workload()
    if op == "summary":
        return agent.summary()
    if op == "available":
        return {"after_s": await agent.available(float(request["timeout_s"]))}
    if op == "final":
        return await agent.final()
    if op == "member":
        return await agent.member(request)
    if op == "members":
        agent.set_members({int(i): str(a) for i, a in request["members"].items()})
        return {"ok": True}
    if op == "read_all":
        return {"values": await agent.read_all(str(request.get("tag", "check")))}
    if op == "locks":
        return await agent.lock_verdict()
    if op == "exit":
        return {"ok": True}
    return {"error": f"unknown op {op!r}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pypaxos.torture.agent")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--addresses", required=True, help="client addresses, comma-separated")
    parser.add_argument("--history", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    agent = Agent(args.addresses.split(","), args.history, args.seed)
    asyncio.run(serve(agent, args.socket))
    return 0


if __name__ == "__main__":
    sys.exit(main())
