"""The client port of a node that serves replicated objects (``pypaxos.objects``).

Two commands carry ``objects.Call`` bytes (msgspec, built by a ``Caller``):

- ``PAXOS.CALL <call>``: a command (a ``@command`` method) proposed through the log,
  forwarded to the leader by a follower like every write; exactly once by the call's
  ``(client_id, seq)``, so a client may resend the same bytes after a timeout or a lost
  connection.  The reply is a bulk string: the result bytes (``objects.Result``).
- ``PAXOS.QUERY <call>``: a read (an unmarked method, ``seq`` 0) on the read path
  (``Node.read``: a read-index round, a lease, or a follower read, per the config); never in
  the log, so it changes no session.

The bytes are decoded here before anything is proposed: a malformed call is answered ``-ERR``
and never reaches the log.  The key-value commands are answered with an error naming what this
node serves; the connection, admin and ``INFO`` commands work as on a key-value node.

Order per connection: a read is sent only when none of the connection's calls is outstanding,
and a call only when none of its reads is, so a pipelined call then read sees the call.
"""

from __future__ import annotations

import weakref
from collections import deque

from pypaxos.objects import decode_call
from pypaxos.runtime.commands import plan
from pypaxos.runtime.plans import Custom, Ops, Plan, error, wrong_arity
from pypaxos.runtime.requests import BUSY, TRYAGAIN_NO_LEADER, TRYAGAIN_UNKNOWN
from pypaxos.runtime.router import Failure, Router
from pypaxos.runtime.server import RespConnection, _Slot
from pypaxos.transport.resp import encode_bulk, encode_error

CALL = b"PAXOS.CALL"
QUERY = b"PAXOS.QUERY"
CALL_BYTES_MAX = 1024 * 1024
"""The largest call a client may send (its arguments, encoded)."""


def object_plan(args: list[bytes], served: str) -> Plan:
    """``commands.plan`` for a node serving ``served`` (a class name, for error messages)."""
    name = args[0].upper()
    if name in (CALL, QUERY):
        if len(args) != 2:
            return wrong_arity(args[0])
        if len(args[1]) > CALL_BYTES_MAX:
            return error(f"ERR the call is over {CALL_BYTES_MAX} bytes")
        return Custom(name, args[1], write=name == CALL)
    planned = plan(args)
    if isinstance(planned, Ops) or name == b"PAXOS.REQ":
        shown = args[0].decode(errors="replace")
        return error(
            f"ERR '{shown}' is a key-value command; this node serves {served}: "
            "send PAXOS.CALL or PAXOS.QUERY"
        )
    return planned


class _Queue:
    """One connection's calls and reads in arrival order, and what of them is outstanding."""

    __slots__ = ("reads_out", "waiting", "writes_out")

    def __init__(self) -> None:
        self.waiting: deque[tuple[Custom, _Slot]] = deque()
        self.reads_out = 0
        self.writes_out = 0


class ObjectPort:
    """Answers ``Custom`` plans (``RespServer(custom=port.handle)``) through ``router``."""

    def __init__(self, router: Router, served: str) -> None:
        self.router = router
        self.served = served
        self.calls = 0
        self.queries = 0
        self._queues: weakref.WeakKeyDictionary[RespConnection, _Queue] = (
            weakref.WeakKeyDictionary()
        )

    def plan(self, args: list[bytes]) -> Plan:
        return object_plan(args, self.served)

    def handle(self, conn: RespConnection, custom: Custom) -> None:
        try:
            call = decode_call(custom.payload)
        except ValueError as problem:
            conn.fill(conn.new_slot(1), encode_error(f"ERR {problem}"))
            return
        if (custom.write and call.seq < 1) or call.client_id < 1:
            conn.fill(conn.new_slot(1), encode_error("ERR PAXOS.CALL needs client_id, seq >= 1"))
            return
        queue = self._queues.get(conn)
        if queue is None:
            queue = self._queues[conn] = _Queue()
        queue.waiting.append((custom, conn.new_slot(1)))
        self._pump(conn, queue)

    def _pump(self, conn: RespConnection, queue: _Queue) -> None:
        while queue.waiting:
            custom, slot = queue.waiting[0]
            if (custom.write and queue.reads_out) or (not custom.write and queue.writes_out):
                return
            queue.waiting.popleft()
            if custom.write:
                queue.writes_out += 1
                self.calls += 1
            else:
                queue.reads_out += 1
                self.queries += 1
            self._submit(conn, queue, custom, slot)

    def _submit(self, conn: RespConnection, queue: _Queue, custom: Custom, slot: _Slot) -> None:
        write = custom.write

        def done(outcome: bytes | Failure) -> None:
            if write:
                queue.writes_out -= 1
            else:
                queue.reads_out -= 1
            conn.fill(slot, _reply(outcome))
            if not conn.closed:
                self._pump(conn, queue)

        self.router.submit_raw(custom.payload, done, read=not write)


def _reply(outcome: bytes | Failure) -> bytes:
    if isinstance(outcome, Failure):
        if outcome is Failure.BUSY:
            return BUSY
        if outcome is Failure.NO_LEADER:
            return TRYAGAIN_NO_LEADER
        return TRYAGAIN_UNKNOWN
    return encode_bulk(outcome)
