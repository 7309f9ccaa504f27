"""The torture harness's parts on their own: the proxy (real TCP), disk faults, the clock."""

from __future__ import annotations

import asyncio
import random
import struct
from pathlib import Path

import msgspec
import pytest

from pypaxos.storage import CorruptLogError, FileStorage
from pypaxos.torture.clock import SkewedClock, SkewedLoop
from pypaxos.torture.disk import frame_offsets, inject, newest_segment
from pypaxos.torture.hosts import EPHEMERAL_PORT_LOW, SLOTS_MAX, LoopbackHosts
from pypaxos.torture.proxy import ANY_SOURCE, FaultProxy, Faults, Route
from pypaxos.transport.codec import FRAME_VERSION, HEADER, Hello


def frame(n: int) -> bytes:
    body = f"m{n}".encode()
    return struct.pack(">I", len(body)) + body


def hello(node_id: int) -> bytes:
    payload = msgspec.msgpack.encode(Hello(node_id))
    return HEADER.pack(len(payload) + 1, FRAME_VERSION) + payload


async def through_proxy(
    faults: Faults, frames: int, source: int = 2, first: bytes = frame(0)
) -> list[bytes]:
    """Send a Hello-like first frame and ``frames`` numbered frames through a proxy."""
    received = bytearray()
    done = asyncio.Event()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.extend(data)
        done.set()
        writer.close()

    target = await asyncio.start_server(sink, "127.0.0.1", 0)
    target_port = target.sockets[0].getsockname()[1]
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    listen_port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    proxy = FaultProxy(
        [Route(source, ("127.0.0.1", listen_port), ("127.0.0.1", target_port))], random.Random(1)
    )
    await proxy.start()
    proxy.set_faults(faults)
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", listen_port)
        writer.write(first + b"".join(frame(n) for n in range(1, frames + 1)))
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.close()
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await proxy.close()
        target.close()
    out, offset = [], 0
    while offset < len(received):
        (length,) = struct.unpack_from(">I", received, offset)
        out.append(bytes(received[offset + 4 : offset + 4 + length]))
        offset += 4 + length
    return out


def test_proxy_passes_frames_in_order_without_faults() -> None:
    got = asyncio.run(through_proxy(Faults(), 200))
    assert got == [f"m{n}".encode() for n in range(201)]


def test_proxy_blocks_a_partitioned_sender_but_passes_its_hello() -> None:
    got = asyncio.run(through_proxy(Faults(blocked=frozenset({2})), 50))
    assert got == [b"m0"]


@pytest.mark.parametrize(("sender", "passed"), [(7, 1), (3, 21)])
def test_an_any_sender_route_learns_the_sender_from_the_hello(sender: int, passed: int) -> None:
    faults = Faults(blocked=frozenset({7}))
    got = asyncio.run(through_proxy(faults, 20, source=ANY_SOURCE, first=hello(sender)))
    assert len(got) == passed  # node 7's frames dropped after its Hello; node 3's all passed


def test_proxy_loses_duplicates_and_reorders_frames() -> None:
    faults = Faults(loss=0.2, delay_ms=(0.0, 20.0), dup=0.2, reorder=0.2)
    got = asyncio.run(through_proxy(faults, 300))
    assert got[0] == b"m0"  # the Hello is never faulted
    body = got[1:]
    assert len(set(body)) < 300  # some lost
    assert len(body) > len(set(body))  # some duplicated
    assert body != sorted(set(body), key=lambda m: int(m[1:]))  # some out of order


def write_log(path: Path, records: int) -> None:
    with FileStorage(path) as storage:
        for n in range(records):
            storage.append(f"record {n}".encode() * 3)
        storage.sync()


@pytest.mark.parametrize("kind", ["torn", "bad-tail"])
def test_a_damaged_tail_is_truncated_and_every_record_kept(tmp_path: Path, kind: str) -> None:
    write_log(tmp_path, 5)
    segment = newest_segment(tmp_path)
    assert segment is not None
    size = segment.stat().st_size
    damage = inject(tmp_path, kind, random.Random(7))
    assert damage is not None and segment.stat().st_size > size
    with FileStorage(tmp_path) as storage:
        assert [r.data for r in storage.records()] == [f"record {n}".encode() * 3 for n in range(5)]
    assert segment.stat().st_size == size


def test_a_corrupt_record_with_records_after_it_is_refused_then_restored(tmp_path: Path) -> None:
    write_log(tmp_path, 5)
    damage = inject(tmp_path, "corrupt", random.Random(3))
    assert damage is not None
    segment = newest_segment(tmp_path)
    assert segment is not None
    assert damage.offset in frame_offsets(damage.original or b"")[:-1]
    with pytest.raises(CorruptLogError) as refused:
        FileStorage(tmp_path)
    assert segment.name in str(refused.value) and f"offset {damage.offset}" in str(refused.value)
    damage.restore()
    with FileStorage(tmp_path) as storage:
        assert len(list(storage.records())) == 5


def test_skewed_clock_jumps_and_changes_rate() -> None:
    clock = SkewedClock()
    before = clock.now()
    clock.change(5.0, 1.0)
    assert clock.now() - before >= 5.0
    clock.change(-2.0, 1.0)
    assert 2.9 < clock.now() - before < 3.5
    clock.change(0.0, 4.0)
    start = clock.now()

    async def elapsed() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.sleep(0.4)  # 0.4 s on the fast clock: about 0.1 s of real time
        return loop.time() - t0

    loop = SkewedLoop(clock)
    try:
        took = loop.run_until_complete(elapsed())
    finally:
        loop.close()
    assert took >= 0.4 and clock.now() - start >= 0.4


def test_planted_bugs_reach_the_node_config_from_file_and_flag(tmp_path: Path) -> None:
    from pypaxos.multi import LogBug
    from pypaxos.runtime.config import ConfigError, load_config

    path = tmp_path / "cluster.toml"
    members = '[[members]]\nid = 1\npeer = "127.0.0.1:1"\nclient = "127.0.0.1:2"\n'
    path.write_text(f'cluster_id = "t"\nbugs = ["no-repropose"]\n{members}')
    config = load_config(path).with_bugs(["commit-without-quorum"])
    assert config.multi_config().bugs == {LogBug.NO_REPROPOSE, LogBug.COMMIT_WITHOUT_QUORUM}
    with pytest.raises(ConfigError, match="bugs: unknown bug") as refused:
        config.with_bugs(["no-such-bug"])
    assert refused.value.key == "bugs"
    path.write_text(f'cluster_id = "t"\nbugs = ["typo"]\n{members}')
    with pytest.raises(ConfigError, match="bugs"):
        load_config(path)


def test_a_large_agent_answer_is_read_whole(tmp_path: Path) -> None:
    """The agent's final answer grows with the run (every unique key read back): 2 MiB here."""
    from pypaxos.torture.cluster import _ask

    big = "x" * (2 * 1024 * 1024)

    async def scenario() -> dict[str, object]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            writer.write(b'{"keys": "' + big.encode() + b'"}\n')
            await writer.drain()
            writer.close()

        server = await asyncio.start_unix_server(handle, str(tmp_path / "agent.sock"))
        async with server:
            return await _ask(tmp_path / "agent.sock", {"op": "final"}, 10.0)

    assert asyncio.run(scenario()) == {"keys": big}


def test_a_loopback_cluster_takes_its_ports_below_the_ephemeral_range() -> None:
    """A port in Linux's ephemeral range may become the local end of an outgoing connection
    between the check and a node's (re)start, which then cannot listen; every block drawn, at
    the most slots, stays below the range."""
    rng = random.Random(7)
    for _ in range(50):
        hosts = LoopbackHosts.on_free_ports(SLOTS_MAX, rng)
        assert max(hosts.ports()) < EPHEMERAL_PORT_LOW
