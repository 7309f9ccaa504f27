"""The simulated disk: synced writes survive a crash, unsynced ones only once flushed."""

from __future__ import annotations

from pypaxos.sim.disk import Disk


def test_synced_write_is_durable_at_once() -> None:
    disk = Disk()
    assert disk.read(1) is None
    assert disk.write(1, "a", sync=True) is None
    assert disk.crash(1) is False  # nothing unsynced to lose
    assert disk.read(1) == "a"


def test_unsynced_write_is_lost_by_a_crash_before_its_flush() -> None:
    disk = Disk()
    disk.write(1, "old", sync=True)
    generation = disk.write(1, "new", sync=False)
    assert generation is not None
    assert disk.unsynced(1)
    assert disk.read(1) == "old"
    assert disk.crash(1) is True
    assert disk.read(1) == "old"
    assert disk.flush(1, generation) is False  # the page cache is gone


def test_flush_writes_back_the_newest_unsynced_state() -> None:
    disk = Disk()
    generation = disk.write(1, "first", sync=False)
    assert generation is not None
    assert disk.write(1, "second", sync=False) is None  # same dirty period, no new flush
    assert disk.flush(1, generation) is True
    assert disk.read(1) == "second"
    assert not disk.unsynced(1)
    assert disk.crash(1) is False


def test_a_sync_supersedes_the_page_cache() -> None:
    disk = Disk()
    generation = disk.write(1, "dirty", sync=False)
    assert generation is not None
    disk.write(1, "synced", sync=True)
    assert disk.flush(1, generation) is False
    assert disk.read(1) == "synced"


def test_a_stale_flush_does_not_write_a_later_dirty_period() -> None:
    disk = Disk()
    old = disk.write(1, "lost", sync=False)
    assert old is not None
    disk.crash(1)
    new = disk.write(1, "after restart", sync=False)
    assert new is not None and new != old
    assert disk.flush(1, old) is False
    assert disk.read(1) is None
    assert disk.flush(1, new) is True
    assert disk.read(1) == "after restart"


def test_actors_have_separate_disks() -> None:
    disk = Disk()
    disk.write(1, "one", sync=True)
    disk.write(2, "two", sync=False)
    disk.crash(2)
    assert disk.read(1) == "one"
    assert disk.read(2) is None
