"""Test your replicated class before production: simulate it under faults, lint it.

``check(factory, workload)`` runs the class on a simulated cluster (``multi.Node`` s over
``objects.ObjectMachine`` s) with message loss, duplication and reordering, crashes and
restarts, partitions and leader changes, for several seeds, and reports replicas that
disagree, results no sequential execution of the class explains, and commands whose outcome
depends on the process (hash seed, clock, randomness); each report names its seed, which
replays the run exactly.  ``lint(cls)`` reads the commands' source for the usual sources of
nondeterminism.  ``LocalCluster`` runs a small simulated cluster in-process and hands out
members whose methods are calls through consensus, for examples and tests.

More: docs/guide.md, 'Testing your class'.
"""

from pypaxos.testing.lint import RULES, Finding, lint
from pypaxos.testing.local import LocalCluster
from pypaxos.testing.run import check, run_check
from pypaxos.testing.world import CheckReport, CheckSettings, Invocation, Workload

__all__ = [
    "RULES",
    "CheckReport",
    "CheckSettings",
    "Finding",
    "Invocation",
    "LocalCluster",
    "Workload",
    "check",
    "lint",
    "run_check",
]
