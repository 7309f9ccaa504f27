"""Failure detection and leader election timing, counted in ticks.

* Followers expect to hear from the leader (``Accept`` or ``Heartbeat``) at least every
  election timeout; the timeout is drawn at random from ``[min, max]`` after every reset, so two
  followers rarely time out together and duel (the same trick as Raft's randomised timeouts).
* Stickiness: a node that heard from a live leader less than ``leader_stickiness_ticks`` ago
  does not answer another node's ``Prepare``.  This is liveness only: a dropped ``Prepare`` is
  something the network may do anyway, so no safety argument of Paxos is touched; it keeps a
  node that was cut off (and whose timer fired) from deposing a healthy leader when it returns.
  The check happens *before* the acceptor sees the message: the acceptor never promises and
  then "forgets".
* A leader counts who answered it recently; if that is not a quorum for ``step_down_ticks``, it
  steps down (it cannot commit anything and clients should look elsewhere).
* Pre-vote (``MultiConfig.pre_vote``; the Raft thesis, Ongaro 2014, section 9.6): stickiness
  alone does not save the leader from a node that was cut off, because that node's own
  ``Prepare`` already raised its promise, and on its return it refuses the leader's ``Accept``
  and ``Heartbeat`` with a ``Nack`` naming that higher ballot, and the leader steps down.  So a
  node whose timer fires first asks the voters (``PreVoteRequest``) whether they would answer
  a ``Prepare``: each says yes unless it leads, heard from a live leader in the stickiness
  period, or is bound by a lease it acknowledged (the same tests as for a real ``Prepare``).
  Only with yeses from a phase-1 quorum of its configuration, itself included, does it pick a
  ballot, promise it and send ``Prepare``.  Nothing here touches an acceptor: a pre-vote that
  is refused is a ``Prepare`` that was never sent, which the network may cause anyway, so
  promises are delayed, never broken (docs/design.md, "Pre-vote").
"""

from __future__ import annotations

from pypaxos.core.proposer import RandomSource
from pypaxos.core.quorum import QuorumSystem
from pypaxos.multi.config import MultiConfig


class PreVote:
    """A node's pre-vote rounds: the current one, whether it is open, and who said yes."""

    __slots__ = ("grants", "open", "round")

    def __init__(self) -> None:
        self.round = 0
        self.open = False
        self.grants: set[int] = set()

    def start(self, self_id: int) -> int:
        """A new round, granted by ourselves; replies to an older round no longer count."""
        self.round += 1
        self.open = True
        self.grants = {self_id}
        return self.round

    def grant(self, request_round: int, voter: int) -> bool:
        """Count ``voter``'s yes; ``False`` when it answers a round that is not open."""
        if not self.open or request_round != self.round:
            return False
        self.grants.add(voter)
        return True

    def close(self) -> None:
        """A leader was heard, a ``Prepare`` promised, or our own candidacy began."""
        self.open = False
        self.grants = set()


class FailureDetector:
    __slots__ = (
        "config",
        "deadline",
        "heard",
        "leader_contact",
        "leading_since",
        "next_heartbeat",
        "now",
        "rng",
    )

    def __init__(self, config: MultiConfig, rng: RandomSource) -> None:
        self.config = config
        self.rng = rng
        self.now = 0
        self.deadline = 0
        self.leader_contact: int | None = None
        self.heard: dict[int, int] = {}
        self.leading_since = 0
        self.next_heartbeat = 0
        self.reset_election()

    def tick(self) -> None:
        self.now += 1

    def reset_election(self) -> None:
        low = self.config.election_timeout_min_ticks
        self.deadline = self.now + self.rng.randint(low, self.config.election_timeout_max_ticks)

    def defer_election(self, until: int) -> None:
        """No candidacy before ``until`` (a lease we acknowledged binds us, ``multi.lease``); a
        random spread after it, so the followers it bound do not all campaign at once."""
        spread = self.config.election_timeout_max_ticks - self.config.election_timeout_min_ticks
        self.deadline = until + self.rng.randint(0, spread)

    def election_due(self) -> bool:
        return self.now >= self.deadline

    def leader_seen(self) -> None:
        self.leader_contact = self.now
        self.reset_election()

    def sticky(self) -> bool:
        contact = self.leader_contact
        return contact is not None and self.now - contact < self.config.leader_stickiness_ticks

    def start_leading(self, promisers: list[int]) -> None:
        self.leading_since = self.now
        self.heard = dict.fromkeys(promisers, self.now)
        self.next_heartbeat = self.now

    def heard_from(self, peer: int) -> None:
        self.heard[peer] = self.now

    def heartbeat_due(self) -> bool:
        if self.now < self.next_heartbeat:
            return False
        self.next_heartbeat = self.now + self.config.heartbeat_ticks
        return True

    def lost_quorum(self, quorum: QuorumSystem, self_id: int) -> bool:
        limit = self.config.step_down_ticks
        if self.now - self.leading_since < limit:
            return False
        alive = [p for p, t in self.heard.items() if self.now - t < limit]
        return not quorum.is_phase2_quorum([*alive, self_id])
