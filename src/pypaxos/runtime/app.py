"""One node of a cluster, assembled: storage, recovery, transport, driver, router, servers.

``NodeApp.start()`` opens the node's data directory (``FileStorage``), rebuilds the node from
the storage snapshot and the log after it (``Node.recover``), then starts the peer transport,
the driver loop, the client port and the metrics endpoint, and writes the pid file last: a pid
file means "listening on every port".  ``NodeApp.stop()`` undoes it in the safe order: stop
accepting clients, let the driver finish its batch (its sync and sends), answer whatever is
still waiting ``-TRYAGAIN``, close the peer transport, close (sync) the storage, remove the pid
file.  Several apps can run in one event loop (the in-process test cluster).

Start-up failures are typed, so ``pypaxos node`` can map them to exit codes: a damaged log or
snapshot raises ``CorruptStorageError`` (its message names the file and byte offset), an
undecodable record, or a snapshot the state machine refuses, ``RecoveryError``; a port in use
an ``OSError``.

With a ``[tls]`` table the node loads its certificate when it is made (an unusable file is a
``ConfigError``), serves the ports the table names with TLS, and ``reload_tls`` (SIGHUP in
``pypaxos node``) reads the files again for every later connection, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import platform
import random
import resource
import secrets
import struct
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec

import pypaxos
from pypaxos.kv import KvBug, KVStateMachine
from pypaxos.multi import Message, MultiConfig, Node, Record, Role, StateMachine
from pypaxos.multi.membership import (
    SLOT_UNKNOWN,
    Configuration,
    MembershipState,
    RemovalNotice,
    RemovalVerdict,
    decode_membership_state,
    judge_removal,
)
from pypaxos.runtime import membership_record
from pypaxos.runtime.auth import Users
from pypaxos.runtime.backup import BackupPort
from pypaxos.runtime.commands import REDIS_VERSION, script_command
from pypaxos.runtime.config import ClusterConfig, ConfigError
from pypaxos.runtime.driver import Driver
from pypaxos.runtime.health import Health, assess
from pypaxos.runtime.identity import (
    IDENTITY_FORMAT,
    IDENTITY_NAME,
    ForeignDataError,
    Identity,
    RecordedMembership,
    RemovedMemberError,
    WipedMemberError,
    claim,
)
from pypaxos.runtime.identity import read as read_identity
from pypaxos.runtime.identity import write as write_identity
from pypaxos.runtime.members_admin import MemberBook, MembersAdmin, MembershipView
from pypaxos.runtime.read_counts import READ_PATHS, ReadCounts
from pypaxos.runtime.router import Router
from pypaxos.runtime.server import CustomHandler, RespServer
from pypaxos.runtime.wire import (
    CODEC,
    Forward,
    ForwardReply,
    WireMessage,
    decode_record,
    decode_snapshot_meta,
    decode_snapshot_state,
    snapshot_has_membership,
)
from pypaxos.storage import CorruptStorageError, FileStorage, SnapshotReader, Storage
from pypaxos.storage.file import FsyncMode
from pypaxos.transport import TcpConfig, TcpTransport
from pypaxos.transport.codec import PROTOCOL_VERSION
from pypaxos.transport.tls import TlsContexts, TlsError

if TYPE_CHECKING:
    from pypaxos.runtime.metrics import MetricsServer, NodeMetrics
    from pypaxos.runtime.objects_port import ObjectPort

log = logging.getLogger(__name__)

REMOVED_GRACE_S = 2.0
"""How long a node removed from the cluster goes on answering its peers before it stops: the
slots before the change comes into force still count it in their majority."""
ROUTER_SWEEP_S = 0.05
"""How often the router expires requests and routes parked ones (a status change routes them at
once): request deadlines are seconds, and every wake-up of an idle node costs CPU."""
PREALLOCATE_BYTES = 1024 * 1024
"""A node's log grows by this much of zeros at a time, so its fsync writes data only
(``storage.file``: no journal commit per sync for the file's new size)."""


GC_GEN0_THRESHOLD = 50_000
"""The cyclic collector's first threshold in a node process (CPython's default is 700).

The hot path allocates and frees many short-lived containers per command (parsed arguments,
ops, results); almost all die by reference counting, but each allocation still counts towards
a generation-0 collection, which then walks every young object.  With CPython's default the
collector's functions (``gc_collect_main``, ``visit_decref``, ``visit_reachable``) were 3-4% of
a loaded leader's perf samples; collecting 70 times less often they no longer show.  Cycles
are still collected, later."""


SWITCH_INTERVAL_S = 0.001
"""How long the loop thread may keep the GIL once the storage thread, back from an fsync, asks
for it (CPython's default is 5 ms): every batch that syncs in the storage thread waits for that
hand-over before it can send, so under load the default added up to 5 ms to each commit."""


def tune_gc() -> None:
    """Once per process: freeze what start-up allocated, and collect young objects less often;
    hand the GIL over sooner (``SWITCH_INTERVAL_S``)."""
    if sys.getswitchinterval() > SWITCH_INTERVAL_S:
        sys.setswitchinterval(SWITCH_INTERVAL_S)
    if gc.get_threshold()[0] < GC_GEN0_THRESHOLD:
        gc.freeze()  # modules, code, config: never garbage, never walked again
        threshold = gc.get_threshold()
        gc.set_threshold(GC_GEN0_THRESHOLD, threshold[1], threshold[2])


class RecoveryError(CorruptStorageError):
    """A record or snapshot passed its checksum but does not decode: refuse to start."""


def recover_records(storage: Storage, where: str, machine: StateMachine) -> list[Record]:
    """``recover_state``'s records (for a node whose membership is not needed)."""
    return recover_state(storage, where, machine)[0]


def recover_state(
    storage: Storage, where: str, machine: StateMachine
) -> tuple[list[Record], MembershipState | None]:
    """The storage snapshot's records, then every log record after it, in append order, and
    the membership the snapshot carried (``None``: no snapshot, or one from before it had one).

    A chunked snapshot's machine chunks are loaded into ``machine`` here, one at a time (never
    the whole file in memory); its records then carry the slot only.  ``where`` names the
    storage in error messages (the data directory).
    """
    reader = storage.open_snapshot()
    records: list[Record] = []
    membership: MembershipState | None = None
    after = 0
    if reader is not None:
        after = reader.index
        try:
            loaded, membership = _load_snapshot(reader, machine)
            records += loaded
        except (ValueError, RecursionError) as error:  # msgspec.DecodeError is a ValueError
            raise RecoveryError(
                f"snapshot in {where} (index {reader.index}) does not decode: {error}; "
                "the node will not start"
            ) from None
        finally:
            reader.close()
    for entry in storage.records(after):
        try:
            records.append(decode_record(entry.data))
        except (ValueError, RecursionError) as error:  # msgspec.DecodeError is a ValueError
            raise RecoveryError(
                f"log record {entry.index} in {where} does not decode: {error}; "
                "the node will not start"
            ) from None
    return records, membership


def _load_snapshot(
    reader: SnapshotReader, machine: StateMachine
) -> tuple[list[Record], MembershipState | None]:
    """Format 1: one ``SnapshotState``.  Format 2: the membership's chunk when the meta says
    there is one, the machine's chunks (loaded now, one by one), then the ``SnapshotMeta``."""
    if reader.format_version == 1:
        return decode_snapshot_state(b"".join(reader.chunks())), None
    count = reader.chunk_count
    if count == 0:
        raise ValueError("a chunked snapshot without its meta chunk")
    meta = reader.read_chunk(count - 1)
    records = decode_snapshot_meta(meta)
    leading_membership = snapshot_has_membership(meta)
    membership: MembershipState | None = None
    loader = machine.snapshot_loader()
    for seq, chunk in enumerate(reader.chunks()):  # to the end: the file's trailer is checked
        if seq == count - 1:
            continue  # the meta, read above
        if seq == 0 and leading_membership:
            membership = decode_membership_state(chunk)
        else:
            loader.load(chunk)
    loader.finish()
    return records, membership


def rebuild_node(
    node_id: int,
    config: MultiConfig,
    rng: random.Random,
    machine: StateMachine,
    records: list[Record],
    where: str,
    membership: MembershipState | None = None,
) -> Node:
    """``Node.recover`` from ``recover_state``; ``RecoveryError`` if the state machine
    refuses the snapshot they hold (a record that decodes can still carry a state that does
    not: the machine raises ``ValueError``, and a node must not start on it)."""
    try:
        return Node.recover(node_id, config, rng, machine, records, membership)
    except (ValueError, RecursionError) as error:
        raise RecoveryError(
            f"the snapshot recovered from {where} does not restore: {error}; "
            "the node will not start"
        ) from None


def tls_contexts(config: ClusterConfig, node_id: int) -> TlsContexts | None:
    """Node ``node_id``'s TLS contexts, loaded now; ``ConfigError`` if a file is unusable."""
    if config.tls is None:
        return None
    try:
        return config.tls.contexts(node_id)
    except TlsError as error:
        raise ConfigError(config.path, "tls", str(error)) from None


MachineFactory = Callable[[], StateMachine]
"""Builds the node's state machine (once per start: recovery loads the disk into it)."""


class NodeApp:
    """One node.  ``machine_factory`` builds the state machine it replicates: the key-value
    store by default; any other (replicated objects: ``objects.ObjectMachine``) is served on
    the client port by ``PAXOS.CALL``/``PAXOS.QUERY`` (``runtime.objects_port``), named
    ``served`` in its error messages."""

    def __init__(
        self,
        config: ClusterConfig,
        node_id: int,
        *,
        fsync: FsyncMode | None = None,
        request_timeout_s: float = 5.0,
        machine_factory: MachineFactory | None = None,
        served: str = "replicated objects",
        joined: RecordedMembership | None = None,
        allow_empty_voter: bool = False,
    ) -> None:
        self.machine_factory: MachineFactory = machine_factory or partial(
            _kv_machine, config.kv_bugs, config.state_digest
        )
        self.served = served
        self.objects: ObjectPort | None = None  # set when the machine is not the KV store
        self.backup: BackupPort | None = None  # PAXOS.BACKUP (runtime.backup), for the KV store
        self.config = config
        self.node_id = node_id
        self.member = config.member(node_id)
        self.fsync: FsyncMode = fsync or config.fsync
        self.request_timeout_s = request_timeout_s
        self.dir = config.node_dir(node_id)
        self.pid_path = config.pid_file(node_id)
        self.peer_secret = config.peer_secret()  # ConfigError now, not at the first dial
        config.check_protected(node_id)
        self.tls = tls_contexts(config, node_id)
        # Metrics exist only where they can be scraped: without a metrics address the driver
        # and router skip their accounting, and the metrics module is never imported.
        self.metrics: NodeMetrics | None = None
        if self.member.metrics is not None:
            from pypaxos.runtime.metrics import NodeMetrics

            self.metrics = NodeMetrics(node_id)
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"pypaxos-storage-{node_id}")
        self.storage: FileStorage | None = None
        self.transport: TcpTransport[WireMessage] | None = None
        self.driver: Driver | None = None
        self.router: Router | None = None
        self.server: RespServer | None = None
        self._started_s = time.monotonic()
        self.run_id = secrets.token_hex(20)  # INFO's run_id: new for each start, as in Redis
        self._ops_sample = (self._started_s, 0)  # (time, commands) for instantaneous_ops_per_sec
        self._ops_rate = 0
        self.metrics_server: MetricsServer | None = None
        self.failed: BaseException | None = None
        self.stopped = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_task: asyncio.Task[None] | None = None
        self._stopping = False
        # Membership (``runtime.members_admin``): the membership a joining node was added to
        # (``pypaxos node --join``), the unsafe override of the empty-directory refusal, the
        # identity recorded, and the address book.
        self.joined = joined
        self.allow_empty_voter = allow_empty_voter
        self.identity: Identity | None = None
        self.book: MemberBook | None = None
        self.removed = False  # a configuration without this node was decided
        self._identity_writes: set[asyncio.Task[None]] = set()
        self._notices_ignored: set[tuple[int, int]] = set()  # (peer, epoch) logged once
        # ``runtime.membership_record``: the start came from identity.json's configuration,
        # and how many of the membership's changes taken were logged.
        self._started_joined = False
        self._taken_logged = 0

    # -- start -------------------------------------------------------------------------------

    async def start(self) -> None:
        tune_gc()
        loop = asyncio.get_running_loop()
        storage, node = await loop.run_in_executor(self.executor, self._open_storage)
        self.storage = storage
        try:
            await self._start_serving(storage, node)
        except BaseException:
            await self._close_io()
            raise
        self._write_pid_file()
        applied = self.driver.node.applied_index if self.driver else 0
        log.info(
            "node %d: started (peer %s, client %s, metrics %s, fsync %s, applied index %d)",
            self.node_id,
            _bound_as(self.member.peer_bind, self.member.peer),
            _bound_as(self.member.client_bind, self.member.client),
            self.member.metrics or "off",
            self.fsync,
            applied,
        )

    def _open_storage(self) -> tuple[FileStorage, Node]:
        """In the storage thread: open the directory and rebuild the node from it."""
        storage = FileStorage(self.dir, fsync=self.fsync, preallocate_bytes=PREALLOCATE_BYTES)
        try:
            self.identity = self._claim(storage)
            machine = self.machine_factory()
            records, membership = recover_state(storage, str(self.dir), machine)
            return storage, self._make_node(records, machine, membership)
        except BaseException:
            storage.abandon()
            raise

    def _claim(self, storage: FileStorage) -> Identity:
        """Check the directory's identity, or record it in a new one.  A new directory of a
        cluster that has started is refused unless the node joins as a learner
        (``WipedMemberError``: a voter that lost its data would forget its promises)."""
        config, node_id = self.config, self.node_id
        found = read_identity(self.dir)
        genesis = config.genesis_voters
        expected = Identity(config.cluster_id, node_id, genesis)
        if found is None and storage.last_index == 0 and not _has_snapshot(storage):
            if self.joined is not None:
                expected = Identity(
                    config.cluster_id, node_id, genesis, membership=self.joined, joined=True
                )
            elif node_id not in genesis:
                raise ForeignDataError(
                    self.dir,
                    [
                        f"node {node_id} is not in the cluster's first configuration "
                        f"(initial_members {list(genesis)}): a new member starts with "
                        "`pypaxos node --join HOST:PORT`"
                    ],
                )
            elif config.bootstrapped and not self.allow_empty_voter:
                raise WipedMemberError(self.dir / IDENTITY_NAME, node_id, config.cluster_id)
        if claim(self.dir, expected):
            log.info("node %d: %s records this cluster now", node_id, IDENTITY_NAME)
            return expected
        assert found is not None
        return found

    def _make_node(
        self, records: list[Record], machine: StateMachine, membership: MembershipState | None
    ) -> Node:
        config = self.config.multi_config()
        rng = random.Random(os.urandom(16))
        membership = self._joined_membership(membership)
        if not records and membership is None:
            return Node(self.node_id, config, rng, machine)
        node = rebuild_node(self.node_id, config, rng, machine, records, str(self.dir), membership)
        log.info(
            "node %d: recovered %d records, promised %s, applied index %d",
            self.node_id,
            len(records),
            node.acceptor.promised,
            node.applied_index,
        )
        return node

    def _joined_membership(self, recovered: MembershipState | None) -> MembershipState | None:
        """A node that joined starts from the configuration it was added to, not the first one
        (which may list it as a voter: a first voter that lost its data and rejoined), until its
        own snapshot carries a later one; the log's older changes are then ignored by epoch."""
        identity = self.identity
        if identity is None or not identity.joined or identity.membership is None:
            return recovered
        known = identity.membership
        if recovered is not None and recovered.latest.epoch >= known.epoch:
            return recovered
        voters = tuple(sorted(m.id for m in known.members if m.voter))
        learners = tuple(sorted(m.id for m in known.members if not m.voter))
        if not voters:
            return recovered
        self._started_joined = True
        return MembershipState(Configuration(known.epoch, voters, learners))

    async def _start_serving(self, storage: FileStorage, node: Node) -> None:
        config = self.config
        assert self.identity is not None
        book = MemberBook(config, self.node_id, self.identity.membership)
        self.book = book
        view = book.view(node.members())
        in_force = book.in_force(node.members())
        self._log_membership(node, "joined" if self._started_joined else "start")
        if book.removed(view):  # decided before a crash, not yet recorded
            await self._record_identity(in_force, removed=True)
            raise RemovedMemberError(self.dir / IDENTITY_NAME, self.node_id)
        peers = {m.id: m.peer for m in view.members if m.id != self.node_id and m.peer}
        transport: TcpTransport[WireMessage] = TcpTransport(
            self.node_id,
            self.member.peer_bind,
            peers,
            CODEC,
            self._deliver,
            cluster_id=config.cluster_id,
            config=TcpConfig(),
            secret=self.peer_secret,
            members=(*view.governing, *view.member_ids),
            tls=self.tls if self.tls is not None and self._tls_on("peer") else None,
            notice_for=self._notice_for,
            on_notice=self.on_removal_notice,
        )
        self.transport = transport
        driver = Driver(
            node,
            storage,
            transport,
            self.executor,
            tick_s=config.tick_ms / 1000,
            metrics=self.metrics,
        )
        self.driver = driver
        if self.metrics is not None:
            driver.status_listeners.append(self.metrics.status_changed)
        driver.membership_listeners.append(self._membership_changed)
        router = Router(
            driver, transport, request_timeout_s=self.request_timeout_s, metrics=self.metrics
        )
        self.router = router
        await transport.start()
        users = Users(config.users) if config.users else None
        server_tls = self.tls.server if self.tls is not None else None
        client_tls = server_tls if self._tls_on("client") else None
        if not isinstance(node.replica.machine, KVStateMachine):
            from pypaxos.runtime.objects_port import ObjectPort  # a KV node never loads it

            self.objects = ObjectPort(router, self.served)
        else:
            self.backup = BackupPort(self.node_id, config.cluster_id, router, self.dir)
        self.server = RespServer(
            router,
            self.info,
            self.member.client_bind,
            users=users,
            ssl=client_tls,
            read_index=config.reads != "log",  # read-index, or lease (the same path)
            planner=self.objects.plan if self.objects is not None else None,
            custom=self.objects.handle if self.objects is not None else self._backup_handler(),
            databases=config.databases,
        )
        # CONFIG GET: Redis's appendfsync "always" is our fsync per write; "never" leaves it
        # to the OS, Redis's "no".
        self.server.settings["appendfsync"] = "always" if config.fsync == "always" else "no"
        self.server.settings["appendonly"] = "yes"
        self.server.cluster_size = len(view.voters)
        self.server.member_admin = MembersAdmin(router, book).handle
        await self.server.start()
        if self.metrics is not None and self.member.metrics is not None:
            from pypaxos.runtime.metrics import MetricsServer

            self.metrics.read_counts = self.read_counts
            self.metrics_server = MetricsServer(
                self.metrics,
                self.member.metrics,
                self._refresh,
                ssl=server_tls if self._tls_on("metrics") else None,
                health=self.health,
            )
            await self.metrics_server.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._run_driver(driver), name=f"pypaxos-driver-{self.node_id}"),
            loop.create_task(
                router.run(max(config.tick_ms / 1000, ROUTER_SWEEP_S)),
                name=f"pypaxos-router-{self.node_id}",
            ),
        ]
        for peer_id in sorted(peers):  # say we are back: a leader then redials us at once
            transport.dial(peer_id)
        await self._record_identity(in_force, removed=False)  # what recovery brought, if newer

    # -- membership (``runtime.members_admin``) ----------------------------------------------

    def _membership_changed(self, state: MembershipState) -> None:
        """A configuration was applied (or came with a snapshot): new peers, new accepted
        members, the identity's record; a node left out stops after ``REMOVED_GRACE_S``."""
        book, transport = self.book, self.transport
        if book is None or transport is None:
            return
        view = book.view(state)
        if self.driver is not None:
            self._log_membership(self.driver.node, "change")
        for member in view.members:
            if member.id != self.node_id and member.peer:
                transport.set_peer(member.id, member.peer)
        for peer_id in transport.peer_ids:
            if peer_id not in view.governing and peer_id not in view.member_ids:
                transport.remove_peer(peer_id)
        transport.set_members((*view.governing, *view.member_ids))
        if self.server is not None:
            self.server.cluster_size = len(view.voters)
        log.info(
            "node %d: membership epoch %d: voters %s, learners %s",
            self.node_id,
            view.epoch,
            list(view.voters),
            [m.id for m in view.members if not m.voter],
        )
        # The identity keeps the configuration in force, not a pending one (``MemberBook.in_force``:
        # a joiner restarts from it).
        in_force = book.in_force(state)
        removed = book.removed(view) and not self.removed
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._record_identity(in_force, removed=removed))
        self._identity_writes.add(task)
        task.add_done_callback(self._identity_writes.discard)
        if removed:
            self.removed = True
            log.warning(
                "node %d: removed from the cluster in epoch %d; stopping in %.0f s",
                self.node_id,
                view.epoch,
                REMOVED_GRACE_S,
            )
            loop.call_later(REMOVED_GRACE_S, self._stop_removed)

    def _log_membership(self, node: Node, source: Literal["start", "joined", "change"]) -> None:
        """The records of the changes taken since the last call and of the membership now
        (``runtime.membership_record``)."""
        membership = node.membership
        fresh = min(membership.taken_count - self._taken_logged, len(membership.taken))
        for first_slot, config in membership.taken[len(membership.taken) - fresh :]:
            log.info("%s", membership_record.chosen_line(self.node_id, first_slot, config))
        self._taken_logged = membership.taken_count
        line = membership_record.state_line(
            self.node_id, source, node.applied_index, membership.state
        )
        log.info("%s", line)

    def _notice_for(self, node_id: int) -> RemovalNotice | None:
        """What this node tells ``node_id``, when it dials in and is no member
        (``Membership.notice_for``); nothing once this node was removed itself."""
        if self.driver is None or self.removed:
            return None
        return self.driver.node.membership.notice_for(node_id)

    def on_removal_notice(self, peer_id: int, notice: RemovalNotice) -> None:
        """A peer's authenticated word that its configuration no longer has this node: this
        node stops, as if it had applied its removal, when that configuration is newer than
        any it knows (``judge_removal``) and the peer is a member of its own configuration."""
        book = self.book
        view = book.current if book is not None else None
        if book is None or view is None or self.removed or self._stopping:
            return
        known_epoch = max(view.epoch, book.member_epoch)
        verdict = judge_removal(self.node_id, known_epoch, notice)
        if peer_id not in view.member_ids or verdict is not RemovalVerdict.REMOVED:
            if (peer_id, notice.epoch) not in self._notices_ignored:
                self._notices_ignored.add((peer_id, notice.epoch))
                stranger = peer_id not in view.member_ids
                why = (
                    f"node {peer_id} is not in this node's configuration"
                    if stranger
                    else f"{verdict.value}: this node knows epoch {known_epoch}"
                )
                # A stale notice is routine while this node joins: a peer that has not yet
                # applied the change that added it refuses it for a moment.
                stale = verdict is RemovalVerdict.STALE and not stranger
                log.log(
                    logging.INFO if stale else logging.WARNING,
                    "node %d: node %d says its configuration epoch %d does not have this node; "
                    "ignored (%s)",
                    self.node_id,
                    peer_id,
                    notice.epoch,
                    why,
                )
            return
        self.removed = True
        log.info("%s", membership_record.removed_line(self.node_id, peer_id, notice))
        slot = "slot unknown" if notice.slot == SLOT_UNKNOWN else f"from slot {notice.slot}"
        log.warning(
            "node %d: removed from the cluster in epoch %d (%s), as node %d says (this node "
            "knew epoch %d); recording it and stopping: this directory will not start again",
            self.node_id,
            notice.epoch,
            slot,
            peer_id,
            known_epoch,
        )
        task = asyncio.get_running_loop().create_task(self._stop_as_removed(view))
        self._identity_writes.add(task)
        task.add_done_callback(self._identity_writes.discard)

    async def _stop_as_removed(self, view: MembershipView) -> None:
        await self._record_identity(view, removed=True)
        if not self._stopping:
            await self.stop()

    def _stop_removed(self) -> None:
        if not self._stopping:
            self._stop_task = asyncio.get_running_loop().create_task(self.stop())

    async def _record_identity(self, view: MembershipView, *, removed: bool) -> None:
        """Keep ``identity.json``'s record of the membership (and of a removal) up to date."""
        identity = self.identity
        if identity is None or self.storage is None:
            return
        removed = removed or identity.removed
        updated = msgspec.structs.replace(
            identity, membership=view.recorded(), removed=removed, format=IDENTITY_FORMAT
        )
        if updated == identity:
            return
        self.identity = updated
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.executor, write_identity, self.dir, updated)
        except (OSError, RuntimeError) as error:  # RuntimeError: the executor shut down
            log.error("node %d: cannot record the membership: %s", self.node_id, error)

    def _tls_on(self, port: str) -> bool:
        tls = self.config.tls
        return tls is not None and bool(getattr(tls, port))

    def reload_tls(self) -> bool:
        """Read the certificate, key and CA files again (SIGHUP): connections made from now on
        use them.  A file that does not load is logged and the old ones stay; False then."""
        if self.tls is None:
            log.info("node %d: no [tls] table, nothing to reload", self.node_id)
            return False
        try:
            self.tls.reload()
        except TlsError as error:
            log.error("node %d: TLS reload failed, keeping the old files: %s", self.node_id, error)
            return False
        log.info("node %d: TLS files reloaded (%s)", self.node_id, self.tls.files.cert_file)
        return True

    def _deliver(self, msg: WireMessage) -> None:
        if isinstance(msg, Forward):
            assert self.router is not None
            self.router.on_forward(msg)
        elif isinstance(msg, ForwardReply):
            assert self.router is not None
            self.router.on_forward_reply(msg)
        else:
            assert self.driver is not None
            message: Message = msg
            self.driver.deliver(message)

    async def _run_driver(self, driver: Driver) -> None:
        try:
            await driver.run()
        except Exception as error:  # a storage failure: the node must restart and recover
            log.critical(
                "node %d: driver failed, stopping: %r", self.node_id, error, exc_info=error
            )
            self.failed = error
            self._stop_task = asyncio.get_running_loop().create_task(self.stop())

    def _write_pid_file(self) -> None:
        temp = self.pid_path.with_suffix(".pid.tmp")
        temp.write_text(f"{os.getpid()}\n")
        temp.replace(self.pid_path)

    # -- status ------------------------------------------------------------------------------

    def _refresh(self) -> None:
        if self.driver is not None and self.metrics is not None:
            self.metrics.refresh(self.driver.node.status, self.driver.log_records, self.health())
            node = self.driver.node
            machine = node.replica.machine
            self.metrics.refresh_memory(
                node.replica.retained_slots,
                node.replica.retained_bytes,
                machine.session_count if isinstance(machine, KVStateMachine) else 0,
            )

    def health(self) -> Health:
        """Live, healthy, ready (``runtime.health``): what ``/health`` and ``INFO`` say."""
        assert self.driver is not None
        serving = self.server is not None and not self._stopping and self.failed is None
        return assess(self.driver.node, serving=serving)

    def info(self, section: str | None = None) -> str:
        """``INFO [section]``: Redis's standard sections under its field names (the ones
        clients and tools read; ``docs/runtime-contract.md`` lists them) and ``paxos``; all of
        them by default."""
        sections = {
            "server": self._info_server,
            "clients": self._info_clients,
            "memory": self._info_memory,
            "persistence": self._info_persistence,
            "stats": self._info_stats,
            "replication": self._info_replication,
            "cpu": self._info_cpu,
            "keyspace": self._info_keyspace,
            "paxos": self._info_paxos,
        }
        wanted = (section or "default").split()
        if {"all", "default", "everything"} & set(wanted):
            chosen = list(sections.values())
        else:  # in the server's order, each once; unknown names add nothing (as Redis)
            chosen = [lines for name, lines in sections.items() if name in wanted]
        if not chosen:
            return ""
        return "\r\n\r\n".join("\r\n".join(lines()) for lines in chosen) + "\r\n"

    def _info_server(self) -> list[str]:
        port = self.server.port if self.server is not None else 0
        uptime_s = int(time.monotonic() - self._started_s)
        system = platform.uname()
        return [
            "# Server",
            f"redis_version:{REDIS_VERSION}",
            f"pypaxos_version:{pypaxos.__version__}",
            f"peer_protocol:{PROTOCOL_VERSION}",
            "redis_git_sha1:00000000",
            "redis_git_dirty:0",
            "redis_mode:standalone",
            f"os:{system.system} {system.release} {system.machine}",
            f"arch_bits:{struct.calcsize('P') * 8}",
            "multiplexing_api:asyncio",
            f"python_version:{platform.python_version()}",
            f"process_id:{os.getpid()}",
            f"run_id:{self.run_id}",
            f"tcp_port:{port}",
            f"server_time_usec:{time.time_ns() // 1000}",
            f"uptime_in_seconds:{uptime_s}",
            f"uptime_in_days:{uptime_s // 86400}",
            f"executable:{sys.executable}",
        ]

    def _info_clients(self) -> list[str]:
        server = self.server
        connected = len(server.connections) if server is not None else 0
        maxclients = server.clients_max if server is not None else 0
        blocked = server.blocked_count if server is not None else 0
        return [
            "# Clients",
            f"connected_clients:{connected}",
            "cluster_connections:0",
            f"maxclients:{maxclients}",
            f"blocked_clients:{blocked}",
        ]

    def _info_persistence(self) -> list[str]:
        """The write-ahead log is pypaxos's persistence, so it shows as Redis's append-only
        file (on, never rewriting in the background) and no RDB save is ever pending; the
        node serves only after its log is replayed, so it is never ``loading``."""
        started_s = int(time.time() - (time.monotonic() - self._started_s))
        return [
            "# Persistence",
            "loading:0",
            "async_loading:0",
            "rdb_changes_since_last_save:0",
            "rdb_bgsave_in_progress:0",
            f"rdb_last_save_time:{started_s}",
            "rdb_last_bgsave_status:ok",
            "aof_enabled:1",
            "aof_rewrite_in_progress:0",
            "aof_rewrite_scheduled:0",
            "aof_last_bgrewrite_status:ok",
            "aof_last_write_status:ok",
        ]

    def _info_stats(self) -> list[str]:
        """Counters since start (or ``CONFIG RESETSTAT``); ``instantaneous_ops_per_sec`` is
        the command rate since the previous ``INFO`` at least a second earlier."""
        server = self.server
        if server is None:
            return ["# Stats"]
        commands = server.commands_processed
        now_s = time.monotonic()
        last_s, last_commands = self._ops_sample
        if now_s - last_s >= 1.0:
            rate = (commands - last_commands) / (now_s - last_s)
            self._ops_rate = max(0, int(rate))
            self._ops_sample = (now_s, commands)
        return [
            "# Stats",
            f"total_connections_received:{server.connections_received}",
            f"total_commands_processed:{commands}",
            f"instantaneous_ops_per_sec:{self._ops_rate}",
            f"rejected_connections:{server.rejected_connections}",
            "evicted_keys:0",
            f"pubsub_channels:{len(server.pubsub.channels) if server.pubsub else 0}",
            f"pubsub_patterns:{len(server.pubsub.patterns) if server.pubsub else 0}",
        ]

    def _info_replication(self) -> list[str]:
        """Every node takes writes (a follower forwards them to the leader) and answers reads
        linearizably, so each one is a ``master`` to a client: a ``slave`` role would make
        Sentinel-style tools refuse to write to it.  The Paxos roles are in ``paxos``;
        ``master_repl_offset`` is the node's applied log index."""
        applied = self.driver.node.applied_index if self.driver is not None else 0
        return [
            "# Replication",
            "role:master",
            "connected_slaves:0",
            "master_failover_state:no-failover",
            f"master_replid:{self.run_id}",
            f"master_repl_offset:{applied}",
        ]

    def _info_cpu(self) -> list[str]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return [
            "# CPU",
            f"used_cpu_sys:{usage.ru_stime:.6f}",
            f"used_cpu_user:{usage.ru_utime:.6f}",
            f"used_cpu_sys_children:{children.ru_stime:.6f}",
            f"used_cpu_user_children:{children.ru_utime:.6f}",
        ]

    def _info_memory(self) -> list[str]:
        """The process's resident memory (Linux ``/proc``), under Redis's field names: Python
        does not count its allocations cheaply, so ``used_memory`` is the resident size too."""
        resident_bytes, peak_bytes = _resident_memory_bytes()
        return [
            "# Memory",
            *self._memory_breakdown(),
            f"used_memory:{resident_bytes}",
            f"used_memory_human:{_human_bytes(resident_bytes)}",
            f"used_memory_rss:{resident_bytes}",
            f"used_memory_rss_human:{_human_bytes(resident_bytes)}",
            f"used_memory_peak:{peak_bytes}",
            f"used_memory_peak_human:{_human_bytes(peak_bytes)}",
            "maxmemory:0",
            "maxmemory_human:0B",
            "maxmemory_policy:noeviction",
        ]

    def _memory_breakdown(self) -> list[str]:
        """What this node keeps besides the data, counted without walking it: the decided log
        values kept for catch-up (slots, bytes of commands), the acceptor's votes in memory, the
        clients' exactly-once sessions; and the C heap as glibc counted it right after the last
        trim (what it holds free there was given back; what is in use is the node's)."""
        if self.driver is None:
            return []
        node = self.driver.node
        machine = node.replica.machine
        sessions = machine.session_count if isinstance(machine, KVStateMachine) else 0
        lines = [
            f"log_retained_slots:{node.replica.retained_slots}",
            f"log_retained_bytes:{node.replica.retained_bytes}",
            f"log_votes_in_memory:{len(node.acceptor.accepted)}",
            f"sessions:{sessions}",
            f"heap_trims:{self.driver.heap.trims}",
            f"heap_trim_last_ms:{self.driver.heap.last_trim_s * 1000:.1f}",
        ]
        stats = self.driver.heap.last_stats  # read by the trimmer's thread (runtime.heap)
        if stats is not None:
            lines += [
                f"heap_last_trim_arena_bytes:{stats.heap_bytes}",
                f"heap_last_trim_in_use_bytes:{stats.in_use_bytes}",
                f"heap_last_trim_free_bytes:{stats.free_bytes}",
                f"heap_last_trim_mapped_bytes:{stats.mapped_bytes}",
            ]
        return lines

    def _info_keyspace(self) -> list[str]:
        """This node's keys per database (its own state: a follower's may lag the leader's)."""
        assert self.driver is not None
        machine = self.driver.node.replica.machine
        if not isinstance(machine, KVStateMachine):
            return ["# Keyspace"]  # replicated objects: no keys
        return ["# Keyspace", *machine.keyspace_lines()]

    def read_counts(self) -> ReadCounts:
        """This node's clients' read commands by the path that served them (summed over the
        nodes: every client read once), and the read rounds this node led."""
        driver, router, server = self.driver, self.router, self.server
        if driver is None or router is None or server is None:
            return ReadCounts({}, 0)
        stats = router.stats
        by_path = {
            "read-index": stats.reads_read_index,
            "lease": stats.reads_lease,
            "follower": stats.reads_follower,
            "forwarded": stats.reads_forwarded,
            "stale": server.reads_stale,
            "log": server.reads_log,
        }
        return ReadCounts(by_path, driver.node.reads.rounds_for_reads)

    def _info_paxos(self) -> list[str]:
        assert self.driver is not None
        status = self.driver.node.status
        leader = status.leader_id
        leader_client = ""
        if leader is not None and self.book is not None:
            leader_client = self.book.client_of(leader)
        ballot = "" if status.ballot.is_null() else str(status.ballot)
        health = self.health()
        return [
            "# Paxos",
            f"node_id:{self.node_id}",
            f"paxos_role:{status.role.value}",
            f"leader_id:{'' if leader is None else leader}",
            f"leader_client:{leader_client}",
            f"ballot:{ballot}",
            f"commit_index:{status.commit_index}",
            f"applied_index:{status.applied_index}",
            f"durable_index:{self.driver.node.replica.durable_index}",
            f"log_size:{self.driver.log_records}",
            f"snapshot_slot:{self.driver.node.replica.snapshot_slot}",
            f"snapshots_saved:{self.driver.snapshots_saved}",
            f"snapshots_installed:{self.driver.node.replica.snapshots_installed}",
            f"snapshot_fork_ms:{self.driver.snapshot_fork_s * 1000:.1f}",
            f"snapshot_first_chunk_ms:{self.driver.snapshot_first_chunk_s * 1000:.0f}",
            f"snapshot_receive_ms:{self.driver.snapshot_receive_s * 1000:.0f}",
            f"snapshot_receive_bytes:{self.driver.snapshot_receive_bytes}",
            f"pid:{os.getpid()}",
            f"machine:{'kv' if self.objects is None else self.served}",
            *self._info_digest(),
            *self._info_membership(),
            *self._info_reads(),
            f"leader_known:{int(health.leader_known)}",
            f"lag_slots:{health.lag_slots}",
            f"healthy:{int(health.healthy)}",
            f"ready:{int(health.ready)}",
            f"health_reasons:{'; '.join(health.reasons)}",
        ]

    def _backup_handler(self) -> CustomHandler | None:
        return self.backup.handle if self.backup is not None else None

    def _info_digest(self) -> list[str]:
        """The replicated state's digest (``kv.digest``) at the applied index, to compare
        replicas: equal at equal ``state_digest_slot`` on every replica."""
        assert self.driver is not None
        replica = self.driver.node.replica
        if not isinstance(replica.machine, KVStateMachine):
            return []
        digest = replica.machine.state_digest()
        if digest is None:  # ``state_digest = false``
            return []
        return [f"state_digest:{digest.hex()}", f"state_digest_slot:{replica.applied_index}"]

    def _info_membership(self) -> list[str]:
        """The membership as this node knows it: its epoch, this node's part in it."""
        book = self.book
        view = book.current if book is not None else None
        if view is None:
            return []
        me = view.member(self.node_id)
        if self.removed or me is None:
            role = "removed" if self.removed else "none"
        else:
            role = "voter" if me.voter else "learner"
        voters = ",".join(map(str, view.voters))
        learners = ",".join(str(m.id) for m in view.members if not m.voter)
        return [
            f"membership_epoch:{view.epoch}",
            f"member_role:{role}",
            f"voters:{voters}",
            f"learners:{learners}",
        ]

    def _info_reads(self) -> list[str]:
        counts = self.read_counts()
        by_path = counts.by_path
        lines = [f"reads_{path.replace('-', '_')}:{by_path.get(path, 0)}" for path in READ_PATHS]
        follower = int(self.config.follower_reads)
        head = [f"read_path:{self.config.reads}", f"follower_reads:{follower}"]
        return [*head, *lines, f"read_rounds:{counts.rounds}"]

    @property
    def client_address(self) -> str:
        return self.member.client

    @property
    def is_leader(self) -> bool:
        return self.driver is not None and self.driver.node.role is Role.LEADER

    # -- stop --------------------------------------------------------------------------------

    async def stop(self) -> None:
        if self._stopping:
            await self.stopped.wait()
            return
        self._stopping = True
        log.info("node %d: stopping", self.node_id)
        if self.server is not None:
            self.server.stop_accepting()
        if self.driver is not None:
            self.driver.stop()
        driver_task = self._tasks[0] if self._tasks else None
        if driver_task is not None and driver_task is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await driver_task
        for task in self._tasks[1:]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.router is not None:
            self.router.fail_all()
        if self.backup is not None:
            self.backup.close()
        await asyncio.sleep(0)  # let the connections write those answers
        await self._close_io()
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()
        log.info("node %d: stopped", self.node_id)
        self.stopped.set()

    async def _close_io(self) -> None:
        if self.metrics_server is not None:
            await self.metrics_server.close()
        if self.server is not None:
            await self.server.close()
        if self.transport is not None:
            await self.transport.close()
        storage = self.storage
        if storage is not None:
            self.storage = None
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self.executor, storage.close)
            except Exception as error:
                log.error("node %d: closing the storage failed: %s", self.node_id, error)
        self.executor.shutdown(wait=True)


def _has_snapshot(storage: Storage) -> bool:
    reader = storage.open_snapshot()
    if reader is None:
        return False
    reader.close()
    return True


def _resident_memory_bytes() -> tuple[int, int]:
    """(resident now, peak resident) of this process, from ``/proc/self/status``; zeros
    where there is no such file."""
    fields: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) * 1024  # the file counts kB
    return fields.get("VmRSS", 0), fields.get("VmHWM", 0)


def _bound_as(bound: str, advertised: str) -> str:
    return bound if bound == advertised else f"{bound} advertised as {advertised}"


def _human_bytes(count: int) -> str:
    """Redis's ``*_human`` form: ``1.50M``."""
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if count >= size:
            return f"{count / size:.2f}{unit}"
    return f"{count}B"


def _kv_machine(bugs: frozenset[KvBug] = frozenset(), state_digest: bool = False) -> KVStateMachine:
    """The default machine: the key-value store, its scripts' ``redis.call`` planned as the
    client port plans commands (``bugs``: planted ones, for tests; ``state_digest``: keep
    ``kv.digest``'s running digest)."""
    return KVStateMachine(bugs=bugs, script_commands=script_command, state_digest=state_digest)
