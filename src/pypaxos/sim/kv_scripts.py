"""Lua scripts in the collection workload: a few fixed ``EVAL`` s on one collection key.

Under ``KVSettings.scripts`` (with the collection workload on) a collection operation is now
and then (``SCRIPT_PROB``) one of ``SCRIPTS``, sent as an ``Eval`` with its body, so it goes
through the log and every replica runs it on the same state.  ``lincheck.redis_model``
interprets each script by its name (``EVAL`` there), not by running Lua, so the check compares
the store's Lua interpreter with the model's reading of the script:

* ``cas``: ``GET``, and ``SET`` if the value is the expected one; answers 1 or 0;
* ``hincr``: ``HINCRBY`` then ``HGET`` of the field, the new value;
* ``rpush-len``: ``RPUSH`` then ``LLEN``;
* ``add-then-fail``: ``SADD`` then ``redis.error_reply``: an error reply, the member kept.

A script's ``redis.call`` s are planned by ``script_command``, a small command table for just
the commands these scripts call (the runtime's full table sits above the simulator's layer).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence

from pypaxos.kv import Error, Get, Integer, Set
from pypaxos.kv import Value as ValueResult
from pypaxos.kv.collection_ops import HGet, HIncrBy, LLen, LPush, SAdd
from pypaxos.kv.commands import Command, ErrorReply, Eval, Ok, Result
from pypaxos.kv.script_calls import ScriptCall
from pypaxos.kv.values import WRONGTYPE
from pypaxos.transport.resp import encode_bulk, encode_error, encode_integer, encode_simple

SCRIPT_PROB = 0.08  # of the collection operations, when scripts are on
FAIL_TEXT = "ERR script failed after its write"

SCRIPTS: dict[str, str] = {
    "cas": (
        "if redis.call('GET', KEYS[1]) == ARGV[1] then "
        "redis.call('SET', KEYS[1], ARGV[2]) return 1 else return 0 end"
    ),
    "hincr": (
        "redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2]) "
        "return redis.call('HGET', KEYS[1], ARGV[1])"
    ),
    "rpush-len": "redis.call('RPUSH', KEYS[1], ARGV[1]) return redis.call('LLEN', KEYS[1])",
    "add-then-fail": (
        f"redis.call('SADD', KEYS[1], ARGV[1]) return redis.error_reply('{FAIL_TEXT}')"
    ),
}
SCRIPT_NAMES = tuple(SCRIPTS)
HASH_FIELDS = ("f0", "f1", "f2")
SET_MEMBERS = ("m0", "m1", "m2", "m3")

JSON = object


def eval_command(name: str, key: str, argv: Sequence[str]) -> Eval:
    """The ``EVAL`` of script ``name`` on ``key`` with ``argv``."""
    body = SCRIPTS[name].encode()
    sha = hashlib.sha1(body, usedforsecurity=False).hexdigest().encode()
    return Eval(body, sha, (key.encode(),), tuple(arg.encode() for arg in argv))


HOME_SCRIPT = {"string": "cas", "hash": "hincr", "list": "rpush-len", "set": "add-then-fail"}
HOME_SCRIPT_PROB = 0.8  # else any script, most likely meeting the key with the wrong type


def draw_script(
    rng: random.Random, key: str, home: str, fresh: Callable[[], str], known: str | None
) -> tuple[str, str, JSON, Command, bool]:
    """``(f, key, args, command, read-only?)``: one script on ``key``, mostly the one for its
    ``home`` family; ``known`` is a value the key may hold, the compare-and-set's comparand."""
    name = HOME_SCRIPT.get(home, "")
    if not name or rng.random() >= HOME_SCRIPT_PROB:
        name = SCRIPT_NAMES[int(rng.random() * len(SCRIPT_NAMES))]
    if name == "cas":
        argv = [known if known is not None else fresh(), fresh()]
    elif name == "hincr":
        argv = [HASH_FIELDS[int(rng.random() * len(HASH_FIELDS))], str(1 + int(rng.random() * 3))]
    elif name == "rpush-len":
        argv = [fresh()]
    else:
        argv = [SET_MEMBERS[int(rng.random() * len(SET_MEMBERS))]]
    args: list[JSON] = [name, *(int(a) if name == "hincr" and i else a for i, a in enumerate(argv))]
    return "eval", key, args, eval_command(name, key, argv), False


def decode_script_reply(answer: object) -> JSON | None:
    """The model's JSON form of a script's answer, ``None`` if it is none of a script's."""
    match answer:
        case Integer(number):
            return number
        case ValueResult(value):
            return None if value is None else value.decode()
        case ErrorReply(text):
            return {"error": "WRONGTYPE" if text.startswith(b"WRONGTYPE") else "ERR"}
        case Error(message):
            return {"error": "WRONGTYPE" if message == WRONGTYPE else "ERR"}
    return None


# --- the command table of the scripts' redis.call ----------------------------------------------


def _reply(results: Sequence[Result]) -> bytes:
    match results[0]:
        case Ok():
            return encode_simple("OK")
        case Integer(number):
            return encode_integer(number)
        case ValueResult(value):
            return encode_bulk(value)
        case Error(message):
            return encode_error(message if message.startswith("WRONGTYPE") else "ERR " + message)
    return encode_error(f"ERR unexpected result {results[0]!r}")


def script_command(argv: list[bytes]) -> ScriptCall | bytes:
    """A ``redis.call`` of the scripts above: ``GET SET HINCRBY HGET RPUSH LLEN SADD``
    (``kv.script_calls.CommandTable``), each one command answered in RESP2."""
    name, args = argv[0].upper(), argv[1:]
    command: Command | None = None
    if name == b"GET" and len(args) == 1:
        command = Get(args[0])
    elif name == b"SET" and len(args) == 2:
        command = Set(args[0], args[1])
    elif name == b"HINCRBY" and len(args) == 3 and args[2].lstrip(b"-").isdigit():
        command = HIncrBy(args[0], args[1], int(args[2]))
    elif name == b"HGET" and len(args) == 2:
        command = HGet(args[0], args[1])
    elif name == b"RPUSH" and len(args) >= 2:
        command = LPush(args[0], tuple(args[1:]), left=False)
    elif name == b"LLEN" and len(args) == 1:
        command = LLen(args[0])
    elif name == b"SADD" and len(args) >= 2:
        command = SAdd(args[0], tuple(args[1:]))
    if command is None:
        return encode_error("ERR unknown command or arguments called from script")
    return (command,), _reply
