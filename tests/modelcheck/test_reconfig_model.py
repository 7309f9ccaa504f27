"""The model checker over Multi-Paxos with one membership change (``modelcheck.reconfig``).

With ``config-before-chosen`` the breadth-first search stops at a violation after about 4,500
states, and its trace is a shortest one (9 inputs: the change, its vote from the learner that
the leader already counts, an election on the old configuration, a command chosen there in the
same slot).  Without the bug the same search finds no violation in more states than that; the
whole bounded space is larger than a test affords (more than 60,000 states), and the other
membership bugs need deeper bounds than these (docs/testing.md, "Reconfiguration").
"""

from __future__ import annotations

from dataclasses import replace

from pypaxos.modelcheck.reconfig import Bounds, explore_reconfig
from pypaxos.multi import LogBug

BOUNDS = Bounds(client_commands=1, timeouts=1, heartbeats=0, crashes=0, timeout_nodes=(2,))


def test_config_before_chosen_is_caught_with_a_shortest_trace() -> None:
    result = explore_reconfig(frozenset({LogBug.CONFIG_BEFORE_CHOSEN}), BOUNDS)
    assert result.violation is not None and result.violation.startswith("slot 0:")
    assert len(result.trace) == 9  # breadth-first: no shorter trace exists within the bounds
    assert result.trace[0] == "change at n1" and "timeout n2" in result.trace


def test_the_same_search_without_the_bug_finds_nothing() -> None:
    result = explore_reconfig(frozenset(), replace(BOUNDS, max_states=6_000))
    assert result.violation is None and result.states >= 6_000
