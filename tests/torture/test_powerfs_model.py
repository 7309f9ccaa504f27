"""powerfs against a naive second model: random calls through the mount, random cuts.

The reference below keeps, for every file and directory, a full copy of what is visible and a
full copy of what is durable, and applies the rules of docs/testing.md ('Power cuts') in the
most literal way.  powerfs keeps dirty ranges, orphaned data and a backing directory instead.
After every cut both must agree on the whole tree, and the backing directory must be exactly it.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pypaxos.torture.powerfs import PowerMount

pytestmark = pytest.mark.timeout(300)

NAMES = ("a", "b", "c")
DIRS = ("x", "y")


@dataclass(eq=False)
class RefNode:
    is_dir: bool
    data: bytes = b""
    durable_data: bytes = b""
    entries: dict[str, RefNode] = field(default_factory=dict)
    durable_entries: dict[str, RefNode] = field(default_factory=dict)


class Reference:
    def __init__(self) -> None:
        self.root = RefNode(True)

    def lookup(self, path: tuple[str, ...]) -> RefNode | None:
        node: RefNode | None = self.root
        for part in path:
            if node is None or not node.is_dir:
                return None
            node = node.entries.get(part)
        return node

    def cut(self) -> None:
        """Everything becomes what was durable, reached through durable names only."""

        def revert(node: RefNode, seen: set[int]) -> None:
            if id(node) in seen:
                return
            seen.add(id(node))
            node.data = node.durable_data
            node.entries = dict(node.durable_entries)
            for child in node.entries.values():
                revert(child, seen)

        revert(self.root, set())

    def tree(self) -> dict[str, bytes | None]:
        found: dict[str, bytes | None] = {}

        def walk(node: RefNode, prefix: str) -> None:
            for name, child in node.entries.items():
                path = f"{prefix}{name}"
                found[path] = None if child.is_dir else child.data
                if child.is_dir:
                    walk(child, path + "/")

        walk(self.root, "")
        return dict(sorted(found.items()))


def tree(root: Path) -> dict[str, bytes | None]:
    found: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        found[str(path.relative_to(root))] = None if path.is_dir() else path.read_bytes()
    return dict(sorted(found.items()))


def fsync_path(path: Path, directory: bool) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if directory else 0)
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def step(rng: random.Random, mount: Path, ref: Reference) -> str:
    """One random call through the mount, mirrored in the reference; what it did."""
    folder = rng.choice([(), *[(d,) for d in DIRS]])
    name = rng.choice(NAMES)
    path = (*folder, name)
    real = mount.joinpath(*path)
    parent = ref.lookup(folder)
    node = ref.lookup(path)
    kind = rng.choice(
        ("write", "write", "truncate", "fsync", "fsyncdir", "create", "unlink", "rename", "mkdir")
    )
    if parent is None or not parent.is_dir:
        kind = "fsyncdir"
        folder, parent = (), ref.root
    if kind == "fsyncdir":
        fsync_path(mount.joinpath(*folder), directory=True)
        parent.durable_entries = dict(parent.entries)
        return f"fsyncdir {folder}"
    if kind == "mkdir":
        folder_name = rng.choice(DIRS)
        if folder_name in ref.root.entries:
            return "skip"
        (mount / folder_name).mkdir()
        ref.root.entries[folder_name] = RefNode(True)
        return f"mkdir {folder_name}"
    if kind == "create" or node is None:
        if node is not None:
            return "skip"
        real.write_bytes(b"")
        parent.entries[name] = RefNode(False)
        return f"create {path}"
    if node.is_dir:
        if not node.entries and kind == "unlink":
            real.rmdir()
            del parent.entries[name]
            return f"rmdir {path}"
        return "skip"
    if kind == "write":
        offset = rng.randrange(0, len(node.data) + 8)
        data = rng.randbytes(rng.randint(1, 12))
        descriptor = os.open(real, os.O_WRONLY)
        try:
            os.pwrite(descriptor, data, offset)
        finally:
            os.close(descriptor)
        padded = node.data + bytes(max(0, offset - len(node.data)))
        node.data = padded[:offset] + data + padded[offset + len(data) :]
        return f"write {path} {offset}+{len(data)}"
    if kind == "truncate":
        length = rng.randrange(0, len(node.data) + 6)
        os.truncate(real, length)
        node.data = node.data[:length] + bytes(max(0, length - len(node.data)))
        return f"truncate {path} {length}"
    if kind == "fsync":
        fsync_path(real, directory=False)
        node.durable_data = node.data
        return f"fsync {path}"
    if kind == "unlink":
        real.unlink()
        del parent.entries[name]
        return f"unlink {path}"
    # rename, maybe across folders, maybe over an existing file
    to_folder = rng.choice([(), *[(d,) for d in DIRS]])
    to_parent = ref.lookup(to_folder)
    to_name = rng.choice(NAMES)
    if to_parent is None or not to_parent.is_dir:
        return "skip"
    target = to_parent.entries.get(to_name)
    if target is not None and target.is_dir:
        return "skip"
    os.rename(real, mount.joinpath(*to_folder, to_name))
    if target is node:  # two names of one file (a cut can leave those): POSIX does nothing
        return f"rename {path} -> {(*to_folder, to_name)}, one file"
    del parent.entries[name]
    to_parent.entries[to_name] = node
    return f"rename {path} -> {(*to_folder, to_name)}"


@pytest.mark.parametrize("seed", range(6))
def test_powerfs_agrees_with_a_naive_model_across_random_cuts(
    power_mount: PowerMount, seed: int
) -> None:
    rng = random.Random(seed)
    mount = power_mount.mountpoint
    ref = Reference()
    history: list[str] = []
    cuts = 0
    for _ in range(400):
        history.append(step(rng, mount, ref))
        assert tree(mount) == ref.tree(), history[-12:]
        if rng.random() < 0.04:
            power_mount.cut()
            power_mount.restart()
            ref.cut()
            cuts += 1
            history.append("cut")
            assert tree(mount) == ref.tree(), history[-20:]
            assert tree(power_mount.backing) == ref.tree(), history[-20:]
    assert cuts >= 5
    done = Counter(entry.split()[0] for entry in history)
    assert min(done[kind] for kind in ("write", "truncate", "fsync", "fsyncdir", "rename")) >= 10
    assert min(done[kind] for kind in ("create", "unlink")) >= 10, done
    assert done["mkdir"] >= 2, done  # both folders, so renames crossed folders too
