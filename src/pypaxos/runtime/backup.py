"""Serving a consistent snapshot of the key-value state to ``pypaxos snapshot save``.

``PAXOS.BACKUP BEGIN`` on the leader's client port:

1. A linearizable read goes through the read-index path (``Router.submit(read=True)``): once
   it is answered here, this node has applied every write acknowledged before ``BEGIN``
   arrived.  The node must still lead with the ballot it had when the read was sent (else the
   read may have been answered elsewhere and this node's state may lag): otherwise ``BEGIN``
   is refused with ``-TRYAGAIN``.
2. On the next turn of the loop (between two driver batches: the machine and the replica's
   applied index agree) the node notes the applied index (the backup's slot) and the state
   digest (``kv.digest``), then ``fork()`` s, as for its own snapshots (``runtime.driver``):
   the child writes the machine's chunks to a spool file (``<node dir>/backups/<token>/``),
   copy-on-write keeping its view fixed while the node goes on applying.  The loop pays for
   the ``fork()`` alone.
3. When the child exits, ``BEGIN`` is answered ``[token, slot, chunks, digest, cluster id,
   node id, keys]``; ``PAXOS.BACKUP CHUNK token seq`` answers each chunk (read in a thread,
   each at most ``snapshot_chunk_bytes_max``, one shard of the store or one large entry),
   ``PAXOS.BACKUP END token`` removes the spool.  A backup nobody asked about for
   ``BACKUP_IDLE_S`` is removed too, and one backup at a time runs on a node: another
   ``BEGIN`` is answered ``-BUSY``, unless the connection that began the running one has
   closed (then that one is dropped).

The spool is not the node's durable state: it is removed at the node's start and stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pypaxos.kv import DbSize, KVStateMachine, Request, encode_request
from pypaxos.multi import Role
from pypaxos.runtime.driver import enter_forked_child
from pypaxos.runtime.plans import Custom
from pypaxos.runtime.router import Failure, Outcome, Router
from pypaxos.storage import SnapshotFileReader, StorageError, write_snapshot_file
from pypaxos.transport.resp import encode_array, encode_bulk, encode_error, encode_simple

if TYPE_CHECKING:
    from pypaxos.runtime.server import RespConnection, _Slot

log = logging.getLogger(__name__)

BACKUP_IDLE_S = 300.0
SPOOL_NAME = "backups"
_SPOOL_FILE = "snapshot.bin"  # what ``write_snapshot_file`` names its file
_DIGEST_FILE = "state-digest"  # the child's digest, when the machine keeps none


@dataclass(eq=False)
class _Backup:
    token: str
    directory: Path
    slot: int
    digest: str
    keys: int
    owner: RespConnection | None = None  # the connection that began it
    pid: int = 0
    pidfd: int = -1
    reader: SnapshotFileReader | None = None
    last_used: float = field(default_factory=time.monotonic)
    timer: asyncio.TimerHandle | None = None


class BackupPort:
    """Answers ``PAXOS.BACKUP`` (a ``Custom`` plan) on a key-value node."""

    def __init__(self, node_id: int, cluster_id: str, router: Router, node_dir: Path) -> None:
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.router = router
        self.spool = node_dir / SPOOL_NAME
        if os.path.lexists(self.spool):
            _remove_tree(self.spool)  # a previous run's, never resumable
        self.current: _Backup | None = None
        self.served = 0
        # One thread reads the chunks, in order, and closes the spool after the last read.
        self.reader_pool = ThreadPoolExecutor(1, thread_name_prefix=f"pypaxos-backup-{node_id}")

    # -- commands ------------------------------------------------------------------------------

    def handle(self, conn: RespConnection, custom: Custom) -> None:
        args = custom.payload.split(b" ")
        verb = args[0].upper()
        if verb == b"BEGIN" and len(args) == 1:
            self._begin(conn)
        elif verb == b"CHUNK" and len(args) == 3 and args[2].isdigit():
            self._chunk(conn, args[1].decode(errors="replace"), int(args[2]))
        elif verb == b"END" and len(args) == 2:
            self._end(conn, args[1].decode(errors="replace"))
        else:
            conn.fill(conn.new_slot(1), encode_error(USAGE))

    def _begin(self, conn: RespConnection) -> None:
        slot = conn.new_slot(1)
        current = self.current
        if current is not None and current.owner is not None and current.owner.closed:
            self._remove()  # its client went away: nobody will fetch it
        if self.current is not None:
            conn.fill(slot, encode_error("BUSY a backup is being taken on this node; try later"))
            return
        node = self.router.driver.node
        if node.role is not Role.LEADER:
            leader = "unknown" if node.leader_id is None else f"node {node.leader_id}"
            conn.fill(slot, encode_error(f"TRYAGAIN not the leader (the leader is {leader})"))
            return
        ballot = node.status.ballot
        token = secrets.token_hex(8)
        self.current = _Backup(token, self.spool / token, 0, "", 0, owner=conn)

        def read_done(outcome: Outcome) -> None:
            backup = self.current
            if backup is None or backup.token != token:
                return  # closed meanwhile
            now = self.router.driver.node
            if isinstance(outcome, Failure):
                self._fail(conn, slot, f"TRYAGAIN the read barrier failed ({outcome})")
            elif now.role is not Role.LEADER or now.status.ballot != ballot:
                self._fail(conn, slot, "TRYAGAIN leadership changed during the read barrier")
            else:
                asyncio.get_running_loop().call_soon(self._fork, conn, slot, backup)

        barrier = encode_request(Request(0, 0, DbSize(), time.time_ns() // 1_000_000))
        self.router.submit(barrier, read_done, read=True)

    def _fail(self, conn: RespConnection, slot: _Slot, text: str) -> None:
        self._remove()
        conn.fill(slot, encode_error(text))

    def _fork(self, conn: RespConnection, slot: _Slot, backup: _Backup) -> None:
        if self.current is not backup:
            return
        node = self.router.driver.node
        machine = node.replica.machine
        if not isinstance(machine, KVStateMachine):
            self._fail(conn, slot, "ERR PAXOS.BACKUP serves the key-value store only")
            return
        backup.slot = node.replica.applied_index
        digest = machine.state_digest()  # None: the child computes it (``state_digest = false``)
        backup.digest = "" if digest is None else digest.hex()
        backup.keys = machine.stored_keys
        chunk_bytes = node.config.snapshot_chunk_bytes_max
        backup.directory.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            _child(backup.directory, backup.slot, machine, chunk_bytes, parent, not digest)
        backup.pid, backup.pidfd = pid, os.pidfd_open(pid)
        log.info(
            "node %d: backup %s of slot %d in child %d, fork %.1f ms",
            self.node_id,
            backup.token,
            backup.slot,
            pid,
            (time.perf_counter() - started) * 1000,
        )
        loop = asyncio.get_running_loop()
        loop.add_reader(backup.pidfd, self._child_exited, conn, slot, backup)

    def _child_exited(self, conn: RespConnection, slot: _Slot, backup: _Backup) -> None:
        asyncio.get_running_loop().remove_reader(backup.pidfd)
        os.close(backup.pidfd)
        backup.pidfd = -1
        _, status = os.waitpid(backup.pid, 0)
        backup.pid = 0
        if self.current is not backup:
            return
        if os.waitstatus_to_exitcode(status) != 0:
            self._fail(conn, slot, "ERR the backup could not be written on the node (its log)")
            return
        try:
            backup.reader = SnapshotFileReader(backup.directory / _SPOOL_FILE)
            if not backup.digest:
                backup.digest = (backup.directory / _DIGEST_FILE).read_text(encoding="ascii")
        except (OSError, StorageError) as error:
            self._fail(conn, slot, f"ERR the backup spool is unreadable: {error}")
            return
        self.served += 1
        self._arm(backup)
        fields = [
            backup.token,
            str(backup.slot),
            str(backup.reader.chunk_count),
            backup.digest,
            self.cluster_id,
            str(self.node_id),
            str(backup.keys),
        ]
        conn.fill(slot, encode_array([text.encode() for text in fields]))

    def _chunk(self, conn: RespConnection, token: str, seq: int) -> None:
        slot = conn.new_slot(1)
        backup = self.current
        if backup is None or backup.token != token or backup.reader is None:
            conn.fill(slot, encode_error("ERR no such backup (ended, expired or never begun)"))
            return
        reader = backup.reader
        if not 0 <= seq < reader.chunk_count:
            conn.fill(slot, encode_error(f"ERR chunk {seq} is out of range"))
            return
        backup.last_used = time.monotonic()
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self.reader_pool, reader.read_chunk, seq)

        def read(done: asyncio.Future[bytes]) -> None:
            try:
                conn.fill(slot, encode_bulk(done.result()))
            except Exception as error:  # a storage error, or the spool closed under it
                conn.fill(slot, encode_error(f"ERR reading chunk {seq}: {error}"))

        work.add_done_callback(read)

    def _end(self, conn: RespConnection, token: str) -> None:
        backup = self.current
        if backup is None or backup.token != token:
            conn.fill(conn.new_slot(1), encode_error("ERR no such backup"))
            return
        self._remove()
        conn.fill(conn.new_slot(1), encode_simple("OK"))

    # -- housekeeping --------------------------------------------------------------------------

    def _arm(self, backup: _Backup) -> None:
        left = backup.last_used + BACKUP_IDLE_S - time.monotonic()
        backup.timer = asyncio.get_running_loop().call_later(
            max(left, 0.0), self._idle_check, backup
        )

    def _idle_check(self, backup: _Backup) -> None:
        if self.current is not backup:
            return
        if time.monotonic() - backup.last_used >= BACKUP_IDLE_S:
            log.warning("node %d: backup %s idle, removed", self.node_id, backup.token)
            self._remove()
        else:
            self._arm(backup)

    def _remove(self) -> None:
        backup, self.current = self.current, None
        if backup is None:
            return
        if backup.timer is not None:
            backup.timer.cancel()
        if backup.pid:
            with contextlib.suppress(RuntimeError, ValueError):
                asyncio.get_running_loop().remove_reader(backup.pidfd)
            os.kill(backup.pid, signal.SIGKILL)
            os.waitpid(backup.pid, 0)
            os.close(backup.pidfd)
        reader = backup.reader
        if reader is not None:
            # A chunk may still be read in the reader thread: close after it, never under it.
            self.reader_pool.submit(reader.close)
        _remove_tree(backup.directory)

    def close(self) -> None:
        """At the node's stop: end a running child, remove the spool."""
        self._remove()
        self.reader_pool.shutdown(wait=True)
        if os.path.lexists(self.spool):
            _remove_tree(self.spool)


def _remove_tree(path: Path) -> None:
    """Remove a directory and what it holds, whatever is already gone.

    ``shutil`` is imported here, on first use: it loads the bz2 and lzma libraries, about half
    a MiB resident in every node, and most nodes never take a backup."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)


USAGE = "ERR usage: PAXOS.BACKUP BEGIN | CHUNK token seq | END token"


def _child(
    directory: Path,
    slot: int,
    machine: KVStateMachine,
    chunk_bytes: int,
    parent_pid: int,
    with_digest: bool,
) -> NoReturn:
    """In the forked child: write the machine's chunks and exit (as ``driver._snapshot_child``:
    no loop, no logging, every inherited descriptor closed, dies with its parent)."""
    code = 1
    try:
        enter_forked_child(parent_pid)
        write_snapshot_file(directory, slot, machine.snapshot_chunks(chunk_bytes), fsync=False)
        if with_digest:  # the machine keeps none: the whole state's, here, off the loop
            (directory / _DIGEST_FILE).write_text(machine.full_digest().hex(), encoding="ascii")
        code = 0
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.write(2, f"pypaxos backup child: {error!r}\n".encode())
    finally:
        os._exit(code)
