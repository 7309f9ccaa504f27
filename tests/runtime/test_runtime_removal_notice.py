"""What a node does with a peer's removal notice (``NodeApp.on_removal_notice``, called by the
transport with authenticated notices only: tests/transport/test_tcp_refusals.py): a stale one,
one about another node, one from a node outside its configuration change nothing; one newer
than any configuration it knows stops it, recorded, as if it had applied its removal.  And
``INFO`` names the peer protocol version."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from runtime_helpers import RunningCluster, write_cluster

from pypaxos.multi.membership import RemovalNotice
from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.config import load_config
from pypaxos.runtime.identity import RemovedMemberError
from pypaxos.runtime.identity import read as read_identity
from pypaxos.transport.codec import PROTOCOL_VERSION


@pytest.mark.asyncio
async def test_only_a_newer_notice_about_this_node_from_a_member_stops_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(write_cluster(tmp_path, nodes=3))
    apps = {i: NodeApp(config, i, request_timeout_s=3.0) for i in (1, 2, 3)}
    for app in apps.values():
        await app.start()
    running = RunningCluster(apps)
    try:
        await running.wait_leader()
        three = apps[3]
        assert f"peer_protocol:{PROTOCOL_VERSION}\r\n" in three.info("server")
        with caplog.at_level(logging.INFO, logger="pypaxos.runtime.app"):
            three.on_removal_notice(1, RemovalNotice(3, 0, 10))  # the epoch it knows
            three.on_removal_notice(1, RemovalNotice(2, 5, 10))  # about another node
            three.on_removal_notice(9, RemovalNotice(3, 5, 10))  # from a stranger
            await asyncio.sleep(0.2)
            assert not three.removed and not three.stopped.is_set()
            ignored = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
            assert any("stale: this node knows epoch 0" in m for m in ignored), ignored
            assert any("other-node" in m for m in ignored), ignored
            assert any("node 9 is not in this node's configuration" in m for m in ignored)
            three.on_removal_notice(1, RemovalNotice(3, 1, 42))
            await asyncio.wait_for(three.stopped.wait(), 10)
        assert three.removed and "member_role:removed" in three.info("paxos")
        told = [r.getMessage() for r in caplog.records if "as node 1 says" in r.getMessage()]
        assert told and "removed from the cluster in epoch 1 (from slot 42)" in told[0]
        identity = read_identity(config.node_dir(3))
        assert identity is not None and identity.removed
        with pytest.raises(RemovedMemberError):
            await NodeApp(config, 3).start()
    finally:
        await running.close()
