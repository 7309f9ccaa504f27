"""Exhaustive model checking of single-decree Paxos on the real actors.

* ``model``: the transition relation, computed by stepping the real ``core`` actors;
* ``search``: breadth-first search over every reachable state up to the bounds, checking the
  invariants of ``sim.checkers`` in each, and the shortest trace to a violation.
"""
