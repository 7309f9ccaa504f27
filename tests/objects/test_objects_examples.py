"""PySyncObj's README examples, ported to pypaxos (docs/migrating-from-pysyncobj.md).

They run on ``pypaxos.testing.LocalCluster``: three simulated nodes in this process, with
crashes and restarts of one node at a time.  The same classes will run unchanged on real
processes once the runtime hosts object machines; only how a member is obtained changes.
"""

from __future__ import annotations

import pytest

from pypaxos.objects import CommandRaised, Dict, Group, List, LockManager, command
from pypaxos.testing import LocalCluster, lint


class MyCounter:
    """The README's counter: one replicated field, one command, one local read."""

    counter: int

    def __init__(self) -> None:
        self.counter = 0

    @command
    def inc_counter(self) -> int:
        self.counter += 1
        return self.counter

    @command
    def add_value(self, value: int) -> int:
        self.counter += value
        return self.counter

    def get_counter(self) -> int:
        return self.counter


def test_the_counter_example() -> None:
    cluster = LocalCluster(MyCounter, nodes=3, seed=1)
    first, second = cluster.member(), cluster.member()
    assert first.inc_counter() == 1
    assert second.add_value(10) == 11
    assert first.get_counter() == 11  # a read through the leader: sees every acknowledged call
    assert lint(MyCounter) == []


def test_the_counter_survives_killing_each_node_in_turn() -> None:
    cluster = LocalCluster(MyCounter, nodes=3, seed=2)
    member = cluster.member()
    acknowledged = 0
    for victim in (1, 2, 3):
        cluster.crash(victim)
        for _ in range(5):
            acknowledged = member.inc_counter()
        cluster.restart(victim)
        cluster.run(300)  # the restarted node catches up (from a snapshot if it must)
    assert acknowledged == 15
    assert member.get_counter() == 15
    counters = [cluster.machine(n).object() for n in (1, 2, 3)]
    assert [c.counter for c in counters if isinstance(c, MyCounter)] == [15, 15, 15]


def test_a_majority_down_means_no_answer_not_a_wrong_one() -> None:
    cluster = LocalCluster(MyCounter, nodes=3, seed=3)
    member = cluster.member()
    member.inc_counter()
    cluster.crash(1)
    cluster.crash(2)
    with pytest.raises(TimeoutError):
        member.inc_counter()
    cluster.restart(1)
    cluster.restart(2)
    assert member.inc_counter() in (2, 3)  # 3 if the call that timed out was chosen after all


def test_the_dict_example() -> None:
    cluster = LocalCluster(Dict, nodes=3)
    one, two = cluster.member(), cluster.member()
    one.set("testKey1", "testValue1")
    two.set("testKey2", "testValue2")
    assert one.get("testKey2") == "testValue2"
    assert two.to_dict() == {"testKey1": "testValue1", "testKey2": "testValue2"}


def test_the_lock_example_with_several_objects_in_one_node() -> None:
    def objects() -> Group:
        return Group(locks=LockManager(), data=Dict())

    cluster = LocalCluster(objects, nodes=3)
    locks, data = cluster.member("locks"), cluster.member("data")
    rival = cluster.member("locks")
    token = locks.acquire("testLockName", "worker-1", 75_000)
    assert token > 0
    assert rival.acquire("testLockName", "worker-2", 75_000) == 0
    data.set("guarded", token)  # the fencing token travels with the work it guards
    assert locks.release("testLockName", "worker-1", token) is True
    assert rival.acquire("testLockName", "worker-2", 75_000) > token


def test_errors_come_back_as_exceptions_and_arguments_are_checked_before_sending() -> None:
    cluster = LocalCluster(Dict, nodes=3)
    member = cluster.member()
    with pytest.raises(TypeError):
        member.set("only-a-key")
    with pytest.raises(TypeError):
        member.set("key", object())  # not encodable: refused here, never sent
    with pytest.raises(AttributeError):
        member.no_such_method()
    queue = LocalCluster(List, nodes=3).member()
    with pytest.raises(CommandRaised) as caught:
        queue.pop()  # IndexError on every replica: applied, and raised here
    assert caught.value.type_name == "IndexError"
