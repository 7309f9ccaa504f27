"""The server's planning over a bare state machine: a RESP command in, its RESP reply out.

What a node does for a command, without the log or the sockets: ``plan`` it, apply each op as
its own exactly-once request (reads through ``query`` too, which must agree), ``combine``.
Between ``MULTI`` and ``EXEC`` commands are queued as a connection queues them
(``runtime.transactions``).  Several stores may share one machine, each its own client.
"""

from __future__ import annotations

from pypaxos.kv import KVStateMachine, Request, decode_result, encode_request
from pypaxos.kv.commands import DATABASES, InDb, is_read
from pypaxos.runtime.blocking import NOT_SERVED, Blocking, attempt_once, timeout_reply
from pypaxos.runtime.commands import plan, script_command
from pypaxos.runtime.databases import OUT_OF_RANGE, SelectDb
from pypaxos.runtime.plans import Immediate, Ops, TxCommand
from pypaxos.runtime.replies import NULL_RESP2
from pypaxos.runtime.transactions import Transaction


class PlannedStore:
    def __init__(
        self,
        machine: KVStateMachine | None = None,
        client_id: int = 1,
        *,
        null: bytes = NULL_RESP2,
    ) -> None:
        self.null = null  # how the connection's protocol spells null (RESP2 or RESP3)
        self.machine = machine or KVStateMachine(script_commands=script_command)
        self.client_id = client_id
        self.seq = 0
        self.now_ms = 1_700_000_000_000  # the request stamp (what the server's clock reads)
        self.tx = Transaction()
        self.db = 0  # SELECT's, as a connection keeps it

    def call(self, *args: bytes | str) -> bytes:
        argv = [a.encode() if isinstance(a, str) else a for a in args]
        planned = plan(argv)
        if isinstance(planned, SelectDb):
            if not 0 <= planned.index < DATABASES:
                return self.tx.add(argv, OUT_OF_RANGE) if self.tx.active else OUT_OF_RANGE
            if self.tx.active:
                return self.tx.select(argv, planned.index)
            self.db = planned.index
            return b"+OK\r\n"
        if self.tx.active and not isinstance(planned, TxCommand):
            if isinstance(planned, Immediate):
                return self.tx.add(argv, planned.reply)
            if isinstance(planned, Blocking):  # one attempt, as the server queues it
                planned = Ops(planned.ops, attempt_once(planned))
            assert isinstance(planned, Ops), planned
            return self.tx.add(argv, planned)
        if isinstance(planned, TxCommand):
            selected = self.tx.selected
            outcome = self.tx.command(planned)
            if isinstance(outcome, bytes):
                return outcome
            reply = self.call_ops(outcome)
            aborted = reply in (b"*-1\r\n", b"_\r\n")  # a watched key changed: nothing ran
            if planned.name == b"EXEC" and selected is not None and not aborted:
                self.db = selected
            return reply
        if isinstance(planned, Immediate):
            return planned.reply
        if isinstance(planned, Blocking):  # nothing else runs meanwhile: served now or never
            reply = self.call_ops(Ops(planned.ops, planned.combine))
            if reply != NOT_SERVED:
                return reply
            return timeout_reply(self.null)
        assert isinstance(planned, Ops), planned
        return self.call_ops(planned)

    def call_ops(self, planned: Ops) -> bytes:
        results = []
        for op in planned.ops:
            self.seq += 1
            if self.db:
                op = InDb(self.db, op)
            request = encode_request(Request(self.client_id, self.seq, op, self.now_ms))
            queried = self.machine.query(request) if is_read(op) else None
            result = decode_result(self.machine.apply(request))
            if queried is not None:
                assert decode_result(queried) == result, op
            results.append(result)
        return planned.combine(results, self.null)
