"""powerfs: a FUSE filesystem that holds back what is not durable and can cut the power.

``python -m pypaxos.torture.powerfs MOUNTPOINT --backing DIR --control SOCKET`` mounts a view of
``DIR`` at ``MOUNTPOINT``.  Programs see an ordinary filesystem (reads see every write, as the
page cache would show them), but nothing reaches ``DIR`` until it is made durable the way a
program must make it durable on a real disk:

* a file's data and size: ``fsync`` or ``fdatasync`` of that file;
* a name (create, mkdir, rename, unlink, rmdir, the target a rename replaces): ``fsync`` of the
  directory holding the name (both directories for a rename across them).  A file's own fsync
  does not make its name durable, and a directory's fsync does not make its files' data durable.

``DIR`` therefore always holds exactly the durable state.  The control socket (one JSON object
per line) takes ``{"op": "cut"}``: every pending write and name is dropped, the filesystem
answers EIO to everything until ``{"op": "restart"}``, which reloads the view from ``DIR``.
``{"op": "cut_after", "changes": N}`` cuts by itself just before the change (a write, truncate,
name or fsync) after the next N, for tests that cut between every two system calls; with
``"stop_caller": true`` it also SIGSTOPs the process making that change, and the processes
of ``"stop_pids"`` (a node, when the change may be its forked snapshot writer's), which thus
never see the failed call.
``{"op": "status"}`` tells whether it is mounted, cut, and how much is pending.  Killing the
process outright is also a power cut (``DIR`` is the durable state), but an fsync in flight may
then be half applied, and the mount stays until ``fusermount3 -u``.

The model and its limits (directory renames and hard links are refused, timestamps and owners
are not persisted, whole files are held in memory): docs/testing.md, 'Power cuts'.  The idea of
a filesystem that loses unsynced writes on demand is Jepsen's lazyfs; this is written anew.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import json
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CONTROL_LINE_BYTES_MAX = 4096
PATHS_SHOWN = 8  # pending paths named in a status or cut answer
# What the kernel may cache: nothing, so that a cut is seen at once and the view after a restart
# is exactly the backing directory.  ``hard_remove``: unlink for real, no ``.fuse_hidden`` file.
MOUNT_OPTIONS: dict[str, Any] = {
    "fsname": "powerfs",
    "direct_io": True,
    "hard_remove": True,
    "entry_timeout": 0,
    "attr_timeout": 0,
    "negative_timeout": 0,
    "default_permissions": True,
}


class PowerFsError(OSError):
    """An operation refused with ``errno`` (EIO while the power is cut)."""

    def __init__(self, code: int, why: str) -> None:
        super().__init__(code, why)


@dataclass(eq=False)
class _Node:
    """One file or directory: what programs see now, and what survives a cut.

    A file's durable data is in the backing file at any of ``backing`` (hard links share it),
    or, when no backing path holds the file (created, fsynced, its name not yet durable), in
    ``orphan``.  A directory's durable names are ``durable``; it exists in the backing directory
    (``backing``) once its own name is durable.
    """

    is_dir: bool
    mode: int
    number: int
    data: bytearray = field(default_factory=bytearray)
    dirty_lo: int | None = None  # the byte range written since the last fsync
    dirty_hi: int = 0
    mode_pending: bool = False  # chmod since the last fsync
    orphan: bytes | None = None
    backing: list[Path] = field(default_factory=list)
    links: int = 0  # names in the visible tree
    entries: dict[str, _Node] = field(default_factory=dict)
    durable: dict[str, _Node] = field(default_factory=dict)
    mtime_ns: int = field(default_factory=time.time_ns)

    @property
    def pending(self) -> bool:
        if self.is_dir:
            return self.entries != self.durable
        return self.dirty_lo is not None or self.mode_pending

    def mark_dirty(self, lo: int, hi: int) -> None:
        """Bytes ``lo..hi`` differ (or may) from the durable file: written, or cut off."""
        self.dirty_lo = lo if self.dirty_lo is None else min(self.dirty_lo, lo)
        self.dirty_hi = max(self.dirty_hi, hi)


class PowerState:
    """The filesystem's state and operations, path based as FUSE's high-level API calls them.

    Every method takes the one lock: FUSE calls come from one thread, the control socket's
    ``cut`` and ``restart`` from another.  Methods raise ``PowerFsError`` with the errno to
    answer.
    """

    # What mfusepy reads from the operations object.
    use_ns = True
    flag_nopath = True
    flag_nullpath_ok = True

    def __init__(self, backing: Path) -> None:
        self.backing_dir = backing
        # Not ``lock``: mfusepy would take any attribute named after a FUSE call for it.
        self._mutex = threading.Lock()
        self.cut_now = False
        self.mounted = threading.Event()
        self.cuts = 0
        self.cut_countdown: int | None = None  # changes left before an automatic cut
        self.stop_caller = False  # the automatic cut also SIGSTOPs the process that hit it
        self.stop_pids: tuple[int, ...] = ()  # ... and these (the node of a writer child)
        self.stopped_pid: int | None = None
        self.last_dropped: dict[str, Any] = {}
        # The pid of the process whose call is being served (FUSE's context; 0 when unknown).
        self.caller_pid: Callable[[], int] = lambda: 0
        self.changes = 0  # changes served since the start (what ``cut_after`` counts)
        self._numbers = 0
        self._handles: dict[int, _Node] = {}
        self._next_handle = 1
        self.root = self._load()

    # -- loading and the power -------------------------------------------------------------

    def _number(self) -> int:
        self._numbers += 1
        return self._numbers

    def _load(self) -> _Node:
        """The visible tree as the backing directory has it: everything durable, nothing pending."""
        root = _Node(True, 0o755, self._number(), backing=[self.backing_dir], links=1)
        by_inode: dict[tuple[int, int], _Node] = {}

        def walk(directory: _Node, path: Path) -> None:
            for entry in sorted(os.scandir(path), key=lambda e: e.name):
                info = entry.stat(follow_symlinks=False)
                child_path = Path(entry.path)
                if stat.S_ISDIR(info.st_mode):
                    child = _Node(True, stat.S_IMODE(info.st_mode), self._number())
                    child.backing = [child_path]
                    walk(child, child_path)
                elif stat.S_ISREG(info.st_mode):
                    key = (info.st_dev, info.st_ino)
                    known = by_inode.get(key)
                    if known is None:
                        known = _Node(False, stat.S_IMODE(info.st_mode), self._number())
                        known.data = bytearray(child_path.read_bytes())
                        by_inode[key] = known
                    known.backing.append(child_path)
                    child = known
                else:
                    raise PowerFsError(errno.EINVAL, f"{child_path}: only files and directories")
                child.links += 1
                directory.entries[entry.name] = child
                directory.durable[entry.name] = child

        walk(root, self.backing_dir)
        return root

    def cut(self) -> dict[str, Any]:
        """Drop everything pending; refuse I/O until ``restart``."""
        with self._mutex:
            return self._cut_locked()

    def _cut_locked(self) -> dict[str, Any]:
        dropped = {} if self.cut_now else self._pending_counts()
        self.last_dropped = dropped
        self.cut_now = True
        self.cuts += 1
        self._handles.clear()
        self.root = _Node(True, 0o755, self._number())
        return {"ok": True, "dropped": dropped}

    def restart(self) -> dict[str, Any]:
        """Serve again, from what the backing directory holds (the durable state)."""
        with self._mutex:
            self._handles.clear()
            self.root = self._load()
            self.cut_now = False
            self.cut_countdown = None
            return {"ok": True}

    def status(self) -> dict[str, Any]:
        with self._mutex:
            pending = {} if self.cut_now else self._pending_counts()
            return {
                "mounted": self.mounted.is_set(),
                "cut": self.cut_now,
                "cuts": self.cuts,
                "changes": self.changes,
                "armed": self.cut_countdown is not None,
                "stopped_pid": self.stopped_pid,
                "last_dropped": self.last_dropped,
                "pending": pending,
            }

    def _pending_counts(self) -> dict[str, Any]:
        """How many files and directories have changes not yet durable, and (the first few of)
        their paths; a file open but without a name counts, as ``(no name)``."""
        files = directories = 0
        paths: list[str] = []
        seen: set[int] = set()
        stack: list[tuple[str, _Node]] = [("/", self.root)]
        while stack:
            path, node = stack.pop()
            if node.number in seen:
                continue
            seen.add(node.number)
            if node.pending:
                directories += node.is_dir
                files += not node.is_dir
                paths.append(path)
            prefix = path.rstrip("/")
            stack.extend((f"{prefix}/{name}", child) for name, child in node.entries.items())
        for node in self._handles.values():
            if node.number not in seen and node.pending:
                seen.add(node.number)
                files += not node.is_dir
                paths.append("(no name)")
        return {"files": files, "directories": directories, "paths": sorted(paths)[:PATHS_SHOWN]}

    # -- lookups -----------------------------------------------------------------------------

    def _check_power(self) -> None:
        if self.cut_now:
            raise PowerFsError(errno.EIO, "the power is cut")

    def _check_power_to_change(self) -> None:
        """``_check_power`` for a call that changes something: counts down to a planned cut."""
        self._check_power()
        self.changes += 1
        if self.cut_countdown is None:
            return
        if self.cut_countdown == 0:
            self.cut_countdown = None
            self._cut_locked()
            pid = self.caller_pid() if self.stop_caller else 0
            if pid > 0:
                # Frozen before it can see the EIO below: the machine died under this call.
                for stopped in (pid, *self.stop_pids):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(stopped, signal.SIGSTOP)
                self.stopped_pid = pid
            raise PowerFsError(errno.EIO, "the power is cut")
        self.cut_countdown -= 1

    def cut_after(
        self, changes: int, *, stop_caller: bool = False, stop_pids: tuple[int, ...] = ()
    ) -> dict[str, Any]:
        """Cut the power just before the change after the next ``changes`` (writes, truncates,
        names, fsyncs): a cut between any two system calls, chosen by a number.  With
        ``stop_caller`` the process making that change is stopped (SIGSTOP) at the cut, so it
        never sees the failed call: what a program on a machine losing power never sees; so are
        the processes of ``stop_pids``."""
        if changes < 0:
            raise ValueError(f"changes must be >= 0, got {changes}")
        with self._mutex:
            self.cut_countdown = changes
            self.stop_caller = stop_caller
            self.stop_pids = stop_pids
            self.stopped_pid = None
            return {"ok": True}

    def _resolve(self, path: str | None) -> _Node:
        if path is None:
            raise PowerFsError(errno.EBADF, "no path and no handle")
        node = self.root
        for part in path.split("/"):
            if not part:
                continue
            if not node.is_dir:
                raise PowerFsError(errno.ENOTDIR, path)
            found = node.entries.get(part)
            if found is None:
                raise PowerFsError(errno.ENOENT, path)
            node = found
        return node

    def _parent(self, path: str) -> tuple[_Node, str]:
        head, _, name = path.rstrip("/").rpartition("/")
        parent = self._resolve(head or "/")
        if not parent.is_dir:
            raise PowerFsError(errno.ENOTDIR, path)
        if not name or name in (".", ".."):
            raise PowerFsError(errno.EINVAL, path)
        return parent, name

    def _node(self, path: str | None, fh: int | None) -> _Node:
        if fh:
            node = self._handles.get(fh)
            if node is None:
                raise PowerFsError(errno.EBADF, f"handle {fh}")
            return node
        return self._resolve(path)

    def _handle(self, node: _Node) -> int:
        fh = self._next_handle
        self._next_handle += 1
        self._handles[fh] = node
        return fh

    # -- attributes --------------------------------------------------------------------------

    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
        with self._mutex:
            self._check_power()
            node = self._node(path, fh)
            kind = stat.S_IFDIR if node.is_dir else stat.S_IFREG
            links = 2 + sum(c.is_dir for c in node.entries.values()) if node.is_dir else node.links
            return {
                "st_mode": kind | node.mode,
                "st_ino": node.number,
                "st_nlink": links,
                "st_size": 4096 if node.is_dir else len(node.data),
                "st_uid": os.getuid(),
                "st_gid": os.getgid(),
                "st_atime": node.mtime_ns,
                "st_mtime": node.mtime_ns,
                "st_ctime": node.mtime_ns,
                "st_blksize": 4096,
                "st_blocks": (len(node.data) + 511) // 512,
            }

    def chmod(self, path: str | None, mode: int) -> int:
        """A file's new mode is durable with its next fsync (a directory's: never, after its
        creation; the project sets none)."""
        with self._mutex:
            self._check_power_to_change()
            node = self._resolve(path)
            node.mode = stat.S_IMODE(mode)
            node.mode_pending = not node.is_dir
            return 0

    def chown(self, path: str | None, uid: int, gid: int) -> int:
        with self._mutex:
            self._check_power()
            self._resolve(path)
            return 0

    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
        with self._mutex:
            self._check_power()
            node = self._resolve(path)
            node.mtime_ns = times[1] if times else time.time_ns()
            return 0

    def statfs(self, path: str) -> dict[str, int]:
        with self._mutex:
            self._check_power()
            info = os.statvfs(self.backing_dir)
            names = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files")
            result = {name: getattr(info, name) for name in names}
            result |= {"f_ffree": info.f_ffree, "f_favail": info.f_favail, "f_namemax": 255}
            return result

    # -- files -------------------------------------------------------------------------------

    def create(self, path: str, mode: int, flags: int = 0) -> int:
        with self._mutex:
            self._check_power_to_change()
            parent, name = self._parent(path)
            if name in parent.entries:
                raise PowerFsError(errno.EEXIST, path)
            node = _Node(False, stat.S_IMODE(mode), self._number(), orphan=b"", links=1)
            parent.entries[name] = node
            parent.mtime_ns = time.time_ns()
            return self._handle(node)

    def open(self, path: str, flags: int) -> int:
        """``O_TRUNC`` arrives here, not as a truncate (FUSE's atomic open-and-truncate)."""
        with self._mutex:
            self._check_power()
            node = self._resolve(path)
            if node.is_dir:
                raise PowerFsError(errno.EISDIR, path)
            if flags & os.O_TRUNC and (flags & os.O_ACCMODE) != os.O_RDONLY:
                self._check_power_to_change()
                self._truncate(node, 0)
            return self._handle(node)

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        with self._mutex:
            self._check_power()
            return bytes(self._node(path, fh).data[offset : offset + size])

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        with self._mutex:
            self._check_power_to_change()
            node = self._node(path, fh)
            end, before = offset + len(data), len(node.data)
            if offset > before:
                node.data.extend(bytes(offset - before))
            node.data[offset:end] = data
            node.mark_dirty(min(offset, before), end)  # a hole before ``offset`` reads as zeros
            node.mtime_ns = time.time_ns()
            return len(data)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        with self._mutex:
            self._check_power_to_change()
            node = self._node(path, fh)
            if node.is_dir:
                raise PowerFsError(errno.EISDIR, str(path))
            self._truncate(node, length)
            return 0

    @staticmethod
    def _truncate(node: _Node, length: int) -> None:
        before = len(node.data)
        if length < before:
            del node.data[length:]
        else:
            node.data.extend(bytes(length - before))
        node.mark_dirty(min(before, length), max(before, length))
        node.mtime_ns = time.time_ns()

    def flush(self, path: str | None, fh: int) -> int:
        """Nothing to do (and no error after a cut: ``close`` of a dead process's file works)."""
        return 0

    def release(self, path: str | None, fh: int) -> int:
        with self._mutex:
            self._handles.pop(fh, None)  # after a cut too: the process holding it has died
            return 0

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        """``fsync`` and ``fdatasync`` alike: the file's data and size become durable."""
        with self._mutex:
            self._check_power_to_change()
            node = self._node(path, fh)
            if node.is_dir:
                self._sync_dir(node)
            else:
                self._sync_file(node)
            return 0

    def _sync_file(self, node: _Node) -> None:
        if not node.pending:
            return
        if not node.backing:
            node.orphan = bytes(node.data)
        else:
            descriptor = os.open(node.backing[0], os.O_WRONLY)
            try:
                lo, hi = node.dirty_lo or 0, min(node.dirty_hi, len(node.data))
                view = memoryview(node.data)[lo:hi]
                while view:
                    written = os.pwrite(descriptor, view, lo)
                    view, lo = view[written:], lo + written
                os.ftruncate(descriptor, len(node.data))
                os.fchmod(descriptor, node.mode)
            finally:
                os.close(descriptor)
        node.dirty_lo, node.dirty_hi, node.mode_pending = None, 0, False

    # -- directories -------------------------------------------------------------------------

    def mkdir(self, path: str, mode: int) -> int:
        with self._mutex:
            self._check_power_to_change()
            parent, name = self._parent(path)
            if name in parent.entries:
                raise PowerFsError(errno.EEXIST, path)
            parent.entries[name] = _Node(True, stat.S_IMODE(mode), self._number(), links=1)
            parent.mtime_ns = time.time_ns()
            return 0

    def unlink(self, path: str) -> int:
        with self._mutex:
            self._check_power_to_change()
            parent, name = self._parent(path)
            node = parent.entries.get(name)
            if node is None:
                raise PowerFsError(errno.ENOENT, path)
            if node.is_dir:
                raise PowerFsError(errno.EISDIR, path)
            del parent.entries[name]
            node.links -= 1
            parent.mtime_ns = time.time_ns()
            return 0

    def rmdir(self, path: str) -> int:
        with self._mutex:
            self._check_power_to_change()
            parent, name = self._parent(path)
            node = parent.entries.get(name)
            if node is None:
                raise PowerFsError(errno.ENOENT, path)
            if not node.is_dir:
                raise PowerFsError(errno.ENOTDIR, path)
            if node.entries:
                raise PowerFsError(errno.ENOTEMPTY, path)
            del parent.entries[name]
            node.links -= 1
            parent.mtime_ns = time.time_ns()
            return 0

    def rename(self, old: str, new: str) -> int:
        """Files only (a directory rename answers EXDEV, as across filesystems)."""
        with self._mutex:
            self._check_power_to_change()
            old_parent, old_name = self._parent(old)
            new_parent, new_name = self._parent(new)
            node = old_parent.entries.get(old_name)
            if node is None:
                raise PowerFsError(errno.ENOENT, old)
            if node.is_dir:
                raise PowerFsError(errno.EXDEV, f"{old}: powerfs renames files only")
            target = new_parent.entries.get(new_name)
            if target is node:
                return 0
            if target is not None:
                if target.is_dir:
                    raise PowerFsError(errno.EISDIR, new)
                target.links -= 1
            del old_parent.entries[old_name]
            new_parent.entries[new_name] = node
            old_parent.mtime_ns = new_parent.mtime_ns = time.time_ns()
            return 0

    def link(self, target: str, source: str) -> int:
        raise PowerFsError(errno.EPERM, "powerfs makes no hard links")

    def symlink(self, target: str, source: str) -> int:
        raise PowerFsError(errno.EPERM, "powerfs makes no symbolic links")

    def mknod(self, path: str, mode: int, dev: int) -> int:
        raise PowerFsError(errno.EPERM, "powerfs holds files and directories only")

    def opendir(self, path: str) -> int:
        with self._mutex:
            self._check_power()
            node = self._resolve(path)
            if not node.is_dir:
                raise PowerFsError(errno.ENOTDIR, path)
            return self._handle(node)

    def readdir(self, path: str | None, fh: int) -> list[str]:
        with self._mutex:
            self._check_power()
            node = self._node(path, fh)
            return [".", "..", *sorted(node.entries)]

    def releasedir(self, path: str | None, fh: int) -> int:
        with self._mutex:
            self._handles.pop(fh, None)
            return 0

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        """The directory's names become durable (not the data of the files they name)."""
        with self._mutex:
            self._check_power_to_change()
            self._sync_dir(self._node(path, fh))
            return 0

    def _sync_dir(self, directory: _Node) -> None:
        old, new = directory.durable, dict(directory.entries)
        directory.durable = new
        if not directory.backing:
            return  # its own name is not durable: it is written out when that name is
        base = directory.backing[0]
        for name, child in old.items():
            if new.get(name) is not child:
                self._drop_backing(child, base / name)
        for name, child in new.items():
            if old.get(name) is not child:
                self._materialize(child, base / name)

    def _drop_backing(self, node: _Node, path: Path) -> None:
        """Remove ``path`` (holding ``node``) from the backing directory; keep in memory what
        is durable for a node that still has a visible name but no other backing path."""
        if node.is_dir:
            for name, child in node.durable.items():
                self._drop_backing(child, path / name)
            shutil.rmtree(path)
            node.backing = []
            return
        if node.backing == [path] and node.links > 0:
            node.orphan = path.read_bytes()
        path.unlink()
        node.backing.remove(path)

    def _materialize(self, node: _Node, path: Path) -> None:
        """Write ``node``'s durable state at ``path``: its name has just become durable."""
        if node.is_dir:
            path.mkdir(mode=node.mode)
            node.backing = [path]
            for name, child in node.durable.items():
                self._materialize(child, path / name)
            return
        if node.backing:
            os.link(node.backing[0], path)
        else:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, node.mode)
            try:
                view = memoryview(node.orphan or b"")
                while view:
                    view = view[os.write(descriptor, view) :]
            finally:
                os.close(descriptor)
            node.orphan = None
        node.backing.append(path)

    # -- the mount ---------------------------------------------------------------------------

    def init(self, path: str) -> None:
        self.mounted.set()

    def destroy(self, path: str) -> None:
        self.mounted.clear()


# -- the control socket ----------------------------------------------------------------------


def _serve_control(state: PowerState, path: Path) -> None:
    """Answer ``cut``, ``restart`` and ``status``, one JSON line each, until the process ends."""
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(8)
    while True:
        connection, _ = server.accept()
        with connection, connection.makefile("rwb") as stream:
            line = stream.readline(CONTROL_LINE_BYTES_MAX + 1)
            stream.write(json.dumps(_control_answer(state, line)).encode() + b"\n")
            stream.flush()


def _control_answer(state: PowerState, line: bytes) -> dict[str, Any]:
    if len(line) > CONTROL_LINE_BYTES_MAX or not line.endswith(b"\n"):
        return {"ok": False, "error": f"a request is one line of at most {CONTROL_LINE_BYTES_MAX}"}
    try:
        request = json.loads(line)
    except ValueError as error:
        return {"ok": False, "error": f"not JSON: {error}"}
    op = request.get("op") if isinstance(request, dict) else None
    if op == "cut":
        return state.cut()
    if op == "restart":
        try:
            return state.restart()
        except OSError as error:
            return {"ok": False, "error": f"cannot reload the backing directory: {error}"}
    if op == "status":
        return {"ok": True, **state.status()}
    if op == "cut_after":
        changes = request.get("changes")
        if not isinstance(changes, int) or isinstance(changes, bool) or changes < 0:
            return {"ok": False, "error": "cut_after needs changes, an integer >= 0"}
        stop_caller = request.get("stop_caller", False)
        if not isinstance(stop_caller, bool):
            return {"ok": False, "error": "stop_caller must be true or false"}
        stop_pids = request.get("stop_pids", [])
        if not isinstance(stop_pids, list) or not all(
            isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 for pid in stop_pids
        ):
            return {"ok": False, "error": "stop_pids must be a list of pids (integers > 0)"}
        return state.cut_after(changes, stop_caller=stop_caller, stop_pids=tuple(stop_pids))
    return {"ok": False, "error": f"unknown op {op!r}; known: cut, cut_after, restart, status"}


def ask(control: Path, op: str, timeout_s: float = 10.0, **fields: Any) -> dict[str, Any]:
    """Send one request to a running powerfs's control socket; its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout_s)
        client.connect(str(control))
        client.sendall(json.dumps({"op": op, **fields}).encode() + b"\n")
        with client.makefile("rb") as stream:
            line = stream.readline(CONTROL_LINE_BYTES_MAX)
    if not line:
        raise ConnectionError(f"{control} closed without an answer")
    answer: dict[str, Any] = json.loads(line)
    return answer


def fuse_unavailable() -> str | None:
    """Why a powerfs cannot be mounted here, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "FUSE mounts need Linux"
    if os.geteuid() != 0:
        return "mounting needs root"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing (Debian's fuse3; make packages installs it)"
    try:
        importlib.import_module("mfusepy")
    except (ImportError, OSError) as error:
        return f"mfusepy cannot load libfuse 3: {error}"
    return None


def is_mounted(mountpoint: Path) -> bool:
    """Whether something is mounted at ``mountpoint``, from the mount table: ``os.path.ismount``
    stats the mountpoint, which fails on a cut or dead filesystem."""
    target = os.path.realpath(mountpoint)
    with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 1 and _unescape_mount_path(fields[1]) == target:
                return True
    return False


def _unescape_mount_path(text: str) -> str:
    for code in ("040", "011", "012", "134"):
        text = text.replace("\\" + code, chr(int(code, 8)))
    return text


def unmount(mountpoint: Path) -> None:
    """Detach a powerfs mount, even one whose process was killed (lazily if it is busy)."""
    for flags in ("-u", "-uz"):
        subprocess.run(["fusermount3", flags, str(mountpoint)], capture_output=True, check=False)
        if not is_mounted(mountpoint):
            return


MOUNT_TIMEOUT_S = 15.0


class PowerMount:
    """One powerfs process: started, cut, restarted and unmounted by its owner.

    ``close`` always leaves nothing behind: the mount detached (lazily if a process still holds
    it), the process ended by its pid.
    """

    def __init__(self, mountpoint: Path, backing: Path, control: Path, log: Path) -> None:
        self.mountpoint = mountpoint
        self.backing = backing
        self.control = control
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = MOUNT_TIMEOUT_S) -> None:
        """Mount, and return once the filesystem answers (``RuntimeError`` if it does not)."""
        argv = [sys.executable, "-m", "pypaxos.torture.powerfs", str(self.mountpoint)]
        argv += ["--backing", str(self.backing), "--control", str(self.control)]
        with self.log.open("ab") as out:
            # A session of its own: a Ctrl-C in the terminal reaches the owner, which unmounts
            # after its programs have stopped, not the filesystem under them.
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"powerfs exited {self.process.returncode}; see {self.log}")
            with contextlib.suppress(OSError, ValueError):
                if self.ask("status").get("mounted") and is_mounted(self.mountpoint):
                    return
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"powerfs not mounted after {timeout_s:g}s; see {self.log}")
            time.sleep(0.05)

    def ask(self, op: str, **fields: Any) -> dict[str, Any]:
        answer = ask(self.control, op, **fields)
        if not answer.get("ok"):
            raise RuntimeError(f"powerfs {op}: {answer.get('error')}")
        return answer

    def cut(self) -> dict[str, Any]:
        return self.ask("cut")

    def cut_after(
        self, changes: int, *, stop_caller: bool = False, stop_pids: tuple[int, ...] = ()
    ) -> dict[str, Any]:
        return self.ask(
            "cut_after", changes=changes, stop_caller=stop_caller, stop_pids=list(stop_pids)
        )

    def restart(self) -> dict[str, Any]:
        return self.ask("restart")

    def close(self) -> None:
        if is_mounted(self.mountpoint):
            unmount(self.mountpoint)
        process = self.process
        if process is not None and process.poll() is None:
            try:
                process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if is_mounted(self.mountpoint):
            unmount(self.mountpoint)
        self.control.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pypaxos.torture.powerfs",
        description="Mount BACKING at MOUNTPOINT, holding back what is not fsynced; a 'cut' "
        "on the control socket drops it, as a power cut would (docs/testing.md, 'Power cuts').",
    )
    parser.add_argument("mountpoint", type=Path, metavar="MOUNTPOINT")
    parser.add_argument("--backing", type=Path, required=True, metavar="DIR", help="durable state")
    parser.add_argument(
        "--control",
        type=Path,
        required=True,
        metavar="SOCKET",
        help='Unix socket: one JSON line per connection, {"op": "cut" | "restart" | "status"} '
        'or {"op": "cut_after", "changes": N}',
    )
    parser.add_argument("--debug", action="store_true", help="libfuse prints every request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(asctime)s powerfs %(levelname)s %(message)s",
    )
    why = fuse_unavailable()
    if why is not None:
        print(f"powerfs: cannot mount: {why}", file=sys.stderr)
        return 1
    args.backing.mkdir(parents=True, exist_ok=True)
    args.mountpoint.mkdir(parents=True, exist_ok=True)
    state = PowerState(args.backing.resolve())
    threading.Thread(
        target=_serve_control, args=(state, args.control), name="powerfs-control", daemon=True
    ).start()
    mfusepy = importlib.import_module("mfusepy")

    def truncate_fuse_3(fuse: Any, path: bytes | None, length: int, fip: Any) -> Any:
        """``ftruncate`` with its handle: FUSE gives no path for it (``nullpath_ok``)."""
        handle = fip.contents.fh if fip else None
        name = None if path is None else path.decode(fuse.encoding, fuse.errors)
        return fuse.operations.truncate(name, length, handle)

    fuse_class = type("PowerFuse", (mfusepy.FUSE,), {"truncate_fuse_3": truncate_fuse_3})
    state.caller_pid = lambda: int(mfusepy.fuse_get_context()[2])
    fuse_class(
        state,
        str(args.mountpoint),
        foreground=True,
        nothreads=True,
        debug=args.debug,
        **MOUNT_OPTIONS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
