"""``refused-client-reopens`` caught by the KV simulator, with clients that give up at once and a
network full of late copies.

The bug (a client id refused as expired leaves no tombstone) needs a client's first request
given up while a copy of it is still travelling, its second request refused (the client hears
``SessionExpired``, records ``fail`` and moves to a new id), then the late copy of the first
(reopening the session) and a late copy of the second (running it) decided in that order.  No
default seed draws that; ``LATE_COPIES`` makes it likely: one send per request
(``attempts_max=1``, so a slow first request is given up while its copies straggle), half the
messages duplicated and half the copies of the fault phase delayed by 20 to 200 ticks.
Measured: seed 29 is the first that catches it (an ``incr`` recorded ``fail`` ran later); 40
seeds without the bug are clean.
"""

from __future__ import annotations

from dataclasses import replace

from pypaxos.kv import KvBug
from pypaxos.sim.kv import KVSettings, first_violation, run_kv, run_seeds
from pypaxos.sim.kv_client import ClientSettings
from pypaxos.sim.kv_faults import NemesisSettings

LATE_COPIES = KVSettings(
    client=ClientSettings(timeout_ticks=40, attempts_max=1),
    dup=0.5,
    nemesis=replace(NemesisSettings(), straggle_prob=0.5, straggle_ticks=(20, 200)),
)
REOPENS = replace(LATE_COPIES, bugs=frozenset({KvBug.EXPIRED_SESSION_REOPENS}))
FIRST_CAUGHT = 29


def test_late_copies_without_the_bug_are_clean() -> None:
    results = list(run_seeds(LATE_COPIES, range(30)))
    assert [r.seed for r in results if r.violations] == []


def test_a_refused_client_that_reopens_is_caught() -> None:
    caught = first_violation(REOPENS, range(FIRST_CAUGHT + 1))
    assert caught is not None and caught.seed == FIRST_CAUGHT  # deterministic: update if moved
    assert any(v.startswith("not linearizable") for v in caught.violations)
    assert run_kv(REOPENS, caught.seed).violations == caught.violations  # replays
    assert run_kv(LATE_COPIES, caught.seed).violations == ()  # the bug's doing
    assert "--bug refused-client-reopens" in caught.settings.replay_command(caught.seed)
