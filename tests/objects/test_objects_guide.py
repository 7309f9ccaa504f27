"""The guide's examples run as written."""

from __future__ import annotations

from objects_guide import Inventory, workload

from pypaxos.cli.main import main
from pypaxos.objects import Counter, Group, LockManager
from pypaxos.testing import LocalCluster, check, lint


def test_the_inventory_example() -> None:
    cluster = LocalCluster(Inventory, nodes=3)
    shop = cluster.member()
    assert shop.restock("apple", 3) == 3
    assert shop.reserve("apple") is True
    assert shop.available("apple") == 2
    assert lint(Inventory) == []


def test_the_inventory_passes_the_checks() -> None:
    report = check(Inventory, workload, seeds=range(3))
    assert report.passed, report.summary()


def test_the_group_example() -> None:
    def machine() -> Group:
        return Group(hits=Counter(), locks=LockManager())

    cluster = LocalCluster(machine)
    hits, locks = cluster.member("hits"), cluster.member("locks")
    assert locks.acquire("report", "worker-7", 30_000) == 1
    assert hits.add() == 1


def test_the_guide_commands() -> None:
    argv = ["check-machine", "objects_guide:Inventory", "--workload", "objects_guide:workload"]
    assert main([*argv, "--seeds", "2", "--no-replay"]) == 0
    assert main(["lint-machine", "objects_guide:Inventory"]) == 0
