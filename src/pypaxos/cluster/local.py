"""``LocalCluster``: a cluster of ``pypaxos node`` processes on one host, by data directory.

Everything it knows comes from two places, so separate commands (``cluster up`` now,
``cluster status`` and ``cluster down`` later, from other shells) agree without a daemon:

* ``DATA/cluster.toml`` says who the members are and where they listen;
* the pid files in ``DATA/node-N/`` say which processes are running (``cluster.processes``).

A node's role, ballot and commit index come from asking it ``INFO`` on its client port; a node
that does not answer within a short timeout is ``down``.  "A leader is elected" means one node
says ``paxos_role:leader`` and a majority of the members name it as ``leader_id``: then every node
that is up can forward to it.  ``up`` also waits for every node it started to answer, so the
cluster serves requests at every address once it returns.  With TLS on the client port
(``[tls]``), ``INFO`` is asked over TLS with the file's CA and client certificate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from pypaxos.client.aio import fetch_info
from pypaxos.cluster import config, processes
from pypaxos.runtime.config import (
    CONFIG_NAME,
    DEFAULT_READS,
    ClusterConfig,
    ConfigError,
    ReadPath,
    load_config,
    write_config,
)
from pypaxos.storage.file import FsyncMode
from pypaxos.transport.tls import TlsError

INFO_TIMEOUT_S = 1.0
POLL_S = 0.05


class ClusterError(Exception):
    """The cluster cannot be started, reached or stopped; the message says what to look at."""


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """One node as ``cluster status`` shows it; ``None`` fields are unknown (node down)."""

    id: int | None  # None: a node reached by address that did not answer (``cluster.remote``)
    pid: int | None
    role: str  # leader | follower | candidate | down
    client: str
    ballot: str | None
    commit_index: int | None
    lag: int | None  # the leader's commit index minus this node's
    leader_id: int | None
    # The replicated state's digest and the applied index it is at (``INFO``'s
    # ``state_digest``, ``state_digest_slot``): replicas at one slot must show one digest.
    state_digest: str | None = None
    digest_slot: int | None = None

    def as_json(self) -> dict[str, object]:
        fields = asdict(self)
        del fields["leader_id"]
        return fields


def leader_commit_index(infos: Sequence[dict[str, str] | BaseException]) -> int | None:
    """The commit index of the node that says it leads, if one answered."""
    for info in infos:
        if isinstance(info, dict) and info.get("paxos_role") == "leader":
            return _int(info.get("commit_index"))
    return None


def node_status(
    info: dict[str, str], client: str, leader_commit: int | None, node_id: int | None = None
) -> NodeStatus:
    """A node's ``NodeStatus`` from its ``INFO`` (its own ``node_id`` unless given)."""
    commit = _int(info.get("commit_index"))
    lag = None if leader_commit is None or commit is None else leader_commit - commit
    return NodeStatus(
        id=_int(info.get("node_id")) if node_id is None else node_id,
        pid=_int(info.get("pid")),
        role=info.get("paxos_role", "unknown"),
        client=client,
        ballot=info.get("ballot") or None,
        commit_index=commit,
        lag=lag,
        leader_id=_int(info.get("leader_id")),
        state_digest=info.get("state_digest") or None,
        digest_slot=_int(info.get("state_digest_slot")),
    )


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        return None


class LocalCluster:
    """The cluster described by ``spec``; ``fsync`` overrides the file's mode for nodes started
    here (``pypaxos node --fsync``)."""

    def __init__(self, spec: ClusterConfig, fsync: FsyncMode | None = None) -> None:
        self.spec = spec
        self.fsync = fsync
        self.started: dict[int, subprocess.Popen[bytes]] = {}  # by this object, by node id
        self._client_tls: ssl.SSLContext | None = None

    def client_tls(self) -> ssl.SSLContext | None:
        """The context to reach the client ports with, when they speak TLS; made once."""
        tls = self.spec.tls
        if not self.spec.tls_enabled or tls is None:
            return None
        if self._client_tls is None:
            try:
                self._client_tls = tls.client_context()
            except TlsError as error:
                raise ClusterError(f"{self.spec.path}: tls: {error}") from None
        return self._client_tls

    @classmethod
    def open(cls, data_dir: Path, fsync: FsyncMode | None = None) -> LocalCluster:
        path = data_dir / CONFIG_NAME
        if not path.exists():
            raise ClusterError(f"no cluster in {data_dir} ({path} does not exist)")
        try:
            return cls(load_config(path), fsync)
        except ConfigError as error:
            raise ClusterError(str(error)) from error

    @classmethod
    def create(
        cls,
        data_dir: Path,
        nodes: int,
        base_port: int = config.DEFAULT_BASE_PORT,
        fsync: FsyncMode = "always",
        thrifty: bool = True,
        tls: bool = False,
        reads: ReadPath = DEFAULT_READS,
        state_digest: bool = False,
    ) -> LocalCluster:
        """Plan a new cluster in ``data_dir`` and write its ``cluster.toml``.

        Raises ``ConfigError`` for impossible parameters (bad usage, not a cluster problem).
        """
        spec = config.plan(data_dir, nodes, base_port, fsync, thrifty, tls, reads, state_digest)
        config.create_secret(spec)
        if spec.tls is not None:
            config.create_certs(spec, spec.tls.ca_file.parent)
        write_config(spec)
        return cls(spec)

    def mark_bootstrapped(self) -> None:
        """Write ``bootstrapped = true`` once the cluster has started: from then on a member
        whose directory is empty refuses to vote (``runtime.identity.WipedMemberError``)."""
        if not self.spec.bootstrapped:
            self.spec = dataclasses.replace(self.spec, bootstrapped=True)
            write_config(self.spec)

    # --- processes --------------------------------------------------------------------------

    def running(self) -> dict[int, list[int]]:
        """Live node processes by node id (nodes without one are left out)."""
        found = {m.id: processes.node_pids(self.spec, m.id) for m in self.spec.members}
        return {node_id: pids for node_id, pids in found.items() if pids}

    def check_can_start(self, node_ids: Collection[int]) -> None:
        running = self.running()
        clash = sorted(set(node_ids) & set(running))
        if clash:
            pids = ", ".join(f"node {n} pid {running[n][0]}" for n in clash)
            raise ClusterError(
                f"a cluster is already running in {self.spec.data_dir} ({pids}); "
                "stop it with `pypaxos cluster down`"
            )
        taken = [
            f"{host}:{port} (node {member.id})"
            for member in self.spec.members
            if member.id in node_ids
            for host, port in member.ports()
            if processes.port_in_use(host, port)
        ]
        if taken:
            raise ClusterError(
                f"port(s) already in use: {', '.join(taken)}; choose another --base-port"
            )

    def start_node(
        self, node_id: int, *, extra: Sequence[str] = (), unsafe_empty_voter: bool = False
    ) -> subprocess.Popen[bytes]:
        """Start one member (it must not be running), without waiting for it.  ``extra``
        arguments go to ``pypaxos node`` (``--join``); ``unsafe_empty_voter`` lets a node
        whose directory was wiped vote again (benchmarks of a wiped node only: unsafe)."""
        self.spec.member(node_id)  # ConfigError for a node the file does not list
        processes.remove_stale_pid_files(self.spec, node_id)
        if unsafe_empty_voter:
            extra = [*extra, "--unsafe-allow-empty-voter"]
        process = processes.spawn_node(self.spec, node_id, self.fsync, extra)
        self.started[node_id] = process
        return process

    def kill(self, node_id: int, sig: signal.Signals = signal.SIGKILL) -> list[int]:
        """Send ``sig`` to node ``node_id``'s process(es); returns the pids signalled."""
        pids = processes.node_pids(self.spec, node_id)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue
        if sig == signal.SIGKILL and node_id in self.started:
            self.started[node_id].wait(timeout=5)
        return pids

    def down(self, timeout_s: float = 10.0) -> dict[int, list[int]]:
        """Stop every node (SIGTERM, then SIGKILL after ``timeout_s``); returns what ran."""
        running = self.running()
        pids = {pid for node_pids in running.values() for pid in node_pids}
        pids |= {p.pid for p in self.started.values() if p.poll() is None}
        processes.stop_pids(sorted(pids), timeout_s)
        for process in self.started.values():
            if process.poll() is None:  # pragma: no cover - stop_pids killed it
                process.kill()
            process.wait()
        for member in self.spec.members:
            processes.remove_stale_pid_files(self.spec, member.id)
        return running

    # --- observing --------------------------------------------------------------------------

    async def statuses(self, timeout_s: float = INFO_TIMEOUT_S) -> list[NodeStatus]:
        """Every member's status, asked concurrently."""
        members = self.spec.members
        tls = self.client_tls()
        infos = await asyncio.gather(
            *(fetch_info(m.client, timeout_s, tls) for m in members), return_exceptions=True
        )
        leader_commit = leader_commit_index(infos)
        result: list[NodeStatus] = []
        for member, info in zip(members, infos, strict=True):
            if isinstance(info, dict):
                result.append(node_status(info, member.client, leader_commit, member.id))
            else:
                pids = processes.node_pids(self.spec, member.id)
                pid = pids[0] if pids else None
                result.append(
                    NodeStatus(member.id, pid, "down", member.client, None, None, None, None)
                )
        return result

    def status(self) -> list[NodeStatus]:
        return asyncio.run(self.statuses())

    async def wait_for_leader(
        self,
        timeout_s: float,
        exclude: Collection[int] = (),
        watch: Collection[subprocess.Popen[bytes]] = (),
        every_node: bool = False,
    ) -> NodeStatus:
        """Poll until a leader (not in ``exclude``) is named by a majority of the members, and
        with ``every_node`` until every member answers too (a slow starter would otherwise
        refuse connections after ``cluster up`` has returned).

        A process in ``watch`` that exits meanwhile ends the wait at once with its log's tail.
        """
        majority = len(self.spec.members) // 2 + 1
        deadline = time.monotonic() + timeout_s
        last: list[NodeStatus] = []
        while time.monotonic() < deadline:
            for process in watch:
                if process.poll() is not None:
                    raise ClusterError(self.exited_message(process))
            last = await self.statuses(min(INFO_TIMEOUT_S, max(0.05, timeout_s / 10)))
            for node in last:
                if node.role == "leader" and node.id not in exclude:
                    followers = sum(1 for n in last if n.leader_id == node.id)
                    everyone = not every_node or all(n.role != "down" for n in last)
                    if followers >= majority and everyone:
                        return node
            await asyncio.sleep(POLL_S)
        roles = ", ".join(f"node {n.id} {n.role}" for n in last) or "no answers"
        logs = ", ".join(str(self.spec.log_file(m.id)) for m in self.spec.members)
        raise ClusterError(
            f"no leader elected within {timeout_s:g}s ({roles}); see the logs: {logs}"
        )

    def exited_message(self, process: subprocess.Popen[bytes]) -> str:
        node_id = next((n for n, p in self.started.items() if p is process), 0)
        log = self.spec.log_file(node_id)
        return (
            f"node {node_id} exited with status {process.returncode} while starting; "
            f"its log {log} ends with:\n{processes.tail(log)}"
        )

    async def up(self, timeout_s: float = 30.0) -> NodeStatus:
        """Start every member, wait for a leader and for every node to answer; on failure (or
        Ctrl-C) stop what was started."""
        node_ids = [member.id for member in self.spec.members]
        self.check_can_start(node_ids)
        launched: list[subprocess.Popen[bytes]] = []
        try:
            for node_id in node_ids:
                launched.append(self.start_node(node_id))
            leader = await self.wait_for_leader(timeout_s, watch=launched, every_node=True)
            self.mark_bootstrapped()
            return leader
        except BaseException:
            processes.stop_pids([p.pid for p in launched], timeout_s=5.0)
            for process in launched:
                process.wait()
            for node_id in node_ids:
                processes.remove_stale_pid_files(self.spec, node_id)
            raise
