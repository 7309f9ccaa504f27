"""Planted bugs: classic Paxos mistakes that can be switched on by name in the real actors.

They exist to show that the simulator and the model checker are not vacuous: each one, when
switched on, must be caught (tests/sim and tests/modelcheck prove it).  Correct code passes an
empty set.
"""

from __future__ import annotations

from collections.abc import Iterable

SYNOD_BUGS: dict[str, str] = {
    "accept-below-promise": "an acceptor accepts an Accept whose ballot is below its promise",
    "promise-any-ballot": "an acceptor promises a ballot lower than the one it already promised",
    "ignore-promised-values": "a proposer ignores accepted values reported in promises",
    "adopt-first-promise": "a proposer adopts the first reported value, not the highest-ballot one",
    "learner-mixes-ballots": "a learner counts Accepted for one value across different ballots",
    "learner-counts-duplicates": "a learner counts duplicate Accepted messages from one acceptor",
    "reply-before-persist": "an acceptor replies before its new state is synced to disk",
    "small-quorum": "quorums of floor(n/2) acceptors, which need not intersect",
    "forget-promise-on-restart": "a restarted acceptor forgets its promise (keeps only accepts)",
    "proposer-forgets-ballot": "a proposer does not persist its ballot and reuses it on restart",
}


def check_bugs(names: Iterable[str], known: dict[str, str]) -> frozenset[str]:
    """Validate bug names, raising ``ValueError`` listing the known ones on a typo."""
    chosen = frozenset(names)
    unknown = sorted(chosen - known.keys())
    if unknown:
        raise ValueError(f"unknown bug(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return chosen
