"""A node's health, as load balancers and orchestrators ask for it.

Three questions, each answered from the node's own state at the moment it is asked (no round
trip to peers, so a probe never waits on the network):

* **live**: the process answers at all (its event loop is running).  What a liveness probe
  should use: a node that cannot reach a leader is not broken, and restarting it would not help.
* **healthy**: live, a leader is known (this node leads, or it heard from the leader within an
  election timeout), and this node has applied the leader's commit index, as far as it knows
  it, to within ``lag_slots_max`` slots.
* **ready**: healthy, and the node is serving clients (its client port is open and it is not
  stopping).  What a readiness probe or a load balancer should use.

The same answers appear in ``INFO``'s ``paxos`` section and at ``/health``, ``/ready`` and
``/live`` on the metrics address (``runtime.metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from pypaxos.multi import Node, Role

DEFAULT_LAG_SLOTS_MAX = 1024


@dataclass(frozen=True, slots=True)
class Health:
    """One answer; ``reasons`` says why ``healthy`` or ``ready`` is false (empty when both
    hold)."""

    node_id: int
    role: str
    leader_id: int | None
    leader_known: bool
    commit_index: int  # the highest the node has heard of (``Node.commit_index_seen``)
    applied_index: int
    lag_slots: int
    healthy: bool
    ready: bool
    reasons: tuple[str, ...]

    def to_json(self) -> bytes:
        body = {
            "node_id": self.node_id,
            "role": self.role,
            "leader_id": self.leader_id,
            "leader_known": self.leader_known,
            "commit_index": self.commit_index,
            "applied_index": self.applied_index,
            "lag_slots": self.lag_slots,
            "healthy": self.healthy,
            "ready": self.ready,
            "reasons": list(self.reasons),
        }
        return msgspec.json.encode(body) + b"\n"


def leader_known(node: Node) -> bool:
    """This node leads, or it heard from the leader within an election timeout."""
    if node.role is Role.LEADER:
        return True  # it steps down by itself when it loses its quorum (``multi.election``)
    contact = node.detector.leader_contact
    if node.leader_id is None or contact is None:
        return False
    return node.detector.now - contact <= node.config.election_timeout_max_ticks


def assess(node: Node, *, serving: bool, lag_slots_max: int = DEFAULT_LAG_SLOTS_MAX) -> Health:
    """The node's health now; ``serving`` is whether its client port is open."""
    status = node.status
    known = leader_known(node)
    commit_index = node.commit_index_seen
    lag = commit_index - status.applied_index
    reasons: list[str] = []
    if not known:
        reasons.append("no leader known")
    if lag > lag_slots_max:
        reasons.append(f"applied {lag} slots behind the commit index (at most {lag_slots_max})")
    healthy = not reasons
    if not serving:
        reasons.append("not serving clients")
    return Health(
        node_id=status.node_id,
        role=status.role.value,
        leader_id=status.leader_id,
        leader_known=known,
        commit_index=commit_index,
        applied_index=status.applied_index,
        lag_slots=lag,
        healthy=healthy,
        ready=healthy and serving,
        reasons=tuple(reasons),
    )
