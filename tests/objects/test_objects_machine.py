"""``ObjectMachine``: commands and reads, exactly-once sessions, errors as results, snapshots."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pypaxos.objects import (
    REJECT_REASONS,
    Counter,
    DefinitionError,
    Group,
    ObjectMachine,
    Raised,
    Rejected,
    Returned,
    SessionExpired,
    Stale,
    command,
    decode_result,
    encode_call,
    log_time_ms,
)
from pypaxos.objects.bugs import ObjectBug
from pypaxos.objects.codec import REJECT_BAD_ARGUMENTS, REJECT_NOT_A_COMMAND, REJECT_NOT_A_READ
from pypaxos.objects.machine import MachineSnapshot


class Account:
    balance: int
    history: list[int]
    owners: set[str]

    def __init__(self) -> None:
        self.balance = 0
        self.history = []
        self.owners = set()

    @command
    def deposit(self, amount: int) -> int:
        self.balance += amount
        self.history.append(amount)
        return self.balance

    @command
    def withdraw_unchecked(self, amount: int) -> int:
        """Changes state, then raises: the change stays (documented behaviour)."""
        self.balance -= amount
        if self.balance < 0:
            raise ValueError(f"overdrawn by {-self.balance}")
        return self.balance

    @command
    def add_owner(self, name: str) -> None:
        self.owners.add(name)

    @command
    def stamp(self) -> int:
        return log_time_ms()

    def total(self) -> int:
        return self.balance


def apply(
    machine: ObjectMachine, client: int, seq: int, method: str, *args: Any, now_ms: int = 0
) -> object:
    return decode_result(machine.apply(encode_call(client, seq, method, args, now_ms=now_ms)))


def query(machine: ObjectMachine, method: str, *args: Any) -> object:
    return decode_result(machine.query(encode_call(1, 0, method, args)))


def test_a_command_runs_and_returns_its_value() -> None:
    machine = ObjectMachine(Account())
    assert apply(machine, 1, 1, "deposit", 5) == Returned(5)
    assert apply(machine, 2, 1, "deposit", 3) == Returned(8)
    assert query(machine, "total") == Returned(8)
    assert machine.applied == 2


def test_a_retry_gets_the_remembered_result_and_runs_nothing() -> None:
    machine = ObjectMachine(Account())
    apply(machine, 1, 1, "deposit", 5)
    apply(machine, 2, 1, "deposit", 100)
    assert apply(machine, 1, 1, "deposit", 5) == Returned(5)
    assert query(machine, "total") == Returned(105)


def test_an_older_request_is_stale_and_runs_nothing() -> None:
    machine = ObjectMachine(Account())
    apply(machine, 1, 1, "deposit", 5)
    apply(machine, 1, 2, "deposit", 5)
    assert apply(machine, 1, 1, "deposit", 5) == Stale(2)
    assert query(machine, "total") == Returned(10)


def test_sessions_expire_by_applied_count_and_a_late_retry_is_refused() -> None:
    machine = ObjectMachine(Account(), session_ttl_commands=3)
    apply(machine, 1, 1, "deposit", 1)
    for seq in range(1, 4):
        apply(machine, 2, seq, "deposit", 1)
    assert [s.client_id for s in machine.sessions()] == [2]
    assert apply(machine, 1, 2, "deposit", 1) == SessionExpired()
    assert query(machine, "total") == Returned(4)


def test_the_planted_retry_bug_runs_a_retry_again() -> None:
    machine = ObjectMachine(Account(), bugs=frozenset({ObjectBug.RETRY_RUNS_AGAIN}))
    apply(machine, 1, 1, "deposit", 5)
    assert apply(machine, 1, 1, "deposit", 5) == Returned(10)


def test_an_exception_is_a_result_and_the_command_counts_as_applied() -> None:
    machine = ObjectMachine(Account())
    assert apply(machine, 1, 1, "withdraw_unchecked", 3) == Raised("ValueError", "overdrawn by 3")
    assert query(machine, "total") == Returned(-3)  # what it changed before raising stays
    assert apply(machine, 1, 1, "withdraw_unchecked", 3) == Raised("ValueError", "overdrawn by 3")
    assert query(machine, "total") == Returned(-3)  # and the retry did not run it again


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (encode_call(1, 1, "nope"), "unknown method"),
        (encode_call(1, 1, "_private"), "unknown method"),
        (encode_call(1, 1, "total"), REJECT_NOT_A_COMMAND),
        (encode_call(1, 1, "deposit"), REJECT_BAD_ARGUMENTS),
        (encode_call(1, 1, "deposit", ("ten",)), REJECT_BAD_ARGUMENTS),
        (encode_call(1, 1, "deposit", (1, 2)), REJECT_BAD_ARGUMENTS),
        (encode_call(1, 1, "deposit", (1,), target="other"), "unknown target"),
        (b"\x93\x01", "malformed"),
    ],
)
def test_a_bad_call_is_a_fixed_rejection_never_an_exception(command: bytes, reason: str) -> None:
    machine = ObjectMachine(Account())
    result = decode_result(machine.apply(command))
    assert isinstance(result, Rejected) and result.reason == reason
    assert reason in REJECT_REASONS
    assert machine.applied == 1


def test_a_read_refuses_a_command_and_changes_nothing() -> None:
    machine = ObjectMachine(Account())
    result = query(machine, "deposit", 5)
    assert isinstance(result, Rejected) and result.reason == REJECT_NOT_A_READ
    assert machine.applied == 0 and query(machine, "total") == Returned(0)


def test_log_time_is_the_largest_stamp_applied_so_far() -> None:
    machine = ObjectMachine(Account())
    assert apply(machine, 1, 1, "stamp", now_ms=50) == Returned(50)
    assert apply(machine, 1, 2, "stamp", now_ms=20) == Returned(50)  # never goes back
    with pytest.raises(RuntimeError):
        log_time_ms()


def test_arguments_are_converted_to_the_annotated_types() -> None:
    class Shapes:
        seen: list[str]

        def __init__(self) -> None:
            self.seen = []

        @command
        def take(self, corners: tuple[int, int], tags: set[str]) -> str:
            self.seen.append(f"{type(corners).__name__} {type(tags).__name__}")
            return self.seen[-1]

    machine = ObjectMachine(Shapes())
    assert apply(machine, 1, 1, "take", (1, 2), {"a"}) == Returned("tuple set")


def test_snapshot_restores_an_identical_machine() -> None:
    machine = ObjectMachine(Account())
    apply(machine, 1, 1, "deposit", 5)
    apply(machine, 1, 2, "add_owner", "zoe")
    apply(machine, 2, 1, "add_owner", "al")
    other = ObjectMachine(Account())
    other.restore(machine.snapshot())
    assert other.snapshot() == machine.snapshot()
    restored = other.object()
    assert isinstance(restored, Account)
    assert restored.owners == {"zoe", "al"} and restored.history == [5]
    assert apply(other, 1, 2, "add_owner", "zoe") == Returned(None)  # the session came along
    assert other.applied == machine.applied + 1


def test_the_planted_snapshot_bug_loses_the_sessions() -> None:
    machine = ObjectMachine(Account(), bugs=frozenset({ObjectBug.SNAPSHOT_DROPS_SESSIONS}))
    apply(machine, 1, 1, "deposit", 5)
    other = ObjectMachine(Account())
    other.restore(machine.snapshot())
    assert apply(other, 1, 1, "deposit", 5) == Returned(10)


@pytest.mark.parametrize(
    "data",
    [
        b"junk",
        msgspec.msgpack.encode(MachineSnapshot(9, 0, 10, 0, (), {"": b"\x80"})),
        msgspec.msgpack.encode(MachineSnapshot(1, 0, 10, 0, (), {"other": b"\x80"})),
        msgspec.msgpack.encode(MachineSnapshot(1, 0, 10, 0, (), {"": b"\x80"})),
        msgspec.msgpack.encode(MachineSnapshot(1, 0, 0, 0, (), {"": b"\x80"})),
    ],
)
def test_a_malformed_snapshot_is_refused_with_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        ObjectMachine(Account()).restore(data)


def test_undeclared_state_is_refused_at_once_and_at_snapshot() -> None:
    class Sloppy:
        count: int

        def __init__(self) -> None:
            self.count = 0
            self.cache = {}  # not declared: a snapshot would lose it

    with pytest.raises(DefinitionError, match="cache"):
        ObjectMachine(Sloppy())

    class Late:
        count: int

        def __init__(self) -> None:
            self.count = 0

        @command
        def remember(self) -> None:
            self.extra = 1

    machine = ObjectMachine(Late())
    machine.apply(encode_call(1, 1, "remember"))
    with pytest.raises(DefinitionError, match="extra"):
        machine.snapshot()


def test_snapshot_hooks_replace_the_declared_fields() -> None:
    class Hooked:
        def __init__(self) -> None:
            self._items: dict[str, int] = {}

        @command
        def put(self, key: str, value: int) -> None:
            self._items[key] = value

        def get(self, key: str) -> int | None:
            return self._items.get(key)

        def snapshot_state(self) -> list[tuple[str, int]]:
            return list(self._items.items())

        def restore_state(self, state: list[tuple[str, int]]) -> None:
            self._items = dict(state)

    machine = ObjectMachine(Hooked())
    apply(machine, 1, 1, "put", "a", 1)
    other = ObjectMachine(Hooked())
    other.restore(machine.snapshot())
    assert query(other, "get", "a") == Returned(1)

    class HalfHooked:
        def snapshot_state(self) -> int:
            return 0

    with pytest.raises(DefinitionError, match="only one"):
        ObjectMachine(HalfHooked())


def test_definition_errors_for_classes_that_cannot_be_replicated() -> None:
    with pytest.raises(DefinitionError):
        ObjectMachine(Account)  # the class, not an instance

    with pytest.raises(DefinitionError):

        class Private:
            @command
            def _hidden(self) -> None: ...

    class Unsupported:
        @command
        def take(self, value: str | bytes) -> None: ...

    with pytest.raises(DefinitionError, match="take"):
        ObjectMachine(Unsupported())


def test_a_group_routes_calls_by_object_name_and_shares_sessions() -> None:
    group = Group(a=Counter(), b=Counter(10))
    assert decode_result(group.apply(encode_call(1, 1, "add", (1,), target="a"))) == Returned(1)
    assert decode_result(group.apply(encode_call(1, 2, "add", (1,), target="b"))) == Returned(11)
    # one session per client across the objects: seq 1 is older than seq 2, wherever it went
    assert decode_result(group.apply(encode_call(1, 1, "add", (1,), target="b"))) == Stale(2)
    result = decode_result(group.apply(encode_call(1, 3, "add", (1,))))
    assert isinstance(result, Rejected) and result.reason == "unknown target"
    other = Group(a=Counter(), b=Counter())
    other.restore(group.snapshot())
    assert other.snapshot() == group.snapshot()
    with pytest.raises(DefinitionError):
        Group()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_apply_never_raises_whatever_the_bytes(data: bytes) -> None:
    machine = ObjectMachine(Account())
    decode_result(machine.apply(data))
    decode_result(machine.query(data))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["deposit", "withdraw_unchecked", "add_owner", "total", "nope"]),
            st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3)), max_size=2),
        ),
        max_size=20,
    )
)
def test_equal_histories_give_byte_identical_snapshots(calls: list[tuple[str, list[Any]]]) -> None:
    first, second = ObjectMachine(Account()), ObjectMachine(Account())
    for seq, (method, args) in enumerate(calls, start=1):
        command_bytes = encode_call(1, seq, method, args)
        assert first.apply(command_bytes) == second.apply(command_bytes)
    assert first.snapshot() == second.snapshot()
    third = ObjectMachine(Account())
    third.restore(first.snapshot())
    assert third.snapshot() == first.snapshot()


def test_a_command_cannot_be_a_coroutine_or_a_generator() -> None:
    with pytest.raises(DefinitionError):

        class Waits:
            @command
            async def later(self) -> None: ...

    with pytest.raises(DefinitionError):

        class Yields:
            @command
            def many(self) -> Any:
                yield 1


def test_a_snapshot_of_other_fields_is_refused() -> None:
    class Before:
        a: int

        def __init__(self) -> None:
            self.a = 1

    class After:
        a: int
        b: int

        def __init__(self) -> None:
            self.a = 1
            self.b = 2

    with pytest.raises(ValueError, match="fields"):
        ObjectMachine(After()).restore(ObjectMachine(Before()).snapshot())


def test_overriding_a_command_keeps_it_a_command_or_says_so() -> None:
    class Louder(Counter):
        @command
        def add(self, amount: int = 1) -> int:
            return super().add(amount * 2)

    machine = ObjectMachine(Louder())
    assert apply(machine, 1, 1, "add", 2) == Returned(4)

    class Forgetful(Counter):
        def add(self, amount: int = 1) -> int:
            return super().add(amount)

    with pytest.raises(DefinitionError, match="overrides the command"):
        ObjectMachine(Forgetful())


def test_a_group_restore_changes_no_object_unless_every_state_fits() -> None:
    source = Group(a=Counter(5), b=Counter(6))
    snap = msgspec.msgpack.decode(source.snapshot(), type=MachineSnapshot)
    broken = msgspec.structs.replace(
        snap, objects={"a": snap.objects["a"], "b": msgspec.msgpack.encode({"value": "x"})}
    )
    target = Group(a=Counter(1), b=Counter(2))
    before = target.snapshot()
    with pytest.raises(ValueError):
        target.restore(msgspec.msgpack.encode(broken))
    assert target.snapshot() == before


def test_a_call_that_does_not_run_does_not_move_the_clock() -> None:
    machine = ObjectMachine(Account(), session_ttl_commands=2)
    assert apply(machine, 1, 1, "stamp", now_ms=10) == Returned(10)
    assert apply(machine, 1, 1, "stamp", now_ms=99) == Returned(10)  # a retry: from memory
    apply(machine, 1, 2, "stamp", now_ms=11)
    assert apply(machine, 1, 1, "stamp", now_ms=500) == Stale(2)
    assert apply(machine, 7, 3, "stamp", now_ms=600) == SessionExpired()
    assert machine.now_ms == 11
    assert apply(machine, 2, 1, "stamp", now_ms=12) == Returned(12)


def test_a_client_refused_as_expired_stays_refused() -> None:
    """seq 2 arrives first (seq 1 was delayed): refused, and the client moves on; the late
    seq 1, then a late copy of seq 2, must not run as if the refusal never happened."""
    machine = ObjectMachine(Account())
    assert apply(machine, 1, 2, "deposit", 10) == SessionExpired()
    assert apply(machine, 1, 1, "deposit", 1) == SessionExpired()
    assert apply(machine, 1, 2, "deposit", 10) == SessionExpired()
    assert query(machine, "total") == Returned(0)
    assert apply(machine, 2, 1, "deposit", 5) == Returned(5)  # the client's new session


def test_the_planted_reopen_bug_runs_a_refused_request() -> None:
    machine = ObjectMachine(Account(), bugs=frozenset({ObjectBug.EXPIRED_SESSION_REOPENS}))
    assert apply(machine, 1, 2, "deposit", 10) == SessionExpired()
    apply(machine, 1, 1, "deposit", 1)
    assert apply(machine, 1, 2, "deposit", 10) == Returned(11)


def test_a_closed_session_expires_like_any_other() -> None:
    machine = ObjectMachine(Account(), session_ttl_commands=2)
    apply(machine, 1, 5, "deposit", 1)
    assert [s.closed for s in machine.sessions()] == [True]
    apply(machine, 2, 1, "deposit", 1)
    apply(machine, 2, 2, "deposit", 1)
    assert [s.client_id for s in machine.sessions()] == [2]
