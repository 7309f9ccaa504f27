"""The metrics endpoint's own HTTP server: the scrape, a wrong path, a wrong method."""

from __future__ import annotations

import asyncio
import socket

import pytest

from pypaxos.runtime.metrics import MetricsServer, NodeMetrics


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def request(port: int, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    answer = await reader.read()  # the server closes after one answer
    writer.close()
    return answer


@pytest.mark.asyncio
async def test_the_server_answers_get_metrics_and_refuses_the_rest() -> None:
    port = free_port()
    refreshed: list[bool] = []
    server = MetricsServer(NodeMetrics(7), f"127.0.0.1:{port}", lambda: refreshed.append(True))
    await server.start()
    try:
        ok = await request(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = ok.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert f"Content-Length: {len(body)}".encode() in head
        assert b"pypaxos_applied_index" in body and refreshed == [True]
        missing = await request(port, b"GET /other HTTP/1.1\r\n\r\n")
        assert missing.startswith(b"HTTP/1.1 404")
        post = await request(port, b"POST /metrics HTTP/1.1\r\n\r\n")
        assert post.startswith(b"HTTP/1.1 405")
    finally:
        await server.close()


def test_histograms_count_an_observation_at_a_bound_in_that_bucket_and_accumulate() -> None:
    metrics = NodeMetrics(3)
    for seconds in (0.001, 0.0011, 0.003, 60.0):
        metrics.observe_commit(seconds)
    metrics.committed(4)
    lines = metrics.exposition().decode().splitlines()
    bucket = 'pypaxos_commit_latency_seconds_bucket{le="%s"} %s'
    assert bucket % ("0.0005", "0.0") in lines
    assert bucket % ("0.001", "1.0") in lines  # le: at or below the bound
    assert bucket % ("0.002", "2.0") in lines
    assert bucket % ("5.0", "3.0") in lines
    assert bucket % ("+Inf", "4.0") in lines
    assert "pypaxos_commit_latency_seconds_count 4.0" in lines
    assert "pypaxos_commands_committed_total 4.0" in lines
    assert 'pypaxos_role{role="follower"} 1.0' in lines
