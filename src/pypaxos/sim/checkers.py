"""Safety invariants of single-decree Paxos, shared by the simulator and the model checker.

"Chosen" is judged from the ghost record of every acceptance that ever happened (an acceptor
sent ``Accepted(b, v)``), with the *correct* majority, whatever quorum the actors were built
with: a value is chosen once a majority of acceptors accepted it in one ballot (Paxos Made
Simple, section 2.1).  Invariants:

* at most one value is ever chosen;
* a chosen value was proposed;
* every learner's decision is a chosen value, and a learner never changes its decision.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from pypaxos.core.quorum import QuorumSystem
from pypaxos.core.types import Ballot, Value

# (acceptor id, ballot, value): one acceptance, as announced by an Accepted message.
Acceptance = tuple[int, Ballot, Value]


def chosen_values(acceptances: Iterable[Acceptance], quorum: QuorumSystem) -> set[Value]:
    """Every value some ballot got a phase-2 quorum of acceptances for."""
    by_ballot: dict[tuple[Ballot, Value], set[int]] = defaultdict(set)
    for acceptor, ballot, value in acceptances:
        by_ballot[(ballot, value)].add(acceptor)
    return {
        value for (_, value), acceptors in by_ballot.items() if quorum.is_phase2_quorum(acceptors)
    }


def safety_violations(
    acceptances: Iterable[Acceptance],
    quorum: QuorumSystem,
    proposed: Iterable[Value],
    decisions: Mapping[int, Value],
    names: Mapping[int, str] | None = None,
) -> list[str]:
    """Describe every broken invariant (an empty list means the state is safe).

    ``decisions`` maps each learner that has decided to its decision; the caller checks
    "never changes its mind" itself, since that needs the learner's history.
    """
    chosen = chosen_values(acceptances, quorum)
    problems: list[str] = []
    if len(chosen) > 1:
        problems.append(f"more than one value chosen: {sorted(chosen)}")
    unproposed = chosen - set(proposed)
    if unproposed:
        problems.append(f"chosen value(s) never proposed: {sorted(unproposed)}")
    for learner, value in sorted(decisions.items()):
        if value not in chosen:
            who = names[learner] if names else str(learner)
            problems.append(f"learner {who} decided {value!r}, which is not chosen")
    return problems
