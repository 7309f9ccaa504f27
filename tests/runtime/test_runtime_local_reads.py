"""Reads made in the store's own process (``router.LocalRead``): nothing encoded on the way,
the same answers as the encoded path, and encoded whenever they leave the node.

The node answers a ``LocalQuery`` with a ``LocalReply`` holding the machine's own object, only
when it would have answered the encoded query (after the confirmation round); the store's
``query_entry`` answers what ``query`` answers, decoded; a follower forwards a ``LocalRead``
to the leader as the bytes ``query`` takes.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

from pypaxos.core.effects import Send
from pypaxos.kv import (
    Error,
    Get,
    KVStateMachine,
    Request,
    RequestBatch,
    Set,
    SetWith,
    Value,
    decode_answer,
    encode_request,
)
from pypaxos.kv import Incr as IncrOp
from pypaxos.kv.collection_ops import LLen, LPush
from pypaxos.kv.commands import DbSize, InDb, Ttl
from pypaxos.kv.values import WRONGTYPE
from pypaxos.multi import (
    HeartbeatAck,
    LocalReply,
    MultiConfig,
    Node,
    Prepare,
    Promise,
    Reply,
    Role,
)
from pypaxos.multi.reads import LocalQuery
from pypaxos.runtime.replies import NULL_RESP2, NULL_RESP3
from pypaxos.runtime.requests import GET_REPLY, _get_replies
from pypaxos.runtime.router import LocalRead, Router, wire_command
from pypaxos.runtime.wire import Forward, WireMessage
from pypaxos.transport.resp import encode_bulks


def _store() -> KVStateMachine:
    machine = KVStateMachine()
    writes = [
        Set(b"a", b"A"),
        SetWith(b"gone", b"G", ttl_ms=10),  # expired by the reads' time below
        LPush(b"list", (b"x",)),
        InDb(3, Set(b"a", b"in-db-3")),
    ]
    for seq, op in enumerate(writes, start=1):
        machine.apply(encode_request(Request(7, seq, op, 1_000)))
    return machine


READS = [
    Request(0, 0, Get(b"a"), 2_000),
    Request(0, 0, Get(b"gone"), 2_000),
    Request(0, 0, Get(b"list"), 2_000),  # wrong type
    Request(0, 0, InDb(3, Get(b"a")), 2_000),
    RequestBatch(0, 0, (Get(b"a"), Get(b"missing"), Get(b"gone")), 2_000),
    RequestBatch(0, 0, (Get(b"a"), LLen(b"list"), Ttl(b"gone"), DbSize()), 2_000),
    Request(0, 0, IncrOp(b"a"), 2_000),  # not a read: refused, and nothing changes
]


def test_query_entry_answers_what_query_answers() -> None:
    machine = _store()
    for entry in READS:
        encoded = decode_answer(machine.query(encode_request(entry)))
        assert machine.query_entry(entry) == encoded, entry
        assert LocalRead(entry).run(machine) == encoded
    assert decode_answer(machine.query(encode_request(READS[0]))) == machine.query_entry(READS[0])
    assert machine.commands_executed == 4  # the reads, the refused INCR included, changed nothing


class Query:
    """A ``LocalQuery`` that says which machine it ran on."""

    def __init__(self) -> None:
        self.ran_on: list[object] = []

    def run(self, machine: object) -> object:
        self.ran_on.append(machine)
        return ("answer", len(self.ran_on))


def test_a_local_query_is_answered_as_itself_and_only_after_the_round() -> None:
    config = MultiConfig(node_ids=(1, 2, 3), pre_vote=False)
    node = Node(1, config, random.Random(1), KVStateMachine())
    for _ in range(200):
        sent = [e.msg for e in node.tick() if isinstance(e, Send)]
        prepare = next((m for m in sent if isinstance(m, Prepare)), None)
        if prepare is not None:
            node.handle(Promise(2, prepare.ballot, 0, 0, 0))
            break
    assert node.role is Role.LEADER
    query: LocalQuery = Query()
    effects = node.read(5, query)
    assert not any(isinstance(e, LocalReply | Reply) for e in effects)  # the round is out
    beat = next(e.msg for e in effects if isinstance(e, Send))
    answered = node.handle(HeartbeatAck(2, beat.ballot, 0, beat.read_round))
    replies = [e for e in answered if isinstance(e, LocalReply | Reply)]
    assert replies == [LocalReply(5, ("answer", 1))]
    assert isinstance(query, Query) and query.ran_on == [node.replica.machine]


class Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[int, WireMessage]] = []

    def send(self, to: int, msg: WireMessage) -> None:
        self.sent.append((to, msg))


class FollowerDriver:
    """Just enough of a follower's driver for the router: the leader is node 1."""

    def __init__(self) -> None:
        config = SimpleNamespace(follower_reads=False)
        self.node = SimpleNamespace(id=3, role=Role.FOLLOWER, leader_id=1, config=config)
        self.lease_answered: set[int] = set()
        self.status_listeners: list[object] = []
        self.sink: object = None
        self.read_calls: list[object] = []

    def read(self, request_id: int, command: object) -> None:
        self.read_calls.append(command)


def test_a_follower_forwards_a_local_read_encoded() -> None:
    driver, sender = FollowerDriver(), Sender()
    router = Router(driver, sender)  # type: ignore[arg-type]
    entry = RequestBatch(0, 0, (Get(b"a"), Get(b"b")), 2_000)
    router.submit(LocalRead(entry), lambda outcome: None, read=True, reads=2)
    assert driver.read_calls == []
    [(to, msg)] = sender.sent
    assert to == 1 and isinstance(msg, Forward) and msg.read
    assert msg.command == encode_request(entry) == wire_command(LocalRead(entry))


def test_a_group_of_gets_is_formatted_as_one_get_at_a_time() -> None:
    values = [b"", b"v", None, b"x" * 4095, b"y" * 4096, b"z" * 70_000]
    results = [Value(v) for v in values]
    for null in (NULL_RESP2, NULL_RESP3):
        one_by_one = b"".join(GET_REPLY(r, null) for r in results)
        assert _get_replies(results, null) == one_by_one
        assert encode_bulks(values, null) == one_by_one
    wrong_type = Error(WRONGTYPE)
    assert _get_replies([Value(b"v"), wrong_type], NULL_RESP2) is None  # the general path
