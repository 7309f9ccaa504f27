"""The model checker over Multi-Paxos with one membership change (``modelcheck.reconfig``).

Without bugs the bounded space is searched to the end with no violation; with a planted
reconfiguration bug the search stops at a violation, and its trace is a shortest one (a
breadth-first search): the measured lengths are asserted so a change in the model shows.
"""

from __future__ import annotations

import pytest

from pypaxos.modelcheck.reconfig import Bounds, explore_reconfig
from pypaxos.multi import LogBug

SMALL = Bounds(client_commands=1, timeouts=1, heartbeats=0, crashes=0)


def test_the_bounded_space_is_safe() -> None:
    result = explore_reconfig(frozenset(), SMALL)
    assert result.violation is None and result.exhausted and result.states > 100


@pytest.mark.parametrize(("bug", "length"), [(LogBug.CONFIG_BEFORE_CHOSEN, 9)], ids=str)
def test_a_planted_bug_is_caught_with_a_shortest_trace(bug: LogBug, length: int) -> None:
    result = explore_reconfig(frozenset({bug}), SMALL)
    assert result.violation is not None, bug
    assert len(result.trace) == length
    assert result.trace[0].startswith("change")  # the change comes first, as it must
