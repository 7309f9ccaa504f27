"""The ``member`` nemesis: membership changes on the running cluster, one at a time.

Each turn does one of:

* **add**: a spare slot (``cluster.TortureCluster``: laid out up front, data directory empty)
  is added as a learner (``PAXOS.MEMBER ADD`` with its advertised addresses), started with
  ``pypaxos node --join``, and promoted once the leader finds it caught up (retried while the
  answer is ``learner-behind`` or ``change-in-flight``);
* **remove**: a voter (the leader half of the time it may be) is removed; it stops by itself,
  and its slot becomes a spare again with an emptied data directory.  A first-configuration
  voter cannot join again under its id (its promises would be forgotten), so its slot retires;
  first voters are removed only while enough slots stay usable for later turns;
* **replace**: a spare is added as a learner, then ``REPLACE old new`` promotes it and removes
  ``old`` in one change.

Half the time a promotion, removal or replacement is asked for, the leader is SIGKILLed a few
milliseconds later, before the change can be decided (restarted once the request has an
answer): a leader crashing mid-change is where reconfiguration goes wrong (a configuration used
before it is chosen, a pending one a new leader ignores).

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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pypaxos.torture.cluster import TortureCluster

if TYPE_CHECKING:
    from pypaxos.torture.nemesis import Nemesis

VOTERS_MIN = 3  # never fewer voters than this
MEMBERS_MAX = 5  # add no member past this many
CHANGE_TIMEOUT_S = 30.0  # retrying one change (change-in-flight, learner-behind, unavailable)
CHANGE_RETRY_S = 0.2
JOIN_READY_S = 30.0  # a joining node listens within this long (it asks the cluster first)
REMOVED_STOP_S = 15.0  # a removed node stops by itself within this long
RETRIED_REASONS = ("change-in-flight", "learner-behind", "busy")
CRASH_SHARE = 0.5  # of promotions, removals and replacements: the leader killed right after
CRASH_AFTER_S = (0.0, 0.05)  # how long after asking


class MemberChanges:
    """The membership side of one run: who is a member, which slots are spare or retired."""

    def __init__(self, nemesis: Nemesis) -> None:
        self.nemesis = nemesis
        self.cluster: TortureCluster = nemesis.cluster
        self.rng = nemesis.rng
        self.retired: set[int] = set()  # first voters removed: their ids never come back

    # -- choosing ----------------------------------------------------------------------------

    @property
    def spares(self) -> list[int]:
        cluster = self.cluster
        return [
            i
            for i in cluster.slots
            if i not in cluster.ids and i not in cluster.genesis and i not in self.retired
        ]

    def removable(self) -> list[int]:
        """Members that may go: a first voter only if enough slots stay usable afterwards
        (``VOTERS_MIN`` voters and one spare, so later turns can still replace)."""
        cluster = self.cluster
        usable_after = len(cluster.slots) - len(self.retired) - 1
        if usable_after >= VOTERS_MIN + 1:
            return list(cluster.ids)
        return [i for i in cluster.ids if i not in cluster.genesis]

    async def turn(self) -> None:
        """One membership change, chosen among those the current state allows."""
        ids, spares, removable = self.cluster.ids, self.spares, self.removable()
        choices = []
        if spares and len(ids) < MEMBERS_MAX:
            choices.append("add")
        if len(ids) > VOTERS_MIN and removable:
            choices.append("remove")
        if spares and removable:
            choices.append("replace")
        if not choices:
            self.nemesis.note(f"member: nothing to change (members {ids}, spares {spares})")
            return
        action = self.rng.choice(choices)
        if action == "add":
            await self.add(self.rng.choice(spares))
            return
        old = await self.pick_removed(removable)
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
        if await self.change(request, self.is_voter(node), crash=self.crash_wanted()):
            self.nemesis.fault("member", f"added node {node} (joined as a learner, promoted)")
        else:
            self.nemesis.note(f"member: node {node} not promoted; removing the learner")
            await self.remove(node, counted=False)

    async def remove(self, node: int, counted: bool = True) -> None:
        leader = await self.nemesis.leader()
        crash = counted and self.crash_wanted()
        request = {"action": "remove", "id": node}
        if not await self.change(request, self.is_gone(node), crash=crash, spared=node):
            self.nemesis.note(f"member: node {node} not removed")
            return
        await self.retire(node)
        if counted:
            role = " (the leader)" if node == leader else ""
            self.nemesis.fault("member", f"removed node {node}{role}")

    async def replace(self, old: int, new: int) -> None:
        if not await self.start_learner(new):
            return
        leader = await self.nemesis.leader()
        request = {"action": "replace", "id": old, "new": new}
        made = self.both(self.is_voter(new), self.is_gone(old))
        if not await self.change(request, made, crash=self.crash_wanted(), spared=old):
            self.nemesis.note(f"member: node {old} not replaced by {new}; removing the learner")
            await self.remove(new, counted=False)
            return
        await self.retire(old)
        role = " (the leader)" if old == leader else ""
        self.nemesis.fault("member", f"replaced node {old}{role} by node {new}")

    async def start_learner(self, node: int) -> bool:
        """Add spare ``node`` as a learner and start it with ``--join``: True once it listens
        (it is then a member the other faults may pick)."""
        cluster = self.cluster
        cluster.wipe(node)
        spare = cluster.spare_member(node)
        request = {"action": "add", "id": node, "peer": spare.peer, "client": spare.client}
        if not await self.change(request, self.is_member(node)):
            self.nemesis.note(f"member: node {node} not added")
            return False
        endpoints = ",".join(cluster.hosts.client(i) for i in cluster.ids)
        cluster.start_node(node, ("--join", endpoints))
        cluster.ids.append(node)
        await self.tell_agent()
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

    async def retire(self, node: int) -> None:
        """After ``node``'s removal: wait for it to stop by itself, then free its slot (a
        spare again with an empty directory, or retired if it was a first voter)."""
        cluster = self.cluster
        cluster.ids.remove(node)
        await self.tell_agent()
        if cluster.alive(node):
            code = await cluster.wait_exit(node, REMOVED_STOP_S)
            if code is None:
                self.nemesis.note(f"member: node {node} still running {REMOVED_STOP_S:g}s after")
                cluster.signal_node(node, signal.SIGTERM)
                if await cluster.wait_exit(node, 10.0) is None:
                    await cluster.kill(node)
            elif code != 0:
                self.nemesis.problems.append(f"removed node {node} exited with status {code}")
        if node in cluster.genesis:
            self.retired.add(node)
        else:
            cluster.wipe(node)

    # -- requests ----------------------------------------------------------------------------

    def crash_wanted(self) -> bool:
        return self.rng.random() < CRASH_SHARE

    async def change(
        self,
        request: dict[str, Any],
        made: Callable[[dict[str, Any]], bool],
        *,
        crash: bool = False,
        spared: int | None = None,
    ) -> bool:
        """Ask for ``request`` until it is answered with an epoch or refused for good; a
        refusal that a lost earlier attempt may explain counts if the leader's list shows the
        change ``made``.  With ``crash``, the first attempt's leader is SIGKILLed just after
        it is asked (unless it is ``spared``, the node the change removes) and restarted once
        that attempt has its answer."""
        deadline = time.monotonic() + CHANGE_TIMEOUT_S
        while True:
            if crash:
                crash = False
                reply = await self.ask_and_crash_leader(request, spared)
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

    async def ask_and_crash_leader(
        self, request: dict[str, Any], spared: int | None
    ) -> dict[str, Any]:
        leader = await self.nemesis.stable_leader()
        ask = self.cluster.ask_agent({"op": "member", **request}, 60.0)
        if leader is None or leader == spared:
            return await ask
        asked = asyncio.get_running_loop().create_task(ask)
        await asyncio.sleep(self.rng.uniform(*CRASH_AFTER_S))
        if await self.cluster.kill(leader):
            self.nemesis.fault("member", f"SIGKILL leader {leader} just after asking {request}")
        try:
            return await asked
        finally:
            await self.nemesis.restart(leader)

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
