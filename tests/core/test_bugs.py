"""The planted-bug registry: names parse to members of the asked families, and only those."""

from __future__ import annotations

import pytest

from pypaxos.core.bugs import SynodBug, UnknownBug, parse_bugs, require_family
from pypaxos.core.synod import SynodConfig
from pypaxos.kv.bugs import KvBug
from pypaxos.multi.bugs import LogBug

FAMILIES = (SynodBug, LogBug, KvBug)


def test_names_parse_to_members_of_the_family() -> None:
    assert parse_bugs(["small-quorum"], SynodBug) == {SynodBug.SMALL_QUORUM}
    both = parse_bugs(["no-repropose", "snapshot-drops-sessions"], LogBug, KvBug)
    assert both == {LogBug.NO_REPROPOSE, KvBug.SNAPSHOT_DROPS_SESSIONS}
    assert parse_bugs([], SynodBug) == frozenset()


def test_an_unknown_name_or_another_layers_bug_is_refused_with_the_known_names() -> None:
    with pytest.raises(UnknownBug) as typo:
        parse_bugs(["small-qorum"], SynodBug)
    assert typo.value.name == "small-qorum"
    assert typo.value.known == tuple(sorted(b.value for b in SynodBug))
    with pytest.raises(UnknownBug) as wrong_layer:
        parse_bugs(["no-repropose"], SynodBug)
    assert wrong_layer.value.name == "no-repropose"


def test_every_name_is_unique_and_described() -> None:
    names = [bug.value for family in FAMILIES for bug in family]
    assert len(names) == len(set(names))
    assert all(bug.description and str(bug) == bug.value for f in FAMILIES for bug in f)


def test_sorted_bugs_follow_their_names() -> None:
    bugs = [LogBug.NO_REPROPOSE, LogBug.ADOPT_LOWEST_BALLOT, KvBug.SNAPSHOT_DROPS_SESSIONS]
    assert [b.value for b in sorted(bugs)] == sorted(b.value for b in bugs)


@pytest.mark.parametrize("stray", ["small-quorum", LogBug.NO_REPROPOSE])
def test_a_config_refuses_what_is_not_its_family(stray: object) -> None:
    with pytest.raises(TypeError):
        SynodConfig(bugs=frozenset({stray}))  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(TypeError):
        require_family([stray], SynodBug)
    require_family([SynodBug.SMALL_QUORUM, KvBug.SNAPSHOT_DROPS_SESSIONS], (SynodBug, KvBug))
