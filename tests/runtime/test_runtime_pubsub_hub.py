"""The node's pub/sub hub alone: bounded history, refusing a revision older than it keeps,
replaying what it keeps, and forgetting a closed subscriber."""

from __future__ import annotations

import random
from collections.abc import Sequence

from pypaxos.kv import Command
from pypaxos.kv.glob import glob_matcher, regex_matcher
from pypaxos.kv.pubsub import Publication
from pypaxos.runtime.pubsub import PubSubCommand, PubSubHub, plan_pubsub
from pypaxos.runtime.replies import Combine


class FakeSource:
    def __init__(self) -> None:
        self.applied = 0
        self.publications_floor = 0
        self.pending: list[Publication] = []

    def record_publications(self) -> None:
        self.publications_floor = self.applied

    def take_publications(self) -> list[Publication]:
        taken, self.pending = self.pending, []
        return taken

    def publish(self, channel: bytes, message: bytes) -> None:
        self.applied += 1
        self.pending.append(Publication(self.applied, channel, message))


class FakeConn:
    protocol = 2
    closed = False

    def __init__(self) -> None:
        self.pushed: list[bytes] = []

    def push(self, data: bytes) -> None:
        self.pushed.append(data)

    def send_ops(self, ops: tuple[Command, ...], combine: Combine) -> None:
        raise AssertionError("not in these tests")


def _subscribe(hub: PubSubHub, conn: FakeConn, *args: bytes) -> bytes:
    planned = plan_pubsub([b"PAXOS.SUBSCRIBE", *args])
    assert isinstance(planned, PubSubCommand)
    reply = hub.run(conn, planned)
    assert reply is not None
    return reply


def _payloads(data: Sequence[bytes]) -> list[bytes]:
    parts = b"".join(data).split(b"\r\n")
    return [parts[i + 4] for i, part in enumerate(parts) if part == b"message"]


def test_history_is_bounded_and_an_older_revision_is_refused() -> None:
    source = FakeSource()
    hub = PubSubHub(source, history_messages_max=3)
    for i in range(5):
        source.publish(b"ch", b"m%d" % i)
        hub.on_applied()
    assert len(hub.history) == 3 and hub.floor == 2
    conn = FakeConn()
    refused = _subscribe(hub, conn, b"FROM", b"1", b"ch")
    assert refused.startswith(b"-ERR revision 1 is no longer kept")
    assert hub.count(conn) == 0  # refused: not subscribed either
    replayed = _subscribe(hub, conn, b"FROM", b"2", b"ch")
    assert _payloads([replayed]) == [b"m2", b"m3", b"m4"]
    source.publish(b"ch", b"m5")
    source.publish(b"other", b"x")
    hub.on_applied()
    assert _payloads(conn.pushed) == [b"m5"]


def test_history_is_bounded_by_bytes() -> None:
    source = FakeSource()
    hub = PubSubHub(source, history_bytes_max=100)
    for _ in range(10):
        source.publish(b"c", b"x" * 40)
    hub.on_applied()
    assert hub.history_bytes <= 100 and len(hub.history) == 2


def test_a_dropped_subscriber_is_forgotten() -> None:
    source = FakeSource()
    hub = PubSubHub(source)
    conn = FakeConn()
    _subscribe(hub, conn, b"a", b"b")
    hub.drop(conn)
    assert hub.channels == {} and hub.subscriptions == {}
    source.publish(b"a", b"m")
    hub.on_applied()
    assert conn.pushed == []


def test_revision_argument_is_validated() -> None:
    assert plan_pubsub([b"PAXOS.SUBSCRIBE", b"FROM", b"-1", b"ch"]) == (
        b"-ERR revision is not a non-negative integer\r\n"
    )
    assert isinstance(plan_pubsub([b"PAXOS.SUBSCRIBE", b"FROM", b"5"]), bytes)  # no channel


def test_a_snapshot_install_empties_the_history() -> None:
    source = FakeSource()
    hub = PubSubHub(source)
    source.publish(b"ch", b"before")
    hub.on_applied()
    source.applied = 50  # the node jumped ahead by a snapshot: revisions 2..50 never applied here
    source.publications_floor = 50
    source.publish(b"ch", b"after")
    hub.on_applied()
    assert hub.floor == 50 and [p.message for p in hub.history] == [b"after"]
    conn = FakeConn()
    assert _subscribe(hub, conn, b"FROM", b"1", b"ch").startswith(b"-ERR revision 1 is no")
    assert _payloads([_subscribe(hub, conn, b"FROM", b"50", b"ch")]) == [b"after"]


def test_pattern_matcher_answers_as_the_keyspace_glob() -> None:
    rng = random.Random(5)
    alphabet = b"ab*?[]^-\\"
    for _ in range(20_000):
        pattern = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 9)))
        text = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 9)))
        assert glob_matcher(pattern)(text) == regex_matcher(pattern)(text), (pattern, text)


def test_a_pattern_with_many_stars_does_not_backtrack_for_ever() -> None:
    pattern = b"*a" * 12 + b"*b"
    assert not glob_matcher(pattern)(b"a" * 5000)  # a regex would take years here
    assert glob_matcher(pattern)(b"a" * 5000 + b"b")
