"""``redis-benchmark`` with its default test list (no ``-t``) against a real 3-node cluster.

redis-benchmark 7 stops at the first error reply ("Error from server: ...") and warns when
``CONFIG GET save`` / ``CONFIG GET appendonly`` do not answer a pair, so a clean exit with no
error or warning line means every default test's command was answered as Redis would.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from runtime_helpers import RunningCluster, port_of, retry, write_cluster

from pypaxos.runtime.config import load_config

pytestmark = pytest.mark.asyncio

REDIS_BENCHMARK = shutil.which("redis-benchmark")


@pytest.mark.skipif(REDIS_BENCHMARK is None, reason="redis-benchmark is not installed")
async def test_default_tests_run_without_errors(tmp_path: Path) -> None:
    assert REDIS_BENCHMARK is not None
    cluster = await RunningCluster.start(load_config(write_cluster(tmp_path)))
    try:
        leader = await cluster.wait_leader()
        await retry(lambda: cluster.client(leader).set("warm", "up"))
        port = port_of(cluster.apps[leader].member.client)
        process = await asyncio.create_subprocess_exec(
            REDIS_BENCHMARK,
            *("-h", "127.0.0.1", "-p", str(port), "-n", "200", "-c", "10", "-q"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(240):
            output, _ = await process.communicate()
        lines = [line.strip() for line in output.decode().replace("\r", "\n").splitlines()]
        results = [line for line in lines if "requests per second" in line]
        problems = [line for line in lines if "error" in line.lower() or "warning" in line.lower()]
        assert process.returncode == 0, lines
        assert problems == []
        tested = {line.partition(":")[0] for line in results}
        assert {"SET", "GET", "LPUSH", "SPOP", "ZPOPMIN", "HSET", "MSET (10 keys)"} <= tested
    finally:
        await cluster.close()
