"""Built-in scenarios: a deployment, a few lines of explanation and a prepared command list.

Loading a scenario applies its ``setup`` commands; its ``script`` commands are then waiting
ahead, so the page's *Forward* button walks through the story one step at a time, while any
other action branches off it (as in an undo history).  Each script is checked by the tests to
end where its explanation says it does.  A counterexample (``trace.py``) is a scenario with
``open_at``: it opens at its failing step, to be walked backwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from pypaxos.core.bugs import SynodBug
from pypaxos.core.synod import SynodConfig


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    explanation: str
    config: SynodConfig
    setup: tuple[str, ...] = ()
    script: tuple[str, ...] = ()
    # Optional words per command (setup then script), shown beside each step: a counterexample
    # shows the model checker's own line for the step.
    notes: tuple[str, ...] = ()
    # The step to open at, instead of the end of the setup (a counterexample opens where it
    # fails); Reset still goes back to the end of the setup.
    open_at: int | None = None

    @property
    def commands(self) -> tuple[str, ...]:
        return self.setup + self.script


def _config(learners: int = 1, bugs: frozenset[SynodBug] = frozenset()) -> SynodConfig:
    return SynodConfig(proposers=2, acceptors=3, learners=learners, bugs=bugs)


_PHASE_ONE = ("deliver P1 A1", "deliver P1 A2", "deliver P1 A3")

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "normal",
            "Normal case",
            "P1 proposes x.  Phase 1: it sends Prepare 0.4 and every acceptor promises never "
            "to accept a lower ballot.  Phase 2: with a majority of promises P1 sends Accept "
            "0.4 x; each acceptor accepts and tells P1 and the learner.  Once a majority "
            "accepted x in one ballot, x is chosen and L1 decides it.  Press Forward to walk "
            "through it, or deliver the messages yourself in any order.",
            _config(),
            setup=("propose P1 x",),
            script=(
                *_PHASE_ONE,
                "deliver P1",
                "deliver P1 A1",
                "deliver P1 A2",
                "deliver P1 A3",
                "deliver L1",
                "deliver P1",
            ),
        ),
        Scenario(
            "dueling",
            "Dueling proposers",
            "P1 and P2 both propose.  P2's higher ballot 0.5 overtakes P1 between its two "
            "phases, so the acceptors refuse P1's Accept 0.4 with a Nack; P1 backs off and "
            "retries with ballot 1.4, which in turn pre-empts P2.  Randomised backoff breaks "
            "the duel.  Deliver messages (oldest first with Step) and fire timers until a "
            "value is chosen.",
            _config(),
            setup=("propose P1 x", *_PHASE_ONE, "propose P2 y"),
            script=(
                "deliver P1",
                "deliver A1",
                "deliver A2",
                "deliver A3",
                "deliver P1",
                "timer P1 retry",
                "deliver all",
            ),
        ),
        Scenario(
            "adopt",
            "Adopting an accepted value",
            "P1's Accept 0.4 x reached only A1 before P1 stalled, so nothing is chosen yet.  "
            "P2 now proposes y, but A1's Promise 0.5 reports that it accepted x at 0.4.  Rule "
            "P2c (Paxos Made Simple, section 2.2): a proposer must propose the value of the "
            "highest-ballot proposal reported by its promise quorum, so P2 sends Accept 0.5 "
            "x, not y.  This is what keeps a possibly chosen value chosen.",
            _config(),
            setup=(
                "propose P1 x",
                "deliver P1 A1",
                "deliver P1 A2",
                "drop P1 A3",
                "deliver P1",
                "deliver P1 A1",
                "drop P1 A2",
                "drop P1 A3",
                "drop A1 P1",
                "drop A1 L1",
            ),
            script=(
                "propose P2 y",
                "deliver P2 A1",
                "deliver P2 A3",
                "deliver P2",
                "deliver all",
            ),
        ),
        Scenario(
            "acceptor-crash",
            "An acceptor crashes",
            "A1 promises ballot 0.5 to P2 and crashes.  Two of three acceptors are still a "
            "majority, so P2 gets y chosen while A1 is down; the Accept sent to A1 is lost.  "
            "A1 restarts with exactly what it synced to disk, so it still refuses P1's "
            "lower ballot 0.4: a promise survives a crash because it is persisted before it "
            "is sent.",
            _config(),
            setup=("propose P1 x", "propose P2 y"),
            script=(
                "deliver P2 A1",
                "crash A1",
                "deliver P2 A2",
                "deliver P2 A3",
                "deliver P2",
                "deliver P2 A1",
                "deliver P2 A2",
                "deliver P2 A3",
                "deliver L1",
                "restart A1",
                "deliver P1 A1",
            ),
        ),
        Scenario(
            "bug-ignore-promised-values",
            "Planted bug: a proposer ignores reported values",
            "The proposers are built with the planted bug 'ignore-promised-values': a proposer "
            "proposes its own value even when a promise reports an accepted one.  A1 and A2 "
            "accept x at 0.4, so x is chosen and L1 decides x.  P2's promise quorum {A2, A3} "
            "reports x, but P2 proposes y anyway; A2 and A3 accept y at 0.5, so y is chosen "
            "too and L2 decides y.  Walk forward until the violation banner appears.",
            _config(learners=2, bugs=frozenset({SynodBug.IGNORE_PROMISED_VALUES})),
            setup=("propose P1 x",),
            script=(
                "deliver P1 A1",
                "deliver P1 A2",
                "deliver P1",
                "deliver P1 A1",
                "deliver P1 A2",
                "deliver A1 L1",
                "deliver A2 L1",
                "drop A1 L2",
                "drop A2 L2",
                "propose P2 y",
                "deliver P2 A2",
                "deliver P2 A3",
                "deliver P2",
                "deliver P2 A2",
                "deliver P2 A3",
                "deliver A2 L2",
                "deliver A3 L2",
            ),
        ),
        Scenario(
            "bug-accept-below-promise",
            "Planted bug: an acceptor breaks its promise",
            "The acceptors are built with the planted bug 'accept-below-promise'.  A2 promised "
            "0.5 to P2, yet it accepts P1's Accept 0.4 x, so x is chosen by {A1, A2}.  P2's "
            "promises were sent before that acceptance and report nothing, so P2 proposes y and "
            "{A2, A3} accept it: two values chosen.  Walk forward until the violation banner "
            "appears.",
            _config(learners=2, bugs=frozenset({SynodBug.ACCEPT_BELOW_PROMISE})),
            setup=("propose P1 x",),
            script=(
                "deliver P1 A1",
                "deliver P1 A2",
                "propose P2 y",
                "deliver P2 A2",
                "deliver P2 A3",
                "deliver P1",
                "deliver P1 A1",
                "deliver P1 A2",
                "deliver A1 L1",
                "deliver A2 L1",
                "drop A1 L2",
                "drop A2 L2",
                "deliver P2",
                "deliver P2 A2",
                "deliver P2 A3",
                "deliver A2 L2",
                "deliver A3 L2",
            ),
        ),
    )
}

# The scenario to open when only ``--bug NAME`` is given.
SCENARIO_FOR_BUG: dict[SynodBug, str] = {
    SynodBug.IGNORE_PROMISED_VALUES: "bug-ignore-promised-values",
    SynodBug.ACCEPT_BELOW_PROMISE: "bug-accept-below-promise",
}
