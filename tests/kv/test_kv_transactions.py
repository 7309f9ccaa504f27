"""``Exec`` and ``Watch`` in the state machine: atomic transactions and exact optimistic locks.

A watcher is marked by the very modification of a watched key (no ABA), by any client and by
every kind of write (delete, rename, expire, persist, flush); reclaiming an already expired key
is not a modification, a key expiring after ``WATCH`` is.  The table is bounded, goes with the
session, and is in the snapshot.  The planted bug ``WATCH_MISSES_WRITES`` is caught here.
"""

from __future__ import annotations

import pytest

from pypaxos.kv import (
    Command,
    Delete,
    Error,
    FlushAll,
    Get,
    Incr,
    Integer,
    KvBug,
    KVStateMachine,
    Ok,
    Request,
    Result,
    Set,
    SetWith,
    Value,
    decode_answer,
    encode_request,
)
from pypaxos.kv.commands import SET_NX, Aborted, Exec, Expire, Persist, Rename, Replies, Watch
from pypaxos.kv.transactions import WATCH_KEYS_MAX, WATCH_KEYS_PER_CLIENT_MAX

T0 = 1_700_000_000_000


class Clients:
    """Several clients of one machine, each with its own session."""

    def __init__(self, machine: KVStateMachine | None = None) -> None:
        self.machine = machine or KVStateMachine()
        self.seqs: dict[int, int] = {}

    def run(self, client: int, op: Command, now_ms: int = T0) -> Result:
        self.seqs[client] = self.seqs.get(client, 0) + 1
        request = Request(client, self.seqs[client], op, now_ms)
        answer = decode_answer(self.machine.apply(encode_request(request)))
        assert not isinstance(answer, tuple)
        return answer  # type: ignore[return-value]


def watched_exec(c: Clients, interference: Command | None, by: int = 2) -> Result:
    """Client 1 watches ``k``, ``by`` runs ``interference``, client 1 runs ``INCR n`` in EXEC."""
    assert c.run(1, Watch((b"k",), reset=True)) == Ok()
    if interference is not None:
        c.run(by, interference)
    return c.run(1, Exec((Incr(b"n"),), watching=True))


def test_exec_runs_its_ops_in_order_with_each_ones_result() -> None:
    c = Clients()
    c.run(1, Set(b"s", b"text"))
    result = c.run(1, Exec((Set(b"a", b"1"), Incr(b"s"), Incr(b"a"), Get(b"a"))))
    assert result == Replies(
        (Ok(), Error("value is not an integer or out of range"), Integer(2), Value(b"2"))
    )
    assert c.run(1, Exec((Exec(()),))) == Replies((Error("transactions cannot be nested"),))


def test_an_unmodified_watch_lets_exec_run() -> None:
    c = Clients()
    c.run(1, Set(b"k", b"v"))
    assert watched_exec(c, Get(b"k")) == Replies((Integer(1),))
    assert watched_exec(c, SetWith(b"k", b"w", SET_NX)) == Replies((Integer(2),))  # no write
    assert watched_exec(c, Delete(b"absent")) == Replies((Integer(3),))


@pytest.mark.parametrize(
    "write",
    [
        Set(b"k", b"v"),  # the same value: still a modification (no ABA)
        Incr(b"k"),
        Delete(b"k"),
        Rename(b"k", b"other"),
        Rename(b"other", b"k"),
        Expire(b"k", 100_000),
        Persist(b"k"),
        FlushAll(),
    ],
    ids=lambda op: type(op).__name__,
)
def test_any_write_to_a_watched_key_aborts_exec(write: Command) -> None:
    c = Clients()
    c.run(1, Set(b"k", b"1"))
    c.run(1, Set(b"other", b"2"))
    c.run(1, Expire(b"k", 500_000))  # so that PERSIST changes something
    assert watched_exec(c, write) == Aborted()
    assert c.machine.get(b"n") is None  # nothing ran
    assert watched_exec(c, None) == Replies((Integer(1),))  # the watch ended with EXEC


def test_own_writes_abort_too_and_a_new_watch_starts_clean() -> None:
    c = Clients()
    assert watched_exec(c, Set(b"k", b"x"), by=1) == Aborted()
    c.run(1, Watch((b"k",)))
    c.run(1, Set(b"k", b"y"))
    # The connection unwatched (DISCARD/UNWATCH are local): the next WATCH resets.
    assert c.run(1, Watch((b"other",), reset=True)) == Ok()
    assert c.run(1, Exec((Get(b"k"),), watching=True)) == Replies((Value(b"y"),))


def test_expiry_after_watch_aborts_but_reclaiming_an_expired_key_does_not() -> None:
    c = Clients()
    c.run(1, SetWith(b"k", b"v", ttl_ms=1_000), T0)
    c.run(1, Watch((b"k",), reset=True), T0 + 10)  # live when watched
    assert c.run(1, Exec((Incr(b"n"),), True), T0 + 2_000) == Aborted()
    c.run(1, SetWith(b"j", b"v", ttl_ms=1_000), T0)
    c.run(1, Watch((b"j",), reset=True), T0 + 5_000)  # already expired when watched
    c.run(2, Get(b"j"), T0 + 5_000)  # reclaims it
    assert c.run(1, Exec((Incr(b"n"),), True), T0 + 6_000) == Replies((Integer(1),))


def test_a_watch_without_its_session_aborts() -> None:
    c = Clients(KVStateMachine(session_ttl_commands=3))
    c.run(1, Watch((b"k",), reset=True))
    for _ in range(3):
        c.run(2, Get(b"x"))  # client 1's session expires, and its watch with it
    c.seqs[1] = 0  # it starts a new session under the same id (as a new connection would)
    assert c.run(1, Exec((Incr(b"n"),), True)) == Aborted()


def test_watch_bounds() -> None:
    c = Clients()
    too_many = tuple(b"k%d" % i for i in range(WATCH_KEYS_PER_CLIENT_MAX + 1))
    assert isinstance(c.run(1, Watch(too_many, reset=True)), Error)
    assert c.machine._programs.watches.keys_total == 0
    clients = WATCH_KEYS_MAX // WATCH_KEYS_PER_CLIENT_MAX + 1
    for client in range(1, clients + 1):  # one more client than fits: the first is evicted
        keys = tuple(b"c%d-%d" % (client, i) for i in range(WATCH_KEYS_PER_CLIENT_MAX))
        assert c.run(client, Watch(keys, reset=True)) == Ok()
    assert c.machine._programs.watches.keys_total <= WATCH_KEYS_MAX
    assert c.run(1, Exec((), True)) == Aborted()
    assert c.run(2, Exec((), True)) == Replies(())


def test_the_watch_table_is_in_the_snapshot_and_restores_the_same_answers() -> None:
    c = Clients()
    c.run(1, Set(b"k", b"v"))
    c.run(1, Watch((b"k", b"j"), reset=True))
    c.run(2, Watch((b"k",), reset=True))
    c.run(3, Watch((b"j",), reset=True))
    c.run(3, Set(b"j", b"x"))  # clients 1 and 3 are dirty now
    copy = KVStateMachine()
    copy.restore(c.machine.snapshot())
    twin = Clients(copy)
    twin.seqs = dict(c.seqs)
    for client in (1, 2, 3):
        ours, theirs = (
            c.run(client, Exec((Incr(b"n"),), True)),
            twin.run(client, Exec((Incr(b"n"),), True)),
        )
        assert ours == theirs
    assert c.machine.get(b"n") == copy.get(b"n") == b"1"  # only client 2's ran
    assert c.machine.snapshot() == copy.snapshot()


def test_planted_bug_watch_misses_writes_is_caught() -> None:
    c = Clients(KVStateMachine(bugs=frozenset({KvBug.WATCH_MISSES_WRITES})))
    assert watched_exec(c, Set(b"k", b"changed")) != Aborted()
