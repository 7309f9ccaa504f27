"""A small sequential reference model of one Redis key, for checking collection histories.

Written from Redis's documented semantics (the command reference, Redis 7.0), not from
``pypaxos.kv``: the simulator checks the store against it, so a mistake in ``kv`` shows up as a
reply no order of operations explains, instead of being copied into the check.  A test runs
random command sequences through both and compares every reply.

One key's state is ``None`` (absent) or ``KeyState``: its type, its contents in a canonical
immutable form (hash fields and set members sorted, sorted-set entries as ``(score, member)``
pairs in Redis's order) and its deadline.  Time stands still at 0 (the simulated clients
stamp no time on their requests), so a deadline in the future never passes, ``EXPIRE`` with a
non-positive time deletes the key at once, as in Redis, and ``TTL`` answers the deadline.

Operations are ``(f, args)`` in the history's JSON form (``f`` a lower-case command name;
arguments and replies are strings, integers, floats, ``None`` and lists).  ``step`` answers
``(reply, next state)``; replies are canonical: lists become tuples and an error reply is
``("error", "WRONGTYPE")`` or ``("error", "ERR")``.  Hash and set contents are answered sorted,
since Redis promises no order for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, cast

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

WRONGTYPE_REPLY = ("error", "WRONGTYPE")
ERR_REPLY = ("error", "ERR")

Reply = object  # canonical: None, int, float, str, tuples of those, or an error pair


class KeyState(NamedTuple):
    """A present key: ``kind`` is ``"string"``, ``"hash"``, ``"list"``, ``"set"`` or
    ``"zset"``; ``contents`` a ``str``, sorted ``(field, value)`` pairs, the items, sorted
    members, or sorted ``(score, member)`` pairs; ``deadline_ms`` ``None`` when persistent."""

    kind: str
    contents: object
    deadline_ms: int | None = None


State = KeyState | None


class ModelError(ValueError):
    """An operation the model does not know, or malformed arguments (a history's fault)."""


def freeze(value: object) -> Reply:
    """A JSON reply or argument in canonical, hashable form (lists to tuples, an error object
    ``{"error": kind}`` to ``("error", kind)``)."""
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    if isinstance(value, dict):
        kind = value.get("error")
        if not isinstance(kind, str) or len(value) != 1:
            raise ModelError(f"unexpected object {value!r}")
        return ("error", kind)
    return value


def thaw(reply: Reply) -> object:
    """The JSON form of a canonical reply (inverse of ``freeze``)."""
    if isinstance(reply, tuple):
        if len(reply) == 2 and reply[0] == "error" and reply in (WRONGTYPE_REPLY, ERR_REPLY):
            return {"error": reply[1]}
        return [thaw(item) for item in reply]
    return reply


def _canonical_int(text: str) -> int | None:
    """The int64 that ``text`` spells in canonical decimal (what ``INCR`` accepts)."""
    if not text or len(text) > 20:
        return None
    try:
        number = int(text)
    except ValueError:
        return None
    if str(number) != text or not INT64_MIN <= number <= INT64_MAX:
        return None
    return number


def _range(length: int, start: int, stop: int) -> range:
    """``LRANGE``/``ZRANGE`` indexes: inclusive, negative counting from the end, clamped."""
    if start < 0:
        start = max(0, length + start)
    if stop < 0:
        stop = length + stop
    stop = min(stop, length - 1)
    return range(start, stop + 1) if start <= stop else range(0)


def _kept(kind: str, contents: object, old: State) -> State:
    """The key after a write that keeps its deadline; an emptied collection disappears."""
    if kind != "string" and not contents:
        return None
    deadline = old.deadline_ms if old is not None else None
    return KeyState(kind, contents, deadline)


# Each handler: (args, state) -> (reply, next state); a wrong type is checked before it.
Handler = Callable[[Sequence[object], State], tuple[Reply, State]]


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ModelError(f"expected a string, not {value!r}")
    return value


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(f"expected an integer, not {value!r}")
    return value


def _num(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ModelError(f"expected a number, not {value!r}")
    return float(value)


# --- strings and the keyspace --------------------------------------------------------------


def _get(args: Sequence[object], state: State) -> tuple[Reply, State]:
    return (None if state is None else state.contents), state


def _set(args: Sequence[object], state: State) -> tuple[Reply, State]:
    return "OK", KeyState("string", _str(args[0]))  # a new value: no deadline


def _incr(args: Sequence[object], state: State) -> tuple[Reply, State]:
    number = 0 if state is None else _canonical_int(_str(state.contents))
    if number is None or number + 1 > INT64_MAX:
        return ERR_REPLY, state
    return number + 1, _kept("string", str(number + 1), state)


def _del(args: Sequence[object], state: State) -> tuple[Reply, State]:
    return (0 if state is None else 1), None


def _type(args: Sequence[object], state: State) -> tuple[Reply, State]:
    return (None if state is None else state.kind), state


def _expire(args: Sequence[object], state: State) -> tuple[Reply, State]:
    ms = _int(args[0])
    if state is None:
        return 0, None
    if ms <= 0:  # already past (time stands at 0): deleted at once
        return 1, None
    return 1, state._replace(deadline_ms=ms)


def _persist(args: Sequence[object], state: State) -> tuple[Reply, State]:
    if state is None or state.deadline_ms is None:
        return 0, state
    return 1, state._replace(deadline_ms=None)


def _ttl(args: Sequence[object], state: State) -> tuple[Reply, State]:
    if state is None:
        return -2, None
    return (-1 if state.deadline_ms is None else state.deadline_ms), state


# --- hashes --------------------------------------------------------------------------------


def _fields(state: State) -> dict[str, str]:
    return {} if state is None else dict(cast("tuple[tuple[str, str], ...]", state.contents))


def _hash(fields: dict[str, str], state: State) -> State:
    return _kept("hash", tuple(sorted(fields.items())), state)


def _hset(args: Sequence[object], state: State) -> tuple[Reply, State]:
    fields = _fields(state)
    added = 0
    for pair in args:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ModelError(f"hset needs field-value pairs, not {pair!r}")
        field, value = _str(pair[0]), _str(pair[1])
        added += field not in fields
        fields[field] = value
    return added, _hash(fields, state)


def _hdel(args: Sequence[object], state: State) -> tuple[Reply, State]:
    fields = _fields(state)
    removed = 0
    for field in args:
        removed += fields.pop(_str(field), None) is not None
    return removed, (_hash(fields, state) if removed else state)


def _hget(args: Sequence[object], state: State) -> tuple[Reply, State]:
    return _fields(state).get(_str(args[0])), state


def _hincrby(args: Sequence[object], state: State) -> tuple[Reply, State]:
    field, amount = _str(args[0]), _int(args[1])
    fields = _fields(state)
    current = fields.get(field)
    number = 0 if current is None else _canonical_int(current)
    if number is None or not INT64_MIN <= number + amount <= INT64_MAX:
        return ERR_REPLY, state
    fields[field] = str(number + amount)
    return number + amount, _hash(fields, state)


def _hgetall(args: Sequence[object], state: State) -> tuple[Reply, State]:
    return tuple(sorted(_fields(state).items())), state


def _hlen(args: Sequence[object], state: State) -> tuple[Reply, State]:
    return len(_fields(state)), state


# --- lists ---------------------------------------------------------------------------------


def _items(state: State) -> tuple[str, ...]:
    return () if state is None else cast("tuple[str, ...]", state.contents)


def _push(left: bool) -> Handler:
    def push(args: Sequence[object], state: State) -> tuple[Reply, State]:
        items = list(_items(state))
        for value in args:  # one by one: LPUSH a b c leaves c b a
            if left:
                items.insert(0, _str(value))
            else:
                items.append(_str(value))
        return len(items), _kept("list", tuple(items), state)

    return push


def _pop(left: bool) -> Handler:
    def pop(args: Sequence[object], state: State) -> tuple[Reply, State]:
        items = _items(state)
        if not items:
            return None, state
        if left:
            return items[0], _kept("list", items[1:], state)
        return items[-1], _kept("list", items[:-1], state)

    return pop


def _lrange(args: Sequence[object], state: State) -> tuple[Reply, State]:
    items = _items(state)
    return tuple(items[i] for i in _range(len(items), _int(args[0]), _int(args[1]))), state


def _llen(args: Sequence[object], state: State) -> tuple[Reply, State]:
    return len(_items(state)), state


# --- sets ----------------------------------------------------------------------------------


def _members(state: State) -> set[str]:
    return set() if state is None else set(cast("tuple[str, ...]", state.contents))


def _set_of(members: set[str], state: State) -> State:
    return _kept("set", tuple(sorted(members)), state)


def _sadd(args: Sequence[object], state: State) -> tuple[Reply, State]:
    members = _members(state)
    before = len(members)
    members.update(_str(m) for m in args)
    return len(members) - before, _set_of(members, state)


def _srem(args: Sequence[object], state: State) -> tuple[Reply, State]:
    members = _members(state)
    before = len(members)
    members.difference_update(_str(m) for m in args)
    removed = before - len(members)
    return removed, (_set_of(members, state) if removed else state)


def _sismember(args: Sequence[object], state: State) -> tuple[Reply, State]:
    return int(_str(args[0]) in _members(state)), state


def _smembers(args: Sequence[object], state: State) -> tuple[Reply, State]:
    return tuple(sorted(_members(state))), state


def _scard(args: Sequence[object], state: State) -> tuple[Reply, State]:
    return len(_members(state)), state


# --- sorted sets ---------------------------------------------------------------------------


def _scores(state: State) -> dict[str, float]:
    if state is None:
        return {}
    entries = cast("tuple[tuple[float, str], ...]", state.contents)
    return {member: score for score, member in entries}


def _zset(scores: dict[str, float], state: State) -> State:
    # Redis's order: by score, then by member bytes (ASCII members here: str order is theirs).
    return _kept("zset", tuple(sorted((s, m) for m, s in scores.items())), state)


ZADD_FLAGS = frozenset({"NX", "XX", "GT", "LT", "CH", "INCR"})


def _zadd(args: Sequence[object], state: State) -> tuple[Reply, State]:
    flags_arg, pairs = args[0], args[1]
    if not isinstance(flags_arg, tuple) or not isinstance(pairs, tuple):
        raise ModelError("zadd needs [flags, pairs]")
    flags = {_str(f) for f in flags_arg}
    if not flags <= ZADD_FLAGS or ("NX" in flags and flags & {"XX", "GT", "LT"}):
        raise ModelError(f"zadd flags {sorted(flags)} are not a valid combination")
    if {"GT", "LT"} <= flags or ("INCR" in flags and len(pairs) != 1):
        raise ModelError(f"zadd flags {sorted(flags)} are not a valid combination")
    scores = _scores(state)
    added = changed = 0
    incr_reply: float | None = None
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise ModelError(f"zadd needs score-member pairs, not {pair!r}")
        score, member = _num(pair[0]), _str(pair[1])
        current = scores.get(member)
        if current is None:
            if "XX" in flags:
                continue
            scores[member] = score
            added += 1
            incr_reply = score
            continue
        if "NX" in flags:
            continue
        wanted = current + score if "INCR" in flags else score
        if ("GT" in flags and wanted <= current) or ("LT" in flags and wanted >= current):
            continue
        if wanted != current:
            scores[member] = wanted
            changed += 1
        incr_reply = wanted
    after = _zset(scores, state) if added or changed else state
    if "INCR" in flags:
        return incr_reply, after
    return (added + changed if "CH" in flags else added), after


def _zincrby(args: Sequence[object], state: State) -> tuple[Reply, State]:
    amount, member = _num(args[0]), _str(args[1])
    scores = _scores(state)
    scores[member] = scores.get(member, 0.0) + amount
    return scores[member], _zset(scores, state)


def _zrem(args: Sequence[object], state: State) -> tuple[Reply, State]:
    scores = _scores(state)
    removed = sum(scores.pop(_str(m), None) is not None for m in args)
    return removed, (_zset(scores, state) if removed else state)


def _zrange(args: Sequence[object], state: State) -> tuple[Reply, State]:
    entries = () if state is None else state.contents
    assert isinstance(entries, tuple)
    chosen = _range(len(entries), _int(args[0]), _int(args[1]))
    return tuple((entries[i][1], entries[i][0]) for i in chosen), state


def _zscore(args: Sequence[object], state: State) -> tuple[Reply, State]:
    return _scores(state).get(_str(args[0])), state


def _zcard(args: Sequence[object], state: State) -> tuple[Reply, State]:
    return len(_scores(state)), state


# --- the table -----------------------------------------------------------------------------

ANY = ""  # a command that works on a key of any type

# f -> (the type it needs, or ANY; writes?; handler)
COMMANDS: dict[str, tuple[str, bool, Handler]] = {
    "get": ("string", False, _get),
    "set": (ANY, True, _set),
    "incr": ("string", True, _incr),
    "del": (ANY, True, _del),
    "type": (ANY, False, _type),
    "expire": (ANY, True, _expire),
    "persist": (ANY, True, _persist),
    "ttl": (ANY, False, _ttl),
    "hset": ("hash", True, _hset),
    "hdel": ("hash", True, _hdel),
    "hget": ("hash", False, _hget),
    "hincrby": ("hash", True, _hincrby),
    "hgetall": ("hash", False, _hgetall),
    "hlen": ("hash", False, _hlen),
    "lpush": ("list", True, _push(left=True)),
    "rpush": ("list", True, _push(left=False)),
    "lpop": ("list", True, _pop(left=True)),
    "rpop": ("list", True, _pop(left=False)),
    "lrange": ("list", False, _lrange),
    "llen": ("list", False, _llen),
    "sadd": ("set", True, _sadd),
    "srem": ("set", True, _srem),
    "sismember": ("set", False, _sismember),
    "smembers": ("set", False, _smembers),
    "scard": ("set", False, _scard),
    "zadd": ("zset", True, _zadd),
    "zincrby": ("zset", True, _zincrby),
    "zrem": ("zset", True, _zrem),
    "zrange": ("zset", False, _zrange),
    "zscore": ("zset", False, _zscore),
    "zcard": ("zset", False, _zcard),
}
MULTI = "multi"  # args: ((f, args), ...) on the one key, run in order; reply: their replies
FUNCTIONS = frozenset(COMMANDS) | {MULTI}


def is_read_only(f: str, args: Reply) -> bool:
    """True if the operation never changes the key (its unknown-outcome runs can be ignored)."""
    if f == MULTI:
        assert isinstance(args, tuple)
        return all(
            isinstance(command, tuple) and is_read_only(_str(command[0]), command[1])
            for command in args
        )
    try:
        return not COMMANDS[f][1]
    except KeyError:
        raise ModelError(f"unknown operation {f!r}") from None


def step(f: str, args: Reply, state: State) -> tuple[Reply, State]:
    """Run ``f`` with canonical ``args`` on ``state``: ``(reply, next state)``.  A command on
    a key of another type answers ``WRONGTYPE`` and changes nothing."""
    if not isinstance(args, tuple):
        raise ModelError(f"{f}: arguments must be a list")
    if f == MULTI:
        replies = []
        for command in args:
            if not isinstance(command, tuple) or len(command) != 2 or command[0] == MULTI:
                raise ModelError(f"multi: malformed command {command!r}")
            reply, state = step(_str(command[0]), command[1], state)
            replies.append(reply)
        return tuple(replies), state
    try:
        kind, _writes, handler = COMMANDS[f]
    except KeyError:
        raise ModelError(f"unknown operation {f!r}") from None
    if kind and state is not None and state.kind != kind:
        return WRONGTYPE_REPLY, state
    try:
        return handler(args, state)
    except IndexError:
        raise ModelError(f"{f}: too few arguments in {args!r}") from None


__all__ = [
    "ERR_REPLY",
    "FUNCTIONS",
    "MULTI",
    "WRONGTYPE_REPLY",
    "KeyState",
    "ModelError",
    "State",
    "freeze",
    "is_read_only",
    "step",
    "thaw",
]
