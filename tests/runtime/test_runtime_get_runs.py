"""A feed that is a run of plain ``GET`` s takes the run path and answers as the general one.

``RespParser.feed_gets`` recognises such a feed with strided slices instead of a loop per
command, ``RespConnection._run_gets`` makes its groups without ``plain_single``, and the store
answers them with ``KeyStore.get_many`` and the replies are joined by ``encode_bulk_values``;
a burst of runs run on the node's own store (``LocalGets``) reads the values bare.
Each must give exactly what the general path gives, and fall back to it for anything else:
these tests compare the two on the same inputs (the general path is forced by a ``PING`` in
front, whose ``+PONG`` is then cut off), and check that the run path was in fact taken.
"""

from __future__ import annotations

import asyncio
from itertools import accumulate

import pytest
from connection_fakes import Collecting, ReadingRouter
from hypothesis import given, settings
from hypothesis import strategies as st

from pypaxos.kv import (
    Command,
    Get,
    Request,
    RequestBatch,
    Results,
    Set,
    Value,
)
from pypaxos.kv.collection_ops import LPush
from pypaxos.kv.commands import Expire, InDb
from pypaxos.kv.store import KeyStore
from pypaxos.runtime.auth import Role, User, Users
from pypaxos.runtime.pubsub import PubSubHub
from pypaxos.runtime.requests import GROUP_OPS_MAX, TRYAGAIN_NO_LEADER
from pypaxos.runtime.router import VALUES_KEPT, Failure, LocalGets, wire_command
from pypaxos.runtime.server import RespConnection, RespServer
from pypaxos.transport.resp import (
    RespParser,
    encode_bulk_values,
    encode_bulks,
    encode_command,
)

PING = encode_command("PING")
PONG = b"+PONG\r\n"


class Runs:
    """Counts the feeds the run path took (``feed_gets`` answering keys)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken = 0
        original = RespParser.feed_gets

        def counting(parser: RespParser, data: bytes) -> list[bytes] | None:
            keys = original(parser, data)
            self.taken += keys is not None
            return keys

        monkeypatch.setattr(RespParser, "feed_gets", counting)


def store_server(
    *, read_index: bool = True, users: Users | None = None, local_reads: bool = False
) -> tuple[ReadingRouter, RespServer]:
    """A machine holding strings ``a``, ``b``, a list ``l``, a string ``t`` with a deadline
    far ahead and one ``e`` whose deadline has passed (still stored: no write reclaimed it);
    ``local_reads``: reads run on it as the node runs its own process's (``LocalGets``)."""
    router = ReadingRouter(local_reads=local_reads)
    router.apply(Set(b"a", b"A"))
    router.apply(Set(b"b", b"B" * 5000))  # longer than the header table
    router.apply(LPush(b"l", (b"x",)))
    router.apply(Set(b"t", b"T"))
    router.apply(Expire(b"t", 10**12, absolute=True))
    router.apply(Set(b"e", b"E"))
    router.apply(Expire(b"e", 1_500, absolute=True))  # expired for any read after it
    server = RespServer(
        router,  # type: ignore[arg-type]
        lambda section: "",
        "127.0.0.1:0",
        read_index=read_index,
        users=users,
    )
    return router, server


def connect(server: RespServer) -> tuple[RespConnection, Collecting]:
    connection, transport = RespConnection(server), Collecting()
    connection.connection_made(transport)  # type: ignore[arg-type]
    return connection, transport


async def run(router: ReadingRouter, server: RespServer, *feeds: bytes) -> bytes:
    """What one new connection gets back for ``feeds``, each a ``data_received``."""
    connection, transport = connect(server)
    for data in feeds:
        connection.data_received(data)
        await asyncio.sleep(0)  # the read burst leaves at the end of the pass
        router.answer_until_quiet()
        await asyncio.sleep(0)  # the replies are written from a loop callback
    return bytes(transport.out)


async def general(router: ReadingRouter, server: RespServer, data: bytes) -> bytes:
    """The general path's answer to ``data``: behind a ``PING`` no feed is a run of GETs."""
    out = await run(router, server, PING + data)
    assert out.startswith(PONG)
    return out[len(PONG) :]


def gets(*keys: bytes, name: str = "GET") -> bytes:
    return b"".join(encode_command(name, key) for key in keys)


# -- the parser --------------------------------------------------------------------------------

SMUGGLED = b"a\r\n*2\r\n$3\r\nGET\r\n$1\r\nb"  # a key whose pieces look like a second GET
names = st.sampled_from([b"GET", b"get", b"Get", b"SET", b"GETX"])
keys = st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"a\r\nb", b"\r\n", b"", b"k" * 4095, b"k" * 4096, SMUGGLED]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(names, keys), min_size=1, max_size=20), st.integers(0, 400))
def test_feed_gets_answers_what_feed_parses_or_consumes_nothing(
    commands: list[tuple[bytes, bytes]], cut: int
) -> None:
    whole = b"".join(encode_command(name, key) for name, key in commands)
    data = whole[: len(whole) - cut] if cut < len(whole) else whole
    reference = RespParser()
    expected = reference.feed(data)
    parser = RespParser()
    found = parser.feed_gets(data)
    if found is None:
        assert parser.buffered_bytes == 0
        assert parser.feed(data) == expected  # nothing was consumed
    else:
        assert [[b"GET", key] for key in found] == [[name.upper(), key] for name, key in expected]
        assert all(name in (b"GET", b"get") for name, _ in expected)
        assert reference.buffered_bytes == 0  # the whole input was commands, none partial
        assert parser.buffered_bytes == 0
    # The run path must fire for what it is meant for: whole runs of plain GETs.
    plain = all(
        name in (b"GET", b"get") and b"\r\n" not in key and len(key) < 4096
        for name, key in commands
    )
    if plain and data == whole:
        assert found is not None


@settings(max_examples=300, deadline=None)
@given(st.lists(keys, min_size=1, max_size=20), st.integers(0, 400))
def test_feed_gets_of_an_uppercase_run_cut_anywhere_is_what_feed_parses(
    run_keys: list[bytes], cut: int
) -> None:
    """Uppercase runs are recognised by comparing the input with their encoding: any key
    (CRLF inside, smuggled commands, at the table's bound) and any cut."""
    whole = gets(*run_keys)
    data = whole[: len(whole) - cut] if cut < len(whole) else whole
    expected = RespParser().feed(data)
    found = RespParser().feed_gets(data)
    if found is not None:
        assert [[b"GET", key] for key in found] == expected
    # whole commands only (cut between two), every key without CRLF and within the table
    ends = list(accumulate(len(gets(key)) for key in run_keys))
    plain = all(b"\r\n" not in key and len(key) < 4096 for _, key in expected)
    assert (found is not None) == (plain and len(data) in ends)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(keys, min_size=1, max_size=8), st.integers(0, 10**6), st.binary(min_size=1, max_size=3)
)
def test_feed_gets_of_a_mangled_run_is_none_or_what_feed_parses(
    run_keys: list[bytes], at: int, patch: bytes
) -> None:
    whole = gets(*run_keys)
    index = at % len(whole)
    data = whole[:index] + patch + whole[index + len(patch) :]
    found = RespParser().feed_gets(data)
    if found is not None:
        assert [[b"GET", key] for key in found] == [
            [name.upper(), *rest] for name, *rest in RespParser().feed(data)
        ]


def test_feed_gets_leaves_a_feed_to_feed_when_bytes_are_buffered() -> None:
    parser = RespParser()
    data = gets(b"a", b"b")
    assert parser.feed(data[:5]) == []
    assert parser.feed_gets(data[5:]) is None
    assert parser.feed(data[5:]) == [[b"GET", b"a"], [b"GET", b"b"]]
    assert parser.feed_gets(gets(b"c")) == [b"c"]  # the buffer is empty again


def test_feed_gets_keeps_the_parsers_bulk_bound() -> None:
    parser = RespParser(bulk_bytes_max=8)
    assert parser.feed_gets(gets(b"k" * 9)) is None
    assert RespParser().feed_gets(gets(b"k" * 9)) == [b"k" * 9]


def test_encode_bulk_values_is_encode_bulks_or_declines() -> None:
    values = [b"", b"x", b"y" * 4095, b"\r\n"]
    assert encode_bulk_values(values) == encode_bulks(values, b"$-1\r\n")
    assert encode_bulk_values([]) == b""
    assert encode_bulk_values([b"x", b"z" * 4096]) is None


# -- the store -----------------------------------------------------------------------------------


def test_get_many_is_get_of_each_key() -> None:
    store: KeyStore[bytes] = KeyStore({b"k%d" % i: b"v%d" % i for i in range(3000)})
    wanted = [b"k%d" % i for i in range(0, 4000, 7)] + [b"", b"k1", b"k1"]
    assert store.get_many(wanted) == [store.get(key) for key in wanted]


@pytest.mark.parametrize(
    "keys",
    [
        (b"a", b"zz", b"a"),  # strings and an absent key: the vector path
        (b"a", b"l", b"a"),  # a list: WRONGTYPE for its GET
        (b"t", b"a"),  # a deadline
        (b"a", b"e"),  # a deadline passed
    ],
)
def test_a_batch_of_gets_is_answered_as_each_get_alone(keys: tuple[bytes, ...]) -> None:
    router, _ = store_server()
    machine = router.machine
    batch = machine.query_entry(RequestBatch(0, 0, tuple(Get(k) for k in keys), 2_000))
    alone = [machine.query_entry(Request(0, 0, Get(k), 2_000)) for k in keys]
    assert isinstance(batch, Results)
    assert list(batch.results) == alone


store_keys = st.sampled_from([b"a", b"b", b"c", b"d"])
store_ops = st.one_of(
    st.builds(Set, store_keys, st.binary(max_size=3)),
    st.builds(lambda key: LPush(key, (b"x",)), store_keys),
    st.builds(lambda key, at: Expire(key, at, absolute=True), store_keys, st.integers(1, 4_000)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(store_ops, max_size=8), st.lists(store_keys, min_size=1, max_size=6))
def test_local_gets_keep_bare_values_only_where_the_query_answers_values(
    ops: list[Command], keys: list[bytes]
) -> None:
    """``LocalGets.run`` on the machine: the values it keeps are the ones the general query
    answers; when it keeps none (a deadline, a collection) it answers as the query does; with
    strings and absent keys only, it keeps them."""
    router = ReadingRouter()
    for op in ops:
        router.apply(op)
    machine = router.machine
    entry = RequestBatch(0, 0, tuple(map(Get, keys)), 2_000)
    general = machine.query_entry(entry)
    assert isinstance(general, Results)
    read = LocalGets(list(keys), 2_000)
    assert read.entry == entry  # what a forward or the general query is given
    answer = read.run(machine)
    if answer is VALUES_KEPT:
        assert [Value(value) for value in read.values or []] == list(general.results)
    else:
        assert read.values is None
        assert answer == general
        assert any(isinstance(op, (LPush, Expire)) for op in ops)


# -- the connection ------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "data",
    [
        gets(b"a", b"zz", b"a"),  # the run path end to end
        gets(b"a", b"l", b"zz"),  # a wrong type inside a run: its error, in its place
        gets(b"t", b"a"),  # a key with a deadline
        gets(b"a", b"e"),  # a key whose deadline has passed
        gets(b"b", b"a"),  # a value longer than the header table
        gets(b"a", name="get") + gets(b"zz"),  # either spelling
        gets(b"a") + encode_command("SET", "a", "new") + gets(b"a"),  # a mixed pipeline
        gets(b"a") + encode_command("LPUSH", "a", "x") + gets(b"a"),  # a write that fails
    ],
)
@pytest.mark.parametrize("local_reads", [False, True])
async def test_a_feed_is_answered_as_the_general_path_answers_it(
    data: bytes, local_reads: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = Runs(monkeypatch)
    router, server = store_server(local_reads=local_reads)
    expected = await general(router, server, data)
    assert router.kept == 0  # behind a PING: no run, no bare values
    router, server = store_server(local_reads=local_reads)
    runs.taken = 0
    assert await run(router, server, data) == expected
    mixed = b"SET" in data or b"LPUSH" in data
    assert runs.taken == (0 if mixed else 1)
    # the values read bare exactly when every key of the run is a string or absent, no deadline
    bare = (
        local_reads
        and not mixed
        and not any(key in data for key in (b"$1\r\nl", b"$1\r\nt", b"$1\r\ne"))
    )
    assert router.kept == (1 if bare else 0)


@pytest.mark.asyncio
async def test_a_frame_cut_anywhere_gets_the_same_replies(monkeypatch: pytest.MonkeyPatch) -> None:
    router, server = store_server()
    data = gets(b"a", b"zz", b"l", b"a")
    expected = await general(router, server, data)
    for cut in range(1, len(data)):
        router, server = store_server()
        assert await run(router, server, data[:cut], data[cut:]) == expected


@pytest.mark.asyncio
async def test_a_run_over_the_group_bound_leaves_in_groups_in_order() -> None:
    router, server = store_server()
    keys = [b"a" if i % 3 else b"zz" for i in range(GROUP_OPS_MAX + 100)]
    connection, transport = connect(server)
    connection.data_received(gets(*keys))
    await asyncio.sleep(0)
    assert [len(wire_command(c)) > 0 for c, *_ in router.submitted] == [True, True]
    router.answer_until_quiet()
    await asyncio.sleep(0)
    assert bytes(transport.out) == b"".join(
        b"$1\r\nA\r\n" if key == b"a" else b"$-1\r\n" for key in keys
    )


@pytest.mark.asyncio
async def test_a_failed_read_answers_every_get_of_the_run() -> None:
    router, server = store_server()
    connection, transport = connect(server)
    connection.data_received(gets(b"a", b"zz", b"a"))
    await asyncio.sleep(0)
    router.answer_until_quiet(Failure.NO_LEADER)  # no lease, no leader: the read is refused
    await asyncio.sleep(0)
    assert bytes(transport.out) == TRYAGAIN_NO_LEADER * 3


@pytest.mark.asyncio
async def test_each_read_path_serves_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = Runs(monkeypatch)
    expected = b"$1\r\nA\r\n$-1\r\n"
    # through the log (no read index): submitted as a write
    router, server = store_server(read_index=False)
    connection, transport = connect(server)
    connection.data_received(gets(b"a", b"zz"))
    await asyncio.sleep(0)
    assert [read for _, _, read, _ in router.submitted] == [False]
    router.answer_until_quiet()
    await asyncio.sleep(0)
    assert bytes(transport.out) == expected
    # READONLY: answered from the local state at once, nothing submitted
    router, server = store_server()
    connection, transport = connect(server)
    connection.data_received(encode_command("READONLY"))
    connection.data_received(gets(b"a", b"zz"))
    assert router.submitted == []
    await asyncio.sleep(0)
    assert bytes(transport.out) == b"+OK\r\n" + expected
    assert runs.taken == 2


@pytest.mark.asyncio
async def test_a_run_inside_multi_is_queued_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = Runs(monkeypatch)
    router, server = store_server()
    out = await run(
        router, server, encode_command("MULTI"), gets(b"a", b"zz"), encode_command("EXEC")
    )
    assert out == b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n$1\r\nA\r\n$-1\r\n"
    assert runs.taken == 0


@pytest.mark.asyncio
async def test_a_run_needs_authentication_and_a_read_only_user_may_run_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = Runs(monkeypatch)
    reader = User("reader", Role.READ_ONLY, "unused")
    router, server = store_server(users=Users((reader,)))
    connection, transport = connect(server)
    connection.data_received(gets(b"a", b"zz"))
    await asyncio.sleep(0)
    assert router.submitted == []
    assert bytes(transport.out).count(b"-NOAUTH") == 2
    connection.user = reader  # as after AUTH: reads only, each command checked
    transport.out.clear()
    connection.data_received(gets(b"a") + encode_command("SET", "a", "x"))
    await asyncio.sleep(0)
    router.answer_until_quiet()
    await asyncio.sleep(0)
    assert bytes(transport.out).startswith(b"$1\r\nA\r\n-NOPERM")
    assert runs.taken == 0


@pytest.mark.asyncio
async def test_a_subscriber_in_resp2_is_refused_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = Runs(monkeypatch)
    router, server = store_server()
    server.pubsub = PubSubHub(router.machine)
    connection, transport = connect(server)
    connection.data_received(encode_command("SUBSCRIBE", "ch"))
    transport.out.clear()
    connection.data_received(gets(b"a", b"zz"))
    await asyncio.sleep(0)
    assert router.submitted == []
    assert bytes(transport.out).count(b"-ERR") == 2
    assert runs.taken == 0


@pytest.mark.asyncio
@pytest.mark.parametrize("wrong_type", [False, True])
@pytest.mark.parametrize("local_reads", [False, True])
@pytest.mark.parametrize("database", [0, 3])
async def test_a_burst_of_runs_answers_each_connection_as_if_alone(
    wrong_type: bool, local_reads: bool, database: int
) -> None:
    """One read for the runs of three connections (RESP3, RESP2, a third in ``database``),
    its values handed out in bulk (read bare when run locally and every connection is in
    database 0); a wrong type anywhere sends every group through its own answer."""
    setups = [encode_command("HELLO", "3"), b"", encode_command("SELECT", str(database))]
    runs = [gets(b"a", b"zz"), gets(b"zz", b"l" if wrong_type else b"a"), gets(b"a", b"zz")]
    expected = []
    for setup, data in zip(setups, runs, strict=True):
        router, server = store_server()
        router.apply(InDb(3, Set(b"a", b"THREE")))
        before = await run(router, server, setup) if setup else b""
        router, server = store_server()
        router.apply(InDb(3, Set(b"a", b"THREE")))
        alone = await run(router, server, *([setup] if setup else []), data)
        expected.append(alone[len(before) :])
    router, server = store_server(local_reads=local_reads)
    router.apply(InDb(3, Set(b"a", b"THREE")))
    connections = [connect(server) for _ in setups]
    for (connection, transport), setup in zip(connections, setups, strict=True):
        if setup:
            connection.data_received(setup)
        transport.out.clear()
    for (connection, _), data in zip(connections, runs, strict=True):
        connection.data_received(data)
    await asyncio.sleep(0)
    assert [read for _, _, read, _ in router.submitted] == [True]  # one read for all three
    router.answer_until_quiet()
    await asyncio.sleep(0)
    assert [bytes(transport.out) for _, transport in connections] == expected
    assert expected[0] == b"$1\r\nA\r\n_\r\n"  # RESP3's null, and database 3's own value:
    assert expected[2] == (b"$5\r\nTHREE" if database else b"$1\r\nA") + b"\r\n$-1\r\n"
    assert router.kept == (1 if local_reads and not database and not wrong_type else 0)


def test_feed_gets_takes_bytes_only() -> None:
    data = gets(b"a")
    assert RespParser().feed_gets(bytearray(data)) is None  # keys must be immutable bytes
    assert RespParser().feed_gets(data) == [b"a"]
