"""Exactly-once requests, session expiry, snapshots and determinism."""

from __future__ import annotations

import msgspec
import pytest

from pypaxos.kv import (
    NOOP,
    Command,
    Get,
    Incr,
    Integer,
    KvBug,
    KVStateMachine,
    Ok,
    Request,
    Result,
    SessionExpired,
    Set,
    Stale,
    Value,
    decode_result,
    encode_request,
)


def send(machine: KVStateMachine, client_id: int, seq: int, op: Command) -> Result:
    return decode_result(machine.apply(encode_request(Request(client_id, seq, op))))


def test_retried_incr_applies_once_and_returns_the_same_result() -> None:
    machine = KVStateMachine()
    first = machine.apply(encode_request(Request(7, 1, Incr(b"n"))))
    retry = machine.apply(encode_request(Request(7, 1, Incr(b"n"))))
    assert retry == first
    assert decode_result(first) == Integer(1)
    assert machine.get(b"n") == b"1"
    assert send(machine, 7, 2, Incr(b"n")) == Integer(2)
    assert machine.get(b"n") == b"2"


def test_retry_is_recognised_by_seq_even_if_the_op_differs() -> None:
    # The client promised one outstanding request, so (client, seq) alone names it.
    machine = KVStateMachine()
    send(machine, 1, 1, Set(b"k", b"a"))
    assert send(machine, 1, 1, Set(b"k", b"b")) == send(machine, 1, 1, Get(b"k"))
    assert machine.get(b"k") == b"a"


def test_retry_after_other_clients_still_answers_from_the_cache() -> None:
    machine = KVStateMachine()
    assert send(machine, 1, 1, Incr(b"n")) == Integer(1)
    assert send(machine, 2, 1, Incr(b"n")) == Integer(2)
    assert send(machine, 3, 1, Incr(b"n")) == Integer(3)
    assert send(machine, 1, 1, Incr(b"n")) == Integer(1)
    assert machine.get(b"n") == b"3"


def test_older_seq_is_stale_and_not_applied() -> None:
    machine = KVStateMachine()
    send(machine, 1, 1, Set(b"k", b"a"))
    send(machine, 1, 2, Set(b"k", b"b"))
    assert send(machine, 1, 1, Set(b"k", b"a")) == Stale(last_seq=2)
    assert machine.get(b"k") == b"b"


def test_seq_may_skip_ahead() -> None:
    machine = KVStateMachine()
    send(machine, 1, 1, Incr(b"n"))
    assert send(machine, 1, 5, Incr(b"n")) == Integer(2)
    assert send(machine, 1, 3, Incr(b"n")) == Stale(last_seq=5)


def test_unknown_client_must_start_at_seq_one() -> None:
    machine = KVStateMachine()
    assert send(machine, 9, 2, Incr(b"n")) == SessionExpired()
    assert send(machine, 9, 0, Incr(b"n")) == SessionExpired()
    assert machine.get(b"n") is None
    assert [(s.client_id, s.closed) for s in machine.sessions()] == [(9, True)]  # a tombstone


def test_a_refused_client_id_stays_refused_so_a_late_copy_cannot_run() -> None:
    """A client gives up on seq 1 and sends seq 2, refused (no session yet); it moves to a new
    id.  A late seq 1, then a late copy of seq 2, must not run as if the refusal never was."""
    machine = KVStateMachine()
    assert send(machine, 1, 2, Set(b"k", b"two")) == SessionExpired()
    assert send(machine, 1, 1, Set(b"k", b"one")) == SessionExpired()
    assert send(machine, 1, 2, Set(b"k", b"two")) == SessionExpired()
    assert machine.get(b"k") is None
    assert machine.last_seq(1) is None  # a server must send the client's reads to the log
    assert send(machine, 2, 1, Set(b"k", b"new")) == Ok()  # the client's new session


def test_the_planted_reopen_bug_runs_a_refused_request() -> None:
    machine = KVStateMachine(bugs=frozenset({KvBug.EXPIRED_SESSION_REOPENS}))
    assert send(machine, 1, 2, Set(b"k", b"two")) == SessionExpired()
    send(machine, 1, 1, Set(b"k", b"one"))
    assert send(machine, 1, 2, Set(b"k", b"two")) == Ok()
    assert machine.get(b"k") == b"two"


def test_a_tombstone_expires_like_a_session_and_survives_a_snapshot() -> None:
    machine = KVStateMachine(session_ttl_commands=3)
    send(machine, 1, 5, Incr(b"n"))
    copy = KVStateMachine()
    copy.restore(machine.snapshot())
    assert [(s.client_id, s.closed) for s in copy.sessions()] == [(1, True)]
    assert send(copy, 1, 1, Incr(b"n")) == SessionExpired()
    for _ in range(3):
        machine.apply(NOOP)
    assert machine.sessions() == ()  # expired: the table stays bounded


def test_a_tombstone_is_a_session_entry_with_seq_zero_so_the_format_is_unchanged() -> None:
    machine = KVStateMachine()
    send(machine, 1, 1, Incr(b"n"))
    send(machine, 2, 3, Incr(b"n"))
    encoded = [msgspec.msgpack.decode(msgspec.msgpack.encode(s)) for s in machine.sessions()]
    assert [entry[:3] for entry in encoded] == [[1, 1, 1], [2, 0, 2]]


def test_idle_session_expires_by_applied_index_and_late_retry_is_refused() -> None:
    machine = KVStateMachine(session_ttl_commands=3)
    send(machine, 1, 1, Incr(b"n"))
    send(machine, 1, 2, Incr(b"n"))  # applied index 2
    machine.apply(NOOP)
    machine.apply(NOOP)
    assert [s.client_id for s in machine.sessions()] == [1]  # 2 commands idle: still kept
    machine.apply(NOOP)  # the third: gone
    assert machine.sessions() == ()
    assert send(machine, 1, 2, Incr(b"n")) == SessionExpired()
    assert machine.get(b"n") == b"2"


def test_a_retry_keeps_its_session_alive() -> None:
    machine = KVStateMachine(session_ttl_commands=3)
    send(machine, 1, 1, Incr(b"n"))
    for _ in range(5):
        machine.apply(NOOP)
        machine.apply(NOOP)
        assert send(machine, 1, 1, Incr(b"n")) == Integer(1)
    assert machine.get(b"n") == b"1"


def test_dedup_table_is_bounded_by_the_ttl() -> None:
    machine = KVStateMachine(session_ttl_commands=10)
    for client in range(1, 200):
        send(machine, client, 1, Incr(b"n"))
        assert len(machine.sessions()) <= 10
    assert [s.client_id for s in machine.sessions()] == list(range(190, 200))


def busy_machine() -> KVStateMachine:
    machine = KVStateMachine(session_ttl_commands=50)
    send(machine, 1, 1, Set(b"b", b"2"))
    send(machine, 2, 1, Set(b"a", b"1"))
    send(machine, 1, 2, Incr(b"counter"))
    send(machine, 3, 1, Get(b"a"))
    send(machine, 2, 2, Incr(b"counter"))
    return machine


def test_snapshot_restore_round_trip_keeps_data_and_dedup() -> None:
    original = busy_machine()
    restored = KVStateMachine()  # a different TTL: the snapshot's wins
    restored.restore(original.snapshot())
    assert restored.snapshot() == original.snapshot()
    assert restored.session_ttl_commands == 50
    assert restored.applied == original.applied
    assert restored.sessions() == original.sessions()
    # a retry answered from the restored dedup table, not applied again
    probe = KVStateMachine()
    probe.restore(original.snapshot())
    assert send(probe, 1, 2, Incr(b"counter")) == Integer(1)
    assert probe.get(b"counter") == b"2"
    assert send(probe, 1, 1, Get(b"a")) == Stale(last_seq=2)
    # and the original and its copy continue identically
    for machine in (original, restored):
        assert send(machine, 1, 2, Incr(b"counter")) == Integer(1)
        assert send(machine, 4, 1, Incr(b"counter")) == Integer(3)
    assert restored.snapshot() == original.snapshot()


def test_a_restored_machine_keeps_the_write_order_so_equal_histories_stay_equal() -> None:
    """Snapshots keep keys in first-write order (not sorted: see ``SNAPSHOT_VERSION``), so a
    replica that installed a snapshot and one that applied every command agree, byte for byte,
    after the same further commands (what the simulator's replica check compares)."""
    one = KVStateMachine()
    for seq, key in enumerate((b"y", b"x", b"z"), start=1):
        send(one, 1, seq, Set(key, key))
    restored = KVStateMachine()
    restored.restore(one.snapshot())
    for machine in (one, restored):
        send(machine, 2, 1, Set(b"a", b"1"))
        send(machine, 2, 2, Set(b"x", b"2"))
    assert restored.snapshot() == one.snapshot()
    # And a restored machine answers reads from what it restored.
    other = KVStateMachine()
    other.restore(one.snapshot())
    assert other.get(b"x") == b"2" and other.get(b"a") == b"1" and other.get(b"y") == b"y"


def test_a_version_1_snapshot_is_still_read() -> None:
    from pypaxos.kv.state_machine import _SnapshotV1

    old = msgspec.msgpack.encode(_SnapshotV1(1, 7, 1000, ((b"a", b"1"), (b"b", b"2")), ()))
    machine = KVStateMachine()
    machine.restore(old)
    assert machine.get(b"a") == b"1" and machine.get(b"b") == b"2"
    assert machine.snapshot() != old  # written back as version 2
    again = KVStateMachine()
    again.restore(machine.snapshot())
    assert again.snapshot() == machine.snapshot()


def test_same_command_bytes_give_identical_results_and_snapshots() -> None:
    commands = [
        encode_request(Request(c % 3 + 1, c // 3 + 1, Incr(b"k%d" % (c % 2)))) for c in range(30)
    ]
    commands[10:10] = [b"junk", NOOP, commands[4], b""]
    one, two = KVStateMachine(session_ttl_commands=5), KVStateMachine(session_ttl_commands=5)
    assert [one.apply(c) for c in commands] == [two.apply(c) for c in commands]
    assert one.snapshot() == two.snapshot()


@pytest.mark.parametrize("junk", [b"", b"junk", NOOP])
def test_restore_rejects_a_malformed_snapshot_and_keeps_the_state(junk: bytes) -> None:
    machine = busy_machine()
    before = machine.snapshot()
    with pytest.raises(ValueError, match="snapshot"):
        machine.restore(junk)
    assert machine.snapshot() == before
    assert send(machine, 2, 3, Get(b"a")) == Value(b"1")
