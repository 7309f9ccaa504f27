"""The nemesis: one fault at a time, held for a few seconds, then healed, then a short calm.

Kinds (``--nemesis``): ``partition``, ``kill``, ``pause``, ``net``, ``clock`` (``clock.py``),
``disk`` (``disk.py``), ``hostile`` (``hostile.py``) and ``power`` (``powerfs.py``: the node's
data directory loses everything not yet fsynced, as in a power cut); aimed kinds, not part of
``all``, for chasing one kind of bug in a short run: ``isolate-leader``, ``kill-leader`` and
``clock-drift`` (a clock rate within the nodes' drift bound, for lease runs: ``reads.py``).
``member`` (``members.py``: adds, removes and replaces members) and its aimed forms
``member-cut`` (changes asked with the leader cut off) and ``member-power`` (every node's power
cut the moment a change is decided) need spare slots, so they are not part of ``all`` either.
Each cycle runs every chosen kind once, in a random order, and the first cycle always
completes.  Faults are chosen by one ``random.Random(seed)``, so a schedule replays from
``--seed`` (the processes' timing does not).  Every fault is written to ``RUN/nemesis.log``.

More (what each kind does): docs/testing.md, 'Torture'.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from pypaxos.torture.cluster import TortureCluster
from pypaxos.torture.disk import DISK_FAULTS, inject
from pypaxos.torture.members import MemberChanges
from pypaxos.torture.proxy import Faults
from pypaxos.torture.reads import drift_bound

NEMESES = ("partition", "kill", "pause", "net", "clock", "disk", "hostile", "power")
AIMED_NEMESES = ("isolate-leader", "kill-leader", "clock-drift")
MEMBER_NEMESIS = "member"  # not in all: it needs spare slots (``--spares``)
MEMBER_NEMESES = (MEMBER_NEMESIS, "member-cut", "member-power")  # the last two aimed (members.py)
POWER_NEMESES = ("power", "member-power")  # node data directories on powerfs mounts
CLOCK_NEMESES = ("clock", "clock-drift")  # the nodes run on a skewable loop clock
HOLD_S = (1.5, 4.0)  # how long a fault lasts
CALM_S = (0.5, 1.5)  # quiet between faults
RESTART_WAIT_S = 15.0
REFUSE_TIMEOUT_S = 15.0
STABLE_WAIT_S = 3.0  # how long a leader-aimed fault waits for a settled leader
STABLE_GAP_S = 0.4
POWER_ALL_SHARE = 1 / 3  # power cuts that hit every node at once (an outage of the whole site)
POWER_AT_CALL_SHARE = 0.7  # one-node cuts that land at a chosen filesystem call of the node
POWER_AT_CALL_CHANGES = 12  # ... among its next this many changes
POWER_AT_CALL_WAIT_S = 3.0


class Nemesis:
    def __init__(
        self,
        cluster: TortureCluster,
        kinds: list[str],
        rng: random.Random,
        log: Path,
        status: Callable[[], Coroutine[Any, Any, list[dict[str, Any]]]],
    ) -> None:
        self.cluster = cluster
        self.kinds = kinds
        self.rng = rng
        self.log_file = log.open("a", buffering=1)
        self.status = status
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []  # things a correct build must never do
        self.started = time.monotonic()
        self.network_faulted = False
        self.members = MemberChanges(self)

    def note(self, text: str) -> None:
        self.log_file.write(f"{time.monotonic() - self.started:8.2f}s {text}\n")

    async def leader(self) -> int | None:
        try:
            nodes = await self.status()
        except (OSError, TimeoutError, ConnectionError):
            return None
        leaders = [n["id"] for n in nodes if n.get("role") == "leader"]
        return leaders[0] if len(leaders) == 1 else None

    async def stable_leader(self, timeout_s: float = STABLE_WAIT_S) -> int | None:
        """The leader once a majority has named the same one twice, ``STABLE_GAP_S`` apart.

        Under churn (a loaded machine, the last fault) the node that says "leader" right now may
        be deposed a moment later; a fault aimed at the leader should hit one that clients use.
        """
        deadline = time.monotonic() + timeout_s
        previous: int | None = None
        while time.monotonic() < deadline:
            try:
                nodes = await self.status()
            except (OSError, TimeoutError, ConnectionError):
                nodes = []
            named = Counter(n.get("leader_id") for n in nodes if n.get("leader_id") is not None)
            leader = next((i for i, c in named.items() if c > len(self.cluster.ids) // 2), None)
            if leader is not None and leader == previous:
                return int(leader)
            previous = leader
            await asyncio.sleep(STABLE_GAP_S)
        return await self.leader()

    async def pick_node(self, leader_bias: float, stable: bool = False) -> int:
        leader = await (self.stable_leader() if stable else self.leader())
        if leader is not None and self.rng.random() < leader_bias:
            return leader
        return self.rng.choice(self.cluster.ids)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self, until: float) -> None:
        """Faults until the monotonic time ``until``; every fault is healed before it returns."""
        if not self.kinds:
            await asyncio.sleep(max(0.0, until - time.monotonic()))
        cycle = self.rng.sample(self.kinds, len(self.kinds))
        first_cycle = True
        # The first cycle always completes, so every chosen kind acts at least once.
        while self.kinds and (first_cycle or time.monotonic() < until):
            if not cycle:  # every kind once per cycle, in a random order
                cycle = self.rng.sample(self.kinds, len(self.kinds))
            kind = cycle.pop()
            first_cycle = bool(cycle) and first_cycle
            hold = min(self.rng.uniform(*HOLD_S), max(1.0, until - time.monotonic()))
            await getattr(self, f"do_{kind.replace('-', '_')}")(hold)
            await self.restart_dead()
            await asyncio.sleep(self.rng.uniform(*CALM_S))

    async def do_member(self, hold_s: float) -> None:
        await self.members.turn()

    async def do_member_cut(self, hold_s: float) -> None:
        await self.members.turn(aimed=True)

    async def do_member_power(self, hold_s: float) -> None:
        await self.members.turn(power_cut=True)

    async def do_partition(self, hold_s: float) -> None:
        ids = list(self.cluster.ids)
        self.rng.shuffle(ids)
        shape = self.rng.choice(("halves", "leader", "bridge"))
        leader = await self.stable_leader()
        if leader is not None and self.rng.random() < 0.5:
            ids.remove(leader)  # the leader on the minority side (or the bridge's left side)
            ids.insert(0, leader)
        if shape == "leader" and leader is not None:
            groups = [{leader}, set(ids) - {leader}]
        elif shape == "bridge" and len(ids) >= 3:
            side = (len(ids) - 1) // 2
            groups = [set(ids[:side]), set(ids[side + 1 :])]  # ids[side] sees both sides
        else:
            shape = "halves"
            groups = [set(ids[: len(ids) // 2]), set(ids[len(ids) // 2 :])]
        await self.partition(groups)
        self.fault("partition", f"{shape} {[sorted(g) for g in groups]}")
        await asyncio.sleep(hold_s)
        await self.heal_network()

    async def do_isolate_leader(self, hold_s: float) -> None:
        leader = await self.stable_leader()
        if leader is None:
            self.note("isolate-leader: no settled leader, skipped")
            return
        groups = [{leader}, set(self.cluster.ids) - {leader}]
        await self.partition(groups)
        self.fault("partition", f"leader isolated {[sorted(g) for g in groups]}")
        await asyncio.sleep(hold_s)
        await self.heal_network()

    async def do_kill_leader(self, hold_s: float) -> None:
        await self.do_kill(hold_s, leader_bias=1.0)

    async def do_kill(self, hold_s: float, leader_bias: float = 0.7) -> None:
        node = await self.pick_node(leader_bias, stable=True)
        if await self.cluster.kill(node):
            self.fault("kill", f"SIGKILL node {node}")
            await asyncio.sleep(hold_s)
            await self.restart(node)

    async def do_power(self, hold_s: float) -> None:
        """Cut the power of one node, or (one time in three) of every node at once.

        One node: mostly at a chosen system call (its filesystem cuts itself just before the
        node's next few changes are through and freezes the node there, so the cut lands
        between a write and its fsync, inside a snapshot write, between a segment's creation
        and its directory's fsync), else at once.  At once: SIGSTOP first, so that nothing the
        node does after the instant of the cut is seen (a node running on would meet EIO and
        log a storage failure), then the cut.  Then SIGKILL, the hold, each filesystem
        restarted on what it kept, each node restarted.
        """
        if self.rng.random() < POWER_ALL_SHARE:
            nodes = list(self.cluster.ids)
        else:
            nodes = [await self.pick_node(0.5, stable=True)]
        cuts = []
        if len(nodes) == 1 and self.rng.random() < POWER_AT_CALL_SHARE:
            changes = self.rng.randrange(POWER_AT_CALL_CHANGES)
            cut = await self.cut_at_change(nodes[0], changes)
            if cut is not None:
                cuts.append(f"node {nodes[0]} at its change {changes + 1} from now ({cut})")
        if not cuts:
            nodes, cuts = await self.cut_power_now(nodes)
        if not nodes:
            return
        for i in nodes:
            await self.cluster.kill(i)
        self.fault("power", f"power cut, SIGKILL: {', '.join(cuts)}")
        await asyncio.sleep(hold_s / 2)
        await self.restore_power(nodes, nodes)

    async def cut_power_now(self, nodes: list[int]) -> tuple[list[int], list[str]]:
        """Cut the power of ``nodes`` at this instant: SIGSTOP first (nothing a node does after
        the cut is seen), then each filesystem drops what is not durable.  The nodes it could
        stop (the others had exited), and what each cut dropped; the caller SIGKILLs them."""
        nodes = [i for i in nodes if self.cluster.signal_node(i, signal.SIGSTOP)]
        cuts = []
        for i in nodes:
            answer = await asyncio.to_thread(self.cluster.power_mounts[i].cut)
            cuts.append(f"node {i} ({_pending(answer.get('dropped', {}))})")
        return nodes, cuts

    async def restore_power(self, mounts: list[int], nodes: list[int]) -> None:
        """Restart the filesystems of ``mounts`` on what they kept, then the nodes ``nodes``."""
        for i in mounts:
            await asyncio.to_thread(self.cluster.power_mounts[i].restart)
        for i in nodes:
            await self.restart(i)

    async def cut_at_change(self, node: int, changes: int) -> str | None:
        """Arm node ``node``'s filesystem to cut (and freeze the node) just before the change
        after its next ``changes``; what was pending then, or None if it did not come."""
        mount = self.cluster.power_mounts[node]
        if not self.cluster.alive(node):
            return None
        # The change may be the node's forked snapshot writer's: the node is stopped with it.
        node_pid = self.cluster.nodes[node].popen.pid
        await asyncio.to_thread(mount.cut_after, changes, stop_caller=True, stop_pids=(node_pid,))
        deadline = time.monotonic() + POWER_AT_CALL_WAIT_S
        while time.monotonic() < deadline:
            status = await asyncio.to_thread(mount.ask, "status")
            if status.get("cut"):
                return _pending(status.get("last_dropped", {}))
            await asyncio.sleep(0.02)
        return None  # a quiet node: the caller cuts at once (the armed count is dropped then)

    async def do_disk(self, hold_s: float) -> None:
        node = await self.pick_node(0.3)
        if not await self.cluster.kill(node):
            return
        await asyncio.sleep(hold_s / 2)
        kind = self.rng.choice(DISK_FAULTS)
        damage = inject(self.cluster.layout.node_dir(node), kind, self.rng)
        if damage is None and kind == "corrupt":  # fewer than two records: damage the tail
            kind = "torn"
            damage = inject(self.cluster.layout.node_dir(node), kind, self.rng)
        if damage is None:
            self.note(f"disk: SIGKILL node {node}, no segment to damage ({kind})")
            await self.restart(node)
            return
        self.fault("disk", f"SIGKILL node {node}, then {damage.describe()}")
        if kind != "corrupt":
            await self.restart(node)
            return
        # Damage to acknowledged records: the node must refuse to start, naming file and offset.
        proc = self.cluster.start_node(node)
        code = await self.cluster.wait_exit(node, REFUSE_TIMEOUT_S)
        text = proc.log.read_text(errors="replace")[-4000:]
        named = damage.path.name in text and f"offset {damage.offset}" in text
        if code == 1 and named:
            self.note(f"disk: node {node} refused its corrupt log as it must (exit 1)")
        elif code is None:
            self.problems.append(f"node {node} started on a corrupt log ({damage.describe()})")
            await self.cluster.kill(node)
        else:
            self.problems.append(
                f"node {node} exited {code} on a corrupt log without naming "
                f"{damage.path.name} at byte offset {damage.offset}"
            )
        damage.restore()
        await self.restart(node)

    async def do_hostile(self, hold_s: float) -> None:
        counts = await self.cluster.run_hostile(self.rng.randrange(2**31), hold_s)
        made = {kind: count for kind, count in counts.items() if count}
        self.fault("hostile", ", ".join(f"{kind} {count}" for kind, count in sorted(made.items())))

    async def do_pause(self, hold_s: float) -> None:
        node = await self.pick_node(0.7, stable=True)
        if self.cluster.signal_node(node, signal.SIGSTOP):
            self.fault("pause", f"SIGSTOP node {node}")
            await asyncio.sleep(hold_s)
            self.cluster.signal_node(node, signal.SIGCONT)
            self.note(f"SIGCONT node {node}")

    async def do_net(self, hold_s: float) -> None:
        loss = self.rng.choice((0.0, 0.05, 0.15, 0.3))
        faults = Faults(
            delay_ms=(0.0, self.rng.choice((5.0, 20.0, 60.0))),
            dup=self.rng.choice((0.0, 0.05, 0.2)),
            reorder=self.rng.choice((0.0, 0.1, 0.3)),
        )
        self.network_faulted = True
        if not self.cluster.hosts.set_loss(loss * 100):
            faults = Faults(faults.blocked, loss, faults.delay_ms, faults.dup, faults.reorder)
        for i in self.cluster.slots:
            await self.cluster.set_proxy(i, faults)
        detail = f"loss {loss:.0%}, delay 0-{faults.delay_ms[1]:g} ms, dup {faults.dup:.0%}"
        self.fault("net", f"{detail}, reorder {faults.reorder:.0%}")
        await asyncio.sleep(hold_s)
        await self.heal_network()

    async def do_clock(self, hold_s: float) -> None:
        node = await self.pick_node(0.5)
        if not self.cluster.node_ready(node):
            ready = [i for i in self.cluster.ids if self.cluster.node_ready(i)]
            node = self.rng.choice(ready) if ready else node
        jump, rate = self.rng.choice(
            (
                (self.rng.uniform(1.0, 5.0), 1.0),  # forward jump
                (-self.rng.uniform(0.5, 2.0), 1.0),  # backward jump: timers stall
                (0.0, self.rng.uniform(0.1, 0.4)),  # slow clock
                (0.0, self.rng.uniform(2.0, 4.0)),  # fast clock
            )
        )
        if self.cluster.set_clock(node, jump, rate):
            self.fault("clock", f"node {node}: jump {jump:+.2f}s, rate x{rate:.2f}")
            await asyncio.sleep(hold_s)
            self.cluster.set_clock(node, 0.0, 1.0)
            self.note(f"clock of node {node} back to real speed")

    async def do_clock_drift(self, hold_s: float) -> None:
        """One node's clock a little fast or slow, within the drift bound (no jump)."""
        node = await self.pick_node(0.5)
        skew = drift_bound() * self.rng.uniform(0.5, 1.0)
        rate = 1.0 + skew if self.rng.random() < 0.5 else 1.0 / (1.0 + skew)
        if self.cluster.set_clock(node, 0.0, rate):
            self.fault("clock-drift", f"node {node}: rate x{rate:.4f}")
            await asyncio.sleep(hold_s)
            self.cluster.set_clock(node, 0.0, 1.0)
            self.note(f"clock of node {node} back to real speed")

    # -- helpers -----------------------------------------------------------------------------

    def fault(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        self.note(f"{kind}: {detail}")

    async def partition(self, groups: list[set[int]]) -> None:
        self.network_faulted = True
        if self.cluster.hosts.partition(groups):
            return
        group_of = {n: g for g, members in enumerate(groups) for n in members}
        for i in self.cluster.slots:
            blocked = frozenset(
                j
                for j in self.cluster.slots
                if j != i and i in group_of and j in group_of and group_of[i] != group_of[j]
            )
            await self.cluster.set_proxy(i, Faults(blocked=blocked))

    async def heal_network(self) -> None:
        if not self.network_faulted:
            return
        self.cluster.hosts.heal()
        for i in self.cluster.slots:
            await self.cluster.set_proxy(i, Faults())
        self.network_faulted = False
        self.note("network healed")

    async def restart(self, node: int) -> None:
        self.cluster.start_node(node)
        deadline = time.monotonic() + RESTART_WAIT_S
        while not self.cluster.node_ready(node):
            if not self.cluster.alive(node):
                code = self.cluster.nodes[node].popen.returncode
                self.problems.append(f"node {node} failed to restart (exit {code})")
                return
            if time.monotonic() > deadline:
                self.problems.append(f"node {node} not listening {RESTART_WAIT_S:g}s after restart")
                return
            await asyncio.sleep(0.05)
        self.note(f"node {node} restarted")

    async def restart_dead(self) -> None:
        """A node that died on its own (an assertion, a crash) is a finding; restart it."""
        for i in self.cluster.ids:
            if not self.cluster.alive(i):
                code = self.cluster.nodes[i].popen.returncode
                self.problems.append(f"node {i} exited on its own with status {code}")
                self.note(f"node {i} died on its own (exit {code}); restarting")
                await self.restart(i)

    async def heal_all(self) -> None:
        """Undo every fault: network, clocks, pauses; restart whatever is down."""
        await self.heal_network()
        for i in self.cluster.ids:
            proc = self.cluster.nodes.get(i)
            if proc is not None and proc.paused:
                self.cluster.signal_node(i, signal.SIGCONT)
            if self.cluster.clock:
                self.cluster.set_clock(i, 0.0, 1.0)
        await self.restart_dead()

    def close(self) -> None:
        self.log_file.close()


def _pending(dropped: dict[str, Any]) -> str:
    """A powerfs cut's answer, as the nemesis log shows it."""
    paths = " ".join(dropped.get("paths", [])) or "nothing"
    return f"pending: {paths}"
