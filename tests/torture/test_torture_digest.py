"""The torture verdict's comparison of the replicas' state digests (``digest_agreement``)."""

from __future__ import annotations

import asyncio
from typing import Any

from pypaxos.cli.cluster_status import digests_disagree
from pypaxos.cluster.local import NodeStatus
from pypaxos.torture.run import Verdict, digest_agreement


def _statuses(*rounds: list[tuple[int, str | None, int | None]]) -> Any:
    """A status function answering one round per call (the last one again after that)."""
    answers = [
        [{"id": i, "state_digest": d, "state_digest_slot": s} for i, d, s in nodes]
        for nodes in rounds
    ]

    async def status() -> list[dict[str, Any]]:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return status


def _verdict(*rounds: list[tuple[int, str | None, int | None]]) -> Verdict:
    verdict = Verdict(replicas_agree=True)
    asyncio.run(digest_agreement(_statuses(*rounds), verdict))
    return verdict


def test_equal_digests_at_one_slot_agree() -> None:
    verdict = _verdict([(1, "aa", 9), (2, "aa", 9), (3, "aa", 9)])
    assert verdict.replicas_agree and not verdict.problems
    assert (verdict.digest_slot, verdict.digest_nodes) == (9, 3)


def test_a_replica_with_another_digest_at_the_same_slot_is_a_problem() -> None:
    verdict = _verdict([(1, "aa", 9), (2, "bb", 9), (3, "aa", 9)])
    assert not verdict.replicas_agree
    assert verdict.problems == ["state digests differ at applied index 9: aa on [1, 3]; bb on [2]"]


def test_a_lagging_replica_is_waited_for_then_compared() -> None:
    verdict = _verdict(
        [(1, "aa", 9), (2, "aa", 9), (3, "old", 8)],
        [(1, "aa", 9), (2, "aa", 9), (3, "bb", 9)],
    )
    assert not verdict.replicas_agree and "applied index 9" in verdict.problems[0]


def test_without_digests_the_read_back_check_stands_alone() -> None:
    verdict = _verdict([(1, None, None), (2, None, None)])
    assert verdict.replicas_agree and verdict.digest_slot is None and not verdict.problems


def _node(node_id: int, digest: str, slot: int) -> NodeStatus:
    return NodeStatus(node_id, None, "follower", "", None, 1, 0, 1, digest, slot)


def test_status_marks_the_slots_where_digests_differ() -> None:
    nodes = [_node(1, "aa", 5), _node(2, "bb", 5), _node(3, "cc", 6)]
    assert digests_disagree(nodes) == {5}
    assert digests_disagree([_node(1, "aa", 5), _node(2, "aa", 5)]) == set()
