"""The commands that run other commands: ``Watch``/``Exec`` (transactions) and ``Eval`` (scripts).

``KVStateMachine`` hands them here with its own ``execute`` for the commands inside: an
``Exec`` runs its ops one after the other in the same ``apply`` (so atomically: nothing else
is applied between them, on any replica), an ``Eval`` runs a Lua script whose ``redis.call`` s
run through ``execute`` too.  The state kept here, the watch table (``kv.transactions``) and
the script cache (``kv.script_cache``), is replicated state: part of the snapshot.

Nesting is refused: an ``Exec`` or a ``Watch`` inside an ``Exec`` (the server never sends one)
answers ``Error``; a script cannot call ``MULTI``, ``EVAL`` and the like (the command table
refuses them, as Redis does).
"""

from __future__ import annotations

from collections.abc import Callable

from pypaxos.kv import collection_ops as ops_
from pypaxos.kv import script_cache, script_calls
from pypaxos.kv.commands import (
    READ_OPS,
    Aborted,
    Command,
    DbSize,
    Delete,
    Error,
    ErrorReply,
    Eval,
    Exec,
    FlushAll,
    Integer,
    Keys,
    Ok,
    RandomKey,
    Replies,
    Result,
    Scan,
    ScriptExists,
    ScriptFlush,
    ScriptLoad,
    Value,
    Watch,
)
from pypaxos.kv.keyspace import Keyspace
from pypaxos.kv.transactions import WatchTable

NESTED = "transactions cannot be nested"
WRITE_IN_READ_ONLY = b"-ERR Write commands are not allowed from read-only scripts.\r\n"
NO_SCRIPTS = "scripts are not available on this state machine (no command table)"

Program = Watch | Exec | Eval | ScriptLoad | ScriptExists | ScriptFlush
WHOLE_KEYSPACE = (DbSize, FlushAll, Keys, RandomKey, Scan)
"""The commands whose work grows with the number of keys, whatever their reply's size: a
script's call of one counts that many instructions more (``kv.scripts``)."""
WHOLE_COLLECTION = (
    ops_.SCombine, ops_.SCombineStore, ops_.ZCombine, ops_.ZCombineStore, ops_.ZRangeStore,
    ops_.SMembers, ops_.HGetAll, ops_.HScan, ops_.SScan, ops_.ZScan, ops_.SRandMember,
    ops_.SPop, ops_.LRange, ops_.LRem, ops_.LTrim, ops_.LInsert, ops_.LPos, ops_.LSet,
    ops_.ZRangeByRank, ops_.ZRangeByScore, ops_.ZRangeByLex, ops_.ZRemRangeByRank,
    ops_.ZRemRangeByScore, ops_.ZRemRangeByLex, ops_.Copy, Delete,
)  # fmt: skip
"""The commands whose work may grow with the size of the collections they name (combining,
listing, scanning, searching, shifting, copying or freeing them), whatever their reply's size:
a script's call of one counts one instruction more per element of those collections."""
Execute = Callable[[Command], Result]


class Programs:
    """The watch table, the script cache and the command table scripts call through."""

    __slots__ = ("commands", "in_exec", "scripts", "watches")

    def __init__(self, commands: script_calls.CommandTable | None) -> None:
        self.commands = commands
        self.watches = WatchTable()
        self.scripts = script_cache.ScriptCache()
        self.in_exec = False

    def execute(
        self, op: Program, ks: Keyspace, client_id: int, seed: int, execute: Execute
    ) -> Result:
        """``op`` for ``client_id``; ``seed`` (the log position) seeds a script's random."""
        match op:
            case Watch(keys, reset):
                if self.in_exec:
                    return Error(NESTED)
                refused = self.watches.watch(client_id, keys, reset, ks)
                return Ok() if refused is None else refused
            case Exec(ops, watching):
                if self.in_exec:
                    return Error(NESTED)
                if not self.watches.check(client_id, watching, ks):
                    return Aborted()
                self.in_exec = True
                try:
                    return Replies(tuple(execute(inner) for inner in ops))
                finally:
                    self.in_exec = False
            case Eval():
                return self._eval(op, ks, seed, execute)
            case ScriptLoad(body):
                from pypaxos.kv import scripts  # Lua on first use: most stores never run one

                bad = scripts.compile_error(body)
                if bad is not None:
                    return ErrorReply(bad)
                return Value(self.scripts.add(body))
            case ScriptExists():
                return self.exists(op)
            case ScriptFlush():
                self.scripts.flush()
                return Ok()

    def exists(self, op: ScriptExists) -> Result:
        return Replies(tuple(Integer(int(self.scripts.exists(sha))) for sha in op.shas))

    def _eval(self, op: Eval, ks: Keyspace, seed: int, execute: Execute) -> Result:
        if op.body is None:
            sha = op.sha
            body = self.scripts.get(sha)
            if body is None:
                return ErrorReply(script_cache.NOSCRIPT)
        else:
            body = op.body
            sha = script_cache.sha1_hex(body)
        table = self.commands
        if table is None:
            return Error(NO_SCRIPTS)

        read_only = op.read_only

        def call(argv: list[bytes]) -> tuple[bytes, int]:
            planned = table(argv)
            if isinstance(planned, bytes):
                return planned, 0
            ops, reply = planned
            if read_only and not all(isinstance(inner, READ_OPS) for inner in ops):
                return WRITE_IN_READ_ONLY, 0
            visited = sum(_work(inner, ks) for inner in ops)
            return reply([execute(inner) for inner in ops]), visited

        from pypaxos.kv import scripts  # Lua on first use: most stores never run one

        result, compiled = scripts.run_script(body, sha, op.keys, op.args, call, seed)
        if compiled and op.body is not None:  # as in Redis, a body that fails to compile
            self.scripts.add(body)  # is not kept (nothing can run it)
        return result


def _work(op: Command, ks: Keyspace) -> int:
    """What ``op`` counts against a script's budget beyond its bytes: the keys it visits, or
    the elements of the collections it names (before it runs: the same on every replica)."""
    if isinstance(op, WHOLE_KEYSPACE):
        return len(ks.data)
    if not isinstance(op, WHOLE_COLLECTION):
        return 0
    names: list[bytes] = []
    for field in ("key", "destination", "new"):
        name = getattr(op, field, None)
        if isinstance(name, bytes):
            names.append(name)
    names += getattr(op, "keys", ())
    elements = 0
    for name in names:
        stored = ks.data.get(name)
        if stored is not None and not isinstance(stored, bytes):
            elements += len(stored)
    return elements
