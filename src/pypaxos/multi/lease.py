"""Leader leases: a leader answers reads at once while a majority is bound not to elect another.

The Raft thesis (Ongaro 2014, section 6.4.1) and Chubby (Burrows 2006) skip the read-index
heartbeat round with a clock: a follower that acknowledges the leader's heartbeat promises not
to vote for another leader (promise to a ``Prepare``, or campaign itself) for ``lease_ticks``
of its own ticks after it acknowledged; the leader, once a majority (itself included)
acknowledged the heartbeat round it sent at its tick ``t``, answers reads locally while its own
clock reads less than ``t + serve_ticks``.  ``serve_ticks`` (``MultiConfig.lease_serve_ticks``)
is ``lease_ticks`` shortened for two things:

* one tick of granularity: a follower's counter may step right after its acknowledgement, so it
  is bound for at least ``lease_ticks - 1`` of its tick periods;
* drift: no node's ticks run more than ``1 + clock_drift_ppm / 10**6`` times as fast as another
  node's, so the leader's ``serve_ticks`` periods last no longer than the follower's
  ``lease_ticks - 1``: ``serve_ticks = floor((lease_ticks - 1) / (1 + drift))``.

Measured from when the round was *sent*, not when the acks arrived: each acknowledgement left
after the heartbeat did, so every promise of the majority outlives the leader's lease.  A new
leader needs promises from a majority, which meets the lease's majority in a node that refuses
until its promise ran out: so a new leader exists only once the old lease is over, and it serves
reads only under a lease of its own (acknowledged at its own ballot).  A restarted node forgot
what it acknowledged, so it is bound for ``lease_ticks`` from its start.

The assumption (docs/design.md, "Reads"): tick rates differ by at most the drift bound, and the
lease holder never pauses without noticing: a process or clock that stops for longer than the
lease must count the missed ticks before it answers anything (the runtime's driver feeds the
loop clock's ticks, a jump included, before the messages that waited).  Safety of the log never
depends on any of this: only lease reads do.
"""

from __future__ import annotations


class Lease:
    """One node's lease bookkeeping: as leader (``until``) and as follower (``bound_until``)."""

    __slots__ = ("bound_until", "lease_ticks", "sent", "serve_ticks", "until")

    def __init__(self, lease_ticks: int, serve_ticks: int) -> None:
        self.lease_ticks = lease_ticks
        self.serve_ticks = serve_ticks
        self.until = 0  # leader: serve lease reads while our clock reads less
        self.sent: dict[int, int] = {}  # leader: heartbeat round -> the tick it left
        # Follower: no vote for another leader before this tick.  From the start: a restarted
        # node does not remember what it acknowledged before the crash.
        self.bound_until = lease_ticks

    def round_sent(self, read_round: int, now: int) -> None:
        self.sent[read_round] = now
        stale = [r for r, tick in self.sent.items() if tick + self.serve_ticks <= now]
        for r in stale:  # could no longer give a lease: bounded by serve_ticks / heartbeat
            del self.sent[r]

    def confirmed(self, read_round: int) -> None:
        """A majority acknowledged ``read_round`` (and so every earlier round's promise holds)."""
        tick = self.sent.get(read_round)
        if tick is not None:
            self.until = max(self.until, tick + self.serve_ticks)
        for r in [r for r in self.sent if r <= read_round]:
            del self.sent[r]

    def holds(self, now: int) -> bool:
        return now < self.until

    def reset(self) -> None:
        """A new role: whatever we held belongs to a ballot we no longer lead at."""
        self.until = 0
        self.sent.clear()

    def acknowledged(self, now: int) -> None:
        """We acknowledge a leader's heartbeat: we are bound for ``lease_ticks`` from now."""
        self.bound_until = max(self.bound_until, now + self.lease_ticks)

    def binds(self, now: int) -> bool:
        return now < self.bound_until
