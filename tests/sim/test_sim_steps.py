"""The step record's one text form: rendering then parsing gives the same record back, for
every kind of step and message, for every step of the stored checker counterexamples, and for
every line of a printed simulator trace."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pypaxos.cli.sim_synod import FAULTY as SIM_FAULTY
from pypaxos.core.bugs import SynodBug
from pypaxos.core.messages import Accept, Accepted, Decided, Message, Nack, Prepare, Promise, Query
from pypaxos.core.synod import SynodConfig
from pypaxos.core.types import NULL_BALLOT, Ballot
from pypaxos.sim.steps import (
    Crash,
    Deliver,
    Drop,
    Flush,
    Note,
    Propose,
    Reboot,
    Restart,
    Step,
    StepParseError,
    Timed,
    Timer,
    parse_step,
    parse_timed,
    render_step,
    render_timed,
)
from pypaxos.sim.synod import run_synod

STORED = Path(__file__).resolve().parent.parent / "modelcheck" / "counterexamples"

configs = st.builds(
    SynodConfig,
    proposers=st.integers(1, 3),
    acceptors=st.integers(1, 5),
    learners=st.integers(0, 2),
)
words = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True)
ballots = st.one_of(st.just(NULL_BALLOT), st.builds(Ballot, st.integers(0, 99), st.integers(0, 99)))


def messages(sender: int) -> st.SearchStrategy[Message]:
    return st.one_of(
        st.builds(Prepare, st.just(sender), ballots),
        st.builds(Promise, st.just(sender), ballots),
        st.builds(Promise, st.just(sender), ballots, ballots, words),
        st.builds(Accept, st.just(sender), ballots, words),
        st.builds(Accepted, st.just(sender), ballots, words),
        st.builds(Nack, st.just(sender), ballots, ballots),
        st.builds(Query, st.just(sender)),
        st.builds(Decided, st.just(sender), words),
    )


@st.composite
def config_and_step(draw: st.DrawFn) -> tuple[SynodConfig, Step]:
    config = draw(configs)
    node = draw(st.sampled_from(config.all_ids))
    other = draw(st.sampled_from(config.all_ids))
    message = draw(messages(other))
    step: Step = draw(
        st.one_of(
            st.builds(Propose, st.just(node), words),
            st.builds(Deliver, st.just(node), st.just(message)),
            st.builds(Drop, st.just(node), st.just(message)),
            st.builds(Reboot, st.just(node), st.booleans()),
            st.builds(Crash, st.just(node), st.booleans()),
            st.builds(Restart, st.just(node)),
            st.builds(Flush, st.just(node)),
            st.builds(Timer, st.just(node), words),
        )
    )
    return config, step


@given(config_and_step())
def test_render_then_parse_gives_the_same_record(case: tuple[SynodConfig, Step]) -> None:
    config, step = case
    text = render_step(step, config)
    assert parse_step(text, config) == step
    assert "\n" not in text


@pytest.mark.parametrize("path", sorted(STORED.glob("*.txt")), ids=lambda p: p.stem)
def test_every_stored_trace_step_parses_and_renders_back_to_its_text(path: Path) -> None:
    config = SynodConfig(proposers=2, acceptors=3, learners=1)
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("shortest trace")) + 1
    actions = []
    for line in lines[start:]:
        if not line[:4].strip().rstrip(".").isdigit():
            break
        actions.append(line.split(". ", 1)[1].split("  => ")[0].rstrip())
    assert actions
    for action in actions:
        assert render_step(parse_step(action, config), config) == action


def test_the_kinds_render_as_documented() -> None:
    config = SynodConfig(proposers=1, acceptors=2, learners=1)
    a1, p1 = config.acceptor_ids[0], config.proposer_ids[0]
    promise = Promise(a1, Ballot(0, p1), Ballot(0, p1), "v1")
    assert (
        render_step(Deliver(p1, promise), config) == "P1 <- Promise 0.3 (accepted 0.3=v1) from A1"
    )
    assert render_step(Drop(p1, Query(a1)), config) == "P1 <-x Query from A1"
    lost = "A1 crashes and restarts from its disk (its unsynced write is lost)"
    assert render_step(Reboot(a1, True), config) == lost
    assert render_step(Timer(p1, "phase"), config) == "P1's phase timer fires"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("A1 teleports", "not a step"),
        ("A9 proposes v1", "no actor A9"),
        ("A1 <- Hello 0.3 from P1", "not a message"),
    ],
)
def test_text_that_is_no_step_is_refused(text: str, fragment: str) -> None:
    config = SynodConfig(proposers=1, acceptors=2, learners=1)
    with pytest.raises(StepParseError, match=fragment):
        parse_step(text, config)


@pytest.mark.parametrize("seed", range(8))
def test_a_printed_simulator_trace_parses_back_to_its_records(seed: int) -> None:
    # The faulty mix plus a planted bug that needs unsynced writes, so flushes and lost
    # writes show up too.
    settings = replace(SIM_FAULTY, bugs=frozenset({SynodBug.REPLY_BEFORE_PERSIST}))
    result = run_synod(settings, seed, trace=True)
    config = settings.config()
    assert result.events
    assert [parse_timed(line, config) for line in result.trace] == list(result.events)
    # The report is the header, these lines and the outcome.
    assert result.report_lines()[2:-1] == list(result.trace)


def test_the_simulator_records_flushes_and_lost_unsynced_writes() -> None:
    settings = replace(SIM_FAULTY, bugs=frozenset({SynodBug.REPLY_BEFORE_PERSIST}))
    entries = [e.entry for seed in range(8) for e in run_synod(settings, seed, trace=True).events]
    assert any(isinstance(entry, Flush) for entry in entries)
    assert any(isinstance(entry, Crash) and entry.lost_unsynced for entry in entries)


def test_a_note_is_never_read_as_a_step() -> None:
    config = SynodConfig(proposers=1, acceptors=2, learners=1)
    note = Timed(12, Note("P1 proposes v1"))  # worded like a step, yet a note
    line = render_timed(note, config)
    assert line == "t=   12  -- P1 proposes v1"
    assert parse_timed(line, config) == note
    step = Timed(12345, Propose(config.proposer_ids[0], "v1"))
    assert parse_timed(render_timed(step, config), config) == step
    with pytest.raises(StepParseError, match="no 't=' time"):
        parse_timed("P1 proposes v1", config)
