"""A scripted KV run that counts disruptive elections: one follower cut off, then back.

The point of pre-vote (``multi.election``): a node that was cut off must not depose a healthy
leader when it returns.  The run is an ordinary ``sim kv`` world (clients, checks) without the
nemesis and without loss: at ``cut_at_ticks`` the follower with the lowest id is cut off from
the other nodes (clients still reach every node) for ``cut_ticks``, several election timeouts,
so its timer fires again and again; then the cut is lifted and the run goes on to its normal end
and checks.  Every leadership that begins after the cut started is a disruptive election: the
leader had a quorum all along, nothing else failed.  With pre-vote there must be none; without
it the returning node's raised ballot reaches the leader in a ``Nack`` and it steps down, which
is what the control run shows (so the check can fail).

The fault phase's heal (``KVWorld._heal``) is put off until every operation was invoked, so it
cannot lift the cut early; the cut itself ends at ``cut_at_ticks + cut_ticks`` regardless.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pypaxos.core.types import NULL_BALLOT, Ballot
from pypaxos.sim.kv import KVResult, KVSettings, KVWorld

CUT_AT_TICKS = 150  # a leader is elected and serving by then in a run without faults
CUT_TICKS = 200  # 100 node ticks: three or more of the follower's election timeouts (15-30 each)


@dataclass(frozen=True)
class RejoinResult:
    seed: int
    pre_vote: bool
    leader: int | None  # who led when the cut began (None: nobody yet, the run proves nothing)
    follower: int | None  # the node cut off
    ballot: Ballot  # the leader's ballot when the cut began
    disruptions: int  # leaderships that began after the cut started
    follower_ballot_raised: bool  # the cut-off node promised a ballot above the leader's
    ticks_after_lift: int  # how long the run went on after the cut was lifted (-1: never lifted)
    run: KVResult  # the ordinary checks of the run (linearizable, replicas agree, ...)

    def line(self) -> str:
        mode = "pre-vote" if self.pre_vote else "no pre-vote"
        return (
            f"seed {self.seed} ({mode}): leader n{self.leader} at {self.ballot}, n{self.follower} "
            f"cut off and back; disruptive elections: {self.disruptions}; "
            f"violations: {len(self.run.violations)}"
        )


def rejoin_settings(pre_vote: bool, base: KVSettings | None = None) -> KVSettings:
    """``base`` (default ``KVSettings()``) with the nemesis and message loss off, no swarm."""
    base = KVSettings() if base is None else base
    return replace(base, pre_vote=pre_vote, faults=False, drop=0.0, dup=0.0, swarm=False)


def run_rejoin(
    settings: KVSettings,
    seed: int,
    cut_at_ticks: int = CUT_AT_TICKS,
    cut_ticks: int = CUT_TICKS,
) -> RejoinResult:
    """One run of the scenario under ``settings`` (see ``rejoin_settings``)."""
    world = KVWorld(settings, seed)
    world.heal_after = settings.ops  # the heal must not lift the cut (module docstring)
    seen: dict[str, object] = {}

    def cut() -> None:
        leader = world.current_leader()
        seen["changes"] = world.stats.changes
        if leader is None:
            return
        follower = min(n for n in world.node_list if n != leader)
        rest = frozenset(n for n in world.node_list if n != follower)
        clients = (*world.client_ids, world.final_id)
        world.network.split((frozenset({follower}), rest), everywhere=clients)
        seen.update(leader=leader, follower=follower, ballot=world.node_actor(leader).node.ballot)

    def lift() -> None:
        if seen.get("follower") is not None:
            world.network.split(None)
            seen["lifted"] = world.now

    world.at(cut_at_ticks, cut)
    world.at(cut_at_ticks + cut_ticks, lift)
    run = world.run()
    leader = seen.get("leader")
    follower = seen.get("follower")
    ballot = seen.get("ballot", NULL_BALLOT)
    assert isinstance(ballot, Ballot)
    changes = seen.get("changes", world.stats.changes)
    assert isinstance(changes, int)
    lifted = seen.get("lifted")
    after_lift = world.now - lifted if isinstance(lifted, int) else -1
    raised = False
    if isinstance(follower, int) and world.is_up(follower):
        raised = world.node_actor(follower).node.acceptor.promised > ballot
    return RejoinResult(
        seed,
        settings.pre_vote,
        leader if isinstance(leader, int) else None,
        follower if isinstance(follower, int) else None,
        ballot,
        world.stats.changes - changes,
        raised,
        after_lift,
        run,
    )
