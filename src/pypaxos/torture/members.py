"""The ``member`` nemesis: membership changes on the running cluster, one at a time.

Each turn does one of:

* **add**: a spare slot (``cluster.TortureCluster``: laid out up front, data directory empty)
  is added as a learner (``PAXOS.MEMBER ADD`` with its advertised addresses), started with
  ``pypaxos node --join``, and promoted once the leader finds it caught up (retried while the
  answer is ``learner-behind`` or ``change-in-flight``);
* **remove**: a voter (half the time the leader) is removed; it stops by itself, and its slot
  becomes a spare again with an emptied data directory (a first voter's too: it joins again
  under its own id, starting from the configuration it is added to).  Now and then a voter
  other than the leader is paused (SIGSTOP) while it is removed and resumed once the change is
  in force: it never applies its removal, so it must hear it from a peer when it redials (a removal
  notice) and stop by itself all the same, else that is a problem for the verdict;
* **replace**: a spare is added as a learner, then ``REPLACE old new`` promotes it and removes
  ``old`` in one change.

Half the time a promotion, removal or replacement is asked for, the leader is disrupted: it is
SIGKILLed a few milliseconds after the request (and restarted once the request has an answer),
or the change is asked while the leader is cut off for a few seconds, with a side chosen to be
a majority of the new configuration and not of the old one where that exists (the learner a
replacement promotes; one voter that stays, when a removal shrinks four voters to three).  A
leader failing mid-change is where reconfiguration goes wrong: one that used the new
configuration before it is chosen would commit on its side while the old voters elect another
leader; a new leader must honour a change decided but not yet in force.

The cluster never has fewer than ``VOTERS_MIN`` voters, so a fault of another kind later (one
node killed, a minority cut off) still leaves a majority.  Every request goes through the client
agent (``agent.py``: in netns mode only the client namespace reaches the nodes), which then
learns the new members' client addresses.  A change whose outcome is unknown (the leader changed
under it) is retried: an ``already-member`` or ``unknown-member`` answer then is checked against
the leader's ``PAXOS.MEMBER LIST``.  Things a correct build must not do (a joining node exiting
with an error) are problems for the verdict; slowness is only noted.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from pypaxos.runtime.membership_record import ConfigSeen
from pypaxos.torture.cluster import TortureCluster

if TYPE_CHECKING:
    from pypaxos.torture.nemesis import Nemesis

VOTERS_MIN = 3  # never fewer voters than this
MEMBERS_MAX = 5  # add no member past this many
CHANGE_TIMEOUT_S = 30.0  # retrying one change (change-in-flight, learner-behind, unavailable)
CHANGE_RETRY_S = 0.2
JOIN_READY_S = 30.0  # a joining node listens within this long (it asks the cluster first)
REMOVED_STOP_S = 15.0  # a removed node stops by itself within this long
VERIFY_TIMEOUT_S = 15.0
RETRIED_REASONS = ("change-in-flight", "learner-behind", "busy")
CRASH_SHARE = 0.5  # of promotions, removals and replacements: the leader disrupted right after
CRASH_AFTER_S = (0.0, 0.05)  # how long after asking
FOLLOW_SHARE = 0.5  # of removals: a spare added at once, while the removal may be pending
ISOLATE_S = (2.0, 3.5)  # how long a leader is cut off mid-change
PAUSE_SHARE = 0.3  # of removals of a node other than the leader: paused while it is removed
POWER_OFF_S = (0.2, 1.0)  # member-power: how long every node stays off after the cut


class MemberChanges:
    """The membership side of one run: who is a member, which slots are spare."""

    def __init__(self, nemesis: Nemesis) -> None:
        self.nemesis = nemesis
        self.cluster: TortureCluster = nemesis.cluster
        self.rng = nemesis.rng
        self.aimed = False  # this turn's changes are all asked with the leader cut off
        self.power_cut = False  # this turn's removal or replacement: every node's power cut
        self.final: ConfigSeen | None = None  # the settled membership after the heal (verify)

    # -- choosing ----------------------------------------------------------------------------

    @property
    def spares(self) -> list[int]:
        cluster = self.cluster
        return [i for i in cluster.slots if i not in cluster.ids]

    async def turn(self, aimed: bool = False, power_cut: bool = False) -> None:
        """One membership change, chosen among those the current state allows; ``aimed``
        (the ``member-cut`` nemesis): a replacement, or a removal from four voters, of a node
        other than the leader, always asked while the leader is cut off; ``power_cut`` (the
        ``member-power`` nemesis): a replacement, a removal from four voters, or else an
        addition (which makes the next turn's removal possible), of any node (the leader half
        the time), and the moment it is answered every node loses its power."""
        ids, spares = list(self.cluster.ids), self.spares
        self.aimed = aimed
        self.power_cut = power_cut
        if power_cut:
            if len(ids) > VOTERS_MIN:
                await self.remove(await self.pick_removed(ids))
            elif spares and self.rng.random() < 0.5:
                await self.replace(await self.pick_removed(ids), self.rng.choice(spares))
            elif spares:
                await self.add(self.rng.choice(spares))  # no cut: the next turn removes
            return
        if aimed:
            leader = await self.nemesis.stable_leader()
            others = [i for i in ids if i != leader]
            if spares:
                await self.replace(self.rng.choice(others), self.rng.choice(spares))
            elif len(ids) > VOTERS_MIN:
                await self.remove(self.rng.choice(others))
            return
        choices = []
        if spares and len(ids) < MEMBERS_MAX:
            choices.append("add")
        if len(ids) > VOTERS_MIN:
            choices.append("remove")
        if spares:
            choices.append("replace")
        if not choices:
            self.nemesis.note(f"member: nothing to change (members {ids}, spares {spares})")
            return
        action = self.rng.choice(choices)
        if action == "add":
            await self.add(self.rng.choice(spares))
            return
        old = await self.pick_removed(ids)
        if action == "remove":
            await self.remove(old)
        else:
            await self.replace(old, self.rng.choice(spares))

    async def pick_removed(self, removable: list[int]) -> int:
        leader = await self.nemesis.stable_leader()
        if leader in removable and self.rng.random() < 0.5:
            return leader
        return self.rng.choice(removable)

    # -- the changes -------------------------------------------------------------------------

    async def add(self, node: int) -> None:
        if not await self.start_learner(node):
            return
        request = {"action": "promote", "id": node}
        promoted = await self.change(
            request, self.is_voter(node), crash=self.crash_wanted(), learner=node
        )
        if not await self.check_joined(node):
            return
        if promoted:
            self.nemesis.fault("member", f"added node {node} (joined as a learner, promoted)")
        else:
            self.nemesis.note(f"member: node {node} not promoted; removing the learner")
            await self.remove(node, counted=False)

    async def remove(self, node: int, counted: bool = True) -> None:
        leader = await self.nemesis.leader()
        cut = counted and self.power_cut
        crash = counted and not cut and self.crash_wanted()
        paused = (
            counted
            and not crash
            and not cut
            and node != leader
            and self.rng.random() < PAUSE_SHARE
            and self.cluster.signal_node(node, signal.SIGSTOP)
        )
        request = {"action": "remove", "id": node}
        try:
            removed = await self.change(request, self.is_gone(node), crash=crash, spared=node)
            if paused and removed:
                await self.wait_in_force()  # else it would still hear the log, and apply it
        finally:
            if paused:
                self.cluster.signal_node(node, signal.SIGCONT)
        if not removed:
            self.nemesis.note(f"member: node {node} not removed")
            return
        if counted:
            role = " (the leader)" if node == leader else ""
            how = " while it was paused (SIGSTOP), then resumed" if paused else ""
            self.nemesis.fault("member", f"removed node {node}{role}{how}")
        if cut:
            await self.cut_every_node(node, f"node {node}'s removal")
            await self.retire(node, cut=True)
            return
        spares = [i for i in self.spares if i != node]
        if counted and spares and self.rng.random() < FOLLOW_SHARE:
            # The next change at once, while the removal may still be pending.
            await self.retire(node, self.add(self.rng.choice(spares)), told=paused)
        else:
            await self.retire(node, told=paused)

    async def replace(self, old: int, new: int) -> None:
        if not await self.start_learner(new):
            return
        if self.aimed:  # asked with the leader cut off: only a caught-up learner is accepted
            await self.wait_caught_up(new)
        leader = await self.nemesis.leader()
        request = {"action": "replace", "id": old, "new": new}
        made = self.both(self.is_voter(new), self.is_gone(old))
        crash = not self.power_cut and self.crash_wanted()
        replaced = await self.change(request, made, crash=crash, spared=old, learner=new)
        if replaced and self.power_cut:
            await self.cut_every_node(old, f"node {old}'s replacement by node {new}")
        joined = await self.check_joined(new)
        if not replaced:
            if joined:
                self.nemesis.note(f"member: node {old} not replaced by {new}; removing it")
                await self.remove(new, counted=False)
            return
        # Removed, whether or not the new node managed to join.
        await self.retire(old, cut=self.power_cut)
        role = " (the leader)" if old == leader else ""
        self.nemesis.fault("member", f"replaced node {old}{role} by node {new}")

    async def start_learner(self, node: int) -> bool:
        """Add spare ``node`` as a learner and start it with ``--join`` (it is then a member
        the other faults may pick).  The caller's next change follows at once, while this one
        may not be in force yet: a correct leader refuses it (``change-in-flight``) and it is
        asked again."""
        cluster = self.cluster
        cluster.wipe(node)
        spare = cluster.own_member(node)
        request = {"action": "add", "id": node, "peer": spare.peer, "client": spare.client}
        if not await self.change(request, self.is_member(node)):
            self.nemesis.note(f"member: node {node} not added")
            return False
        endpoints = ",".join(cluster.hosts.client(i) for i in cluster.ids)
        cluster.start_node(node, ("--join", endpoints))
        cluster.ids.append(node)
        await self.tell_agent()
        return True

    async def check_joined(self, node: int) -> bool:
        """Whether started node ``node`` listens (it joined); if it exited, that is a problem,
        and it is taken out of the membership again."""
        cluster = self.cluster
        deadline = time.monotonic() + JOIN_READY_S
        while not cluster.node_ready(node):
            if not cluster.alive(node):
                code = cluster.nodes[node].popen.returncode
                self.nemesis.problems.append(f"node {node} failed to join (exit {code})")
                cluster.ids.remove(node)
                await self.tell_agent()
                await self.change({"action": "remove", "id": node}, self.is_gone(node))
                return False
            if time.monotonic() > deadline:
                self.nemesis.note(f"member: node {node} not listening {JOIN_READY_S:g}s on")
                break
            await asyncio.sleep(0.05)
        return True

    async def retire(
        self,
        node: int,
        meanwhile: Coroutine[Any, Any, None] | None = None,
        *,
        told: bool = False,
        cut: bool = False,
    ) -> None:
        """After ``node``'s removal (and ``meanwhile``, a change made at once): wait for it to
        stop by itself, then free its slot (a spare again with an empty directory).  ``told``:
        it was paused through its removal, so only a peer's notice can stop it; one still
        running then is a problem, not only slow.  ``cut``: a power cut killed it (its exit
        status is the nemesis's doing)."""
        cluster = self.cluster
        cluster.ids.remove(node)
        await self.tell_agent()
        if meanwhile is not None:
            await meanwhile
        code = await cluster.wait_exit(node, REMOVED_STOP_S) if node in cluster.nodes else 0
        if code is None:
            if told:
                self.nemesis.problems.append(
                    f"node {node}, removed while paused, still running {REMOVED_STOP_S:g}s "
                    "after it was resumed (no peer told it, or it did not believe them)"
                )
            self.nemesis.note(f"member: node {node} still running {REMOVED_STOP_S:g}s after")
            cluster.signal_node(node, signal.SIGTERM)
            if await cluster.wait_exit(node, 10.0) is None:
                await cluster.kill(node)
        elif code != 0 and not cut:
            self.nemesis.problems.append(f"removed node {node} exited with status {code}")
        cluster.wipe(node)

    async def cut_every_node(self, removed: int, change: str) -> None:
        """The ``member-power`` fault: the moment ``change`` is answered (decided, perhaps not
        yet in force), every node loses its power at once, ``removed`` too if it still runs;
        then the filesystems come back on what they kept and every node but ``removed``
        restarts.  Nothing acknowledged may be lost, and the members left must elect a leader
        under the configuration the chosen history gives them."""
        nodes = sorted(set(self.cluster.ids) | {removed})
        nodes, cuts = await self.nemesis.cut_power_now(nodes)
        for i in nodes:
            await self.cluster.kill(i)
        self.nemesis.fault("power", f"power cut of every node just after {change}: {cuts}")
        await asyncio.sleep(self.rng.uniform(*POWER_OFF_S))
        await self.nemesis.restore_power(nodes, [i for i in nodes if i != removed])

    # -- requests ----------------------------------------------------------------------------

    def crash_wanted(self) -> bool:
        return self.aimed or self.rng.random() < CRASH_SHARE

    async def change(
        self,
        request: dict[str, Any],
        made: Callable[[dict[str, Any]], bool],
        *,
        crash: bool = False,
        spared: int | None = None,
        learner: int | None = None,
    ) -> bool:
        """Ask for ``request`` until it is answered with an epoch or refused for good; a
        refusal that a lost earlier attempt may explain counts if the leader's list shows the
        change ``made``.  With ``crash``, the first attempt's leader is disrupted just after
        it is asked (unless it is ``spared``, the node the change removes): killed, or cut off
        with ``learner`` (module docstring)."""
        deadline = time.monotonic() + CHANGE_TIMEOUT_S
        while True:
            if crash:
                crash = False
                reply = await self.ask_and_disrupt_leader(request, spared, learner)
            else:
                reply = await self.cluster.ask_agent({"op": "member", **request}, 60.0)
            if "epoch" in reply:
                self.nemesis.note(f"member: {request['action']} answered epoch {reply['epoch']}")
                return True
            reason = reply.get("refused")
            if reason is not None and reason not in RETRIED_REASONS:
                listed = await self.listing()
                if listed is not None and made(listed):
                    return True  # an attempt whose answer was lost made it
                self.nemesis.note(f"member: {request} refused ({reason}): {reply.get('detail')}")
                return False
            if time.monotonic() > deadline:
                listed = await self.listing()
                why = reply.get("error") or reply.get("detail")
                self.nemesis.note(f"member: {request} gave up after {CHANGE_TIMEOUT_S:g}s: {why}")
                return listed is not None and made(listed)
            await asyncio.sleep(CHANGE_RETRY_S)

    async def ask_and_disrupt_leader(
        self, request: dict[str, Any], spared: int | None, learner: int | None
    ) -> dict[str, Any]:
        leader = await self.nemesis.stable_leader()
        ask = self.cluster.ask_agent({"op": "member", **request}, 60.0)
        if leader is None or leader == spared:
            return await ask
        if self.aimed or self.rng.random() < 0.5:
            side = {leader} | ({learner} if learner is not None else set())
            others = [i for i in self.cluster.ids if i not in (leader, spared, learner)]
            if request["action"] == "remove" and len(self.cluster.ids) == VOTERS_MIN + 1:
                side.add(self.rng.choice(others))  # two of the three left: their majority
            groups = [side, set(self.cluster.ids) - side]
            await self.nemesis.partition(groups)
            self.nemesis.fault("member", f"leader cut off {[sorted(g) for g in groups]}, {request}")
            asked = asyncio.get_running_loop().create_task(ask)
            await asyncio.sleep(self.rng.uniform(*ISOLATE_S))
            await self.nemesis.heal_network()
            return await asked
        asked = asyncio.get_running_loop().create_task(ask)
        await asyncio.sleep(self.rng.uniform(*CRASH_AFTER_S))
        if await self.cluster.kill(leader):
            self.nemesis.fault("member", f"SIGKILL leader {leader} just after asking {request}")
        try:
            return await asked
        finally:
            await self.nemesis.restart(leader)

    async def wait_in_force(self) -> None:
        """Until the leader's list shows no change pending (the last one is in force)."""
        deadline = time.monotonic() + CHANGE_TIMEOUT_S
        while time.monotonic() < deadline:
            listed = await self.listing()
            if listed is not None and not listed["pending"]:
                return
            await asyncio.sleep(CHANGE_RETRY_S)

    async def wait_caught_up(self, node: int) -> None:
        deadline = time.monotonic() + CHANGE_TIMEOUT_S
        while time.monotonic() < deadline:
            listed = await self.listing()
            if listed is not None and not listed["pending"]:
                found = [m for m in listed["members"] if m["id"] == node]
                if found and found[0]["caught_up"]:
                    return
            await asyncio.sleep(CHANGE_RETRY_S)

    async def verify(self) -> None:
        """After the final heal: the cluster's membership (the leader's list, once nothing is
        pending) is what the acknowledged changes made, every member a voter."""
        deadline = time.monotonic() + VERIFY_TIMEOUT_S
        while True:
            listed = await self.listing()
            if listed is not None and not listed["pending"]:
                break
            if time.monotonic() > deadline:
                self.nemesis.problems.append("membership: no settled leader list after the heal")
                return
            await asyncio.sleep(0.3)
        voters = sorted(m["id"] for m in listed["members"] if m["role"] == "voter")
        learners = sorted(m["id"] for m in listed["members"] if m["role"] != "voter")
        self.final = ConfigSeen(int(listed["epoch"]), tuple(voters), tuple(learners))
        expected = sorted(self.cluster.ids)
        self.nemesis.note(f"membership: voters {voters}, learners {learners}")
        if voters != expected or learners:
            self.nemesis.problems.append(
                f"membership: the cluster has voters {voters} and learners {learners}, "
                f"the acknowledged changes made voters {expected}"
            )

    async def listing(self) -> dict[str, Any] | None:
        reply = await self.cluster.ask_agent({"op": "member", "action": "list"}, 60.0)
        listed: dict[str, Any] | None = reply.get("list")
        return listed

    async def tell_agent(self) -> None:
        members = {str(i): self.cluster.hosts.client(i) for i in self.cluster.ids}
        await self.cluster.ask_agent({"op": "members", "members": members})

    @staticmethod
    def is_member(node: int) -> Callable[[dict[str, Any]], bool]:
        return lambda listed: any(m["id"] == node for m in listed["members"])

    @staticmethod
    def is_voter(node: int) -> Callable[[dict[str, Any]], bool]:
        return lambda listed: any(
            m["id"] == node and m["role"] == "voter" for m in listed["members"]
        )

    @staticmethod
    def is_gone(node: int) -> Callable[[dict[str, Any]], bool]:
        return lambda listed: all(m["id"] != node for m in listed["members"])

    @staticmethod
    def both(
        first: Callable[[dict[str, Any]], bool], second: Callable[[dict[str, Any]], bool]
    ) -> Callable[[dict[str, Any]], bool]:
        return lambda listed: first(listed) and second(listed)
