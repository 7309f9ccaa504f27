"""One torture run, start to verdict.

1. Lay out the run folder, choose the hosts (network namespaces when root and ``ip netns``
   work and ``--mode`` allows, else loopback), write each node's config, start the proxies,
   the nodes and the client agent; wait for a leader.
2. Start the workload and let the nemesis inject faults for ``--time`` seconds.
3. Stop the workload; heal everything (network, clocks, pauses, dead nodes).  From that
   instant the cluster must take a write again within ``HEAL_BOUND_S``: nodes restarted in the
   last fault need their start-up and an election (0.5-1 s of silence at the node's timings),
   and clients back off up to 0.5 s between attempts.
4. Wait until every node has applied the same log prefix (so no timed-out write is still
   landing); read every key back (the history gets those reads too); check every acknowledged
   unique write is there; then read every key
   through each of a few successive leaders (the current one is stopped with SIGTERM, another
   takes over, the old one restarts): every node that leads must answer the same.  Then
   compare the nodes' state digests at one applied index (``INFO`` ``state_digest``).
   With the member nemesis, check that the membership is what the acknowledged changes made.
   With lock workers, read the fenced resource's log of accepted writes and check that no two
   holders acted at once (``torture.locks``).
5. Once every node has stopped, hold each configuration a node used and each removal it acted
   on, as its log records them, against the chosen configuration history
   (``torture.membership_history``).
6. Check the history for linearizability; print the verdict; stop every process; write
   ``summary.json``.  The run folder keeps the history, the nemesis log and every log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pypaxos.runtime.membership_record import ConfigSeen
from pypaxos.storage.file import FsyncMode
from pypaxos.torture import membership_history
from pypaxos.torture.cluster import Layout, TortureCluster
from pypaxos.torture.hosts import Hosts, LoopbackHosts, NamespaceHosts, netns_available
from pypaxos.torture.nemesis import CLOCK_NEMESES, MEMBER_NEMESES, NEMESES, POWER_NEMESES, Nemesis
from pypaxos.torture.powerfs import fuse_unavailable
from pypaxos.torture.reads import ReadSetup

# The agent's parsed JSON status, one object per node.
StatusFn = Callable[[], Coroutine[Any, Any, list[dict[str, Any]]]]

HEAL_BOUND_S = 20.0  # the cluster takes writes again within this long after the final heal
CONVERGE_BOUND_S = 20.0
LEADER_TIMEOUT_S = 30.0
LINCHECK_TIMEOUT_S = 120.0


@dataclass
class Options:
    time_s: float
    nodes: int
    nemeses: list[str]
    bugs: list[str]
    mode: str  # auto | loopback | netns
    out: Path | None
    seed: int
    clients: int = 5
    keys: int = 3
    agreement_rounds: int | None = None  # default: every node once (at most)
    keep_data: bool = False
    reads: ReadSetup = field(default_factory=ReadSetup)  # the nodes' read mode (reads.py)
    readers: int = 0  # read-only clients pinned to one node each (agent.py)
    read_fraction: float = 0.45  # of the workload clients' operations
    fsync: FsyncMode = "always"  # the nodes' setting; "never" shows what the power nemesis finds
    locks: int = 0  # lock workers (torture.locks) beside the register workload
    lock_bugs: list[str] = field(default_factory=list)  # torture.locks.LockBug names
    spares: int = 0  # node slots laid out beyond the first members, for the member nemesis


@dataclass
class Verdict:
    mode: str = "loopback"
    ops: int = 0
    ok: int = 0
    fail: int = 0
    info: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    linearizable: str = "unknown"
    lost_writes: list[str] = field(default_factory=list)
    available_after_s: float | None = None
    converged: bool = False
    leaders_read: list[int] = field(default_factory=list)
    replicas_agree: bool = False
    # The replicas' state digests compared at one applied index (``digest_agreement``): the
    # slot compared at and how many nodes were there; ``None``: no digests to compare (the
    # read-back agreement check stands alone then).
    digest_slot: int | None = None
    digest_nodes: int = 0
    problems: list[str] = field(default_factory=list)
    checks_skipped: bool = False  # not available after the heal: no reads, no agreement
    final_status: list[dict[str, Any]] = field(default_factory=list)
    locks: dict[str, Any] = field(default_factory=dict)  # the lock workload's counts and log size
    membership_records: int = 0  # the nodes' membership records checked (membership_history)
    run_dir: str = ""
    explanation: str = ""

    @property
    def clean(self) -> bool:
        return (
            self.linearizable == "ok"
            and not self.lost_writes
            and self.available_after_s is not None
            and self.available_after_s <= HEAL_BOUND_S
            and self.converged
            and self.replicas_agree
            and not self.problems
        )

    def failures(self) -> list[str]:
        out = []
        if self.linearizable != "ok":
            out.append(f"history linearizable: {self.linearizable}")
        if self.lost_writes:
            out.append(f"{len(self.lost_writes)} acknowledged writes lost")
        if self.available_after_s is None or self.available_after_s > HEAL_BOUND_S:
            out.append(f"not available within {HEAL_BOUND_S:g}s of the heal")
        if not self.converged and not self.checks_skipped:
            out.append("replicas did not converge")
        if not self.replicas_agree and not self.checks_skipped:
            out.append("replicas disagree")
        if len(self.problems) == 1:
            out.append(self.problems[0])
        elif self.problems:
            out.append(f"{len(self.problems)} problems, first: {self.problems[0]}")
        return out

    def summary_line(self) -> str:
        faults = sum(self.faults.values())
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items()))
        verdict = "clean" if self.clean else "VIOLATION (" + "; ".join(self.failures()) + ")"
        return (
            f"torture: {self.ops} operations, {self.ok} ok, {self.fail} fail, {self.info} info; "
            f"{faults} faults injected ({kinds or 'none'}); verdict: {verdict}"
        )


class _Unavailable(Exception):
    """The cluster took no write within the bound after the heal."""


def choose_hosts(options: Options) -> Hosts:
    if options.mode in ("auto", "netns"):
        usable, why = netns_available()
        if usable:
            return NamespaceHosts(options.nodes + options.spares, "pxt")
        if options.mode == "netns":
            raise RuntimeError(f"network namespaces are not usable here: {why}")
        print(f"torture: loopback mode ({why})", flush=True)
    # Ports are not drawn from the seed: two runs with one seed may run side by side.
    return LoopbackHosts.on_free_ports(options.nodes + options.spares, random.Random())


def check_power(options: Options) -> str | None:
    """The power nemesis needs FUSE: asked for by name without it, the run stops; as part of
    ``all`` it is left out, and the returned note says why."""
    named = [kind for kind in POWER_NEMESES if kind in options.nemeses]
    why = fuse_unavailable() if named else None
    if why is None:
        return None
    if not set(NEMESES) <= set(options.nemeses) or "member-power" in named:
        raise RuntimeError(f"the {named[-1]} nemesis needs a FUSE mount: {why}")
    options.nemeses = [kind for kind in options.nemeses if kind != "power"]
    return f"torture: no power nemesis ({why})"


async def torture(options: Options, say: Callable[[str], None] = print) -> Verdict:
    power_note = check_power(options)
    rng = random.Random(options.seed)
    run_dir = options.out or Path(tempfile.mkdtemp(prefix="pypaxos-torture-"))
    sockets = Path(tempfile.mkdtemp(prefix="ppt-", dir="/tmp"))
    layout = Layout(run_dir, sockets)
    verdict = Verdict(run_dir=str(run_dir))
    hosts = choose_hosts(options)
    verdict.mode = hosts.mode
    cluster = TortureCluster(
        layout,
        hosts,
        options.nodes,
        bugs=options.bugs,
        clock=any(kind in CLOCK_NEMESES for kind in options.nemeses),
        seed=options.seed,
        reads=options.reads,
        power=any(kind in POWER_NEMESES for kind in options.nemeses),
        fsync=options.fsync,
        spares=options.spares,
    )
    nemesis: Nemesis | None = None
    try:
        try:
            nemeses, bugs = ",".join(options.nemeses) or "none", ",".join(options.bugs) or "none"
            fsync = "" if options.fsync == "always" else f", fsync {options.fsync}"
            spares = f" + {options.spares} spare" if options.spares else ""
            say(
                f"torture: seed {options.seed}, {options.nodes} nodes{spares} ({hosts.mode}), "
                f"nemesis {nemeses}, bugs {bugs}, reads {options.reads.mode}{fsync}, "
                f"{options.time_s:g}s; run folder {run_dir}"
            )
            if power_note is not None:
                say(power_note)
            cluster.write_configs()
            if cluster.power:
                cluster.mount_power()
            await cluster.start_proxies()
            for i in cluster.ids:
                cluster.start_node(i)
            await cluster.start_agent()

            async def status() -> list[dict[str, Any]]:
                reply = await cluster.ask_agent({"op": "status"}, 5.0)
                nodes: list[dict[str, Any]] = reply["nodes"]
                return nodes

            leader = await wait_for_leader(status, LEADER_TIMEOUT_S)
            say(f"torture: node {leader} leads; workload and nemesis start")
            nemesis = Nemesis(cluster, options.nemeses, rng, run_dir / "nemesis.log", status)
            await cluster.ask_agent(
                {
                    "op": "start",
                    "clients": options.clients,
                    "keys": options.keys,
                    "readers": options.readers,
                    "read_fraction": options.read_fraction,
                    "locks": options.locks,
                    "lock_bugs": options.lock_bugs,
                }
            )
            await nemesis.run(time.monotonic() + options.time_s)
            await cluster.ask_agent({"op": "stop"})
            nemesis.note("workload stopped")
            await nemesis.heal_all()
            nemesis.note("final heal done")
            say("torture: workload stopped, every fault healed; checking")
            reply = await cluster.ask_agent({"op": "available", "timeout_s": HEAL_BOUND_S + 5}, 60)
            verdict.available_after_s = reply["after_s"]
            nemesis.note(f"available again after {verdict.available_after_s}s")
            if verdict.available_after_s is None:
                raise _Unavailable  # nothing left to read or compare: the verdict is already in
            # Quiet first: a timed-out write may still be applied for a moment after the workload.
            verdict.converged = await wait_converged(status, CONVERGE_BOUND_S)
            nemesis.note(f"converged: {verdict.converged}")
            verdict.final_status = await status()
            final = await cluster.ask_agent({"op": "final"}, 120.0)
            verdict.lost_writes = final["missing"]
            if final["unread"]:
                verdict.problems.append(
                    f"{final['unread']} acknowledged writes could not be read back"
                )
            nemesis.note("final reads done")
            if set(MEMBER_NEMESES) & set(options.nemeses):
                await nemesis.members.verify()
            if options.locks:
                locks = await cluster.ask_agent({"op": "locks"}, 60.0)
                verdict.locks = {"entries": locks["entries"], **locks["counts"]}
                verdict.problems += [f"lock: {problem}" for problem in locks["problems"]]
            rounds = options.agreement_rounds or options.nodes
            await agreement(cluster, status, nemesis, verdict, final["values"], rounds)
            nemesis.note(f"agreement rounds done (leaders {verdict.leaders_read})")
            await digest_agreement(status, verdict)
            nemesis.note(f"state digests compared at slot {verdict.digest_slot}")
        except _Unavailable:
            verdict.checks_skipped = True
        assert nemesis is not None
        verdict.problems += nemesis.problems
        counts = await cluster.ask_agent({"op": "summary"})
        verdict.ops, verdict.ok = counts["ops"], counts["ok"]
        verdict.fail, verdict.info = counts["fail"], counts["info"]
        await cluster.ask_agent({"op": "exit"})
    finally:
        if nemesis is not None:
            verdict.faults = dict(nemesis.counts)
            nemesis.close()
        cluster.stop_all()
        cluster.unmount_power()
        hosts.close()
        shutil.rmtree(sockets, ignore_errors=True)
    verdict.problems += crashes_in_logs(layout.logs)
    genesis = ConfigSeen(0, cluster.genesis, ())
    settled = nemesis.members.final if nemesis is not None else None
    verdict.membership_records, found = membership_history.verdict(layout.logs, genesis, settled)
    verdict.problems += found
    check_linearizable(layout.history, verdict)
    if verdict.clean and not options.keep_data:
        shutil.rmtree(layout.data, ignore_errors=True)
        shutil.rmtree(run_dir / "power", ignore_errors=True)
    (run_dir / "summary.json").write_text(json.dumps(asdict(verdict), indent=2) + "\n")
    return verdict


async def wait_for_leader(status: StatusFn, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        nodes = await status()
        leaders = [n["id"] for n in nodes if n.get("role") == "leader"]
        if len(leaders) == 1:
            followers = sum(1 for n in nodes if n.get("leader_id") == leaders[0])
            if followers > len(nodes) // 2:
                return int(leaders[0])
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no leader within {timeout_s:g}s")


async def wait_converged(status: StatusFn, timeout_s: float) -> bool:
    """Every node up and at the same applied index as every other, twice in a row."""
    deadline = time.monotonic() + timeout_s
    previous: set[Any] | None = None  # applied indexes as the JSON status has them
    while time.monotonic() < deadline:
        nodes = await status()
        applied = {n.get("applied_index") for n in nodes}
        if all(n.get("role") != "down" for n in nodes) and len(applied) == 1:
            if previous == applied:
                return True
            previous = applied
        else:
            previous = None
        await asyncio.sleep(0.3)
    return False


async def agreement(
    cluster: TortureCluster,
    status: StatusFn,
    nemesis: Nemesis,
    verdict: Verdict,
    reference: dict[str, Any],
    rounds: int,
) -> None:
    """Read every key through successive leaders; each must answer what the first did."""
    verdict.replicas_agree = True
    for round_number in range(rounds):
        try:
            leader = await wait_for_leader(status, LEADER_TIMEOUT_S)
        except RuntimeError as error:
            verdict.replicas_agree = False
            verdict.problems.append(f"agreement check: {error}")
            return
        verdict.leaders_read.append(leader)
        nemesis.note(f"agreement: reading every key through leader {leader}")
        reply = await cluster.ask_agent({"op": "read_all", "tag": f"agree{round_number}"}, 120.0)
        values = reply["values"]
        differ = sorted(k for k in reference if k in values and values[k] != reference[k])
        if differ:
            verdict.replicas_agree = False
            verdict.problems.append(
                f"leader {leader} answers differently for {len(differ)} keys, e.g. "
                f"{differ[0]}: {values[differ[0]]!r} vs {reference[differ[0]]!r}"
            )
        if round_number == rounds - 1:
            break
        # Hand leadership on: stop the leader cleanly, wait for another, restart the old one.
        cluster.signal_node(leader, signal.SIGTERM)
        if await cluster.wait_exit(leader, 10.0) is None:
            verdict.problems.append(f"node {leader} did not stop within 10s of SIGTERM")
            await cluster.kill(leader)
        with contextlib.suppress(RuntimeError):
            await wait_for_leader(status, LEADER_TIMEOUT_S)
        await nemesis.restart(leader)
    verdict.converged = verdict.converged and await wait_converged(status, CONVERGE_BOUND_S)


DIGEST_TRIES = 20


async def digest_agreement(status: StatusFn, verdict: Verdict) -> None:
    """Compare the nodes' state digests (``INFO`` ``state_digest``) at one applied index: every
    replica that applied the same prefix holds the same state, so one digest per slot.  This
    sees every key, session and deadline at once, where reading the keys back sees only the
    workload's keys through the leaders.  Polls until most nodes stand at one slot (a node
    still applying is waited for); a slot at which two digests differ is a problem."""
    for _ in range(DIGEST_TRIES):
        nodes = await status()
        by_slot: dict[int, dict[str, list[int]]] = {}
        for node in nodes:
            digest, slot = node.get("state_digest"), node.get("state_digest_slot")
            if isinstance(digest, str) and isinstance(slot, int):
                by_slot.setdefault(slot, {}).setdefault(digest, []).append(int(node["id"]))
        if not by_slot:
            return  # the nodes do not report digests: the read-back check stands alone
        for slot, digests in sorted(by_slot.items()):
            if len(digests) > 1:
                verdict.replicas_agree = False
                shown = "; ".join(f"{d[:12]} on {ids}" for d, ids in sorted(digests.items()))
                verdict.problems.append(f"state digests differ at applied index {slot}: {shown}")
                verdict.digest_slot = slot
                verdict.digest_nodes = sum(len(ids) for ids in digests.values())
                return
        slot, digests = max(by_slot.items(), key=lambda item: sum(map(len, item[1].values())))
        count = sum(map(len, digests.values()))
        if count > verdict.digest_nodes:
            verdict.digest_slot, verdict.digest_nodes = slot, count
        if count == len(nodes):
            return
        await asyncio.sleep(0.3)


def crashes_in_logs(logs: Path) -> list[str]:
    """A node's driver stopping on an error (an inline invariant, a storage failure)."""
    found = []
    for log in sorted(logs.glob("node-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if " CRITICAL " in line and "driver failed" in line:
                found.append(f"{log.stem}: {line.split(': ', 1)[-1]}")
    return found


def check_linearizable(history: Path, verdict: Verdict) -> None:
    from pypaxos.lincheck.wgl import check_history, parse_history

    try:
        with history.open() as lines:
            parsed = parse_history(lines)
    except (OSError, ValueError) as error:
        verdict.linearizable = f"unreadable history ({error})"
        return
    result = check_history(parsed, timeout_s=LINCHECK_TIMEOUT_S)
    verdict.linearizable = result.outcome
    if result.outcome == "violation":
        verdict.explanation = result.explain()


def default_seed() -> int:
    return int.from_bytes(os.urandom(4), "big")
