"""Single-decree Paxos in the simulator: the world, its fault schedule, and its checks.

A run (``run_synod(settings, seed)``): proposers compete from empty disks; a fault phase
drops, duplicates and delays messages, partitions and crashes actors; then the heal, with one
proposer left, after which every learner must learn within ``liveness_bound_ticks``.  Safety is
checked after every step, from ghost state the actors never see, with the *correct* majority;
at each message, the invariants safety rests on (Paxos Made Simple, 2.2-2.3: ballots and
promises only grow, one value per ballot, P2b, P2c).  With ``trace`` the run is recorded as
``sim.steps`` entries.  ``SynodSwarm`` draws a seed's deployment and fault mix (swarm testing).

More: docs/testing.md, 'A single-decree run' and 'Swarm testing'.
"""

from __future__ import annotations

import functools
import random
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import partial

from pypaxos.core.acceptor import AcceptorState
from pypaxos.core.bugs import SynodBug
from pypaxos.core.learner import LearnerState
from pypaxos.core.messages import (
    Accept,
    Accepted,
    Message,
    Nack,
    Prepare,
    Promise,
)
from pypaxos.core.proposer import Proposer, ProposerState
from pypaxos.core.quorum import Majority
from pypaxos.core.synod import SynodConfig
from pypaxos.core.types import Ballot, Value
from pypaxos.sim.checkers import Acceptance, safety_violations
from pypaxos.sim.faults import FaultInjector, FaultSettings
from pypaxos.sim.network import Network, NetworkSettings, Partition
from pypaxos.sim.simulator import Simulator
from pypaxos.sim.steps import (
    Crash,
    Deliver,
    Drop,
    Flush,
    Note,
    Propose,
    Restart,
    Step,
    Timed,
    Timer,
    render_timed,
)

# Fixed simulation parameters (the CLI exposes the ones worth varying).
PROPOSE_WINDOW_TICKS = 20  # each proposer first proposes at a random time in [0, this]
RANDOM_PARTITION_PROB = 0.1  # per fault step, under --partition random
FLUSH_DELAY_TICKS = (10, 100)  # an unsynced write reaches the disk this much later
FAULT_STEP_TICKS = 10  # crashes and partition changes happen on multiples of this
CRASH_ROLES = "PAL"  # proposers, acceptors, learners: the letters of --crash-roles
# The kinds of message whose sending can mark a crash point (--crash-points).
MESSAGE_KINDS = ("Prepare", "Promise", "Accept", "Accepted", "Nack", "Query", "Decided")


@dataclass(frozen=True)
class SynodSettings:
    """Everything that, with a seed, determines a run; ``cli_args()`` spells it for replay."""

    proposers: int = 2
    acceptors: int = 3
    learners: int = 2
    bugs: frozenset[SynodBug] = field(default_factory=frozenset)
    drop: float = 0.0
    dup: float = 0.0
    crash: float = 0.0  # chance per fault step (FAULT_STEP_TICKS) that a random actor crashes
    crash_after_handle: float = 0.0  # chance per handled message that its receiver crashes
    partition: str = ""  # "", "random", or groups of names: "A1,P1/A2,A3,P2,L1,L2"
    fault_ticks: int = 300
    delay_min_ticks: int = 1
    delay_max_ticks: int = 10
    downtime_min_ticks: int = 5  # a crashed actor restarts this long after its crash, at least
    downtime_max_ticks: int = 60
    crash_roles: str = "PAL"  # which roles may crash: P proposers, A acceptors, L learners
    crash_points: str = ""  # crash after handling only when it sent one of these kinds ("": any)

    def __post_init__(self) -> None:
        for low, high, what in (
            (self.delay_min_ticks, self.delay_max_ticks, "delay"),
            (self.downtime_min_ticks, self.downtime_max_ticks, "downtime"),
        ):
            if not 1 <= low <= high:
                raise ValueError(f"need 1 <= min {what} <= max {what}, got {low} and {high}")
        config = self.config()  # validates sizes and bug names
        unknown = set(self.crash_point_kinds()) - set(MESSAGE_KINDS)
        if unknown:
            raise ValueError(
                f"unknown crash point(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(MESSAGE_KINDS)}"
            )
        if not self.crash_roles or set(self.crash_roles) - set(CRASH_ROLES):
            raise ValueError(
                f"crash roles must be some of the letters {CRASH_ROLES}, got {self.crash_roles!r}"
            )
        self.network_settings()
        self.fault_settings()
        if self.fault_ticks < 0:
            raise ValueError("fault ticks must not be negative")
        timeout = config.timing.phase_timeout_ticks
        if 2 * self.delay_max_ticks >= timeout:
            raise ValueError(
                f"max delay {self.delay_max_ticks} is too long: a round trip must fit in the "
                f"proposer's phase timeout of {timeout} ticks, or no round ever succeeds"
            )

    def config(self) -> SynodConfig:
        return SynodConfig(self.proposers, self.acceptors, self.learners, self.bugs)

    def crash_point_kinds(self) -> tuple[str, ...]:
        """The message kinds of ``crash_points``; empty means any handled message."""
        return tuple(word.strip() for word in self.crash_points.split(",") if word.strip())

    def crashable(self) -> tuple[int, ...]:
        """The actors that may crash during the fault phase (``crash_roles``)."""
        config = self.config()
        by_role = {"P": config.proposer_ids, "A": config.acceptor_ids, "L": config.learner_ids}
        return tuple(n for n in config.all_ids if any(n in by_role[r] for r in self.crash_roles))

    def network_settings(self) -> NetworkSettings:
        return NetworkSettings(self.drop, self.dup, self.delay_min_ticks, self.delay_max_ticks)

    def fault_settings(self) -> FaultSettings:
        random_partition = self.partition == "random"
        fixed = None if random_partition else parse_partition(self.partition, self.config())
        return FaultSettings(
            crash_prob=self.crash,
            crash_after_handle_prob=self.crash_after_handle,
            fault_step_ticks=FAULT_STEP_TICKS,
            restart_min_ticks=self.downtime_min_ticks,
            restart_max_ticks=self.downtime_max_ticks,
            partition_prob=RANDOM_PARTITION_PROB if random_partition else 0.0,
            partition=fixed,
        )

    def cli_args(self) -> list[str]:
        """Command-line arguments that reproduce these settings exactly (floats via ``repr``)."""
        options: list[tuple[str, object]] = [
            ("--proposers", self.proposers),
            ("--acceptors", self.acceptors),
            ("--learners", self.learners),
            ("--drop", self.drop),
            ("--dup", self.dup),
            ("--crash", self.crash),
            ("--crash-after-handle", self.crash_after_handle),
            ("--fault-ticks", self.fault_ticks),
            ("--min-delay", self.delay_min_ticks),
            ("--max-delay", self.delay_max_ticks),
            ("--min-downtime", self.downtime_min_ticks),
            ("--max-downtime", self.downtime_max_ticks),
        ]
        if self.partition:
            options.append(("--partition", self.partition))
        if self.crash_roles != CRASH_ROLES:
            options.append(("--crash-roles", self.crash_roles))
        if self.crash_points:
            options.append(("--crash-points", self.crash_points))
        options.extend(("--bug", bug.value) for bug in sorted(self.bugs))
        return [word for option, value in options for word in (option, _cli_word(value))]

    def replay_command(self, seed: int) -> str:
        """The shell command that replays ``seed`` with these settings, trace and all."""
        return shlex.join(["pypaxos", "synod", *self.cli_args(), "--seed", str(seed)])


# The settings fields a swarm draw may set; a CLI flag that was given pins its field instead.
SWARM_FIELDS = frozenset(
    {
        "proposers",
        "acceptors",
        "learners",
        "drop",
        "dup",
        "crash",
        "crash_after_handle",
        "partition",
        "fault_ticks",
        "delay_min_ticks",
        "delay_max_ticks",
        "downtime_min_ticks",
        "downtime_max_ticks",
        "crash_roles",
        "crash_points",
    }
)


@dataclass(frozen=True, slots=True)
class SynodSwarm:
    """The ranges a seed draws its own fault mix from (swarm testing, Groce et al., ISSTA 2012).

    One fixed mix tests the same corner over and over; each seed instead switches every fault
    kind on or off on its own (off with ``off_prob``) and draws its level in the named range,
    as FoundationDB's simulation does, so that some seed hits the mix a bug needs (a quiet
    network but crashes right after a handled message, many duplicates but no loss...).
    """

    off_prob: float = 0.4  # each fault kind is absent from a run with this chance
    proposers_range: tuple[int, int] = (1, 7)
    acceptors_choices: tuple[int, ...] = (3, 5)
    learners_range: tuple[int, int] = (1, 3)
    drop_prob_max: float = 0.3
    dup_prob_max: float = 0.7
    crash_prob_max: float = 0.2  # per fault step
    crash_after_handle_prob_max: float = 0.15  # per handled message
    partition_random_prob: float = 0.3  # random splits come and go (else no partition)
    crash_roles_choices: tuple[str, ...] = ("PAL", "PAL", "PA", "P", "A")
    crash_points_any_prob: float = 0.5  # crash after any handled message; else after one kind
    fault_ticks_range: tuple[int, int] = (100, 600)
    delay_max_ticks_range: tuple[int, int] = (1, 19)  # 2 * max < the phase timeout of 40
    delay_spread_prob: float = 0.7  # delays span [1, max]; else a narrow band below the max
    downtime_min_ticks_range: tuple[int, int] = (1, 10)
    downtime_max_ticks_range: tuple[int, int] = (1, 80)  # raised to at least the min drawn

    def draw(
        self, rng: random.Random, base: SynodSettings, pinned: frozenset[str] = frozenset()
    ) -> SynodSettings:
        """``base`` with every field of ``SWARM_FIELDS`` not in ``pinned`` drawn from ``rng``.

        Every draw happens whether or not its field is pinned, so pinning one dimension
        leaves the others' draws for a seed unchanged.
        """
        if not pinned <= SWARM_FIELDS:
            raise ValueError(f"not drawn, so not pinnable: {sorted(pinned - SWARM_FIELDS)}")

        def level(high: float) -> float:
            on = rng.random() >= self.off_prob
            value = round(rng.uniform(0.0, high), 3)
            return value if on else 0.0

        def between(bounds: tuple[int, int]) -> int:
            return rng.randint(*bounds)

        drawn: dict[str, object] = {
            "proposers": between(self.proposers_range),
            "acceptors": rng.choice(self.acceptors_choices),
            "learners": between(self.learners_range),
            "drop": level(self.drop_prob_max),
            "dup": level(self.dup_prob_max),
            "crash": level(self.crash_prob_max),
            "crash_after_handle": level(self.crash_after_handle_prob_max),
            "partition": "random" if rng.random() < self.partition_random_prob else "",
            "fault_ticks": between(self.fault_ticks_range),
        }
        delay_max = between(self.delay_max_ticks_range)
        spread = rng.random() < self.delay_spread_prob
        drawn["delay_max_ticks"] = delay_max
        drawn["delay_min_ticks"] = 1 if spread else rng.randint(1, delay_max)
        drawn["crash_roles"] = rng.choice(self.crash_roles_choices)
        narrow = rng.random() >= self.crash_points_any_prob
        drawn["crash_points"] = rng.choice(MESSAGE_KINDS) if narrow else ""
        downtime_min = between(self.downtime_min_ticks_range)
        drawn["downtime_min_ticks"] = downtime_min
        drawn["downtime_max_ticks"] = max(downtime_min, between(self.downtime_max_ticks_range))
        if base.partition not in ("", "random") and "partition" in pinned:
            pinned |= {"proposers", "acceptors", "learners"}  # the groups name the actors
        chosen = {name: value for name, value in drawn.items() if name not in pinned}
        return replace(base, **chosen)  # type: ignore[arg-type]


SWARM = SynodSwarm()


def swarm_rng(seed: int) -> random.Random:
    """The Random a seed's fault mix is drawn from: its own stream, apart from the run's, so
    that the drawn settings spelled out on a command line replay the run exactly."""
    return random.Random(f"synod swarm {seed}")


def swarm_settings(
    base: SynodSettings, seed: int, pinned: frozenset[str] = frozenset()
) -> SynodSettings:
    """The settings seed ``seed`` runs with under swarm testing (see ``SynodSwarm``)."""
    return SWARM.draw(swarm_rng(seed), base, pinned)


def _cli_word(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)  # repr: exact float


def parse_partition(spec: str, config: SynodConfig) -> Partition | None:
    """``"A1,P1/A2,A3"`` -> groups of ids; actors left out form one more group together."""
    if not spec:
        return None
    ids = {config.name(node).lower(): node for node in config.all_ids}
    groups: list[frozenset[int]] = []
    seen: set[int] = set()
    for part in spec.split("/"):
        group: set[int] = set()
        for raw in part.split(","):
            word = raw.strip().lower()
            if word not in ids:
                known = ", ".join(config.name(n) for n in config.all_ids)
                raise ValueError(f"unknown actor {raw.strip()!r} in partition (known: {known})")
            if ids[word] in seen:
                raise ValueError(f"actor {raw.strip()} is in two partition groups")
            seen.add(ids[word])
            group.add(ids[word])
        groups.append(frozenset(group))
    rest = frozenset(config.all_ids) - seen
    if rest:
        groups.append(rest)
    if len(groups) < 2:
        raise ValueError("a partition needs at least two groups")
    return tuple(groups)


def liveness_bound_ticks(settings: SynodSettings) -> int:
    """How long after the heal every learner must have learned the chosen value.

    With ``D`` the max message delay, ``T`` the phase timeout, ``Bmin``/``Bcap`` the backoff
    range and ``A`` the number of acceptors (requires ``2D < T``):

    * a proposer round ends, by success, Nack or timeout, within ``2T`` of its start, and the
      next one starts at most ``max(Bmin, Bcap)`` later: one failed round costs at most
      ``R = 2T + max(Bmin, Bcap)``;
    * messages sent before the heal are all delivered by ``heal + D``; rounds that start
      before then may be spoiled by them, and at most ``D // Bmin + 1`` start in that window
      (each failed round includes a backoff of at least ``Bmin``);
    * afterwards only the survivor proposes, every acceptor is up and nothing is lost, so a
      round fails only on a Nack from an acceptor that promised a higher ballot, and the next
      ballot exceeds that promise: at most ``A`` such failures;
    * a successful round takes four message delays from Prepare to the learners' Accepted.

    Bound: ``(D // Bmin + 1 + A) * R + 4D``.
    """
    timing = settings.config().timing
    delay = settings.delay_max_ticks
    backoff_min = max(1, timing.backoff_min_ticks)
    round_ticks = 2 * timing.phase_timeout_ticks + max(backoff_min, timing.backoff_cap_ticks)
    failed_rounds = delay // backoff_min + 1 + settings.acceptors
    return failed_rounds * round_ticks + 4 * delay


def _proposal(ballot: Ballot, value: Value | None) -> str:
    return "⊥" if value is None else f"{value}@{ballot}"


def describe_state(state: object | None) -> str:
    """What a restarted actor found on its disk."""
    match state:
        case None:
            return "empty"
        case AcceptorState():
            accepted = _proposal(state.accepted_ballot, state.accepted_value)
            return f"promised={state.promised} accepted={accepted}"
        case ProposerState():
            return f"last ballot={state.last_ballot}"
        case LearnerState():
            return f"decided={'⊥' if state.decided is None else state.decided}"
        case _:
            return repr(state)


@dataclass(frozen=True)
class Violation:
    kind: str  # "safety" or "liveness"
    seed: int
    step: int
    time: int
    message: str

    def __str__(self) -> str:
        return (
            f"{self.kind} violation at step {self.step} (t={self.time}), "
            f"seed {self.seed}: {self.message}"
        )


@dataclass(frozen=True)
class SynodResult:
    seed: int
    settings: SynodSettings
    violation: Violation | None
    chosen: Value | None
    learned: tuple[tuple[str, Value, int], ...]  # (learner name, value, time) by learner id
    heal_time: int
    deadline: int
    end_time: int
    steps: int
    crashes: int
    events: tuple[Timed, ...]  # the run's steps and notes (empty unless traced)
    heal_event: int | None  # the index in ``events`` of the heal's note (if traced and healed)
    violation_event: int | None  # the index in ``events`` of the violation's note (if traced)

    @property
    def trace(self) -> tuple[str, ...]:
        """The printed trace: one line per entry of ``events`` (``steps.render_timed``)."""
        config = self.settings.config()
        return tuple(render_timed(event, config) for event in self.events)

    def outcome_line(self) -> str:
        """The last line of a report: the violation, or the chosen value and who learned it."""
        if self.violation is not None:
            return f"VIOLATION: {self.violation}"
        if not self.learned:
            return f"chosen: {self.chosen} (no learners)"
        names = ", ".join(name for name, _, _ in self.learned)
        last = max(time for _, _, time in self.learned)
        return f"chosen: {self.chosen} (learned by {names} at t={last})"

    def report_lines(self) -> list[str]:
        """The full printed report: settings and seed first (habit 8), trace, outcome."""
        header = [
            f"# {self.settings.replay_command(self.seed)}",
            f"# heal at t={self.heal_time}; liveness bound: chosen and learned by every "
            f"learner by t={self.deadline}",
        ]
        return [*header, *self.trace, self.outcome_line()]


@dataclass(frozen=True)
class _Plan:
    """What a run derives from its settings alone, computed once per settings (seed sweeps)."""

    config: SynodConfig
    network: NetworkSettings
    faults: FaultSettings
    quorum: Majority
    names: dict[int, str]
    bound_ticks: int
    acceptors: frozenset[int]
    proposers: frozenset[int]
    crashable: tuple[int, ...]
    crash_kinds: frozenset[str]


@functools.lru_cache(maxsize=64)
def _plan(settings: SynodSettings) -> _Plan:
    config = settings.config()
    return _Plan(
        config=config,
        network=settings.network_settings(),
        faults=settings.fault_settings(),
        quorum=config.true_quorum(),
        names={node: config.name(node) for node in config.all_ids},
        bound_ticks=liveness_bound_ticks(settings),
        acceptors=frozenset(config.acceptor_ids),
        proposers=frozenset(config.proposer_ids),
        crashable=settings.crashable(),
        crash_kinds=frozenset(settings.crash_point_kinds()),
    )


class SynodWorld(Simulator[Message]):
    """A ``Simulator`` of one single-decree instance, with its ghost state and checks."""

    def __init__(self, settings: SynodSettings, seed: int, trace: bool = False) -> None:
        plan = _plan(settings)
        config = plan.config
        rng = random.Random(seed)
        super().__init__(
            config.all_ids,
            config.build,
            rng,
            Network(rng, plan.network),
            flush_delay_ticks=FLUSH_DELAY_TICKS,
            name=plan.names.__getitem__,
            describe_state=describe_state,
            trace=trace,
        )
        self.settings = settings
        self.seed = seed
        self.config = config
        self.faults = FaultInjector(
            self, plan.faults, plan.crashable, self._crash_point if plan.crash_kinds else None
        )
        self.quorum = plan.quorum
        self.names = plan.names
        self.heal_time = settings.fault_ticks
        self.deadline = self.heal_time + plan.bound_ticks
        self.healed = False
        self.violation: Violation | None = None  # the one that stopped the run
        self.invariant: Violation | None = None  # the first broken invariant (see _violate)
        self.events: list[Timed] = []  # the trace, when tracing (see the module docstring)
        self._heal_event: int | None = None
        self._violation_event: int | None = None
        # Ghost state, never seen by the actors.
        self.acceptances: list[Acceptance] = []
        self._acceptance_set: set[Acceptance] = set()
        self.proposed: list[Value] = []
        self.decisions: dict[int, Value] = {}  # each learner's first decision
        self.learned_at: dict[int, int] = {}
        self.chosen: list[Value] = []  # kept equal to checkers.chosen_values(acceptances)
        self._voters: dict[tuple[Ballot, Value], set[int]] = {}
        self._proposals: dict[Ballot, Value] = {}  # the value each ballot's Accept carried
        self._chosen_ballots: list[tuple[Ballot, Value]] = []  # every (ballot, value) chosen
        self._last_prepare: dict[int, tuple[Ballot, int]] = {}  # latest Prepare, and life
        self._lives: dict[int, int] = {}  # restarts per actor
        self._promised: dict[int, Ballot] = {}  # each acceptor's highest promise announced
        self._crash_kinds = plan.crash_kinds
        self._sent_kinds: set[str] = set()  # kinds sent during step ``_sent_step``
        self._sent_step = -1
        self._dirty = False
        self._acceptors = plan.acceptors
        self._proposers = plan.proposers

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> SynodResult:
        self.start()
        for node in self.config.proposer_ids:
            delay = int(self.rng.random() * (PROPOSE_WINDOW_TICKS + 1))
            self.at(delay, partial(self._first_proposal, node))
        self.faults.begin()
        self.at(self.heal_time, self._heal)
        step = self.step
        while self.violation is None and not self.healed:
            step()  # the heal is scheduled, so there is always a next event until then
        while self.violation is None and not self._complete():
            when = self.next_time()
            if when is None or when > self.deadline:
                self.now = self.deadline
                self._violate("liveness", self._liveness_message())
                break
            step()
        return self._result()

    def _complete(self) -> bool:
        return bool(self.chosen) and len(self.decisions) == self.config.learners

    def _liveness_message(self) -> str:
        missing = [self.names[n] for n in self.config.learner_ids if n not in self.decisions]
        what = f"not learned by {', '.join(missing)}" if self.chosen else "no value chosen"
        return (
            f"{what} by t={self.deadline} "
            f"(heal at t={self.heal_time} + bound {self.deadline - self.heal_time} ticks)"
        )

    def _first_proposal(self, node: int) -> None:
        if self.is_up(node) and not self.healed:
            self._propose(node)

    def _propose(self, node: int) -> None:
        value = self.config.proposal_for(node)
        if value not in self.proposed:
            self.proposed.append(value)
            self._dirty = True
        if self.trace is not None:
            self._record(Propose(node, value))
        self.apply(node, self._proposer(node).propose(value))

    def _proposer(self, node: int) -> Proposer:
        proposer = self.actor(node)
        assert isinstance(proposer, Proposer)
        return proposer

    def _heal(self) -> None:
        self.healed = True
        if self.trace is not None:
            self._heal_event = len(self.events)
        if self._complete():
            self.log(f"HEAL: {self.chosen[0]} is chosen and every learner learned it already")
            return
        proposers = self.config.proposer_ids
        survivor = proposers[int(self.rng.random() * len(proposers))]
        self.log(
            f"HEAL: no more faults or losses, every actor up, {self.names[survivor]} proposes "
            f"alone; every learner must learn by t={self.deadline}"
        )
        self.faults.heal()
        for node in proposers:
            if node != survivor:
                self.log(f"{self.names[node]} stops proposing")
                self.apply(node, self._proposer(node).stop())
        self._propose(survivor)

    # -- hooks: ghost state and checks -------------------------------------------------------

    def on_send(self, src: int, dst: int, msg: Message) -> None:
        if self._crash_kinds:
            if self._sent_step != self.steps:
                self._sent_step = self.steps
                self._sent_kinds.clear()
            self._sent_kinds.add(type(msg).__name__)
        if type(msg) is not Accepted:
            self._check_ballots(src, msg)
            return
        if src in self._acceptors:
            acceptance = (src, msg.ballot, msg.value)
            if acceptance in self._acceptance_set:
                return
            self._acceptance_set.add(acceptance)
            self.acceptances.append(acceptance)
            # Incremental: only an acceptance that completes a quorum changes what is chosen.
            voters = self._voters.setdefault((msg.ballot, msg.value), set())
            was_chosen = self.quorum.is_phase2_quorum(voters)
            voters.add(src)
            if not was_chosen and self.quorum.is_phase2_quorum(voters):
                self._chosen_in(msg.ballot, msg.value)

    def _chosen_in(self, ballot: Ballot, value: Value) -> None:
        """``value`` was just chosen in ``ballot``: no higher proposal may carry another value
        (P2b, Paxos Made Simple section 2.2), whether or not it is ever accepted."""
        if value not in self.chosen:
            self.chosen = sorted([*self.chosen, value])
            self._dirty = True
        self._chosen_ballots.append((ballot, value))
        for later, other in self._proposals.items():
            if later > ballot and other != value:
                self._p2b_violation(ballot, value, later, other)
                return

    def _check_ballots(self, src: int, msg: Message) -> None:
        """Ballots only grow, across restarts too: what stable storage is for (Paxos Made
        Simple, section 2.3).  A proposer never reuses a ballot, an acceptor never promises
        below a promise it made, and one ballot never carries two values (section 2.2)."""
        match msg:
            case Prepare():
                life = self._lives.get(src, 0)
                last = self._last_prepare.get(src)
                # One round sends its Prepare to every acceptor; a new round needs a new ballot.
                if last is not None and (msg.ballot, life) != last and msg.ballot <= last[0]:
                    self._violate(
                        "invariant",
                        f"{self.names[src]} prepares ballot {msg.ballot} after {last[0]}: "
                        "a proposer's ballots must only grow",
                    )
                self._last_prepare[src] = (msg.ballot, life)
            case Accept():
                if msg.ballot not in self._proposals:
                    self._check_p2c(src, msg)
                for ballot, value in self._chosen_ballots:
                    if msg.ballot > ballot and msg.value != value:
                        self._p2b_violation(ballot, value, msg.ballot, msg.value)
                first = self._proposals.setdefault(msg.ballot, msg.value)
                if first != msg.value:
                    self._violate(
                        "invariant",
                        f"two proposals with ballot {msg.ballot}: {first} and {msg.value} "
                        f"(the second from {self.names[src]})",
                    )
            case Promise() | Nack():
                fresh = type(msg) is Promise  # a Promise raises the promise, a Nack repeats it
                promised = msg.ballot if isinstance(msg, Promise) else msg.promised
                floor = self._promised.get(src)
                if floor is not None and (promised <= floor if fresh else promised < floor):
                    self._violate(
                        "invariant",
                        f"{self.names[src]} promised {floor}, then answers as promised "
                        f"{promised}: an acceptor's promise must only grow",
                    )
                if floor is None or promised > floor:
                    self._promised[src] = promised
            case _:
                pass

    def _check_p2c(self, src: int, msg: Accept) -> None:
        """P2c (Paxos Made Simple, section 2.2): a proposal's value is the value of the
        highest-ballot proposal accepted by the quorum that promised it, if any accepted one.
        Read from the proposer's own quorum of promises, the one it just acted on."""
        reports = [p for p in self._proposer(src).promises.values() if p.accepted_value is not None]
        if not reports:
            return
        top = max(p.accepted_ballot for p in reports)
        allowed = {p.accepted_value for p in reports if p.accepted_ballot == top}
        if msg.value not in allowed:
            self._violate(
                "invariant",
                f"{self.names[src]} proposes {msg.value} in ballot {msg.ballot}, but its quorum "
                f"of promises reports {' or '.join(sorted(map(str, allowed)))} accepted in "
                f"{top}, the highest ballot (P2c)",
            )

    def _p2b_violation(self, ballot: Ballot, value: Value, later: Ballot, other: Value) -> None:
        self._violate(
            "invariant",
            f"{value} was chosen in ballot {ballot}, yet the higher ballot {later} proposes "
            f"{other}",
        )

    def on_decide(self, node: int, value: object) -> None:
        super().on_decide(node, value)
        assert isinstance(value, str)
        earlier = self.decisions.get(node)
        if earlier is None:
            self.decisions[node] = value
            self.learned_at[node] = self.now
            self._dirty = True
        elif earlier != value:
            self._violate(
                "safety", f"learner {self.names[node]} changed its mind: {earlier} then {value}"
            )

    def _crash_point(self, node: int) -> bool:
        """Whether ``node``'s handling in this step sent a kind of ``crash_points``."""
        return self._sent_step == self.steps and not self._sent_kinds.isdisjoint(self._crash_kinds)

    def after_restart(self, node: int) -> None:
        self._lives[node] = self._lives.get(node, 0) + 1
        if not self.healed and node in self._proposers:
            self._propose(node)  # a restarted proposer proposes again

    def after_step(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        problems = safety_violations(
            self.acceptances, self.quorum, self.proposed, self.decisions, self.names
        )
        if problems:
            self._violate("safety", "; ".join(problems))

    # -- the trace: typed steps and notes (only called when tracing) --------------------------
    # The simulator's hooks and ``log`` are overridden, so its list of text lines stays empty:
    # this world's trace is ``events``.

    def _record(self, step: Step) -> None:
        self.events.append(Timed(self.now, step))

    def log(self, text: str) -> None:
        if self.trace is not None:
            self.events.append(Timed(self.now, Note(text)))

    def trace_delivery(self, src: int, dst: int, msg: Message, duplicate: bool) -> None:
        self._record(Deliver(dst, msg))
        if not self.is_up(dst):
            self.log(f"{self.names[dst]} is down: the message is lost")

    def trace_loss(self, src: int, dst: int, msg: Message, reason: str) -> None:
        self._record(Drop(dst, msg))  # the PARTITION notes tell a cut from a random loss

    def trace_crash(self, node: int, lost_unsynced: bool) -> None:
        self._record(Crash(node, lost_unsynced))

    def trace_restart(self, node: int, durable: object | None) -> None:
        self._record(Restart(node))
        self.log(f"{self.names[node]} found on its disk: {describe_state(durable)}")

    def trace_flush(self, node: int) -> None:
        self._record(Flush(node))

    def trace_timer(self, node: int, name: str) -> None:
        self._record(Timer(node, name))

    def _violate(self, kind: str, message: str) -> None:
        if kind == "invariant":
            # Noted, and the run goes on: whether agreement breaks too is worth knowing, and
            # the explorer replays a run up to its safety violation with the shared checks.
            if self.invariant is None:
                self.invariant = Violation(kind, self.seed, self.steps, self.now, message)
            return
        if self.violation is None:
            self.violation = Violation(kind, self.seed, self.steps, self.now, message)
            if self.trace is not None:
                self._violation_event = len(self.events)
                self.log(f"VIOLATION ({kind}): {message}")

    def _verdict(self) -> Violation | None:
        """The safety violation if any, else the first broken invariant, else liveness's."""
        if self.violation is not None and self.violation.kind == "safety":
            return self.violation
        return self.invariant or self.violation

    def _result(self) -> SynodResult:
        learned = tuple(
            (self.names[n], self.decisions[n], self.learned_at[n])
            for n in self.config.learner_ids
            if n in self.decisions
        )
        return SynodResult(
            seed=self.seed,
            settings=self.settings,
            violation=self._verdict(),
            chosen=self.chosen[0] if len(self.chosen) == 1 else None,
            learned=learned,
            heal_time=self.heal_time,
            deadline=self.deadline,
            end_time=self.now,
            steps=self.steps,
            crashes=self.faults.crashes,
            events=tuple(self.events),
            heal_event=self._heal_event,
            violation_event=self._violation_event,
        )


def run_synod(settings: SynodSettings, seed: int, trace: bool = False) -> SynodResult:
    """Run one seed; with ``trace`` the result carries one line per event."""
    return SynodWorld(settings, seed, trace).run()


def first_violation(settings: SynodSettings, seeds: Iterable[int]) -> SynodResult | None:
    """The result of the first seed whose run violates an invariant, if any."""
    for seed in seeds:
        result = run_synod(settings, seed)
        if result.violation is not None:
            return result
    return None
