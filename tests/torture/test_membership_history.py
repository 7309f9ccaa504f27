"""The membership verdict (``torture.membership_history``) on logs written with the nodes' own
record lines (``runtime.membership_record``): a clean chain passes; a configuration used before
the slot it was chosen to govern from, one never chosen, a removal the chosen history does not
make, two configurations for one epoch and a final membership off the chain are each named.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pypaxos.multi.membership import (
    SLOT_UNKNOWN,
    Configuration,
    MembershipChange,
    MembershipState,
    RemovalNotice,
    encode_change,
)
from pypaxos.multi.membership import Membership as NodeMembership
from pypaxos.runtime.membership_record import (
    LINE_CHARS_MAX,
    PREFIX,
    ConfigSeen,
    RemovedRecord,
    StateRecord,
    chosen_line,
    parse,
    removed_line,
    state_line,
)
from pypaxos.torture.membership_history import verdict

GENESIS = Configuration(0, (1, 2, 3))
ADDED = Configuration(1, (1, 2, 3), (4,))
REPLACED = Configuration(2, (2, 3, 4))  # node 1 replaced by node 4, from slot 58 (50 + alpha 8)
GENESIS_SEEN = ConfigSeen(0, (1, 2, 3), ())
FINAL = ConfigSeen.of(REPLACED)


def log_line(text: str) -> str:
    return f"12:00:00 INFO pypaxos.runtime.app: {text}"


def write_logs(logs: Path, lines_by_node: dict[int, list[str]]) -> Path:
    logs.mkdir(exist_ok=True)
    for node, lines in lines_by_node.items():
        text = "".join(log_line(line) + "\n" for line in ["node starting", *lines])
        (logs / f"node-{node}.log").write_text(text)
    return logs


def clean_chain() -> dict[int, list[str]]:
    """Node 2 applies both changes from the log and sees each come into force; node 4 joins
    from the configuration it was added to, then applies the replacement."""
    return {
        2: [
            state_line(2, "start", 0, MembershipState(GENESIS)),
            chosen_line(2, 20, ADDED),
            state_line(2, "change", 12, MembershipState(GENESIS, ADDED, 20)),
            state_line(2, "change", 20, MembershipState(ADDED)),
            chosen_line(2, 58, REPLACED),
            state_line(2, "change", 50, MembershipState(ADDED, REPLACED, 58)),
            state_line(2, "change", 64, MembershipState(REPLACED)),
        ],
        4: [
            state_line(4, "joined", 0, MembershipState(ADDED)),
            chosen_line(4, 58, REPLACED),
            state_line(4, "change", 66, MembershipState(REPLACED)),
        ],
        1: [
            state_line(1, "start", 0, MembershipState(GENESIS)),
            state_line(1, "change", 21, MembershipState(ADDED)),
            removed_line(1, 3, RemovalNotice(1, 2, 58)),
        ],
    }


def test_a_clean_chain_passes(tmp_path: Path) -> None:
    lines = clean_chain()
    records, problems = verdict(write_logs(tmp_path / "logs", lines), GENESIS_SEEN, FINAL)
    assert problems == []
    assert records == sum(map(len, lines.values()))  # every record line read


def test_a_configuration_in_force_before_its_first_slot_is_named(tmp_path: Path) -> None:
    # config-before-chosen: the leader uses the replacement as soon as it proposes it (slot 50
    # proposed at applied index 47), eight slots before the log has it govern.
    lines = clean_chain()
    lines[3] = [state_line(3, "change", 47, MembershipState(REPLACED))]
    _, problems = verdict(write_logs(tmp_path / "logs", lines), GENESIS_SEEN, FINAL)
    assert len(problems) == 1
    assert "node 3 (change, applied index 47) used configuration epoch 2" in problems[0]
    assert "before slot 58" in problems[0]


def test_a_joining_node_may_use_the_configuration_it_was_added_to_from_slot_zero(
    tmp_path: Path,
) -> None:
    lines = clean_chain()
    lines[4][0] = state_line(4, "change", 0, MembershipState(ADDED))  # not a joining start
    _, problems = verdict(write_logs(tmp_path / "logs", lines), GENESIS_SEEN, FINAL)
    assert len(problems) == 1 and "node 4 (change, applied index 0)" in problems[0]


def test_a_configuration_never_chosen_is_named(tmp_path: Path) -> None:
    other = Configuration(2, (1, 2, 4))  # epoch 2 as only one node saw it, never applied
    lines = clean_chain()
    lines[3] = [state_line(3, "change", 70, MembershipState(other))]
    _, problems = verdict(write_logs(tmp_path / "logs", lines), GENESIS_SEEN, FINAL)
    assert len(problems) == 1
    assert "used configuration epoch 2 as voters [1, 2, 4]" in problems[0]
    assert "the chosen one is voters [2, 3, 4]" in problems[0]
    unseen = Configuration(3, (2, 3))
    lines[3] = [state_line(3, "change", 70, MembershipState(unseen))]
    _, problems = verdict(write_logs(tmp_path / "logs", lines), GENESIS_SEEN, FINAL)
    assert len(problems) == 1 and "which no node applied from the decided log" in problems[0]


@pytest.mark.parametrize(
    ("notice", "named"),
    [
        (RemovalNotice(1, 3, SLOT_UNKNOWN), "a configuration no node applied"),
        (RemovalNotice(1, 1, 20), "but the chosen configuration has it"),
        (RemovalNotice(1, 2, 50), "from slot 50, but the chosen history has that"),
    ],
    ids=["epoch-never-chosen", "still-a-member", "wrong-first-slot"],
)
def test_a_removal_the_chosen_history_does_not_make_is_named(
    tmp_path: Path, notice: RemovalNotice, named: str
) -> None:
    lines = clean_chain()
    lines[1][-1] = removed_line(1, 3, notice)
    _, problems = verdict(write_logs(tmp_path / "logs", lines), GENESIS_SEEN, FINAL)
    assert len(problems) == 1
    assert (
        f"node 1 stopped on node 3's notice of its removal in epoch {notice.epoch}" in (problems[0])
    )
    assert named in problems[0]


def test_a_removal_with_no_slot_is_held_to_its_epoch_only(tmp_path: Path) -> None:
    lines = clean_chain()
    lines[1][-1] = removed_line(1, 3, RemovalNotice(1, 2, SLOT_UNKNOWN))
    assert verdict(write_logs(tmp_path / "logs", lines), GENESIS_SEEN, FINAL)[1] == []


def test_two_configurations_for_one_epoch_are_named(tmp_path: Path) -> None:
    lines = clean_chain()
    lines[3] = [chosen_line(3, 58, Configuration(2, (1, 3, 4)))]
    _, problems = verdict(write_logs(tmp_path / "logs", lines), GENESIS_SEEN, FINAL)
    assert any("two configurations chosen for epoch 2" in p for p in problems), problems


def test_the_final_membership_must_be_the_last_chosen(tmp_path: Path) -> None:
    logs = write_logs(tmp_path / "logs", clean_chain())
    _, problems = verdict(logs, GENESIS_SEEN, ConfigSeen.of(ADDED))
    assert len(problems) == 1
    assert "applied configuration epoch 2" in problems[0]
    assert "the survivors' final membership is epoch 1" in problems[0]
    _, problems = verdict(logs, GENESIS_SEEN, ConfigSeen(2, (1, 2, 3), ()))
    assert len(problems) == 1 and "final membership is configuration epoch 2" in problems[0]


def test_a_record_that_does_not_decode_is_a_problem_and_other_lines_are_not_records(
    tmp_path: Path,
) -> None:
    assert parse(log_line("node 2: membership epoch 1: voters [1, 2, 3]")) is None
    assert parse(PREFIX + "x" * LINE_CHARS_MAX) is None  # bounded
    lines = clean_chain()
    lines[2].append(PREFIX + '{"type":"state","node_id":2}')
    _, problems = verdict(write_logs(tmp_path / "logs", lines), GENESIS_SEEN, FINAL)
    assert len(problems) == 1 and "node-2.log line 9" in problems[0]


def test_the_records_round_trip() -> None:
    state = MembershipState(ADDED, REPLACED, 58)
    assert parse(log_line(state_line(2, "change", 50, state))) == StateRecord(
        2, "change", 50, ConfigSeen(1, (1, 2, 3), (4,)), FINAL, 58
    )
    notice = RemovalNotice(1, 2, 58)
    assert parse(log_line(removed_line(1, 3, notice))) == RemovedRecord(1, 3, 2, 58)


def test_the_membership_keeps_the_changes_it_took_from_the_log_with_their_first_slot() -> None:
    membership = NodeMembership(GENESIS, alpha_slots=8)
    membership.apply(12, encode_change(MembershipChange(2, ADDED)))
    membership.apply(13, encode_change(MembershipChange(2, REPLACED)))  # ignored: one pending
    assert membership.taken == [(20, ADDED)] and membership.taken_count == 1
    membership.fold(20)
    membership.apply(50, encode_change(MembershipChange(2, REPLACED)))
    assert membership.taken == [(20, ADDED), (58, REPLACED)] and membership.taken_count == 2
    membership.adopt_early(60, Configuration(3, (2, 3)))  # the planted bug takes nothing
    assert membership.taken_count == 2
