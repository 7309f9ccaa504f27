"""Planted bugs in the replicated-object machine (see ``core.bugs`` for the registry).

Caught by ``pypaxos.testing`` (tests/objects/test_objects_sim.py), which checks every result
against a sequential execution of the user's class.
"""

from __future__ import annotations

from pypaxos.core.bugs import PlantedBug


class ObjectBug(PlantedBug):
    """Planted mistakes in ``objects.machine``."""

    RETRY_RUNS_AGAIN = (
        "retry-runs-again",
        "a call decided twice (a client's retry) runs twice instead of answering the first result",
    )
    SNAPSHOT_DROPS_SESSIONS = (
        "object-snapshot-drops-sessions",
        "the object machine's snapshot leaves out the exactly-once sessions",
    )
    EXPIRED_SESSION_REOPENS = (
        "expired-session-reopens",
        "a client told its session expired can reopen it with a late copy of its first request",
    )
