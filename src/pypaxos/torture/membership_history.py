"""The membership verdict: every configuration a node used, and every removal it acted on,
held against the configuration history that was chosen.

Each node logs ``membership-record`` lines (``runtime.membership_record``).  The chosen history
is what the nodes applied from the decided log: every ``chosen`` record and every pending
configuration a ``state`` record shows (a configuration is pending only once the change that
makes it was applied), with the first slot it governs (alpha-reconfiguration: a change decided
in slot ``s`` governs from ``s + alpha``; ``multi.membership``), plus the first configuration
(epoch 0, from slot 0).  Configurations form one chain, one per epoch, so two different ones
for one epoch, or two first slots, are a problem in themselves; and the final membership the
survivors report (the leader's ``PAXOS.MEMBER LIST`` once nothing is pending) must be the
chain's last link.

Against that history:

* a configuration a node used (``state`` records: in force at its applied index, or pending)
  must be in it, the same voters and learners, and in force no earlier than the first slot
  the history gives it (a node that used one before it was chosen, the planted
  ``config-before-chosen``, has it in force at an applied index below that slot);
* a removal a node acted on (``removed``: it stopped on a peer's notice of epoch ``E``) needs
  configuration ``E`` in the history, without that node, and the notice's first slot, when it
  has one, must be that configuration's.

A node that joins starts from the configuration it was added to (``joined``): it uses it for
no quorum while it catches up, so only its existence and members are checked.  Every node's
log is read whole, every lifetime of its slot (a node removed, wiped and added again writes on
in the same file): each lifetime's records are configurations that node used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pypaxos.multi.membership import SLOT_UNKNOWN
from pypaxos.runtime.membership_record import (
    ChosenRecord,
    ConfigSeen,
    Record,
    RemovedRecord,
    StateRecord,
    parse,
)

PROBLEMS_MAX = 20  # a broken build would repeat one problem on every record: keep the first


@dataclass(frozen=True, slots=True)
class Chosen:
    """One link of the chosen history, and which node's record first showed it."""

    config: ConfigSeen
    first_slot: int
    node_id: int


@dataclass
class History:
    """The chosen configurations by epoch, and the problems found building it."""

    by_epoch: dict[int, Chosen] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, config: ConfigSeen, first_slot: int, node_id: int) -> None:
        known = self.by_epoch.get(config.epoch)
        if known is None:
            self.by_epoch[config.epoch] = Chosen(config, first_slot, node_id)
        elif known.config != config or known.first_slot != first_slot:
            self.problems.append(
                f"two configurations chosen for epoch {config.epoch}: {show(known.config)} "
                f"from slot {known.first_slot} (node {known.node_id}) and {show(config)} from "
                f"slot {first_slot} (node {node_id})"
            )


def show(config: ConfigSeen) -> str:
    learners = f" learners {list(config.learners)}" if config.learners else ""
    return f"voters {list(config.voters)}{learners}"


def read_records(logs: Path) -> tuple[list[Record], list[str]]:
    """Every record in the nodes' logs (``node-*.log``), and a problem per line that holds a
    record that does not decode."""
    records: list[Record] = []
    problems: list[str] = []
    for path in sorted(logs.glob("node-*.log")):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            try:
                record = parse(line)
            except ValueError as error:
                problems.append(f"{path.name} line {number}: {error}")
                continue
            if record is not None:
                records.append(record)
    return records, problems


def chosen_history(records: list[Record], genesis: ConfigSeen) -> History:
    history = History()
    history.add(genesis, 0, -1)
    for record in records:
        if isinstance(record, ChosenRecord):
            history.add(record.config, record.first_slot, record.node_id)
        elif isinstance(record, StateRecord) and record.pending is not None:
            assert record.pending_from is not None
            history.add(record.pending, record.pending_from, record.node_id)
    return history


def check_records(records: list[Record], history: History) -> list[str]:
    """What the records show used or acted on that the chosen history does not allow."""
    problems: list[str] = []
    for record in records:
        if isinstance(record, StateRecord):
            problems += check_state(record, history)
        elif isinstance(record, RemovedRecord):
            problems += check_removal(record, history)
    return problems


def check_state(record: StateRecord, history: History) -> list[str]:
    node, applied = record.node_id, record.applied_index
    where = f"node {node} ({record.source}, applied index {applied})"
    problems = []
    chosen = history.by_epoch.get(record.current.epoch)
    if chosen is None or chosen.config != record.current:
        problems.append(unchosen(where, "used", record.current, chosen))
    elif record.source != "joined" and applied < chosen.first_slot:
        problems.append(
            f"{where} used configuration epoch {record.current.epoch} ({show(record.current)}) "
            f"in force before slot {chosen.first_slot}, where the chosen history has it start"
        )
    if record.pending is not None:
        chosen = history.by_epoch.get(record.pending.epoch)
        if chosen is None or chosen.config != record.pending:
            problems.append(unchosen(where, "had pending", record.pending, chosen))
        elif record.pending_from != chosen.first_slot:
            problems.append(
                f"{where} had configuration epoch {record.pending.epoch} pending from slot "
                f"{record.pending_from}; the chosen history has it from {chosen.first_slot}"
            )
    return problems


def unchosen(where: str, how: str, config: ConfigSeen, chosen: Chosen | None) -> str:
    if chosen is None:
        return (
            f"{where} {how} configuration epoch {config.epoch} ({show(config)}), which no node "
            "applied from the decided log"
        )
    return (
        f"{where} {how} configuration epoch {config.epoch} as {show(config)}; the chosen one "
        f"is {show(chosen.config)}"
    )


def check_removal(record: RemovedRecord, history: History) -> list[str]:
    node, epoch = record.node_id, record.epoch
    where = f"node {node} stopped on node {record.told_by}'s notice of its removal in epoch {epoch}"
    chosen = history.by_epoch.get(epoch)
    if chosen is None:
        return [f"{where}, a configuration no node applied from the decided log"]
    if node in chosen.config.members:
        return [f"{where}, but the chosen configuration has it ({show(chosen.config)})"]
    if record.slot != SLOT_UNKNOWN and record.slot != chosen.first_slot:
        return [
            f"{where} from slot {record.slot}, but the chosen history has that configuration "
            f"from slot {chosen.first_slot}"
        ]
    return []


def check_final(history: History, final: ConfigSeen) -> list[str]:
    """The survivors' final membership is the chosen history's last configuration."""
    last = max(history.by_epoch)
    chosen = history.by_epoch.get(final.epoch)
    if chosen is None or chosen.config != final:
        return [unchosen("the survivors' final membership", "is", final, chosen)]
    if last != final.epoch:
        later = history.by_epoch[last]
        return [
            f"node {later.node_id} applied configuration epoch {last} ({show(later.config)}) "
            f"from the decided log, but the survivors' final membership is epoch {final.epoch}"
        ]
    return []


def verdict(logs: Path, genesis: ConfigSeen, final: ConfigSeen | None) -> tuple[int, list[str]]:
    """The records read and the problems found (at most ``PROBLEMS_MAX``, then a count)."""
    records, problems = read_records(logs)
    history = chosen_history(records, genesis)
    problems += history.problems + check_records(records, history)
    if final is not None:
        problems += check_final(history, final)
    if len(problems) > PROBLEMS_MAX:
        problems = [*problems[:PROBLEMS_MAX], f"and {len(problems) - PROBLEMS_MAX} more"]
    return len(records), [f"membership history: {problem}" for problem in problems]
