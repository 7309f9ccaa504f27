"""After the heal a value must be chosen and learned within the stated bound, or it is reported."""

from __future__ import annotations

from pypaxos.core.messages import Accept, Prepare
from pypaxos.sim.steps import Deliver, Propose
from pypaxos.sim.synod import SynodSettings, SynodWorld, liveness_bound_ticks, run_synod


class NeverHealingWorld(SynodWorld):
    """A broken heal that leaves the partition in place: the learners stay cut off."""

    def _heal(self) -> None:
        partition = self.network.partition
        super()._heal()
        self.network.split(partition)


def test_a_run_that_cannot_converge_is_a_liveness_violation() -> None:
    settings = SynodSettings(partition="L1,L2", fault_ticks=100)
    result = NeverHealingWorld(settings, 3).run()
    assert result.violation is not None
    assert result.violation.kind == "liveness"
    assert "not learned by L1, L2" in result.violation.message
    assert result.violation.time == result.deadline == 100 + liveness_bound_ticks(settings)
    # ... while the real heal converges on the very same seed.
    assert run_synod(settings, 3).violation is None


def test_bound_follows_the_timing_parameters() -> None:
    default = SynodSettings()
    # (D // Bmin + 1 + A) * (2T + Bcap) + 4D with D=10, Bmin=5, A=3, T=40, Bcap=400.
    assert liveness_bound_ticks(default) == (2 + 1 + 3) * (80 + 400) + 40
    assert liveness_bound_ticks(SynodSettings(acceptors=5)) > liveness_bound_ticks(default)
    assert liveness_bound_ticks(SynodSettings(delay_max_ticks=19)) > liveness_bound_ticks(default)


def test_after_the_heal_only_the_survivor_proposes() -> None:
    # A short, lossy fault phase, so that many runs reach the heal with nothing learned yet.
    settings = SynodSettings(proposers=3, drop=0.4, dup=0.1, crash=0.1, fault_ticks=40)
    acceptors = settings.config().acceptor_ids
    checked = 0
    for seed in range(60):
        result = run_synod(settings, seed, trace=True)
        assert result.violation is None
        assert result.heal_event is not None
        after = result.events[result.heal_event :]
        # The heal's proposal is the survivor's (none: everything was learned before it).
        survivor = next((e.entry.node for e in after if isinstance(e.entry, Propose)), None)
        if survivor is None:
            continue
        settled = 40 + settings.delay_max_ticks  # messages sent before the heal have landed
        senders = {
            event.entry.message.sender
            for event in after
            if event.time > settled
            and isinstance(event.entry, Deliver)
            and event.entry.to in acceptors
            and isinstance(event.entry.message, Prepare | Accept)
        }
        assert senders <= {survivor}
        checked += 1
    assert checked >= 5
