"""The HTTP load generator used for etcd's gateway: response framing, and its accounting
against a tiny fake server whose behaviour is known exactly (as ``loadgen``'s tests do)."""

from __future__ import annotations

import asyncio

import pytest

from pypaxos.bench.httpload import HttpResponseError, ResponseReader, run_post_load

SERVER_DELAY_S = 0.01


def by_length(status: int, body: bytes) -> bytes:
    return b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nX-Other: 1\r\n\r\n%s" % (
        status,
        len(body),
        body,
    )


def chunked(status: int, body: bytes) -> bytes:
    half = len(body) // 2
    pieces = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]) if p)
    return b"HTTP/1.1 %d X\r\nTransfer-Encoding: chunked\r\n\r\n%s0\r\n\r\n" % (status, pieces)


@pytest.mark.parametrize("frame", [by_length, chunked])
def test_responses_are_cut_at_their_ends_whatever_the_reads(frame: object) -> None:
    assert callable(frame)
    stream = frame(200, b'{"header":{}}') + frame(404, b"") + frame(200, b"x" * 300)
    for step in (1, 7, len(stream)):
        reader = ResponseReader()
        statuses: list[int] = []
        for start in range(0, len(stream), step):
            statuses += reader.feed(stream[start : start + step])
        assert statuses == [200, 404, 200], step


def test_a_response_split_before_its_body_waits_for_the_body() -> None:
    reader = ResponseReader()
    whole = by_length(200, b"0123456789")
    assert reader.feed(whole[:-4]) == []
    assert reader.feed(whole[-4:]) == [200]


@pytest.mark.parametrize(
    "garbage",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_what_is_not_a_response_is_an_error(garbage: bytes) -> None:
    with pytest.raises(HttpResponseError):
        ResponseReader().feed(garbage)


class FakeGateway:
    """Answers each request after SERVER_DELAY_S: 200 with a JSON body, every third one 500;
    chunked or by length, alternately.  Counts the requests it saw."""

    def __init__(self) -> None:
        self.requests = 0
        self.bodies: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                self.bodies.append(await reader.readexactly(length))
                self.requests += 1
                number = self.requests  # before the sleep: the other connection counts too
                await asyncio.sleep(SERVER_DELAY_S)
                status = 500 if number % 3 == 0 else 200
                frame = chunked if number % 2 else by_length
                writer.write(frame(status, b'{"header":{"revision":"1"}}'))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def test_every_request_is_counted_once_with_its_latency() -> None:
    async def scenario() -> None:
        fake = FakeGateway()
        server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        result = await run_post_load(
            "127.0.0.1",
            port,
            lambda client, index: b'{"c":%d,"i":%d}' % (client, index),
            path="/v3/kv/put",
            clients=2,
            duration_s=0.3,
        )
        server.close()
        answered = sum(result.statuses.values())
        assert answered == fake.requests  # each request answered and counted once
        assert result.statuses[500] == fake.requests // 3
        assert result.errors == result.statuses[500]
        assert result.ok == len(result.latencies_us) <= result.statuses[200]
        assert result.ok > 0
        assert min(result.latencies_us) >= SERVER_DELAY_S * 1e6
        assert b'{"c":1,"i":0}' in fake.bodies

    asyncio.run(scenario())


def test_a_server_that_hangs_up_gives_errors() -> None:
    async def scenario() -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        result = await run_post_load(
            "127.0.0.1", port, lambda c, i: b"{}", path="/", clients=3, duration_s=0.2
        )
        server.close()
        assert result.ok == 0
        assert result.errors == 3

    asyncio.run(scenario())


def test_a_server_that_answers_garbage_gives_one_error_per_connection() -> None:
    async def answer_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await reader.read(65536)  # until the client hangs up
        writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(answer_garbage, "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        result = await run_post_load(
            "127.0.0.1", port, lambda c, i: b"{}", path="/", clients=2, duration_s=0.2
        )
        server.close()
        assert (result.ok, result.errors, result.statuses) == (0, 2, {})

    asyncio.run(scenario())
