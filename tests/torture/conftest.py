"""A powerfs mount for the tests that need one, skipped (saying why) where FUSE is not usable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pypaxos.torture.powerfs import PowerMount, fuse_unavailable, is_mounted


@pytest.fixture
def power_mount(tmp_path: Path) -> Iterator[PowerMount]:
    """A mounted powerfs over an empty backing directory; unmounted and ended afterwards."""
    why = fuse_unavailable()
    if why is not None:
        pytest.skip(f"powerfs needs FUSE: {why}")
    mount = PowerMount(
        tmp_path / "mnt", tmp_path / "backing", tmp_path / "control.sock", tmp_path / "powerfs.log"
    )
    mount.mountpoint.mkdir()
    mount.backing.mkdir()
    try:
        mount.start()
        yield mount
    finally:
        mount.close()
    assert not is_mounted(mount.mountpoint)
