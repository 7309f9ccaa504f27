"""What every simulated cluster of Multi-Paxos replicas shares: the KV simulation's world
(``sim.kv.KVWorld``) and the replicated-object checker's (``testing.world.ObjectWorld``).

``ReplicaWorld`` is a ``Simulator`` whose actors are ``NodeActor`` s (ids ``1..n``) and client
actors (``CLIENT_ID_BASE + i``).  It carries out the node effects both worlds treat the same:
a ``Redirect`` or ``Busy`` goes back to the client that sent the request, a leader's own vote
(``PersistOwnVote``) goes to the page cache at once and is synced a few ticks later, the log
compacts, a snapshot is sent in chunks.  A subclass handles ``Applied``, ``Reply`` and
``TakeSnapshot`` (its ghost state and checks differ) and passes the rest up.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from pypaxos.core.effects import Persist, Send
from pypaxos.core.types import Ballot
from pypaxos.multi import (
    AcceptRecord,
    Busy,
    CompactLog,
    PersistOwnVote,
    Promise,
    Redirect,
    Role,
    SendSnapshot,
    chunk_messages,
)
from pypaxos.sim.kv_client import ClientBusy, ClientRedirect, split_request_id
from pypaxos.sim.kv_faults import Nemesis
from pypaxos.sim.kv_node import NodeActor, RecordLogDisk
from pypaxos.sim.simulator import Simulator

CLIENT_ID_BASE = 100  # client actor i is CLIENT_ID_BASE + i (nodes are 1..n)
OWN_VOTE_SYNC_TICKS = (1, 8)  # a leader's fsync of its own vote takes this long (uniform)


class ReplicaWorld(Simulator[object]):
    """A simulated cluster of ``NodeActor`` replicas and their clients (see the module)."""

    # Set by the subclass's constructor.
    node_list: tuple[int, ...]
    session_stride: int  # client actor CLIENT_ID_BASE + i uses client ids i, i + stride, ...
    record_disk: RecordLogDisk
    nemesis: Nemesis

    def node_actor(self, node: int) -> NodeActor:
        actor = self.actor(node)
        assert isinstance(actor, NodeActor)
        return actor

    def current_leader(self) -> int | None:
        """The running leader with the highest ballot, if any."""
        best: tuple[Ballot, int] | None = None
        for node in self.node_list:
            if self.is_up(node):
                n = self.node_actor(node).node
                if n.role is Role.LEADER and (best is None or n.leader.ballot > best[0]):
                    best = (n.leader.ballot, node)
        return None if best is None else best[1]

    def on_effect(self, node: int, effect: object) -> None:
        if type(effect) is Redirect:
            rid = effect.request_id
            redirect = ClientRedirect(node, rid, effect.leader_id)
            self.apply(node, [Send(self._client_of(rid), redirect)])
        elif type(effect) is Busy:
            rid = effect.request_id
            self.apply(node, [Send(self._client_of(rid), ClientBusy(node, rid))])
        elif type(effect) is PersistOwnVote:
            self._write_own_vote(node, effect.record)
        elif type(effect) is CompactLog:
            self.record_disk.compact(node, effect.slot)
        elif type(effect) is SendSnapshot:
            durable = self.record_disk.latest_snapshot(node)
            sends = [Send(effect.to, m) for m in chunk_messages(node, effect, durable)]
            self.apply(node, sends)
        else:
            super().on_effect(node, effect)

    def on_send(self, src: int, dst: int, msg: object) -> None:
        if self.nemesis.promise_armed and type(msg) is Promise:
            self.nemesis.promised(src)

    def _client_of(self, rid: int) -> int:
        """The client actor that sent request ``rid`` (see ``session_stride``)."""
        kv_id = split_request_id(rid)[0]
        return CLIENT_ID_BASE + (kv_id - 1) % self.session_stride + 1

    def _hold_if_paused(self, node: int, resume: Callable[[], None]) -> bool:
        """Is ``node``'s process paused (its clock stopped, in a world that pauses processes)?
        Then ``resume`` is kept for when it runs again.  Here no process pauses."""
        return False

    def _write_own_vote(self, node: int, record: AcceptRecord) -> None:
        """A leader's own vote: into the page cache now, its fsync done some ticks later.

        The leader's ``Accept`` s leave at once (``multi.effects.PersistOwnVote``); when the
        fsync completes the node hears ``synced`` and only then counts its vote.  A crash before
        that loses the record, unless a later synced write or the writeback flushed it first.
        """
        self._persist(node, Persist(record, sync=False))
        actor = self.actor(node)
        low, high = OWN_VOTE_SYNC_TICKS
        delay = low + int(self.rng.random() * (high - low + 1))
        self.at(self.now + delay, lambda: self._own_vote_synced(node, actor, record))

    def _own_vote_synced(self, node: int, actor: object, record: AcceptRecord) -> None:
        if not self.is_up(node) or self.actor(node) is not actor:
            return  # crashed since: the record is lost (or was flushed); no one to tell
        # The fsync is done; a paused process hears of it later.
        if self._hold_if_paused(node, partial(self._own_vote_synced, node, actor, record)):
            return
        assert isinstance(actor, NodeActor)
        self.record_disk.sync(node)
        if self.trace is not None:
            self.log(f"{self.name(node)} own vote synced: slot {record.slot} at {record.ballot}")
        self.apply(node, actor.node.synced(record.slot, record.ballot))
