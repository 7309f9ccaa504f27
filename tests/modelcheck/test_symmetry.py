"""Symmetry reduction and fingerprints: the reduced search reaches the same verdicts and the
same shortest trace lengths as the full one, with fewer states, and a representative does not
depend on which member of its orbit it was computed from."""

from __future__ import annotations

import itertools
import random

import pytest

from pypaxos.cli.main import main
from pypaxos.core import SynodConfig
from pypaxos.core.bugs import SynodBug
from pypaxos.modelcheck.model import ExploreOptions
from pypaxos.modelcheck.search import _Search, explore, fingerprint
from pypaxos.modelcheck.symmetry import Symmetry


def options(
    bug: SynodBug | None = None, proposers: int = 2, symmetry: bool = True
) -> ExploreOptions:
    bugs = frozenset() if bug is None else frozenset({bug})
    config = SynodConfig(proposers=proposers, acceptors=3, learners=1, bugs=bugs)
    return ExploreOptions(config, max_ballot=0, max_crashes=0, symmetry=symmetry)


def test_correct_code_is_safe_either_way_with_up_to_six_times_fewer_states() -> None:
    full = explore(options(proposers=1, symmetry=False))
    reduced = explore(options(proposers=1))
    assert full.violation is None and reduced.violation is None
    assert full.decision_trace is not None and reduced.decision_trace is not None
    assert len(full.decision_trace) == len(reduced.decision_trace)
    # Each stored state stands for at most 3! renamings, and the acceptors do get renamed.
    assert full.states / 6 <= reduced.states < full.states


@pytest.mark.parametrize(
    "bug",
    [
        SynodBug.LEARNER_COUNTS_DUPLICATES,
        SynodBug.IGNORE_PROMISED_VALUES,
        SynodBug.LEARNER_MIXES_BALLOTS,
    ],
    ids=str,
)
def test_a_planted_bug_has_the_same_shortest_trace_length_either_way(bug: SynodBug) -> None:
    full = explore(options(bug, symmetry=False)).violation
    reduced = explore(options(bug)).violation
    assert full is not None and reduced is not None
    assert len(reduced.trace) == len(full.trace)
    assert reduced.problems == full.problems


def _sample_states(search: _Search, count: int, seed: int) -> list[tuple[int, ...]]:
    """States on random walks from the start, through the search's own macro steps."""
    rng = random.Random(seed)
    locals_, network = search.model.initial()
    initial = search._normalise((*locals_, network, 0, 0, 0))
    found = []
    while len(found) < count:
        state = initial
        for _ in range(rng.randrange(1, 20)):
            moves = [(node, m) for node in range(search.n) for m in search.macro_steps(state, node)]
            if not moves:
                break
            node, macro = rng.choice(moves)
            state = search._successor(state, node, macro)
        found.append(state)
    return found


def test_every_renaming_of_a_state_has_the_same_representative() -> None:
    search = _Search(options(proposers=1), None)
    search.run()  # closes the model and builds the renamings
    symmetry = search.symmetry
    assert isinstance(symmetry, Symmetry)
    assert len(symmetry.perms) == 6
    for state in _sample_states(search, 60, seed=1):
        representative, which = symmetry.canonical(state, False)
        assert symmetry.rename(state, which, False) == representative
        for other in range(len(symmetry.perms)):
            renamed = symmetry.rename(state, other, False)
            assert symmetry.canonical(renamed, False)[0] == representative
            # Renaming back undoes the renaming.
            back = symmetry.inverse[other]
            assert symmetry.rename(renamed, back, False) == state


def test_renaming_moves_acceptor_states_and_messages_together() -> None:
    search = _Search(options(proposers=1), None)
    search.run()
    symmetry = search.symmetry
    assert symmetry is not None
    model = search.model
    swap = symmetry.perms.index((1, 0, 2))  # A1 <-> A2
    for mid, (dest, msg) in enumerate(model.messages):
        target, renamed = symmetry.rename_input(swap, dest, mid)
        new_dest, new_msg = model.messages[renamed]
        assert new_dest == target == {0: 1, 1: 0}.get(dest, dest)
        names = {1: 2, 2: 1}
        assert new_msg.sender == names.get(msg.sender, msg.sender)
        assert type(new_msg) is type(msg)


def test_fingerprints_are_stable_and_tell_sampled_states_apart() -> None:
    search = _Search(options(proposers=1), None)
    search.run()
    states = set(_sample_states(search, 300, seed=2))
    prints = {fingerprint(s) for s in states}
    assert len(prints) == len(states)
    assert all(0 <= p < 1 << 64 for p in prints)
    state = next(iter(states))
    assert fingerprint(state) == fingerprint(tuple(list(state)))
    # Distinct only in a high bit of the network mask (a plain int hash folds those).
    assert fingerprint((0, 1 << 61, 0)) != fingerprint((0, 1, 0))


def test_the_command_without_flags_checks_the_default_bounds_and_reports_progress(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "synod"]) == 0
    captured = capsys.readouterr()
    header = captured.out.splitlines()[0]
    assert "--max-ballot 0 --max-crashes 1" in header
    assert "no violation" in captured.out
    progress = [line for line in captured.err.splitlines() if line.startswith("exploring:")]
    assert progress and "/s)" in progress[0] and "frontier" in progress[0]


def test_no_symmetry_is_a_flag_and_the_report_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["check", "synod", "--proposers", "1", "--max-crashes", "0", "--quiet"]
    assert main([*args, "--no-symmetry"]) == 0
    full = capsys.readouterr().out
    assert main(args) == 0
    reduced = capsys.readouterr().out
    assert full.splitlines()[0].endswith(" --no-symmetry")
    assert not reduced.splitlines()[0].endswith(" --no-symmetry")

    def states(out: str) -> int:
        return int(out.split("states explored: ")[1].split()[0].replace(",", ""))

    assert states(reduced) < states(full)


def test_symmetry_needs_every_renamed_state_interned() -> None:
    # All six renamings of three acceptors exist, and each is a bijection on message ids.
    search = _Search(options(proposers=1), None)
    search.run()
    symmetry = search.symmetry
    assert symmetry is not None
    for mapping in symmetry.message_maps:
        assert sorted(mapping) == list(range(len(search.model.messages)))
    assert sorted(symmetry.perms) == sorted(itertools.permutations(range(3)))
