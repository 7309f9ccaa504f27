"""A node removed while it was cut off (stopped with SIGSTOP, so it never applies its removal)
is told by its peers when it comes back: it logs its removal, stops with exit 0, and its
directory never starts again, as for a node that applied its removal from the log.  A voter
dials its peers to campaign; a learner sends nothing, and redials because its peers hung up."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess

import pytest
from conftest import Clusters

from pypaxos.client import AsyncClient
from pypaxos.client.members import MembershipInfo
from pypaxos.cluster import processes
from pypaxos.cluster.members import add_local_node, local_client, retry_change

NOTICE_LOGGED = b"removed from the cluster in epoch"
STOP_TIMEOUT_S = 60.0


@pytest.mark.asyncio
@pytest.mark.parametrize("role", ["voter", "learner"])
async def test_a_node_removed_while_stopped_is_told_when_it_resumes(
    clusters: Clusters, role: str
) -> None:
    cluster = clusters.make(3)
    await cluster.up(timeout_s=30)
    four = await add_local_node(cluster, promote=role == "voter")
    process = cluster.started[four.id]
    async with AsyncClient([four.client], follow_leader=False, timeout_s=5) as direct:
        async with asyncio.timeout(20):  # its own view: it knows it is a member (a voter)
            while _role_of(await direct.member_list(), four.id) != role:
                await asyncio.sleep(0.1)
    async with local_client(cluster, exclude=(four.id,)) as client:
        cluster.kill(four.id, signal.SIGSTOP)
        try:
            epoch = await retry_change(lambda: client.member_remove(four.id), 30)
            async with asyncio.timeout(20):  # in force on the others, who now refuse it
                while (await client.member_list()).member(four.id) is not None:
                    await asyncio.sleep(0.1)
            await client.set("after-removal", "yes")
        finally:
            cluster.kill(four.id, signal.SIGCONT)
        code = await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)
        assert await client.get("after-removal") == b"yes"
    assert code == 0
    log = cluster.spec.log_file(four.id).read_bytes()
    told = [line for line in log.splitlines() if NOTICE_LOGGED in line]
    assert told, log[-3000:].decode(errors="replace")
    assert f"{NOTICE_LOGGED.decode()} {epoch} (from slot ".encode() in told[0]
    assert b"was removed from the cluster and stopped" in log
    command = processes.node_command(cluster.spec, four.id)
    again = subprocess.run(command, capture_output=True, timeout=60)
    with contextlib.suppress(KeyError):
        del cluster.started[four.id]
    assert again.returncode == 1
    assert b"was removed from the cluster" in again.stderr, again.stderr[-2000:]


def _role_of(info: MembershipInfo, node_id: int) -> str:
    member = info.member(node_id)
    return "" if member is None else member.role
