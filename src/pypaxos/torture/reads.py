"""Torture runs aimed at the read paths: the nodes' read mode and a clock nemesis within bounds.

``--reads MODE`` sets how the nodes serve reads: ``log``, ``read-index`` (the runtime's
default), ``lease``, or ``follower`` (read-index with ``follower_reads``).  A deposed leader
that still answers reads, or a follower that answers before it applied what a finished write
wrote, shows in the history only if some client keeps reading *from that node* while the rest
of the cluster moves on; the workload's ordinary clients move to another node when theirs
fails a write, so the agent's ``--readers`` (read-only clients pinned to one node each, which
never move) do that reading.  Pair them with ``isolate-leader``.

The lease assumption (docs/design.md, "Reads") is that tick rates differ by at most
``clock_drift_ppm``; the ``clock`` nemesis breaks it on purpose (rates x0.1 to x4, jumps), so a
lease run with it may fail on correct code.  ``clock-drift`` keeps to it: it sets one node's
clock rate within the stated drift of real time (never a jump), so a lease run with it must
stay clean.  ``--lease-ticks`` lengthens the lease past the election timeout, so that a node
that votes inside a lease it acknowledged (a planted bug) elects a leader while the old one
still serves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pypaxos.runtime.config import RUNTIME_TIMEOUTS, ClusterConfig, ReadPath

# --reads MODE -> the config's ``reads`` (``follower`` is read-index with follower reads on).
_READ_PATH: dict[str, ReadPath] = {
    "log": "log",
    "read-index": "read-index",
    "lease": "lease",
    "follower": "read-index",
}
READ_MODES = tuple(_READ_PATH)


@dataclass(frozen=True)
class ReadSetup:
    """The nodes' read settings for one run."""

    mode: str = "read-index"
    lease_ticks: int | None = None  # None: the runtime's default

    def __post_init__(self) -> None:
        if self.mode not in READ_MODES:
            raise ValueError(f"read mode must be one of {', '.join(READ_MODES)}, not {self.mode}")
        if self.lease_ticks is not None and self.lease_ticks < 2:
            raise ValueError("lease_ticks must be at least 2")

    def apply(self, config: ClusterConfig) -> ClusterConfig:
        """``config`` (as ``new_config`` wrote it) with this run's read settings."""
        follower = self.mode == "follower"
        protocol = dict(config.protocol)
        if self.lease_ticks is not None:
            protocol["lease_ticks"] = self.lease_ticks
        return dataclasses.replace(
            config,
            reads=_READ_PATH[self.mode],
            follower_reads=follower,
            protocol=protocol,
        )


def drift_bound() -> float:
    """The drift bound the nodes assume, as a fraction (``clock_drift_ppm`` / 10**6)."""
    return RUNTIME_TIMEOUTS["clock_drift_ppm"] / 1_000_000
