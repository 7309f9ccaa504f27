"""The simulated KV service: Multi-Paxos nodes, KV clients, faults, a heal, and four checks.

A run (``run_kv(settings, seed)``) goes like this:

1. ``settings.nodes`` ``NodeActor`` s (a ``multi.Node`` over a ``kv.KVStateMachine``, ticked
   every virtual tick) and ``settings.clients`` ``Client`` actors start on one ``Simulator``
   with a lossy, duplicating, reordering network and an append-only ``RecordLogDisk``.  The
   clients share ``settings.ops`` random operations over ``settings.keys`` keys.
2. Fault phase: the ``Nemesis`` (``kv_faults``) crashes nodes (the leader too, mid-batch),
   partitions the network and isolates the leader for long stretches.
3. Heal, once ``FAULT_FRACTION`` of the operations have been invoked: no more faults or loss,
   every node up.  The cluster must serve again: some operation invoked after the heal must
   complete ``ok`` within ``liveness_bound_ticks`` (derived on that function).
4. When every client is done, a reader reads every key once (``process "final"``) so that every
   acknowledged write is either visible or provably overwritten; then the run waits for every
   node to apply the same prefix.

Checked on every run (``KVResult.violations``):

* **replicas agree**: every ``Applied(slot, value)`` of any node, in any lifetime, equals the
  first one seen for that slot (so the common prefix of any two nodes' applied sequences is
  equal), and after the heal every node reaches the same applied index with byte-identical
  state-machine snapshots;
* **no acknowledged command lost**: every request a node answered is in some applied slot;
* **linearizable**: the clients' history, final reads included, passes ``check_history``
  (together with the final reads this also proves no acknowledged write was lost);
* **serves again**: the liveness bound above, and the whole run finishing by ``deadline``;
* any assertion a node makes inline (one value per slot, ballots only grow) is a violation too.

One ``random.Random(seed)`` drives everything, so a seed replays byte for byte (history and
trace); ``KVSettings.replay_command`` prints the command that does it.  Under
``KVSettings.swarm`` (the default of ``pypaxos sim kv``) a seed first draws its own cluster size
and fault mix (``KVSwarm``, swarm testing) from a second Random seeded by the seed alone, so
the replay command needs only the seed and what the command line pinned.

Under ``KVSettings.collections`` (drawn for half the seeds) half the operations are on Redis
hashes, lists, sets and sorted sets on keys of their own (``sim.kv_collections``); those keys'
history is checked against the reference model ``lincheck.redis_model`` (by
``lincheck.model_check``), the string keys' by ``lincheck.wgl`` as before; with
``KVSettings.scripts`` a few fixed Lua scripts among them (``sim.kv_scripts``).  Under
``KVSettings.publish`` clients also ``PUBLISH`` through the log, and every replica's
publications are checked for agreement and exactly-once (``sim.kv_publish``).  Both are drawn
from a Random of their own after every older draw, so a seed's other draws stay what they were.

Reads go through the log, or under ``KVSettings.reads = "read-index"`` (drawn per seed by the
swarm) take the leader's read-index path (``multi.reads``): no log entry, so the linearizability
check is what judges them, and ``KVResult.read_index_reads`` counts the ones answered that way
(a run that claims the path but never used it would prove nothing).  With ``follower_reads``
too, followers answer reads after asking the leader for a read index, clients send each read
to a random node first, and ``KVResult.follower_reads`` counts the reads followers answered.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial

from pypaxos.core.bugs import require_family
from pypaxos.core.effects import Send
from pypaxos.core.types import Ballot
from pypaxos.kv import (
    Get,
    KvBug,
    KVStateMachine,
    RequestBatch,
    decode_answer,
    decode_entry,
)
from pypaxos.lincheck.model_check import ModelResult
from pypaxos.lincheck.model_check import check_history as check_model_history
from pypaxos.lincheck.model_check import history_from_events as model_history_from_events
from pypaxos.lincheck.wgl import (
    LinResult,
    check_history,
    explain_failure,
    history_from_events,
)
from pypaxos.multi import (
    AcceptRecord,
    Applied,
    Batch,
    LogBug,
    MultiConfig,
    Redirect,
    Reply,
    Role,
    SnapshotRecord,
    TakeSnapshot,
    capture,
)
from pypaxos.multi.membership import Change, MembershipRefused
from pypaxos.sim.kv_client import (
    READ_SEQ_FLAG,
    Client,
    ClientBusy,
    ClientRedirect,
    ClientReply,
    ClientRequest,
    ClientSettings,
    History,
    OpBudget,
    Operation,
    is_read_request,
    request_id,
    split_request_id,
)
from pypaxos.sim.kv_collections import (
    COLLECTION_KEYS,
    collection_draw,
    final_operation,
    home_families,
)
from pypaxos.sim.kv_faults import NO_FAULTS, Nemesis, NemesisSettings, StragglerNetwork
from pypaxos.sim.kv_node import LeaderStats, MachineFactory, NodeActor, RecordLogDisk
from pypaxos.sim.kv_publish import Recording, draw_publish, publication_violations
from pypaxos.sim.kv_reconfig import SPARES, Reconfigurer
from pypaxos.sim.kv_scripts import script_command
from pypaxos.sim.network import NetworkSettings
from pypaxos.sim.replica_world import CLIENT_ID_BASE, ReplicaWorld
from pypaxos.sim.simulator import Simulator, _Delivery

FAULT_FRACTION = 0.75  # heal once this share of the operations has been invoked
LINCHECK_TIMEOUT_S = 10.0
SNAPSHOT_SAVE_TICKS = (2, 12)  # a snapshot written out of line takes this long (uniform)
SNAPSHOT_CHUNK_BYTES = 96  # small chunks, so a transfer takes several messages and a window
LOOSE_SNAPSHOT_EVERY_SLOTS = 24  # under log_memory_bytes_max (log_window_slots 32 >= 4 + 24)
CONVERGE_TICKS = 200  # after the final reads, every node must apply the same prefix this fast


@dataclass(frozen=True)
class KVSettings:
    """Everything that, with a seed, determines a run; ``replay_command`` spells it."""

    nodes: int = 3
    clients: int = 5
    ops: int = 200
    keys: int = 3
    bugs: frozenset[LogBug | KvBug] = field(default_factory=frozenset)
    faults: bool = True
    drop: float = 0.05
    dup: float = 0.05
    delay_min_ticks: int = 1
    delay_max_ticks: int = 4
    tick_interval_ticks: int = 2  # virtual ticks between two Node.tick() calls
    thrifty: bool = True  # MultiConfig.thrifty, as the runtime runs it
    pre_vote: bool = True  # MultiConfig.pre_vote, as the runtime runs it
    reads: str = "log"  # "log": reads are log commands; "read-index": ``Node.read``; "lease":
    # ``Node.read`` with leader leases (``multi.lease``), the nodes' tick rates drifting apart
    follower_reads: bool = False  # MultiConfig.follower_reads (with reads = "read-index")
    client: ClientSettings = field(default_factory=ClientSettings)
    nemesis: NemesisSettings = field(default_factory=NemesisSettings)
    # Membership changes during the faults (``sim.kv_reconfig``): SPARES more nodes, and the
    # leader asked for a change every ``reconfig_every_ticks``.
    reconfig: bool = False
    reconfig_every_ticks: int = 40
    # The collection workload (``sim.kv_collections``): half the operations are on hashes,
    # lists, sets and sorted sets, checked against ``lincheck.redis_model``.
    collections: bool = False
    # Fixed Lua scripts among the collection operations (``sim.kv_scripts``; needs collections).
    scripts: bool = False
    # MultiConfig.apply_max_commands: runs of decided slots applied over several inputs (the
    # runtime's bound; 0: every ready slot at once, as the pinned seeds were measured)
    apply_max_commands: int = 0
    # MultiConfig.log_memory_bytes_max (0: off): the in-memory log bounded apart from the
    # snapshot interval; with it, snapshots come every LOOSE_SNAPSHOT_EVERY_SLOTS slots rather
    # than 8, so applied values go from memory far above the durable snapshot and catch-ups
    # ask for fresh snapshots.
    log_memory_bytes_max: int = 0
    # MultiConfig.thrifty_reads: a read's confirmation round to a quorum's worth of peers only
    # (not drawn: off in every seed unless a run asks for it)
    thrifty_reads: bool = False
    # Clients also PUBLISH to two channels; every replica records its publications, checked
    # for agreement and exactly-once (``sim.kv_publish``).
    publish: bool = False
    swarm: bool = False  # each seed draws its own mix (``KVSwarm``), but for ``pinned`` fields
    pinned: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.clients < 1 or self.ops < 1 or self.keys < 1:
            raise ValueError("nodes, clients, ops and keys must all be at least 1")
        require_family(self.bugs, (LogBug, KvBug))
        if self.reads not in READ_PATHS:
            raise ValueError(f"reads must be one of {', '.join(READ_PATHS)}, not {self.reads!r}")
        self.network_settings()
        unknown = sorted(self.pinned - KV_SWARM_FIELDS)
        if unknown:
            raise ValueError(f"only drawn settings can be pinned, not {', '.join(unknown)}")

    def for_seed(self, seed: int) -> KVSettings:
        """The settings seed ``seed`` runs with: these, or under ``swarm`` the seed's draw."""
        if not self.swarm:
            return self
        drawn = KV_SWARM.draw(random.Random(f"kv swarm {seed}"), self)
        return replace(drawn, swarm=False, pinned=frozenset())

    def config(self) -> MultiConfig:
        """Small windows and frequent snapshots, so short runs exercise catch-up and compaction."""
        return MultiConfig(
            node_ids=tuple(range(1, self.nodes + 1)),
            window_slots=4,
            snapshot_every_slots=LOOSE_SNAPSHOT_EVERY_SLOTS if self.log_memory_bytes_max else 8,
            log_window_slots=32,
            log_memory_bytes_max=self.log_memory_bytes_max,
            catch_up_max_slots=8,
            snapshot_window_chunks=2,
            snapshot_chunk_bytes_max=SNAPSHOT_CHUNK_BYTES,
            thrifty=self.thrifty,
            pre_vote=self.pre_vote,
            follower_reads=self.follower_reads,
            lease_ticks=LEASE_TICKS if self.reads == "lease" else 0,
            step_down_ticks=LEASE_STEP_DOWN_TICKS if self.reads == "lease" else 20,
            clock_drift_ppm=DRIFT_PPM if self.reads == "lease" else 0,
            reconfigurable=self.reconfig,
            promote_lag_max_slots=8,
            apply_max_commands=self.apply_max_commands,
            thrifty_reads=self.thrifty_reads,
            bugs=frozenset(b for b in self.bugs if isinstance(b, LogBug)),
        )

    def kv_bugs(self) -> frozenset[KvBug]:
        """The planted bugs that live in the state machine rather than in the log."""
        return frozenset(b for b in self.bugs if isinstance(b, KvBug))

    def network_settings(self) -> NetworkSettings:
        return NetworkSettings(self.drop, self.dup, self.delay_min_ticks, self.delay_max_ticks)

    def nemesis_settings(self) -> NemesisSettings:
        return self.nemesis if self.faults else NO_FAULTS

    def replay_command(self, seed: int) -> str:
        """The command line that replays ``seed`` (settings the CLI cannot set are named).

        Under ``swarm`` the seed draws its mix again, so only pinned settings are spelled out.
        """
        words = ["pypaxos sim kv"]
        if not self.swarm or "nodes" in self.pinned:
            words.append(f"--nodes {self.nodes}")
        words += [f"--clients {self.clients}", f"--ops {self.ops}"]
        for name, option in _KV_OPTIONS:
            if self.swarm and name in self.pinned:
                words.append(f"{option} {getattr(self, name)!r}")
        if self.swarm and "reads" in self.pinned:
            words.append(f"--reads {self.reads}")
        if self.swarm and "follower_reads" in self.pinned:
            words.append("--follower-reads" if self.follower_reads else "--no-follower-reads")
        if self.swarm and "collections" in self.pinned:
            words.append("--collections" if self.collections else "--no-collections")
        for name in ("scripts", "publish"):
            if self.swarm and name in self.pinned:
                words.append(f"--{name}" if getattr(self, name) else f"--no-{name}")
        words += ["--seeds 1", f"--start {seed}"]
        if self.apply_max_commands:
            words.append(f"--apply-max-commands {self.apply_max_commands}")
        if self.log_memory_bytes_max:
            words.append(f"--log-memory-bytes-max {self.log_memory_bytes_max}")
        if self.thrifty_reads:
            words.append("--thrifty-reads")
        words += [f"--bug {bug.value}" for bug in sorted(self.bugs)]
        if not self.swarm:
            words.append("--no-swarm")
            if self.reads != "log":
                words.append(f"--reads {self.reads}")
            if self.follower_reads:
                words.append("--follower-reads")
            if self.collections:
                words.append("--collections")
            words += [f"--{name}" for name in ("scripts", "publish") if getattr(self, name)]
        if not self.thrifty and (not self.swarm or "thrifty" in self.pinned):
            words.append("--no-thrifty")
        if self.swarm and "thrifty" in self.pinned and self.thrifty:
            words.append("--thrifty")
        if not self.pre_vote and (not self.swarm or "pre_vote" in self.pinned):
            words.append("--no-pre-vote")
        if self.swarm and "pre_vote" in self.pinned and self.pre_vote:
            words.append("--pre-vote")
        cli = replace(
            KVSettings(self.nodes, self.clients, self.ops, bugs=self.bugs, thrifty=self.thrifty),
            pre_vote=self.pre_vote,
            **{name: getattr(self, name) for name, _ in _KV_OPTIONS},
            reads=self.reads,
            follower_reads=self.follower_reads,
            collections=self.collections,
            scripts=self.scripts,
            publish=self.publish,
            apply_max_commands=self.apply_max_commands,
            log_memory_bytes_max=self.log_memory_bytes_max,
            thrifty_reads=self.thrifty_reads,
            swarm=self.swarm,
            pinned=self.pinned,
        )
        if cli != self:
            words.append(f"  # with the non-CLI settings of {self!r}")
        return " ".join(words)


# Drawn settings the command line can pin, with their options (besides --nodes, --[no-]thrifty).
_KV_OPTIONS = (("drop", "--drop"), ("dup", "--dup"), ("delay_max_ticks", "--max-delay"))
KV_SWARM_FIELDS = frozenset(
    {
        "nodes",
        "thrifty",
        "drop",
        "dup",
        "delay_max_ticks",
        "nemesis",
        "reads",
        "follower_reads",
        "reconfig",
        "reconfig_every_ticks",
        "collections",
        "pre_vote",
        "scripts",
        "publish",
    }
)
READ_PATHS = ("log", "read-index", "lease")
LEASE_TICKS = 120  # with reads = "lease": serves longer than the shortest election timeout, so a
# follower's timer fires inside a lease and the promise not to vote is what holds it back; and
# the leader steps down only after it (a deposed leader's lease, not its step-down, must end its
# reads: else a lease that runs too long would hide behind the step-down)
LEASE_STEP_DOWN_TICKS = 130
DRIFT_PPM = 1_000_000  # the stated bound, exaggerated: a node's ticks up to twice another's rate


@dataclass(frozen=True, slots=True)
class KVSwarm:
    """The ranges a KV seed draws its own fault mix from (swarm testing, Groce et al., 2012).

    Every nemesis fault kind, loss, duplication and stragglers are each switched off for a
    run with ``off_prob``, else drawn up to their named maximum; the cluster size, the fault
    step, the downtimes, the message delay and thrifty Accepts are drawn too.  A seed thus
    meets mixes no single tuned setting gives (a long quiet stretch with one isolation, crashes
    without partitions...).  Probabilities are per nemesis step unless named per message.
    """

    off_prob: float = 0.4
    nodes_choices: tuple[int, ...] = (3, 3, 5)
    thrifty_prob: float = 0.7
    drop_prob_max: float = 0.15  # per message
    dup_prob_max: float = 0.3  # per message
    delay_max_ticks_range: tuple[int, int] = (1, 8)
    step_ticks_range: tuple[int, int] = (8, 30)
    crash_prob_max: float = 0.15
    leader_crash_prob_max: float = 0.12
    promise_crash_prob_max: float = 0.1
    partition_prob_max: float = 0.12
    isolate_leader_prob_max: float = 0.06
    blip_leader_prob_max: float = 0.08
    straggle_prob_max: float = 0.03  # per message copy
    restart_max_ticks_range: tuple[int, int] = (5, 80)  # downtime is drawn in [5, this]
    read_index_prob: float = 0.5  # reads take the read-index path (drawn last: older draws hold)
    stall_leader_prob_max: float = 0.15
    follower_reads_prob: float = 0.5  # of the read-index seeds
    lease_prob: float = 0.5  # of the read-index seeds: leader leases (``multi.lease``)
    cut_leader_prob_max: float = 0.15  # lease seeds only
    reconfig_prob: float = 0.3  # membership changes during the faults (``sim.kv_reconfig``)
    reconfig_every_ticks_range: tuple[int, int] = (15, 60)
    collections_prob: float = 0.5  # the collection workload (``sim.kv_collections``)
    pre_vote_prob: float = 0.7  # as the runtime runs; the rest keep the classic election
    scripts_prob: float = 0.5  # of the collection seeds: Lua scripts too (``sim.kv_scripts``)
    publish_prob: float = 0.3  # PUBLISH through the log (``sim.kv_publish``)

    def draw(self, rng: random.Random, base: KVSettings) -> KVSettings:
        """``base`` with every field of ``KV_SWARM_FIELDS`` not pinned in it drawn from ``rng``.

        Every draw happens whether or not its field is pinned, so pinning one dimension leaves
        the others' draws for a seed unchanged.
        """

        def level(high: float) -> float:
            on = rng.random() >= self.off_prob
            value = round(rng.uniform(0.0, high), 3)
            return value if on else 0.0

        drawn: dict[str, object] = {
            "nodes": rng.choice(self.nodes_choices),
            "thrifty": rng.random() < self.thrifty_prob,
            "drop": level(self.drop_prob_max),
            "dup": level(self.dup_prob_max),
            "delay_max_ticks": rng.randint(*self.delay_max_ticks_range),
        }
        restart_max = rng.randint(*self.restart_max_ticks_range)
        drawn["nemesis"] = replace(
            base.nemesis,
            step_ticks=rng.randint(*self.step_ticks_range),
            crash_prob=level(self.crash_prob_max),
            leader_crash_prob=level(self.leader_crash_prob_max),
            promise_crash_prob=level(self.promise_crash_prob_max),
            partition_prob=level(self.partition_prob_max),
            isolate_leader_prob=level(self.isolate_leader_prob_max),
            blip_leader_prob=level(self.blip_leader_prob_max),
            straggle_prob=level(self.straggle_prob_max),
            restart_ticks=(5, restart_max),
        )
        # Drawn after the others, so that each seed's older draws stay what they were.
        drawn["reads"] = "read-index" if rng.random() < self.read_index_prob else "log"
        nemesis = drawn["nemesis"]
        assert isinstance(nemesis, NemesisSettings)
        drawn["nemesis"] = replace(nemesis, stall_leader_prob=level(self.stall_leader_prob_max))
        drawn["follower_reads"] = rng.random() < self.follower_reads_prob
        if rng.random() < self.lease_prob and drawn["reads"] == "read-index":
            drawn["reads"] = "lease"
        cut = level(self.cut_leader_prob_max)
        reads = base.reads if "reads" in base.pinned else drawn["reads"]
        if reads == "lease":  # the fault leases are there for (read-index seeds stay as they were)
            drawn["nemesis"] = replace(drawn["nemesis"], cut_leader_prob=cut)  # type: ignore[type-var]
        drawn["reconfig"] = rng.random() < self.reconfig_prob  # drawn last: older draws hold
        drawn["reconfig_every_ticks"] = rng.randint(*self.reconfig_every_ticks_range)
        drawn["collections"] = rng.random() < self.collections_prob  # last: older draws hold
        drawn["pre_vote"] = rng.random() < self.pre_vote_prob  # drawn last: older draws hold
        # Drawn from a Random of their own: every older draw of a seed stays what it was.
        own = random.Random(rng.random())
        drawn["scripts"] = own.random() < self.scripts_prob
        drawn["publish"] = own.random() < self.publish_prob
        chosen = {name: value for name, value in drawn.items() if name not in base.pinned}
        settings = replace(base, **chosen)  # type: ignore[arg-type]
        if settings.delay_min_ticks > settings.delay_max_ticks:
            settings = replace(settings, delay_min_ticks=settings.delay_max_ticks)
        return settings


KV_SWARM = KVSwarm()


def liveness_bound_ticks(settings: KVSettings) -> int:
    """Ticks after the heal by which an operation invoked after it must have completed ``ok``.

    All in virtual ticks; a node ticks every ``I = tick_interval_ticks``, so its timeouts, counted
    in its own ticks, are multiplied by ``I``.  With ``D`` the max message delay, ``E`` the max
    election timeout, ``S`` the leader's step-down delay, ``T`` the client timeout, ``B`` its
    backoff and ``n`` the nodes:

    * ``max(D, G)``: messages sent before the heal are delivered or dropped (``G``: the longest
      straggler delay of the fault phase);
    * ``S``: a leader left without a quorum notices and steps down (one that has a quorum
      simply keeps serving);
    * ``3 (E + 4D)``: an election: a follower times out within ``E`` of its last contact, and
      prepare, promise, and the new leader's take-over accepts take ``4D`` (``6D`` with
      pre-vote: its request and replies first); randomised timeouts make a duel that spoils a
      round unlikely, and the bound allows three rounds;
    * ``T + n (2D + B)``: a client whose request went to a dead or cut-off node waits ``T``,
      then walks the nodes, each one answering with a redirect at most ``2D + B`` later;
    * ``4D``: the operation itself: client to leader, accept round trip, reply.
    """
    config = settings.config()
    interval = settings.tick_interval_ticks
    lease = 0
    if config.leases:  # drift: the slowest node's ticks are longer; a lease binds the followers
        interval = -(-interval * (1_000_000 + config.clock_drift_ppm) // 1_000_000)
        lease = config.lease_ticks
    delay = settings.delay_max_ticks
    nemesis = settings.nemesis_settings()
    drain = max(delay, nemesis.straggle_ticks[1] if nemesis.straggle_prob else 0)
    client = settings.client
    round_trips = 3 if config.pre_vote else 2
    timeout = (config.election_timeout_max_ticks + lease) * interval
    election = 3 * (timeout + 2 * round_trips * delay)
    find_leader = client.timeout_ticks + settings.nodes * (2 * delay + client.backoff_ticks)
    step_down = config.step_down_ticks * interval
    return drain + step_down + election + find_leader + 4 * delay


def finish_bound_ticks(settings: KVSettings, ops_per_client: int) -> int:
    """Ticks after serving resumed by which the clients, the final reads and convergence end:
    each client's share of the remaining operations (plus the one it may have outstanding) may
    need one client timeout plus a redirect walk, and the final reads and convergence likewise."""
    client = settings.client
    per_op = client.timeout_ticks + settings.nodes * (
        2 * settings.delay_max_ticks + client.backoff_ticks
    )
    return (ops_per_client + 1 + settings.keys) * per_op + CONVERGE_TICKS


@dataclass(frozen=True)
class KVResult:
    seed: int
    settings: KVSettings  # as given (``replay_command`` replays from them)
    mix: KVSettings  # what the seed ran with: ``settings``, or under swarm its draw
    violations: tuple[str, ...]
    lincheck: str  # the checker's summary line, or why it did not run
    undecided: bool  # the linearizability search timed out
    history: tuple[str, ...]  # JSON Lines
    trace: tuple[str, ...]
    invoked: int
    ok: int
    failed: int
    info: int
    leader_changes: int
    read_index_reads: int  # reads a node answered on the read-index path (no log entry)
    lease_reads: int  # ... of which a leader answered under its lease, without a round
    follower_reads: int  # ... of which a follower answered
    crashes: int
    leader_crashes: int
    partitions: int
    heal_time: int
    served_after_ticks: int | None  # from the heal to the first ok of an op invoked after it
    bound_ticks: int
    end_time: int
    steps: int
    wall_s: float
    membership_changes: int = 0  # changes applied (answered to the reconfigurer)
    membership_refused: int = 0  # changes refused at once (one in flight, learner behind...)

    def outcome_line(self) -> str:
        if self.violations:
            return f"VIOLATION (seed {self.seed}): " + "; ".join(self.violations)
        served = "-" if self.served_after_ticks is None else str(self.served_after_ticks)
        return (
            f"seed {self.seed}: ok  {self.invoked} ops ({self.ok} ok, {self.failed} fail, "
            f"{self.info} info), {self.leader_changes} leaderships, {self.crashes} crashes, "
            f"{self.partitions} partitions, served {served} ticks after heal (bound "
            f"{self.bound_ticks}), {self.lincheck}"
        )


class KVWorld(ReplicaWorld):
    """One simulated KV cluster with its clients, nemesis, ghost state and checks."""

    def __init__(
        self,
        settings: KVSettings,
        seed: int,
        trace: bool = False,
        machine_factory: MachineFactory = KVStateMachine,
    ) -> None:
        rng = random.Random(seed)
        self.base_settings = settings
        settings = settings.for_seed(seed)
        self.settings = settings
        self.seed = seed
        self.config = settings.config()
        spares = SPARES if settings.reconfig else 0
        self.node_list = tuple(range(1, settings.nodes + spares + 1))
        self.client_ids = tuple(CLIENT_ID_BASE + i for i in range(1, settings.clients + 1))
        self.final_id = CLIENT_ID_BASE + settings.clients + 1
        # Client actor CLIENT_ID_BASE + i uses KV client ids i, i + stride, i + 2 stride, ...
        self.session_stride = settings.clients + 1
        self.keys = tuple(f"k{i}" for i in range(settings.keys))
        # The collection workload draws each collection key's home family from its own
        # Random, so the world's draws stay what they were.
        self.collection_keys = COLLECTION_KEYS if settings.collections else ()
        self.draw_collection = (
            collection_draw(
                home_families(random.Random(f"kv homes {seed}")), scripts=settings.scripts
            )
            if settings.collections
            else None
        )
        kv_bugs = settings.kv_bugs()
        if machine_factory is KVStateMachine and (kv_bugs or settings.scripts):
            machine_factory = partial(
                KVStateMachine,
                bugs=kv_bugs,
                script_commands=script_command if settings.scripts else None,
            )
        self.machine_factory = machine_factory
        self.history = History()
        self.stats = LeaderStats()
        self.record_disk = RecordLogDisk(self._persisted)
        self.violations: list[str] = []
        self.recordings: list[Recording] = []  # every node incarnation's (``sim.kv_publish``)
        self.chosen: dict[int, Batch] = {}  # ghost: the first value applied in each slot
        self.replied: set[int] = set()  # ghost: request ids of log commands some node answered
        self.read_index_reads = 0
        self.follower_reads = 0
        # ghost: who accepted what in each (slot, ballot), from the records written to disk
        self.votes: dict[tuple[int, Ballot], tuple[Batch, set[int]]] = {}
        self.chosen_by_votes: dict[int, tuple[Ballot, Batch]] = {}
        self.quorum = self.config.quorum()
        self.done: set[int] = set()
        self.heal_time = -1
        self.deadline = -1
        self.healed = False
        self.served_checked = False
        self.final_started = False
        self.final_done = False
        self.bound = liveness_bound_ticks(settings)
        self.budget = OpBudget(settings.ops)
        self.heal_after = max(1, int(settings.ops * FAULT_FRACTION))
        super().__init__(
            (*self.node_list, *self.client_ids, self.final_id),
            self._build,
            rng,
            StragglerNetwork(
                rng,
                settings.network_settings(),
                settings.nemesis_settings().straggle_prob,
                settings.nemesis_settings().straggle_ticks,
            ),
            self.record_disk,
            name=self._name,
            describe=describe_message,
            describe_state=_describe_records,
            trace=trace,
        )
        self.nemesis = Nemesis(
            self,
            settings.nemesis_settings(),
            self.node_list,
            self.client_ids,
            self.current_leader,
            self._has_in_flight,
            self._resume,
            self._drift,
        )
        # Leases: each node's tick rate, drawn within the drift bound; a stall is a pause.
        self.pauses = settings.reads == "lease"
        self.tick_rates = _draw_tick_rates(seed, self.node_list) if self.pauses else {}
        self.tick_credit = dict.fromkeys(self.node_list, 0.0)
        self.missed_ticks = dict.fromkeys(self.node_list, 0)
        self.held: list[tuple[int, Callable[[], None]]] = []  # a paused node's inputs, in order
        self.change_rids: set[int] = set()  # request ids of membership changes (no client's)
        self.changes_done = 0
        self.changes_refused = 0
        self.reconfigurer = Reconfigurer(
            self.at,
            self._clock,
            rng,
            settings.reconfig_every_ticks if settings.reconfig else 0,
            self.node_list,
            settings.nodes,
            self.current_leader,
            lambda node: self.node_actor(node).node.members().latest,
            self._propose_change,
        )

    # -- actors ------------------------------------------------------------------------------

    def _name(self, actor: int) -> str:
        if actor == self.final_id:
            return "final"
        return f"c{actor - CLIENT_ID_BASE}" if actor > CLIENT_ID_BASE else f"n{actor}"

    def _build(self, actor: int, durable: object | None, rng: random.Random) -> NodeActor | Client:
        if actor < CLIENT_ID_BASE:
            records = durable if isinstance(durable, tuple) else None
            record = self._record if self.settings.publish else None
            return NodeActor(
                actor, self.config, rng, records, self.stats, self.machine_factory, record
            )
        final = actor == self.final_id
        process: object = "final" if final else actor - CLIENT_ID_BASE
        client_settings = self.settings.client
        if final:  # clients may be set to give up early; the final reader must not
            default = ClientSettings()
            # It keeps asking for as long as the liveness bound allows, one backoff at a time
            # at least: a leader that crashed holding a lease keeps every follower from
            # electing until that lease runs out, and a few quick redirects must not use up
            # its attempts before then (the deadline, not its patience, judges liveness).
            patience = self.bound // max(1, client_settings.backoff_ticks)
            client_settings = replace(
                client_settings,
                timeout_ticks=max(client_settings.timeout_ticks, default.timeout_ticks),
                attempts_max=max(client_settings.attempts_max, default.attempts_max, patience),
            )
        if final and self.settings.reconfig:
            # A removed node hears no heartbeats, so its leader hint stays stale for good: the
            # final reader may take a longer chain of redirects to the leader.
            attempts_max = client_settings.attempts_max * 2
            client_settings = replace(client_settings, attempts_max=attempts_max)
        return Client(
            actor,
            actor - CLIENT_ID_BASE,
            process,
            self.node_list,
            self.keys,
            OpBudget(0) if final else self.budget,
            client_settings,
            rng,
            self.history,
            self._client_done,
            self._problem,
            self._clock,
            self.session_stride,
            read_index=self.settings.reads != "log",
            any_node_reads=self.settings.follower_reads,
            draw_collection=None if final else self.draw_collection,
            draw_publish=draw_publish if self.settings.publish and not final else None,
        )

    def _record(self, node: int, machine: KVStateMachine) -> Recording:
        recording = Recording(node, machine)
        self.recordings.append(recording)
        return recording

    def _clock(self) -> int:
        return self.now

    def _has_in_flight(self, node: int) -> bool:
        return bool(self.node_actor(node).node.leader.inflight)

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> KVResult:
        started = time.perf_counter()
        try:
            self.start()
            self.at(self.settings.tick_interval_ticks, self._tick_nodes)
            self.nemesis.begin()
            self.reconfigurer.begin()
            self._loop()
        except AssertionError as caught:  # a node's inline invariant fired
            self._violate(f"invariant at t={self.now}: {caught}")
        except Exception as caught:  # a crash in the protocol code is a finding too
            self._violate(f"{type(caught).__name__} raised at t={self.now}: {caught}")
        if self.healed and not self.violations:
            self._check_served()
        lin = self._check_end()
        return self._result(lin, time.perf_counter() - started)

    def _loop(self) -> None:
        while not self.violations:
            if self.final_done and self._converged():
                return
            when = self.next_time()
            if when is None:
                self._violate("the simulation ran out of events")
                return
            if self.healed and when > self.deadline:
                self.now = self.deadline
                self._violate(self._unfinished())
                return
            self.step()

    def _tick_nodes(self) -> None:
        """The nodes' periodic clock: tick every running node, in id order."""
        stopped = self.nemesis.stopped_clocks
        rates = self.tick_rates
        for node in self.node_list:
            if not self.is_up(node):
                continue
            count = 1
            if rates:  # drift: a node ticks at its own rate (at most once per world tick)
                credit = self.tick_credit[node] + rates[node]
                count = int(credit)
                self.tick_credit[node] = credit - count
            if node in stopped:
                if self.pauses:
                    self.missed_ticks[node] += count  # counted when it resumes
                continue
            for _ in range(count):
                self.apply(node, self.node_actor(node).tick())
        self.at(self.now + self.settings.tick_interval_ticks, self._tick_nodes)

    def _paused(self, node: int) -> bool:
        return self.pauses and node in self.nemesis.stopped_clocks

    def _hold_if_paused(self, node: int, resume: Callable[[], None]) -> bool:
        if not self._paused(node):
            return False
        self.held.append((node, resume))
        return True

    def _deliver(self, event: _Delivery[object]) -> None:
        if self._paused(event.dst):
            self.held.append((event.dst, partial(Simulator._deliver, self, event)))
            return
        super()._deliver(event)

    def _drift(self, leader: int) -> None:
        """``cut leader`` in a lease run: half the time, the leader's clock becomes the slowest
        the drift bound allows and every other node's the fastest (it stays so)."""
        if self.tick_rates and self.rng.random() < 0.5:
            slowest = 1_000_000 / (1_000_000 + DRIFT_PPM)
            for node in self.node_list:
                self.tick_rates[node] = slowest if node == leader else 1.0
            if self.trace is not None:
                self.log(f"NEMESIS n{leader}'s clock runs slow, the others' fast")

    def _resume(self, nodes: frozenset[int]) -> None:
        """Paused nodes resume: each counts the ticks it missed first (it notices the pause, as
        the lease assumption requires), then handles what waited, in order."""
        if not self.pauses:
            return
        for node in sorted(nodes):
            missed, self.missed_ticks[node] = self.missed_ticks[node], 0
            if self.trace is not None:
                self.log(f"{self.name(node)} resumes: {missed} ticks missed")
            for _ in range(missed if self.is_up(node) else 0):
                self.apply(node, self.node_actor(node).tick())
        held = [fn for node, fn in self.held if node in nodes]
        self.held = [(node, fn) for node, fn in self.held if node not in nodes]
        for fn in held:
            self.at(self.now, fn)

    def after_step(self) -> None:
        if self.nemesis.armed:
            self.nemesis.after_step()
        if not self.healed and self.history.invocations >= self.heal_after:
            self._heal()

    def _heal(self) -> None:
        self.healed = True
        self.heal_time = self.now
        self.history.heal_time = self.now
        if self.trace is not None:
            self.log(
                f"HEAL: no more faults or loss, every node up; serve by t={self.now + self.bound}"
            )
        self.nemesis.heal()
        self.reconfigurer.stop()
        per_client = -(-self.budget.left // self.settings.clients)
        self.deadline = self.now + self.bound + finish_bound_ticks(self.settings, per_client)
        self.at(self.now + self.bound, self._check_served)

    def _check_served(self) -> None:
        if self.served_checked:
            return
        self.served_checked = True
        served = self.history.served_at
        if served is None or served > self.heal_time + self.bound:
            self._violate(
                f"liveness: no operation invoked after the heal (t={self.heal_time}) completed "
                f"within the bound of {self.bound} ticks"
            )

    def _client(self, actor: int) -> Client:
        client = self.actor(actor)
        assert isinstance(client, Client)
        return client

    def _client_done(self, actor: int) -> None:
        if actor == self.final_id:
            self.final_done = True
            return
        self.done.add(actor)
        if len(self.done) == len(self.client_ids) and not self.final_started:
            self.at(self.now, self._final_reads)

    def _final_reads(self) -> None:
        if not self.healed:
            self._heal()
        self.final_started = True
        if self.trace is not None:
            self.log("FINAL READS of every key")
        ops = [Operation("read", key, Get(key.encode()), None) for key in self.keys]
        ops += [final_operation(key) for key in self.collection_keys]
        self.inject(self.final_id, lambda actor: _as_client(actor).run_script(ops))

    def _replicas(self) -> tuple[int, ...]:
        """The nodes that must converge: every node, or with membership changes the members of
        the latest configuration any node knows (the others were removed or never added)."""
        if not self.settings.reconfig:
            return self.node_list
        latest = max(
            (self.node_actor(n).node.members().latest for n in self.node_list),
            key=lambda config: config.epoch,
        )
        return tuple(n for n in self.node_list if n in latest.members)

    def _propose_change(self, node: int, asked: int, change: Change) -> None:
        rid = request_id(0, asked)  # KV client id 0 is no client's
        self.change_rids.add(rid)
        if self.trace is not None:
            self.log(f"RECONFIG ask n{node}: {change}")
        self.apply(node, self.node_actor(node).node.propose_membership_change(rid, change))

    def _converged(self) -> bool:
        indexes = {self.node_actor(n).node.applied_index for n in self._replicas()}
        return len(indexes) == 1

    def _unfinished(self) -> str:
        if not self.final_done:
            waiting = len(self.client_ids) - len(self.done)
            what = f"{waiting} clients not done" if waiting else "final reads not done"
        else:
            indexes = [self.node_actor(n).node.applied_index for n in self._replicas()]
            what = f"nodes did not converge (applied indexes {indexes})"
        return f"liveness: {what} by t={self.deadline} (heal at t={self.heal_time})"

    # -- hooks: client answers and ghost state -----------------------------------------------

    def on_effect(self, node: int, effect: object) -> None:
        if type(effect) is MembershipRefused:
            self.changes_refused += 1
            return
        if isinstance(effect, Reply | Redirect) and effect.request_id in self.change_rids:
            self.changes_done += type(effect) is Reply
            if self.trace is not None:
                self.log(f"RECONFIG n{node}: {effect}")
            return
        if type(effect) is Applied:
            self._applied(node, effect.slot, effect.value)
        elif type(effect) is Reply:
            rid = effect.request_id
            if is_read_request(rid):
                self.read_index_reads += 1  # answered by ``Node.read``: in no slot, by design
                if self.node_actor(node).node.role is Role.FOLLOWER:
                    self.follower_reads += 1
            else:
                self.replied.add(rid)
            reply = ClientReply(node, rid, effect.result)
            self.apply(node, [Send(self._client_of(rid), reply)])
        elif type(effect) is TakeSnapshot:
            self._take_snapshot(node)
        else:  # answers to clients, a leader's own vote, compaction, snapshot transfer
            super().on_effect(node, effect)

    def _take_snapshot(self, node: int) -> None:
        """A snapshot out of line: the state is copied now (as a fork would), written some ticks
        later; the node hears ``snapshot_saved`` then.  A crash before loses it."""
        actor = self.node_actor(node)
        record = capture(actor.node)
        low, high = SNAPSHOT_SAVE_TICKS
        delay = low + int(self.rng.random() * (high - low + 1))
        self.at(self.now + delay, lambda: self._snapshot_written(node, actor, record))

    def _snapshot_written(self, node: int, actor: object, record: SnapshotRecord) -> None:
        if not self.is_up(node) or self.actor(node) is not actor:
            return  # crashed since: the snapshot was never written
        if self._hold_if_paused(node, partial(self._snapshot_written, node, actor, record)):
            return
        assert isinstance(actor, NodeActor)
        self.record_disk.write(node, record, sync=True)
        if self.trace is not None:
            self.log(f"{self.name(node)} snapshot saved: slot {record.slot}")
        self.apply(node, actor.node.snapshot_saved(record.slot))

    def after_restart(self, node: int) -> None:
        """A restarted node still holds every durable vote its durable snapshot does not cover
        (a vote lost by compacting too early is an acceptance a quorum counted on)."""
        super().after_restart(node)
        acceptor = self.node_actor(node).node.acceptor
        for (slot, ballot), (_value, voters) in self.votes.items():
            if node not in voters or slot < acceptor.log_start:
                continue
            vote = acceptor.accepted.get(slot)
            if vote is None or vote.ballot < ballot:
                self.violations.append(
                    f"n{node} restarted without its durable vote in slot {slot} at {ballot}"
                )
                return

    def _persisted(self, node: int, record: object) -> None:
        """Paxos safety itself: at most one value per slot gets a majority of acceptances.

        An ``AcceptRecord`` is written before its ``Accepted`` leaves, so the records are the
        acceptances; a value is chosen once a quorum accepted it in one ballot, whether or not
        anyone ever learns it (Paxos Made Simple, section 2.1).
        """
        if type(record) is not AcceptRecord or self.settings.reconfig:
            return  # with membership changes the slot's majority is not the genesis one
        key = (record.slot, record.ballot)
        entry = self.votes.get(key)
        if entry is None:
            entry = self.votes[key] = (record.value, set())
        value, voters = entry
        if node in voters:
            return
        voters.add(node)
        if not self.quorum.is_phase2_quorum(voters):
            return
        slot, ballot = key
        first = self.chosen_by_votes.setdefault(slot, (ballot, value))
        if first[1] != value:
            self._violate(
                f"two values chosen in slot {slot}: {_show_batch(first[1])} by a quorum at "
                f"ballot {first[0]}, {_show_batch(value)} by a quorum at ballot {ballot}"
            )

    def _applied(self, node: int, slot: int, value: Batch) -> None:
        first = self.chosen.setdefault(slot, value)
        if first != value:
            self._violate(
                f"replicas disagree: n{node} applied {_show_batch(value)} in slot {slot}, "
                f"another node applied {_show_batch(first)} there"
            )

    def _problem(self, text: str) -> None:
        self._violate(text)

    def _violate(self, text: str) -> None:
        if not self.violations and self.trace is not None:
            self.log(f"VIOLATION: {text}")
        self.violations.append(text)

    # -- the end-of-run checks ---------------------------------------------------------------

    def _check_end(self) -> LinResult | _Both | None:
        if not self.violations:
            self._check_replicas()
            if self.settings.publish:
                self._check_publications()
            gave_up = [e[4] for e in self.history.events if e[1] == "final" and e[2] == "info"]
            if gave_up:
                self._violate(f"the final read of {', '.join(gave_up)} did not complete ok")
            for slot, value in sorted(self.chosen.items()) if not self.settings.reconfig else ():
                by_votes = self.chosen_by_votes.get(slot)
                if by_votes is None or by_votes[1] != value:
                    self._violate(f"slot {slot}: applied {_show_batch(value)}, not chosen")
                    break
            in_log = {e.request_id for batch in self.chosen.values() for e in batch}
            lost = sorted(self.replied - in_log)
            if lost:
                shown = ", ".join(_show_request(r) for r in lost[:5])
                self._violate(f"acknowledged but in no applied slot: {shown}")
        self._close_history()
        events = self.history.dicts()
        if self.settings.publish:  # checked apart (``_check_publications``)
            events = [e for e in events if e["f"] != "publish"]
        collection_keys = set(self.collection_keys)
        strings = [e for e in events if e["key"] not in collection_keys]
        try:
            history = history_from_events(strings)
            model_history = model_history_from_events(
                [e for e in events if e["key"] in collection_keys]
            )
        except ValueError as error:
            self._violate(f"malformed history: {error}")
            return None
        lin = check_history(history, timeout_s=LINCHECK_TIMEOUT_S)
        bad = lin.violation()
        if bad is not None:
            # No timings in the message: a replayed seed must report the very same violation.
            detail = explain_failure(bad.key, bad.failure) if bad.failure else bad.key
            self._violate(f"not linearizable ({lin.operations} operations): {detail}")
        if not collection_keys:
            return lin
        # The collection keys, against the reference model; its own time budget.
        model = check_model_history(model_history, timeout_s=LINCHECK_TIMEOUT_S)
        wrong = model.violation()
        if wrong is not None:
            self._violate(
                f"not linearizable ({model.operations} collection operations): {wrong.failure}"
            )
        return _Both(lin, model)

    def _check_replicas(self) -> None:
        replicas = self._replicas()
        snapshots = {
            n: tuple(self.node_actor(n).machine.snapshot_chunks(SNAPSHOT_CHUNK_BYTES))
            for n in replicas
        }
        if len(set(snapshots.values())) > 1:
            first = snapshots[replicas[0]]
            differ = [f"n{n}" for n, s in snapshots.items() if s != first]
            self._violate(
                f"replicas disagree: after the heal {', '.join(differ)} hold a state machine "
                f"different from n{replicas[0]}'s at the same applied index"
            )

    def _check_publications(self) -> None:
        """Every recording agrees and every acknowledged ``PUBLISH`` is published once
        (``sim.kv_publish``)."""
        sent: list[tuple[str, str]] = []
        acknowledged: list[tuple[str, str]] = []
        pending: dict[object, tuple[str, str]] = {}
        for _time, process, kind, f, key, value in self.history.events:
            if f != "publish":
                continue
            if kind == "invoke":
                assert isinstance(value, list)
                pending[process] = (key, str(value[0]))
                sent.append(pending[process])
            elif kind == "ok":
                acknowledged.append(pending[process])
        for problem in publication_violations(self.recordings, sent, acknowledged):
            self._violate(problem)

    def _close_history(self) -> None:
        """Operations still outstanding when the run stopped are recorded ``info``; a client
        with nothing invoked (between operations, or at an optimistic cas's unrecorded first
        step, which changes nothing) gets no entry."""
        for actor in (*self.client_ids, self.final_id):
            client = self._client(actor)
            op = client.outstanding
            if op is not None:
                self.history.add(self.now, client.process, "info", op.f, op.key, op.value)
            client.op = None

    def _result(self, lin: LinResult | _Both | None, wall_s: float) -> KVResult:
        kinds = [event[2] for event in self.history.events]
        served = self.history.served_at
        return KVResult(
            seed=self.seed,
            settings=self.base_settings,
            mix=self.settings,
            violations=tuple(self.violations),
            lincheck="lincheck not run" if lin is None else lin.summary(),
            undecided=lin is not None and lin.outcome == "timeout",
            history=tuple(self.history.lines()),
            trace=tuple(self.trace or ()),
            invoked=kinds.count("invoke"),
            ok=kinds.count("ok"),
            failed=kinds.count("fail"),
            info=kinds.count("info"),
            leader_changes=self.stats.changes,
            read_index_reads=self.read_index_reads,
            lease_reads=self.stats.lease_reads,
            follower_reads=self.follower_reads,
            crashes=self.nemesis.crashes,
            leader_crashes=self.nemesis.leader_crashes,
            partitions=self.nemesis.partitions,
            heal_time=self.heal_time,
            served_after_ticks=None if served is None else served - self.heal_time,
            bound_ticks=self.bound,
            end_time=self.now,
            steps=self.steps,
            wall_s=wall_s,
            membership_changes=self.changes_done,
            membership_refused=self.changes_refused,
        )


@dataclass(frozen=True)
class _Both:
    """The verdicts on the string keys (``wgl``) and on the collection keys (the model)."""

    strings: LinResult
    collections: ModelResult

    @property
    def outcome(self) -> str:
        outcomes = {self.strings.outcome, self.collections.outcome}
        for worst in ("violation", "timeout"):
            if worst in outcomes:
                return worst
        return "ok"

    def summary(self) -> str:
        return f"{self.strings.summary()}; collections: {self.collections.summary()}"


def _draw_tick_rates(seed: int, nodes: tuple[int, ...]) -> dict[int, float]:
    """Each node's ticks per world tick, within the drift bound: ``(1 + drift) ** -u`` for ``u``
    in ``[0, 1]``, so no rate exceeds another by more than ``1 + drift``; the extremes are drawn
    often (the worst case: a slow leader, fast followers).  Its own Random: the world's draws
    stay what they were."""
    rng = random.Random(f"kv drift {seed}")
    slowest = 1.0 + DRIFT_PPM / 1_000_000
    rates = {}
    for node in nodes:
        u = rng.choice((0.0, 1.0, rng.random()))
        rates[node] = slowest**-u
    return rates


def _show_batch(batch: Batch) -> str:
    """``[n2:c4#12]``: entry proposed at node 2 for KV client id 4, seq 12."""
    return "[" + ", ".join(_show_entry(e.origin, e.request_id) for e in batch) + "]"


def _show_entry(origin: int, rid: int) -> str:
    return f"n{origin}:{_show_request(rid)}"


def _show_request(rid: int) -> str:
    """``c4#12``: KV client id 4, seq 12 (``c4#r3``: its third read-index read)."""
    client, seq = split_request_id(rid)
    if is_read_request(rid):
        return f"c{client}#r{seq & ~READ_SEQ_FLAG}"
    return f"c{client}#{seq}"


def describe_message(msg: object) -> str:
    """A trace line's message: client requests decoded, peer messages as their repr."""
    if isinstance(msg, ClientRequest):
        request = decode_entry(msg.command)
        path = " (read-index)" if msg.read else ""
        shown = (
            request.ops if isinstance(request, RequestBatch) else getattr(request, "op", request)
        )
        return f"request {_show_request(msg.rid)} {shown!r}{path}"
    if isinstance(msg, ClientReply):
        return f"reply {_show_request(msg.rid)} {decode_answer(msg.result)!r}"
    if isinstance(msg, ClientRedirect):
        leader = "unknown" if msg.leader is None else f"n{msg.leader}"
        return f"redirect {_show_request(msg.rid)} leader {leader}"
    if isinstance(msg, ClientBusy):
        return f"busy {_show_request(msg.rid)}"
    return repr(msg)


def _as_client(actor: object) -> Client:
    assert isinstance(actor, Client), actor
    return actor


def _describe_records(durable: object | None) -> str:
    assert durable is None or isinstance(durable, tuple)  # what RecordLogDisk.read returns
    return "empty" if durable is None else f"{len(durable)} records"


def run_kv(
    settings: KVSettings,
    seed: int,
    trace: bool = False,
    machine_factory: MachineFactory = KVStateMachine,
) -> KVResult:
    """Run one seed; with ``trace`` the result carries one line per event."""
    return KVWorld(settings, seed, trace, machine_factory).run()


def _run_one(job: tuple[KVSettings, int, bool]) -> KVResult:
    return run_kv(job[0], job[1], job[2])


def run_seeds(
    settings: KVSettings, seeds: Iterable[int], jobs: int = 1, trace: bool = False
) -> Iterator[KVResult]:
    """Run every seed, in order; ``jobs > 1`` spreads them over worker processes (each run is
    self-contained and deterministic, so the results are the same either way)."""
    work = [(settings, seed, trace) for seed in seeds]
    if jobs <= 1 or len(work) <= 1:
        yield from map(_run_one, work)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(_run_one, work, chunksize=4)


def first_violation(settings: KVSettings, seeds: Iterable[int]) -> KVResult | None:
    for seed in seeds:
        result = run_kv(settings, seed)
        if result.violations:
            return result
    return None


__all__ = [
    "KVResult",
    "KVSettings",
    "KVWorld",
    "finish_bound_ticks",
    "liveness_bound_ticks",
    "run_kv",
    "run_seeds",
]
