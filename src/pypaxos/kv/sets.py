"""Redis's set commands over a ``SetValue`` (Redis 7.0.15's replies and errors).

Members iterate in the order they were added, on every replica (``kv.values``), so every
answer is deterministic.  Where Redis is random it is not, on purpose (a replicated state
machine must not be): ``SPOP`` removes the members added longest ago and ``SRANDMEMBER`` answers
members in the order they were added (cycling through them for a negative count).  ``SINTER``
answers in the order of the smallest set, ``SUNION`` and ``SDIFF`` in the order of their
first sets; Redis's order is its hash table's (clients treat sets as unordered).
"""

from __future__ import annotations

from itertools import cycle, islice

from pypaxos.kv.collection_ops import (
    SET_DIFF,
    SET_INTER,
    SAdd,
    SCard,
    SCombine,
    SCombineStore,
    SIsMember,
    SMembers,
    SMove,
    SPop,
    SRandMember,
    SRem,
    SScan,
)
from pypaxos.kv.commands import Array, Integer, Integers, Result, Value
from pypaxos.kv.keyspace import Keyspace, scan_collection
from pypaxos.kv.values import SetValue

SetOp = (
    SAdd
    | SRem
    | SMembers
    | SIsMember
    | SCard
    | SPop
    | SRandMember
    | SCombine
    | SCombineStore
    | SMove
    | SScan
)


def execute(ks: Keyspace, op: SetOp) -> Result:
    """Run one set command; ``WrongType`` if a key it reads holds something else."""
    if isinstance(op, SAdd):
        members = ks.create(op.key, SetValue).members
        before = len(members)
        members.update(dict.fromkeys(op.members))
        if len(members) != before:
            ks.touch(op.key)
        return Integer(len(members) - before)
    if isinstance(op, SRem):
        return srem(ks, op)
    if isinstance(op, SPop):
        return spop(ks, op)
    if isinstance(op, SCombine):
        return Array(tuple(combine(ks, op.how, op.keys)))
    if isinstance(op, SCombineStore):
        return combine_store(ks, op)
    if isinstance(op, SMove):
        return smove(ks, op)
    found = ks.collection(op.key, SetValue)
    members = {} if found is None else found.members
    if isinstance(op, SMembers):
        return Array(tuple(members))
    if isinstance(op, SIsMember):
        return Integers(tuple(int(member in members) for member in op.members))
    if isinstance(op, SCard):
        return Integer(len(members))
    if isinstance(op, SRandMember):
        return srandmember(list(members), op.count)
    return scan_collection(list(members), op.cursor, op.pattern, op.count)


def srem(ks: Keyspace, op: SRem) -> Result:
    found = ks.collection(op.key, SetValue)
    if found is None:
        return Integer(0)
    before = len(found.members)
    for member in op.members:
        found.members.pop(member, None)
    removed = before - len(found.members)
    if removed:
        ks.drop_if_empty(op.key, found)
        ks.touch(op.key)
    return Integer(removed)


def spop(ks: Keyspace, op: SPop) -> Result:
    found = ks.collection(op.key, SetValue)
    if found is None:
        return Value(None) if op.count is None else Array(())
    members = found.members
    popped = list(islice(members, 1 if op.count is None else op.count))
    for member in popped:
        del members[member]
    if popped:
        ks.drop_if_empty(op.key, found)
        ks.touch(op.key)
    if op.count is None:
        return Value(popped[0])
    return Array(tuple(popped))


def srandmember(members: list[bytes], count: int | None) -> Result:
    if count is None:
        return Value(members[0] if members else None)
    if count >= 0 or not members:
        return Array(tuple(members[:count]) if count >= 0 else ())
    return Array(tuple(islice(cycle(members), -count)))


def combine(ks: Keyspace, how: int, keys: tuple[bytes, ...]) -> list[bytes]:
    """The members of ``SINTER``/``SUNION``/``SDIFF`` over ``keys`` (every key is checked to
    be a set or absent first, as in Redis)."""
    sets = [ks.collection(key, SetValue) for key in keys]
    members = [{} if found is None else found.members for found in sets]
    if how == SET_INTER:
        if not all(members):
            return []
        smallest = min(members, key=len)
        return [m for m in smallest if all(m in other for other in members)]
    if how == SET_DIFF:
        first, rest = members[0], members[1:]
        return [m for m in first if not any(m in other for other in rest)]
    union: dict[bytes, None] = {}
    for each in members:
        union.update(each)
    return list(union)


def combine_store(ks: Keyspace, op: SCombineStore) -> Result:
    result = combine(ks, op.how, op.keys)
    ks.delete(op.destination)
    if result:
        ks.put(op.destination, SetValue(dict.fromkeys(result)))
    ks.touch(op.destination)
    return Integer(len(result))


def smove(ks: Keyspace, op: SMove) -> Result:
    source = ks.collection(op.source, SetValue)
    if source is None:
        return Integer(0)
    destination = ks.collection(op.destination, SetValue)
    if source is destination:
        return Integer(int(op.member in source.members))
    if op.member not in source.members:
        return Integer(0)
    del source.members[op.member]
    ks.drop_if_empty(op.source, source)
    ks.create(op.destination, SetValue).members[op.member] = None
    ks.touch(op.source)
    ks.touch(op.destination)
    return Integer(1)
