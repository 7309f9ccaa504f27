"""powerfs itself: what a cut keeps and what it drops, for each way of making things durable.

Each test works through the mount as any program would, cuts the power, and looks at both the
backing directory (the durable state) and the mount after a restart.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from pypaxos.torture.powerfs import PowerMount, PowerState, _control_answer

pytestmark = pytest.mark.timeout(120)


def write(path: Path, data: bytes, *, sync: bool = False, offset: int | None = None) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if offset is None else 0)
    descriptor = os.open(path, flags, 0o600)
    try:
        if offset is None:
            os.write(descriptor, data)
        else:
            os.pwrite(descriptor, data, offset)
        if sync:
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def power_cycle(mount: PowerMount) -> None:
    mount.cut()
    mount.restart()


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root``: file contents, None for a directory."""
    found: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        found[name] = None if path.is_dir() else path.read_bytes()
    return found


def test_reads_see_pending_writes_and_the_backing_sees_none(power_mount: PowerMount) -> None:
    file = power_mount.mountpoint / "a"
    write(file, b"hello")
    assert file.read_bytes() == b"hello"
    assert tree(power_mount.backing) == {}
    status = power_mount.ask("status")
    assert status["pending"] == {"files": 1, "directories": 1, "paths": ["/", "/a"]}


def test_unsynced_data_and_names_are_lost(power_mount: PowerMount) -> None:
    mount = power_mount.mountpoint
    write(mount / "a", b"never synced")
    (mount / "d").mkdir()
    answer = power_mount.cut()
    assert answer["dropped"] == {"files": 1, "directories": 1, "paths": ["/", "/a"]}
    with pytest.raises(OSError) as refused:
        os.listdir(mount)
    assert refused.value.errno == errno.EIO
    power_mount.restart()
    assert tree(mount) == {}


def test_file_fsync_without_directory_fsync_loses_the_new_name(power_mount: PowerMount) -> None:
    write(power_mount.mountpoint / "a", b"data", sync=True)
    power_cycle(power_mount)
    assert tree(power_mount.mountpoint) == {}


def test_directory_fsync_without_file_fsync_keeps_an_empty_file(power_mount: PowerMount) -> None:
    mount = power_mount.mountpoint
    write(mount / "a", b"data")
    sync_dir(mount)
    power_cycle(power_mount)
    assert tree(mount) == {"a": b""}


def test_file_and_directory_fsync_keep_both(power_mount: PowerMount) -> None:
    mount = power_mount.mountpoint
    write(mount / "a", b"data", sync=True)
    sync_dir(mount)
    assert tree(power_mount.backing) == {"a": b"data"}
    write(mount / "a", b"+more", offset=4)  # pending on top of durable
    power_cycle(power_mount)
    assert tree(mount) == {"a": b"data"}


def test_fdatasync_keeps_data_and_size(power_mount: PowerMount) -> None:
    mount = power_mount.mountpoint
    write(mount / "a", b"", sync=True)
    sync_dir(mount)
    descriptor = os.open(mount / "a", os.O_WRONLY)
    try:
        os.pwrite(descriptor, b"appended", 0)
        os.fdatasync(descriptor)
        os.pwrite(descriptor, b"lost", 8)
    finally:
        os.close(descriptor)
    power_cycle(power_mount)
    assert tree(mount) == {"a": b"appended"}


def test_truncate_is_pending_until_fsync(power_mount: PowerMount) -> None:
    mount = power_mount.mountpoint
    write(mount / "a", b"0123456789", sync=True)
    sync_dir(mount)
    os.truncate(mount / "a", 3)
    power_cycle(power_mount)
    assert tree(mount) == {"a": b"0123456789"}
    # Shrink, then grow past the old end with a hole: the hole must read as zeros.
    descriptor = os.open(mount / "a", os.O_WRONLY)
    try:
        os.ftruncate(descriptor, 2)
        os.pwrite(descriptor, b"XY", 6)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    power_cycle(power_mount)
    assert tree(mount) == {"a": b"01\0\0\0\0XY"}


def test_open_with_o_trunc_truncates_and_is_pending_until_fsync(power_mount: PowerMount) -> None:
    mount = power_mount.mountpoint
    write(mount / "a", b"0123456789", sync=True)
    sync_dir(mount)
    write(mount / "a", b"ab")  # O_TRUNC: FUSE hands it to open, not to truncate
    assert (mount / "a").read_bytes() == b"ab"
    power_cycle(power_mount)
    assert tree(mount) == {"a": b"0123456789"}
    write(mount / "a", b"ab", sync=True)
    power_cycle(power_mount)
    assert tree(mount) == {"a": b"ab"}


def test_a_file_mode_is_durable_with_its_fsync(power_mount: PowerMount) -> None:
    mount = power_mount.mountpoint
    write(mount / "a", b"x", sync=True)
    sync_dir(mount)
    os.chmod(mount / "a", 0o640)
    power_cycle(power_mount)
    assert (mount / "a").stat().st_mode & 0o777 == 0o600
    os.chmod(mount / "a", 0o640)
    descriptor = os.open(mount / "a", os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    power_cycle(power_mount)
    assert (mount / "a").stat().st_mode & 0o777 == 0o640


def test_rename_without_directory_fsync_is_lost(power_mount: PowerMount) -> None:
    mount = power_mount.mountpoint
    write(mount / "old", b"old", sync=True)
    sync_dir(mount)
    write(mount / "tmp", b"new", sync=True)
    os.replace(mount / "tmp", mount / "old")
    assert (mount / "old").read_bytes() == b"new"
    power_cycle(power_mount)
    assert tree(mount) == {"old": b"old"}


def test_atomic_replace_with_both_fsyncs_is_kept(power_mount: PowerMount) -> None:
    mount = power_mount.mountpoint
    write(mount / "old", b"old", sync=True)
    sync_dir(mount)
    write(mount / "tmp", b"new", sync=True)
    sync_dir(mount)  # the temporary's name is durable too: the rename must move it
    os.replace(mount / "tmp", mount / "old")
    sync_dir(mount)
    power_cycle(power_mount)
    assert tree(mount) == {"old": b"new"}
    assert tree(power_mount.backing) == {"old": b"new"}


def test_unlink_without_directory_fsync_comes_back(power_mount: PowerMount) -> None:
    mount = power_mount.mountpoint
    write(mount / "a", b"data", sync=True)
    sync_dir(mount)
    os.unlink(mount / "a")
    power_cycle(power_mount)
    assert tree(mount) == {"a": b"data"}
    os.unlink(mount / "a")
    sync_dir(mount)
    power_cycle(power_mount)
    assert tree(mount) == {}


def test_rename_across_directories_needs_both_fsyncs(power_mount: PowerMount) -> None:
    mount = power_mount.mountpoint
    (mount / "x").mkdir()
    (mount / "y").mkdir()
    sync_dir(mount)
    write(mount / "x" / "f", b"data", sync=True)
    sync_dir(mount / "x")
    os.rename(mount / "x" / "f", mount / "y" / "f")
    sync_dir(mount / "y")  # the new name is durable, the old one not yet gone
    power_cycle(power_mount)
    assert tree(mount) == {"x": None, "x/f": b"data", "y": None, "y/f": b"data"}


def test_new_directory_needs_its_parent_fsync(power_mount: PowerMount) -> None:
    mount = power_mount.mountpoint
    (mount / "d").mkdir()
    write(mount / "d" / "f", b"data", sync=True)
    sync_dir(mount / "d")  # f's name is durable inside d, but d itself is not yet
    power_cycle(power_mount)
    assert tree(mount) == {}
    (mount / "d").mkdir()
    write(mount / "d" / "f", b"data", sync=True)
    sync_dir(mount / "d")
    sync_dir(mount)
    power_cycle(power_mount)
    assert tree(mount) == {"d": None, "d/f": b"data"}


def test_an_open_file_written_after_its_name_went_stays_usable(power_mount: PowerMount) -> None:
    mount = power_mount.mountpoint
    descriptor = os.open(mount / "a", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.unlink(mount / "a")
        os.write(descriptor, b"orphan")
        os.fsync(descriptor)
        assert os.pread(descriptor, 6, 0) == b"orphan"
    finally:
        os.close(descriptor)
    sync_dir(mount)
    power_cycle(power_mount)
    assert tree(mount) == {}


def test_directory_renames_and_links_are_refused(power_mount: PowerMount) -> None:
    mount = power_mount.mountpoint
    (mount / "d").mkdir()
    with pytest.raises(OSError) as refused:
        os.rename(mount / "d", mount / "e")
    assert refused.value.errno == errno.EXDEV
    write(mount / "f", b"")
    with pytest.raises(OSError) as refused:
        os.link(mount / "f", mount / "g")
    assert refused.value.errno == errno.EPERM


def test_cut_after_counts_changes(power_mount: PowerMount) -> None:
    """``cut_after N``: N changes happen, the next one fails with EIO and is lost."""
    mount = power_mount.mountpoint
    power_mount.cut_after(2)
    descriptor = os.open(mount / "a", os.O_WRONLY | os.O_CREAT, 0o600)  # 1: create
    try:
        os.write(descriptor, b"x")  # 2: write
        with pytest.raises(OSError) as refused:
            os.fsync(descriptor)  # 3: the power is gone
        assert refused.value.errno == errno.EIO
    finally:
        os.close(descriptor)
    assert power_mount.ask("status")["cut"] is True
    power_mount.restart()
    assert tree(mount) == {}


def test_a_restart_serves_what_the_backing_holds(tmp_path: Path) -> None:
    """Without FUSE: a state loaded from a backing directory holds exactly its files."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(b"abc")
    state = PowerState(tmp_path)
    assert state.read("/d/f", 10, 0, state.open("/d/f", os.O_RDONLY)) == b"abc"
    assert state.readdir("/", 0) == [".", "..", "d"]
    assert state.status()["pending"] == {"files": 0, "directories": 0, "paths": []}


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"changes": -1}, "changes"),
        ({"changes": True}, "changes"),
        ({"changes": 3, "stop_caller": "yes"}, "stop_caller"),
        ({"changes": 3, "stop_pids": 7}, "stop_pids"),
        ({"changes": 3, "stop_pids": [0]}, "stop_pids"),
        ({"changes": 3, "stop_pids": [True]}, "stop_pids"),
        ({"changes": 3, "stop_pids": ["12"]}, "stop_pids"),
    ],
)
def test_a_malformed_cut_after_is_refused_and_plans_nothing(
    tmp_path: Path, fields: dict[str, object], bad: str
) -> None:
    """Without FUSE: the control socket names the field it refuses and leaves no cut planned
    (a pid of 0 would SIGSTOP the filesystem's own process group)."""
    state = PowerState(tmp_path)
    answer = _control_answer(state, json.dumps({"op": "cut_after", **fields}).encode() + b"\n")
    assert answer["ok"] is False and bad in answer["error"]
    assert state.cut_countdown is None and state.stop_pids == ()
    good = {"op": "cut_after", "changes": 3, "stop_caller": True, "stop_pids": [4242]}
    assert _control_answer(state, json.dumps(good).encode() + b"\n") == {"ok": True}
    assert (state.cut_countdown, state.stop_caller, state.stop_pids) == (3, True, (4242,))


def test_without_fuse_all_leaves_power_out_and_power_by_name_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pypaxos.torture import run
    from pypaxos.torture.nemesis import NEMESES

    monkeypatch.setattr(run, "fuse_unavailable", lambda: "no FUSE in this test")

    def options(nemeses: list[str]) -> run.Options:
        return run.Options(1.0, 3, nemeses, [], "loopback", None, 1)

    every = options(list(NEMESES))
    assert run.check_power(every) == "torture: no power nemesis (no FUSE in this test)"
    assert every.nemeses == [kind for kind in NEMESES if kind != "power"]
    with pytest.raises(RuntimeError) as stopped:
        run.check_power(options(["power", "kill"]))
    assert "no FUSE in this test" in str(stopped.value)
    assert run.check_power(options(["kill"])) is None


def test_a_planned_cut_can_stop_the_process_that_hits_it(power_mount: PowerMount) -> None:
    """The writer is frozen at the cut, before it can see the failed call, as a program on a
    machine losing power never sees it."""
    import signal
    import subprocess
    import sys
    import time

    target = power_mount.mountpoint / "log"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys\n"
            "fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)\n"
            "while True:\n"
            "    os.write(fd, b'record')\n"
            "    os.fsync(fd)\n",
            str(target),
        ]
    )
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        power_mount.cut_after(5, stop_caller=True, stop_pids=(bystander.pid,))
        deadline = time.monotonic() + 20
        while not power_mount.ask("status")["cut"]:
            assert writer.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        status = power_mount.ask("status")
        assert status["stopped_pid"] == writer.pid
        state = Path(f"/proc/{writer.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state == "T"  # stopped, not dead of an EIO it never saw
        named = Path(f"/proc/{bystander.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert named == "T"  # a process named with the cut (a writer child's node) stops too
    finally:
        for process in (writer, bystander):
            process.send_signal(signal.SIGKILL)
            process.wait()
    power_mount.restart()
    assert (power_mount.mountpoint / "log").exists() is False  # the name was never durable
