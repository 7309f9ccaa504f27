"""A data directory remembers its cluster, node and first voters, and refuses any other; the
membership it records may change, and a removed node's directory never starts again."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import msgspec
import pytest
from runtime_helpers import write_cluster

from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.config import Member, load_config
from pypaxos.runtime.identity import (
    IDENTITY_NAME,
    ForeignDataError,
    Identity,
    RecordedMember,
    RecordedMembership,
    RemovedMemberError,
    claim,
    read,
    write,
)
from pypaxos.storage import CorruptStorageError


def test_the_first_claim_writes_and_later_ones_compare(tmp_path: Path) -> None:
    mine = Identity("c1", 2, (1, 2, 3))
    assert claim(tmp_path, mine)
    assert os.stat(tmp_path / IDENTITY_NAME).st_mode & 0o077 == 0
    assert not claim(tmp_path, mine)
    with pytest.raises(ForeignDataError) as caught:
        claim(tmp_path, Identity("c2", 2, (1, 2, 3, 4, 5)))
    assert [d.split(" ")[0] for d in caught.value.differences] == ["cluster_id", "members"]


def test_an_unreadable_identity_is_corruption_not_a_fresh_start(tmp_path: Path) -> None:
    (tmp_path / IDENTITY_NAME).write_bytes(b'{"cluster_id": "c1"')
    with pytest.raises(CorruptStorageError):
        claim(tmp_path, Identity("c1", 1, (1,)))


@pytest.mark.asyncio
async def test_a_node_refuses_another_clusters_directory(tmp_path: Path) -> None:
    config = load_config(write_cluster(tmp_path, nodes=1))
    app = NodeApp(config, 1)
    await app.start()
    await app.stop()
    for other in (
        dataclasses.replace(config, cluster_id="someone-else"),
        dataclasses.replace(config, members=(*config.members, Member(2, "127.0.0.1:1", "h:2"))),
    ):
        with pytest.raises(ForeignDataError):
            await NodeApp(other, 1).start()
    again = NodeApp(config, 1)  # the right configuration still starts
    await again.start()
    await again.stop()


def test_the_membership_may_change_but_not_the_first_voters(tmp_path: Path) -> None:
    (tmp_path / IDENTITY_NAME).write_bytes(
        b'{"cluster_id":"c1","node_id":2,"members":[1,2,3],"format":1}\n'  # an older file
    )
    mine = Identity("c1", 2, (1, 2, 3))
    assert not claim(tmp_path, mine)
    latest = RecordedMembership(
        5, (RecordedMember(2, True), RecordedMember(4, False, "h:1", "h:2"))
    )
    write(tmp_path, msgspec.structs.replace(mine, membership=latest))
    assert not claim(tmp_path, mine)  # changes through the log are the node's own business
    found = read(tmp_path)
    assert found is not None and found.format == 2 and found.membership == latest
    with pytest.raises(ForeignDataError) as caught:
        claim(tmp_path, Identity("c1", 2, (1, 2, 3, 4)))
    assert "initial_members = [1, 2, 3]" in str(caught.value)
    write(tmp_path, msgspec.structs.replace(mine, removed=True))
    with pytest.raises(RemovedMemberError):
        claim(tmp_path, mine)
