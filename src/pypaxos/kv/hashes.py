"""Redis's hash commands over a ``HashValue`` (Redis 7.0.15's replies and errors).

Fields keep the order they were first set in, as a small Redis hash (a listpack) does, so
``HGETALL`` answers as Redis does for hashes of up to 128 short fields; past that Redis's order
is its hash table's, which no client may rely on.
"""

from __future__ import annotations

from fractions import Fraction

from pypaxos.kv.collection_ops import (
    HDel,
    HGet,
    HGetAll,
    HIncrBy,
    HIncrByFloat,
    HLen,
    HMGet,
    HScan,
    HSet,
)
from pypaxos.kv.commands import (
    INT64_MAX,
    INT64_MIN,
    NAN_OR_INFINITY,
    NOT_A_FLOAT,
    OVERFLOW,
    Array,
    Error,
    Integer,
    Page,
    Result,
    Value,
    Values,
    parse_int64,
)
from pypaxos.kv.keyspace import (
    Keyspace,
    format_long_double,
    parse_long_double,
    scan_collection,
    to_long_double,
)
from pypaxos.kv.values import HashValue

HASH_NOT_AN_INTEGER = "hash value is not an integer"
HASH_NOT_A_FLOAT = "hash value is not a float"
_INFINITE = Fraction(2) ** 16384  # past the long double's range (parse_long_double's infinity)

HashOp = HSet | HGet | HMGet | HDel | HGetAll | HLen | HIncrBy | HIncrByFloat | HScan


def execute(ks: Keyspace, op: HashOp) -> Result:
    """Run one hash command; ``WrongType`` if its key holds something else."""
    if isinstance(op, HSet):
        return hset(ks, op)
    if isinstance(op, HIncrBy):
        return hincr_by(ks, op)
    if isinstance(op, HIncrByFloat):
        return hincr_by_float(ks, op)
    if isinstance(op, HDel):
        return hdel(ks, op)
    hash_value = ks.collection(op.key, HashValue)
    fields = {} if hash_value is None else hash_value.fields
    if isinstance(op, HGet):
        return Value(fields.get(op.field))
    if isinstance(op, HMGet):
        return Values(tuple(fields.get(field) for field in op.fields))
    if isinstance(op, HGetAll):
        return Array(tuple(part for pair in fields.items() for part in pair))
    if isinstance(op, HLen):
        return Integer(len(fields))
    page = scan_collection(list(fields), op.cursor, op.pattern, op.count)
    return Page(page.cursor, tuple(part for field in page.keys for part in (field, fields[field])))


def hset(ks: Keyspace, op: HSet) -> Result:
    fields = ks.create(op.key, HashValue).fields
    if op.nx:
        ((field, value),) = op.pairs
        if field in fields:
            return Integer(0)
        fields[field] = value
        ks.touch(op.key)
        return Integer(1)
    before = len(fields)
    for field, value in op.pairs:
        fields[field] = value
    ks.touch(op.key)
    return Integer(len(fields) - before)


def hdel(ks: Keyspace, op: HDel) -> Result:
    hash_value = ks.collection(op.key, HashValue)
    if hash_value is None:
        return Integer(0)
    removed = 0
    for field in op.fields:
        if hash_value.fields.pop(field, None) is not None:
            removed += 1
    if removed:
        ks.drop_if_empty(op.key, hash_value)
        ks.touch(op.key)
    return Integer(removed)


def hincr_by(ks: Keyspace, op: HIncrBy) -> Result:
    hash_value = ks.create(op.key, HashValue)
    current = hash_value.fields.get(op.field)
    number = 0 if current is None else parse_int64(current)
    if number is None:
        return Error(HASH_NOT_AN_INTEGER)
    total = number + op.amount
    if not INT64_MIN <= total <= INT64_MAX:
        ks.drop_if_empty(op.key, hash_value)
        return Error(OVERFLOW)
    hash_value.fields[op.field] = b"%d" % total
    ks.touch(op.key)
    return Integer(total)


def hincr_by_float(ks: Keyspace, op: HIncrByFloat) -> Result:
    amount = parse_long_double(op.amount)
    hash_value = ks.create(op.key, HashValue)
    current = hash_value.fields.get(op.field)
    value = Fraction(0) if current is None else parse_long_double(current)
    if amount is None or value is None:  # (the server refuses a bad amount before the log)
        ks.drop_if_empty(op.key, hash_value)
        return Error(HASH_NOT_A_FLOAT if value is None else NOT_A_FLOAT)
    if abs(value) >= _INFINITE or abs(amount) >= _INFINITE:
        ks.drop_if_empty(op.key, hash_value)
        return Error(NAN_OR_INFINITY)
    spelled = format_long_double(to_long_double(value + amount))
    hash_value.fields[op.field] = spelled
    ks.touch(op.key)
    return Value(spelled)
