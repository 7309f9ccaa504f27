"""``PUBLISH`` through the log and the fixed Lua scripts in the KV simulator
(``sim.kv_publish``, ``sim.kv_scripts``).

With both pinned on, runs are clean and really publish and run scripts; the planted
``publish-twice-on-retry`` (a retried ``PUBLISH`` that its session shows applied publishes
again) is caught by the publications check at a pinned seed, which is clean without the bug.
Measured with ``BOTH``: the first catching seed is 1.
"""

from __future__ import annotations

import json
from dataclasses import replace

from pypaxos.kv import KvBug, KVStateMachine, Request, decode_answer, encode_request
from pypaxos.kv.commands import Integer
from pypaxos.kv.pubsub_ops import Publish
from pypaxos.sim.kv import KVSettings, first_violation, run_kv, run_seeds
from pypaxos.sim.kv_publish import Recording, publication_violations

BOTH = KVSettings(
    swarm=True,
    collections=True,
    scripts=True,
    publish=True,
    pinned=frozenset({"collections", "scripts", "publish"}),
)
TWICE = replace(BOTH, bugs=frozenset({KvBug.PUBLISH_TWICE_ON_RETRY}))
FIRST_CAUGHT = 1
CLEAN_SEEDS = 32


def test_runs_with_scripts_and_publishes_are_clean_and_do_both() -> None:
    seen: dict[str, int] = {}
    for result in run_seeds(BOTH, range(CLEAN_SEEDS)):
        assert result.violations == (), (result.seed, result.violations)
        assert "collections: linearizable (model)" in result.lincheck, result.lincheck
        for line in result.history:
            event = json.loads(line)
            if event["type"] == "ok" and event["f"] in ("eval", "publish"):
                name = event["f"] + ("-error" if isinstance(event["value"], dict) else "")
                seen[name] = seen.get(name, 0) + 1
    assert seen.get("publish", 0) > 200, seen
    assert seen.get("eval", 0) > 50 and seen.get("eval-error", 0) > 10, seen


def test_publish_twice_on_retry_is_caught_at_a_pinned_seed() -> None:
    caught = first_violation(TWICE, range(FIRST_CAUGHT + 1))
    assert caught is not None and caught.seed == FIRST_CAUGHT
    assert any("published more than once" in v for v in caught.violations), caught.violations
    assert run_kv(BOTH, FIRST_CAUGHT).violations == ()


def test_the_swarm_draws_scripts_and_publishes_for_some_seeds() -> None:
    mixes = [KVSettings(swarm=True).for_seed(seed) for seed in range(60)]
    for name in ("scripts", "publish"):
        drawn = [getattr(mix, name) for mix in mixes]
        assert any(drawn) and not all(drawn), name
    assert "--scripts --publish" in BOTH.replay_command(3)
    off = replace(BOTH, publish=False)
    assert "--no-publish" in off.replay_command(3)


def _published(machine: KVStateMachine, seq: int, channel: bytes, message: bytes) -> None:
    answer = decode_answer(
        machine.apply(encode_request(Request(1, seq, Publish(channel, message))))
    )
    assert answer == Integer(0)


def test_the_check_finds_a_replica_missing_a_publication_and_an_unsent_one() -> None:
    first, second = KVStateMachine(), KVStateMachine()
    one, two = Recording(1, first), Recording(2, second)
    _published(first, 1, b"p0", b"m1")
    _published(second, 1, b"p0", b"m1")
    _published(first, 2, b"p1", b"m2")
    second.apply(b"not a request")  # the same log position, applied without its publication
    sent = [("p0", "m1"), ("p1", "m2")]
    found = publication_violations([one, two], sent, sent[:1])
    assert len(found) == 1 and "n2 applied log position 2 without" in found[0], found
    clean = Recording(3, KVStateMachine())
    _published(clean.machine, 1, b"p0", b"m1")
    assert publication_violations([clean], sent, sent[:1]) == []
    unsent = publication_violations([clean], [], [])
    assert unsent == ["published but sent by no client: p0:m1"]
    lost = publication_violations([clean], sent, sent)
    assert lost == ["acknowledged but never published: p1:m2"]
    twice = Recording(4, KVStateMachine())
    _published(twice.machine, 1, b"p0", b"m1")
    _published(twice.machine, 2, b"p0", b"m1")  # a second request with the same message
    assert publication_violations([twice], sent, sent[:1]) == ["published more than once: p0:m1"]
