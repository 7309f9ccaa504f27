"""The batteries, one call at a time through an ``ObjectMachine`` (as every replica runs them)."""

from __future__ import annotations

from typing import Any

import pytest

from pypaxos.objects import (
    Counter,
    Dict,
    List,
    LockManager,
    ObjectMachine,
    PriorityQueue,
    Queue,
    Raised,
    Returned,
    Set,
    decode_result,
    encode_call,
)
from pypaxos.testing import lint


class Driver:
    """Calls on one machine, as one client, with an explicit log clock."""

    def __init__(self, obj: object) -> None:
        self.machine = ObjectMachine(obj)
        self.seq = 0
        self.now_ms = 0

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        spec = self.machine.methods().methods[method]
        data = encode_call(1, 0, method, args, kwargs, now_ms=self.now_ms)
        if spec.is_command:
            self.seq += 1
            data = encode_call(1, self.seq, method, args, kwargs, now_ms=self.now_ms)
            result = decode_result(self.machine.apply(data))
        else:
            result = decode_result(self.machine.query(data))
        if isinstance(result, Returned):
            return result.value
        return result

    def survives_a_snapshot(self) -> None:
        """A replica restored from this one's snapshot holds the very same state."""
        fresh = ObjectMachine(type(self.machine.object())())
        fresh.restore(self.machine.snapshot())
        assert fresh.snapshot() == self.machine.snapshot()


def test_counter() -> None:
    call = Driver(Counter())
    assert [call("add"), call("add", 5), call("add", amount=-2), call("get")] == [1, 6, 4, 4]
    assert call("set", 10) == 10 and call("get") == 10
    call.survives_a_snapshot()


def test_dict_keeps_insertion_order() -> None:
    call = Driver(Dict())
    call("set", "b", 1)
    call("set", "a", [1, 2])
    call("set", 3, {"nested": True})
    assert call("keys") == ["b", "a", 3]
    assert call("get", "a") == [1, 2] and call("get", "zz", "none") == "none"
    assert call("set_default", "b", 9) == 1 and call("set_default", "c", 9) == 9
    assert call("pop", "b") == 1 and call("pop", "b", "gone") == "gone"
    call("update", {"d": 4})
    assert call("to_dict") == {"a": [1, 2], 3: {"nested": True}, "c": 9, "d": 4}
    call.survives_a_snapshot()
    call("clear")
    assert call("size") == 0


def test_list() -> None:
    call = Driver(List())
    assert call("append", "x") == 1 and call("extend", ["y", "z"]) == 3
    call("insert", 0, "w")
    call("set", 1, "X")
    assert call("to_list") == ["w", "X", "y", "z"]
    assert call("pop") == "z" and call("pop", 0) == "w" and call("get", 1) == "y"
    assert isinstance(call("set", 9, "no"), Raised)  # IndexError, nothing changed
    assert call("to_list") == ["X", "y"]
    call.survives_a_snapshot()


def test_set_iterates_in_first_insertion_order() -> None:
    call = Driver(Set())
    names = [f"member-{i}" for i in (5, 3, 9, 1, 7)]
    assert [call("add", n) for n in names] == [True] * 5
    assert call("add", names[0]) is False
    assert call("to_list") == names
    assert call("discard", "member-9") is True and call("discard", "member-9") is False
    assert call("pop") == "member-5" and call("contains", "member-3") is True
    call.survives_a_snapshot()
    call("clear")
    result = call("pop")
    assert isinstance(result, Raised) and result.type_name == "KeyError"


def test_queue_is_fifo_and_bounded() -> None:
    call = Driver(Queue(max_size=2))
    assert [call("put", 1), call("put", 2), call("put", 3)] == [True, True, False]
    assert call("peek") == 1 and call("size") == 2
    assert [call("get"), call("get"), call("get", "empty")] == [1, 2, "empty"]
    call.survives_a_snapshot()


def test_priority_queue_is_lowest_first_and_fifo_among_equals() -> None:
    call = Driver(PriorityQueue())
    call("put", "late", 5)
    call("put", "first", 1)
    call("put", "second", 1)
    call("put", {"unorderable": "item"}, priority=1)  # never compared: ties break by order
    assert call("peek") == "first"
    call.survives_a_snapshot()
    got = [call("get") for _ in range(4)]
    assert got == ["first", "second", {"unorderable": "item"}, "late"]
    assert call("get") is None


def test_lock_manager_timeouts_and_fencing_tokens() -> None:
    call = Driver(LockManager())
    call.now_ms = 1_000
    first = call("acquire", "db", "alice", 100)
    assert first > 0 and call("holder", "db") == "alice"
    assert call("acquire", "db", "bob", 100) == 0  # held by another
    call.now_ms = 1_050
    assert call("acquire", "db", "alice", 100) == first  # the holder extends, same token
    call.now_ms = 1_149
    assert call("is_locked", "db") is True
    call.now_ms = 1_150  # 1_050 + 100: lapsed
    assert call("is_locked", "db") is False
    second = call("acquire", "db", "bob", 100)
    assert second > first  # the fencing token grows with every acquisition
    assert call("release", "db", "alice", first) is False  # an old holder cannot release
    assert call("release", "db", "bob", second) is True and call("holder", "db") is None
    third = call("acquire", "db", "carol", 10)
    assert third > second
    bad = call("acquire", "db", "carol", 0)
    assert isinstance(bad, Raised) and bad.type_name == "ValueError"
    call.survives_a_snapshot()


def test_lock_manager_forgets_lapsed_locks_as_it_goes() -> None:
    call = Driver(LockManager())
    for i in range(10):
        call("acquire", f"lock-{i}", "x", 10)
    call.now_ms = 100
    for _ in range(5):
        call("acquire", "fresh", "y", 1_000)
    locks = call.machine.object()
    assert isinstance(locks, LockManager) and set(locks.locks) == {"fresh"}


def test_lock_manager_clock_never_goes_back() -> None:
    call = Driver(LockManager())
    call.now_ms = 500
    call("acquire", "a", "x", 100)
    call.now_ms = 10  # a call stamped by a slow proposer: the log's clock stays at 500
    assert call("acquire", "a", "y", 100) == 0


@pytest.mark.parametrize("battery", [Counter, Dict, List, Set, Queue, PriorityQueue, LockManager])
def test_the_batteries_pass_the_linter(battery: type) -> None:
    assert lint(battery) == []
