"""Which cluster a data directory belongs to: recorded at its first start, checked at every one.

A node's directory holds promises and accepted values that mean something only inside the
cluster that wrote them.  Started with another cluster's configuration (another
``cluster_id``, another node id, another set of members), a node would serve that data as if
it were this cluster's, or count votes from a membership it never had.  So the first start
writes ``identity.json`` (owner-only, fsynced, renamed into place), and each later start
compares it with the configuration and refuses, naming every difference.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from pypaxos.storage import CorruptStorageError

IDENTITY_NAME = "identity.json"
IDENTITY_FORMAT = 1


class Identity(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    cluster_id: str
    node_id: int
    members: tuple[int, ...]
    format: int = IDENTITY_FORMAT


class ForeignDataError(Exception):
    """The data directory belongs to another cluster, node or membership."""

    def __init__(self, path: Path, differences: list[str]) -> None:
        super().__init__(f"{path} belongs elsewhere: " + "; ".join(differences))
        self.path = path
        self.differences = differences


def claim(node_dir: Path, expected: Identity) -> bool:
    """Record ``expected`` in a new directory, or check an old one against it.

    Returns True when the identity was written now.  Raises ``ForeignDataError`` when the
    recorded identity differs, ``CorruptStorageError`` when the file cannot be read.
    """
    path = node_dir / IDENTITY_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        _write(path, expected)
        return True
    try:
        found = msgspec.json.decode(data, type=Identity)
    except msgspec.DecodeError as error:
        raise CorruptStorageError(f"{path} is unreadable: {error}") from None
    differences = [
        f"{name} is {getattr(found, name)!r} there, {getattr(expected, name)!r} here"
        for name in ("cluster_id", "node_id", "members", "format")
        if getattr(found, name) != getattr(expected, name)
    ]
    if differences:
        raise ForeignDataError(path, differences)
    return False


def _write(path: Path, identity: Identity) -> None:
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
