"""Publications are derived from applied commands alone: every replica applying the same log
emits the same ones, with the same revisions; a retried request publishes nothing again; the
keyspace-notification setting is replicated and kept in the snapshot."""

from __future__ import annotations

import random

from pypaxos.kv import (
    Command,
    Delete,
    Expire,
    Get,
    Integer,
    KVStateMachine,
    Ok,
    Rename,
    Request,
    Result,
    Set,
    SetWith,
    decode_result,
    encode_request,
)
from pypaxos.kv.collection_ops import HSet, LPop, LPush, SAdd, ZAdd
from pypaxos.kv.commands import Error
from pypaxos.kv.pubsub import (
    Publication,
    format_notify_flags,
    parse_notify_flags,
)
from pypaxos.kv.pubsub_ops import NotifyConfig, Publish

T0 = 1_700_000_000_000


def _machine() -> KVStateMachine:
    machine = KVStateMachine()
    machine.record_publications()
    return machine


def _apply(machine: KVStateMachine, seq: int, op: Command, now_ms: int = T0) -> Result:
    return decode_result(machine.apply(encode_request(Request(7, seq, op, now_ms))))


def test_publish_emits_one_publication_at_its_log_position() -> None:
    machine = _machine()
    assert _apply(machine, 1, Set(b"k", b"v")) == Ok()
    assert _apply(machine, 2, Publish(b"ch", b"hello")) == Integer(0)
    assert machine.take_publications() == [Publication(2, b"ch", b"hello")]
    assert machine.take_publications() == []  # taken once


def test_a_retried_publish_is_not_published_again() -> None:
    machine = _machine()
    _apply(machine, 1, Publish(b"ch", b"once"))
    assert _apply(machine, 1, Publish(b"ch", b"once")) == Integer(0)  # the session's answer
    assert [p.message for p in machine.take_publications()] == [b"once"]


def test_nothing_is_kept_unless_recording() -> None:
    machine = KVStateMachine()
    _apply(machine, 1, Publish(b"ch", b"m"))
    assert machine.take_publications() == []


def test_keyspace_events_as_redis_names_them() -> None:
    machine = _machine()
    assert _apply(machine, 1, NotifyConfig(b"KEA")) == Ok()
    ops: list[Command] = [
        Set(b"a", b"1"),
        LPush(b"l", (b"x",), left=False),
        LPop(b"l"),
        Rename(b"a", b"b"),
        HSet(b"h", ((b"f", b"v"),)),
        SAdd(b"s", (b"m",)),
        ZAdd(b"z", ((1.0, b"m"),)),
        Expire(b"b", 10_000),
        Delete(b"h"),
        Delete(b"missing"),  # changes nothing: no event
        Get(b"s"),  # a read: no event
    ]
    for seq, op in enumerate(ops, start=2):
        _apply(machine, seq, op)
    spaces = [
        (p.channel.removeprefix(b"__keyspace@0__:"), p.message)
        for p in machine.take_publications()
        if p.channel.startswith(b"__keyspace@0__:")
    ]
    assert spaces == [
        (b"a", b"set"),
        (b"l", b"rpush"),
        (b"l", b"lpop"),
        (b"l", b"del"),
        (b"a", b"rename_from"),
        (b"b", b"rename_to"),
        (b"h", b"hset"),
        (b"s", b"sadd"),
        (b"z", b"zadd"),
        (b"b", b"expire"),
        (b"h", b"del"),
    ]


def test_classes_filter_and_expired_keys_notify() -> None:
    machine = _machine()
    _apply(machine, 1, NotifyConfig(b"Ex"))  # key events of the expired class only
    _apply(machine, 2, SetWith(b"k", b"v", ttl_ms=100))
    _apply(machine, 3, Get(b"k"), T0 + 200)  # found past its deadline
    assert machine.take_publications() == [Publication(3, b"__keyevent@0__:expired", b"k")]
    _apply(machine, 4, SetWith(b"j", b"v", ttl_ms=100), T0 + 200)
    _apply(machine, 5, Set(b"other", b"v"), T0 + 400)  # the sweep reclaims j
    assert [p.message for p in machine.take_publications()] == [b"j"]


def test_an_invalid_flag_is_refused_and_changes_nothing() -> None:
    machine = _machine()
    assert isinstance(_apply(machine, 1, NotifyConfig(b"KQ")), Error)
    _apply(machine, 2, Set(b"a", b"1"))
    assert machine.notify_bits == 0
    assert machine.take_publications() == []


def test_flags_spelling() -> None:
    assert format_notify_flags(parse_notify_flags(b"KEA") or 0) == b"AKE"
    assert format_notify_flags(parse_notify_flags(b"E$lK") or 0) == b"$lKE"
    assert parse_notify_flags(b"") == 0
    assert parse_notify_flags(b"KEy") is None


def _random_ops(rng: random.Random, count: int) -> list[tuple[Command, int]]:
    keys = [b"a", b"b", b"l", b"s"]
    ops: list[tuple[Command, int]] = []
    now = T0
    for _ in range(count):
        now += rng.randrange(0, 50)
        key = rng.choice(keys)
        choices: list[Command] = [
            Set(key, b"v"),
            SetWith(key, b"v", ttl_ms=rng.randrange(1, 100)),
            Delete(key),
            LPush(key, (b"x",)),
            LPop(key),
            SAdd(key, (b"m",)),
            Rename(key, rng.choice(keys)),
            Publish(key, b"msg"),
            NotifyConfig(rng.choice([b"KEA", b"Kg", b"E$l", b""])),
        ]
        ops.append((rng.choice(choices), now))
    return ops


def test_replicas_and_a_restored_replica_publish_the_same() -> None:
    for seed in range(20):
        ops = _random_ops(random.Random(seed), 120)
        first, second = _machine(), _machine()
        for seq, (op, now) in enumerate(ops[:60], start=1):
            _apply(first, seq, op, now)
            _apply(second, seq, op, now)
        restored = KVStateMachine()
        restored.restore(second.snapshot())
        restored.record_publications()
        assert restored.publications_floor == second.applied
        emitted_first = first.take_publications()
        assert emitted_first == second.take_publications()
        for seq, (op, now) in enumerate(ops[60:], start=61):
            _apply(first, seq, op, now)
            _apply(second, seq, op, now)
            _apply(restored, seq, op, now)
        later = first.take_publications()
        assert later == second.take_publications() == restored.take_publications()
        revisions = [p.revision for p in emitted_first + later]
        assert revisions == sorted(revisions)
