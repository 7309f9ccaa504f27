"""The collection workload of the KV simulator: Redis hashes, lists, sets and sorted sets.

Under ``KVSettings.collections`` half of the clients' operations are drawn here, on their own
keys (``COLLECTION_KEYS``: ``c0``, ``c1``...); the other half stay the string workload on the
``k`` keys, checked by ``lincheck.wgl`` as before.  The collection keys' history is checked
against ``lincheck.redis_model``, a sequential model of a Redis key written apart from ``kv``
(``lincheck.model_check``): linearizability is local, so the two halves are checked apart.

What is drawn, per operation: a key, then mostly (``HOME_FAMILY_PROB``) a command of the key's
home family (each key's is drawn per run), else a command of any family or of the keyspace.
So a key mostly holds its home type, some commands meet it with the wrong type (``WRONGTYPE``,
which must change nothing), and after a ``DEL`` or an ``EXPIRE`` to the past another type may
take the key over.  The commands: ``HSET HDEL HGET HINCRBY HGETALL HLEN``, ``LPUSH RPUSH LPOP
RPOP LRANGE LLEN``, ``SADD SREM SISMEMBER SMEMBERS SCARD``, ``ZADD`` (with ``NX XX GT LT CH
INCR``) ``ZINCRBY ZREM ZRANGE ZSCORE ZCARD``, ``GET SET INCR``, ``DEL EXPIRE PERSIST TTL TYPE``,
and now and then a ``MULTI`` of two or three commands on one key (``Exec``).

The element spaces are small (``FIELDS``, ``MEMBERS``...) so the values stay small and the
checker's search short; list items and hash values are fresh (unique) values, so a read pins
down which writes came before it.  Scores are small multiples of a half, so every sum the store
and the model compute is exact.  Time stands still in the simulator (requests carry no time),
so a deadline set by ``EXPIRE`` with a positive time never passes and ``TTL`` answers it.

Replies are recorded in the model's JSON form (``decode_reply``): errors as
``{"error": "WRONGTYPE"}`` or ``{"error": "ERR"}``, hash and set contents sorted.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from functools import partial

from pypaxos.kv import Command, Delete, Error, Expire, Get, Incr, Integer, Persist, Set, Ttl
from pypaxos.kv import Value as ValueResult
from pypaxos.kv.collection_ops import (
    ZADD_CH,
    ZADD_GT,
    ZADD_INCR,
    ZADD_LT,
    ZADD_NX,
    ZADD_XX,
    HDel,
    HGet,
    HGetAll,
    HIncrBy,
    HLen,
    HSet,
    KeyType,
    LLen,
    LPop,
    LPush,
    LRange,
    SAdd,
    SCard,
    SIsMember,
    SMembers,
    SRem,
    ZAdd,
    ZCard,
    ZIncrBy,
    ZRangeByRank,
    ZRem,
    ZScore,
)
from pypaxos.kv.commands import (
    Answer,
    Array,
    Exec,
    Integers,
    Ok,
    Replies,
    Score,
    Scored,
    Scores,
)
from pypaxos.kv.values import WRONGTYPE
from pypaxos.sim.kv_client import CollectionDraw, Operation

COLLECTION_KEYS = ("c0", "c1", "c2", "c3")
FAMILIES = ("string", "hash", "list", "set", "zset")
HOME_FAMILY_PROB = 0.8
KEYSPACE_PROB = 0.1  # of the rest: DEL, EXPIRE, PERSIST, TTL, TYPE
MULTI_PROB = 0.06
FIELDS = ("f0", "f1", "f2")
MEMBERS = ("m0", "m1", "m2", "m3")
ZMEMBERS = ("z0", "z1", "z2")
SCORES = (0.0, 1.0, 1.5, 2.0, -1.0)
INCREMENTS = (1.0, -1.0, 0.5, 2.0)
FAR_DEADLINE_MS = 10**9  # never reached: time stands still at 0 in the simulator

JSON = object  # what a history holds: str, int, float, None, lists and {"error": kind}

# One drawn command: (f, args in the model's JSON form, the kv command, read-only?)
Drawn = tuple[str, list[JSON], Command, bool]


def home_families(rng: random.Random) -> dict[str, str]:
    """Each collection key's home family for a run."""
    return {key: FAMILIES[int(rng.random() * len(FAMILIES))] for key in COLLECTION_KEYS}


def _pick(rng: random.Random, choices: Sequence[str]) -> str:
    return choices[int(rng.random() * len(choices))]


def draw_command(rng: random.Random, family: str, key: str, fresh: Callable[[], str]) -> Drawn:
    """One command of ``family`` (or ``"keyspace"``) on ``key``."""
    k = key.encode()
    roll = rng.random()
    if family == "string":
        if roll < 0.4:
            return "get", [], Get(k), True
        if roll < 0.75:
            value = fresh()
            return "set", [value], Set(k, value.encode()), False
        return "incr", [], Incr(k), False
    if family == "hash":
        field = _pick(rng, FIELDS)
        if roll < 0.3:
            value = fresh()
            pairs: list[JSON] = [[field, value]]
            if rng.random() < 0.3:
                other, more = _pick(rng, FIELDS), fresh()
                pairs.append([other, more])
            command = HSet(k, tuple((f.encode(), v.encode()) for f, v in _pairs(pairs)))
            return "hset", pairs, command, False
        if roll < 0.45:
            return "hdel", [field], HDel(k, (field.encode(),)), False
        if roll < 0.6:
            amount = int(rng.random() * 3) + 1
            return "hincrby", [field, amount], HIncrBy(k, field.encode(), amount), False
        if roll < 0.75:
            return "hget", [field], HGet(k, field.encode()), True
        if roll < 0.9:
            return "hgetall", [], HGetAll(k), True
        return "hlen", [], HLen(k), True
    if family == "list":
        if roll < 0.3:
            values = [fresh() for _ in range(1 + int(rng.random() * 2))]
            left = rng.random() < 0.5
            push = LPush(k, tuple(v.encode() for v in values), left=left)
            return ("lpush" if left else "rpush"), list(values), push, False
        if roll < 0.55:
            left = rng.random() < 0.5
            return ("lpop" if left else "rpop"), [], LPop(k, left=left), False
        if roll < 0.85:
            start, stop = rng.choice(((0, -1), (0, 1), (-2, -1), (1, 2)))
            return "lrange", [start, stop], LRange(k, start, stop), True
        return "llen", [], LLen(k), True
    if family == "set":
        member = _pick(rng, MEMBERS)
        if roll < 0.35:
            return "sadd", [member], SAdd(k, (member.encode(),)), False
        if roll < 0.55:
            return "srem", [member], SRem(k, (member.encode(),)), False
        if roll < 0.7:
            return "sismember", [member], SIsMember(k, (member.encode(),)), True
        if roll < 0.9:
            return "smembers", [], SMembers(k), True
        return "scard", [], SCard(k), True
    if family == "zset":
        member = _pick(rng, ZMEMBERS)
        if roll < 0.3:
            return _zadd(rng, k, member)
        if roll < 0.45:
            step = INCREMENTS[int(rng.random() * len(INCREMENTS))]
            return "zincrby", [step, member], ZIncrBy(k, step, member.encode()), False
        if roll < 0.55:
            return "zrem", [member], ZRem(k, (member.encode(),)), False
        if roll < 0.75:
            start, stop = rng.choice(((0, -1), (0, 0), (-1, -1)))
            return "zrange", [start, stop], ZRangeByRank(k, start, stop), True
        if roll < 0.9:
            return "zscore", [member], ZScore(k, (member.encode(),)), True
        return "zcard", [], ZCard(k), True
    assert family == "keyspace", family
    if roll < 0.25:
        return "del", [], Delete(k), False
    if roll < 0.45:
        ms = 0 if rng.random() < 0.5 else FAR_DEADLINE_MS + int(rng.random() * 1000)
        return "expire", [ms], Expire(k, ms), False
    if roll < 0.6:
        return "persist", [], Persist(k), False
    if roll < 0.8:
        return "ttl", [], Ttl(k), True
    return "type", [], KeyType(k), True


_ZADD_FLAG_SETS: tuple[tuple[str, ...], ...] = (
    (),
    (),
    ("NX",),
    ("XX",),
    ("GT",),
    ("LT",),
    ("CH",),
    ("GT", "CH"),
    ("INCR",),
    ("XX", "INCR"),
    ("NX", "INCR"),
    ("LT", "INCR"),
)
_ZADD_BITS = {"NX": ZADD_NX, "XX": ZADD_XX, "GT": ZADD_GT, "LT": ZADD_LT, "CH": ZADD_CH}
_ZADD_BITS["INCR"] = ZADD_INCR


def _zadd(rng: random.Random, k: bytes, member: str) -> Drawn:
    flags = _ZADD_FLAG_SETS[int(rng.random() * len(_ZADD_FLAG_SETS))]
    score = SCORES[int(rng.random() * len(SCORES))]
    pairs: list[tuple[float, str]] = [(score, member)]
    if "INCR" not in flags and rng.random() < 0.3:
        pairs.append((SCORES[int(rng.random() * len(SCORES))], _pick(rng, ZMEMBERS)))
    bits = 0
    for flag in flags:
        bits |= _ZADD_BITS[flag]
    command = ZAdd(k, tuple((s, m.encode()) for s, m in pairs), bits)
    args: list[JSON] = [list(flags), [[s, m] for s, m in pairs]]
    return "zadd", args, command, False


def _pairs(pairs: list[JSON]) -> list[tuple[str, str]]:
    out = []
    for pair in pairs:
        assert isinstance(pair, list)
        field, value = pair
        assert isinstance(field, str) and isinstance(value, str)
        out.append((field, value))
    return out


def draw_operation(
    rng: random.Random, homes: dict[str, str], fresh: Callable[[], str]
) -> tuple[str, str, JSON, Command, bool]:
    """``(f, key, args, command, read-only?)``: one operation on a collection key, a ``MULTI``
    of two or three commands on it now and then."""
    key = COLLECTION_KEYS[int(rng.random() * len(COLLECTION_KEYS))]

    def family() -> str:
        if rng.random() < HOME_FAMILY_PROB:
            return homes[key]
        if rng.random() < KEYSPACE_PROB / (1 - HOME_FAMILY_PROB):
            return "keyspace"
        return _pick(rng, FAMILIES)

    if rng.random() < MULTI_PROB:
        drawn = [draw_command(rng, family(), key, fresh) for _ in range(2 + int(rng.random() * 2))]
        args: list[JSON] = [[f, a] for f, a, _, _ in drawn]
        return "multi", key, args, Exec(tuple(c for _, _, c, _ in drawn)), False
    f, a, command, read_only = draw_command(rng, family(), key, fresh)
    return f, key, a, command, read_only


def dump_operation(key: str) -> tuple[str, JSON, Command]:
    """The final read of a collection key: everything about it, in one atomic ``MULTI``."""
    k = key.encode()
    reads: list[tuple[str, list[JSON], Command]] = [
        ("type", [], KeyType(k)),
        ("ttl", [], Ttl(k)),
        ("get", [], Get(k)),
        ("hgetall", [], HGetAll(k)),
        ("lrange", [0, -1], LRange(k, 0, -1)),
        ("smembers", [], SMembers(k)),
        ("zrange", [0, -1], ZRangeByRank(k, 0, -1)),
    ]
    args: list[JSON] = [[f, a] for f, a, _ in reads]
    return "multi", args, Exec(tuple(c for _, _, c in reads))


class Unexpected(ValueError):
    """A reply that makes no sense for the command (a finding of its own)."""


def decode_reply(f: str, args: JSON, answer: Answer) -> JSON:
    """The model's JSON form of ``answer`` to ``f``; ``Unexpected`` if it has no sense."""
    if f == "multi":
        if not isinstance(answer, Replies) or not isinstance(args, list):
            raise Unexpected(f"multi answered {answer!r}")
        if len(answer.items) != len(args):
            raise Unexpected(f"multi of {len(args)} commands answered {len(answer.items)}")
        out: list[JSON] = []
        for command, result in zip(args, answer.items, strict=True):
            assert isinstance(command, list)
            out.append(decode_reply(command[0], command[1], result))
        return out
    return _decode_one(f, answer)


def _decode_one(f: str, answer: Answer) -> JSON:
    match answer:
        case Error(message):
            return {"error": "WRONGTYPE" if message == WRONGTYPE else "ERR"}
        case Ok() if f == "set":
            return "OK"
        case ValueResult(value) if f in ("get", "hget", "lpop", "rpop", "type"):
            return None if value is None else value.decode()
        case Integer(number) if f not in ("get", "hget", "lpop", "rpop", "type", "zscore"):
            return number
        case Integers((number,)) if f == "sismember":
            return number
        case Array(items) if f in ("smembers", "lrange"):
            decoded = [item.decode() for item in items]
            return sorted(decoded) if f == "smembers" else decoded
        case Array(items) if f == "hgetall" and len(items) % 2 == 0:
            pairs = [[items[i].decode(), items[i + 1].decode()] for i in range(0, len(items), 2)]
            return sorted(pairs)
        case Scored(items) if f == "zrange":
            return [[member.decode(), score] for member, score in items]
        case Scores((score,)) if f == "zscore":
            return score
        case Score(score) if f in ("zincrby", "zadd"):
            return score
        case _:
            raise Unexpected(f"{f} answered {answer!r}")


__all__ = [
    "COLLECTION_KEYS",
    "Unexpected",
    "collection_draw",
    "decode_reply",
    "draw_operation",
    "dump_operation",
    "final_operation",
    "home_families",
]


def collection_draw(homes: dict[str, str]) -> CollectionDraw:
    """The clients' draw of a collection ``Operation`` (``Client.draw_collection``)."""

    def draw(rng: random.Random, fresh: Callable[[], str]) -> Operation:
        f, key, args, command, read_only = draw_operation(rng, homes, fresh)
        decode = partial(decode_reply, f, args)
        return Operation(f, key, command, args, decode=decode, read_only=read_only)

    return draw


def final_operation(key: str) -> Operation:
    """The final reader's ``Operation`` for a collection key (``dump_operation``)."""
    f, args, command = dump_operation(key)
    return Operation(f, key, command, args, decode=partial(decode_reply, f, args))
