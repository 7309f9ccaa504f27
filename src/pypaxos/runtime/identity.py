"""Which cluster a data directory belongs to: recorded at its first start, checked at every one.

A node's directory holds promises and accepted values that mean something only inside the
cluster that wrote them.  Started with another cluster's configuration (another
``cluster_id``, another node id, another first configuration), a node would serve that data as
if it were this cluster's, or count votes from a membership it never had.  So the first start
writes ``identity.json`` (owner-only, fsynced, renamed into place), and each later start
compares it with the configuration and refuses, naming every difference.

``members`` are the voters of the cluster's first configuration (``cluster.toml``'s
``initial_members``): fixed for the cluster's life.  The membership in force changes through
the log, so it is not checked; the node records the latest one it applied (``membership``: ids,
roles and advertised addresses) so that a restart knows its peers before it has replayed
anything, and ``removed`` once a configuration without it was decided: such a directory never
starts again (the node rejoins as a new member, with an empty directory).  ``joined``: the
directory was started with ``pypaxos node --join`` as a learner of a running cluster.

Format 1 (no membership) is read and rewritten as format 2 at the next change.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from pypaxos.storage import CorruptStorageError

IDENTITY_NAME = "identity.json"
IDENTITY_FORMAT = 2
IDENTITY_FORMATS_READ = (1, 2)


class RecordedMember(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One member of the latest configuration the node applied."""

    id: int
    voter: bool
    peer: str = ""  # "" when unknown (a first-configuration member: cluster.toml has it)
    client: str = ""


class RecordedMembership(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    epoch: int
    members: tuple[RecordedMember, ...]


class Identity(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cluster_id: str
    node_id: int
    members: tuple[int, ...]
    format: int = IDENTITY_FORMAT
    membership: RecordedMembership | None = None
    joined: bool = False
    removed: bool = False


class ForeignDataError(Exception):
    """The data directory belongs to another cluster, node or first configuration (or to a
    node that was removed from the cluster, or one that lost its data)."""

    def __init__(self, path: Path, differences: list[str]) -> None:
        super().__init__(f"{path} belongs elsewhere: " + "; ".join(differences))
        self.path = path
        self.differences = differences


class RemovedMemberError(ForeignDataError):
    """The directory's node was removed from the cluster: it must not start on this data."""

    def __init__(self, path: Path, node_id: int) -> None:
        Exception.__init__(
            self,
            f"node {node_id} was removed from the cluster ({path} says so); to bring it back, "
            "empty its data directory and add it again as a new member (`pypaxos member add`, "
            "then `pypaxos node --join`)",
        )
        self.path = path
        self.differences = ["removed"]


class WipedMemberError(ForeignDataError):
    """An empty data directory for a member of a cluster that has already started: the node
    lost its promises and must not vote again."""

    def __init__(self, path: Path, node_id: int, cluster_id: str) -> None:
        Exception.__init__(
            self,
            f"node {node_id}'s data directory {path.parent} is empty, but cluster "
            f"{cluster_id!r} has already started (cluster.toml: bootstrapped = true). A node "
            "that lost its data would vote again without its promises, which is unsafe. "
            f"Remove it (`pypaxos member remove {node_id}`) and start it again with "
            "`pypaxos node --join HOST:PORT` (it rejoins as a learner; promote it once it "
            "caught up), or replace it by a new node",
        )
        self.path = path
        self.differences = ["wiped"]


def read(node_dir: Path) -> Identity | None:
    """The recorded identity, ``None`` for a new directory; ``CorruptStorageError`` if the
    file cannot be read."""
    path = node_dir / IDENTITY_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        found = msgspec.json.decode(data, type=Identity)
    except msgspec.DecodeError as error:
        raise CorruptStorageError(f"{path} is unreadable: {error}") from None
    if found.format not in IDENTITY_FORMATS_READ:
        raise CorruptStorageError(f"{path} has format {found.format}, not one this version reads")
    return found


def claim(node_dir: Path, expected: Identity) -> bool:
    """Record ``expected`` in a new directory, or check an old one against it.

    Returns True when the identity was written now.  Raises ``ForeignDataError`` when the
    recorded identity differs (``RemovedMemberError`` when it says the node was removed),
    ``CorruptStorageError`` when the file cannot be read.
    """
    path = node_dir / IDENTITY_NAME
    found = read(node_dir)
    if found is None:
        write(node_dir, expected)
        return True
    differences = [
        f"{name} is {getattr(found, name)!r} there, {getattr(expected, name)!r} here"
        for name in ("cluster_id", "node_id", "members")
        if getattr(found, name) != getattr(expected, name)
    ]
    if found.members != expected.members and found.cluster_id == expected.cluster_id:
        shown = ", ".join(map(str, found.members))
        differences.append(
            f"if this cluster's first voters were {list(found.members)} and the file now lists "
            f"later members too, add initial_members = [{shown}] to cluster.toml"
        )
    if differences:
        raise ForeignDataError(path, differences)
    if found.removed:
        raise RemovedMemberError(path, found.node_id)
    return False


def write(node_dir: Path, identity: Identity) -> None:
    """Replace the directory's identity with ``identity`` (atomically, durably)."""
    path = node_dir / IDENTITY_NAME
    temporary = path.with_suffix(".json.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(msgspec.json.encode(identity) + b"\n")
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
