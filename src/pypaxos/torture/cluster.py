"""The processes of a torture run: nodes, their proxies and the client agent, all by pid.

Every process is started here, in a session of its own (a Ctrl-C in the terminal reaches only
the harness, which then stops them in order), with its output appended to ``RUN/logs/``.  The
harness remembers every ``Popen`` and ``stop_all`` ends each by its pid: SIGCONT first (a
paused process cannot die of SIGTERM), then SIGTERM, then SIGKILL after a grace period.

Each node gets its own ``cluster.toml`` (``RUN/config/node-N.toml``): the members are the same
in every file, but a peer's address is the proxy in front of that peer for this sender
(``hosts.Hosts``).  Planted bugs go on the command line (``pypaxos node --bug``).

Spare slots (``spares``, for the ``member`` nemesis: ``members.py``) are ids after the first
members', laid out like them up front (address, namespace, proxy, config) but started only when
the nemesis adds them, with ``--join``.  Every node's own entry advertises its any-sender proxy
and binds elsewhere (``own_member``): the address a node joining (or rejoining) is added
with travels in the replicated configuration and is dialled by everyone.  ``ids`` is the
current membership, which every other fault picks from; ``slots`` is every id the run laid
out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pypaxos.runtime.config import Member, new_config, write_config
from pypaxos.storage.file import FsyncMode
from pypaxos.torture.clock import write_clock_file
from pypaxos.torture.hosts import Hosts
from pypaxos.torture.powerfs import PowerMount
from pypaxos.torture.proxy import ANY_SOURCE, Faults
from pypaxos.torture.reads import ReadSetup
from pypaxos.transport.auth import write_secret

STOP_GRACE_S = 5.0
READY_TIMEOUT_S = 20.0


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    paused: bool = False


@dataclass
class Layout:
    """The run folder: ``config/``, ``data/``, ``logs/``, ``history.jsonl``; sockets live in a
    short ``/tmp`` folder because a Unix socket path is limited to about 100 bytes."""

    run: Path
    sockets: Path
    config: Path = field(init=False)
    data: Path = field(init=False)
    logs: Path = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.run / "config"
        self.data = self.run / "data"
        self.logs = self.run / "logs"
        for folder in (self.config, self.data, self.logs, self.sockets):
            folder.mkdir(parents=True, exist_ok=True)

    def node_dir(self, i: int) -> Path:
        return self.data / f"node-{i}"

    @property
    def history(self) -> Path:
        return self.run / "history.jsonl"


class TortureCluster:
    def __init__(
        self,
        layout: Layout,
        hosts: Hosts,
        nodes: int,
        *,
        bugs: list[str],
        clock: bool,
        seed: int,
        reads: ReadSetup | None = None,
        power: bool = False,
        fsync: FsyncMode = "always",
        spares: int = 0,
    ) -> None:
        self.layout = layout
        self.hosts = hosts
        self.genesis = tuple(range(1, nodes + 1))  # the first configuration's voters
        self.slots = tuple(range(1, nodes + spares + 1))  # every id laid out
        self.ids = list(self.genesis)  # the current members (the member nemesis changes it)
        self.bugs = bugs
        self.clock = clock
        self.seed = seed
        self.reads = reads or ReadSetup()
        self.nodes: dict[int, Proc] = {}
        self.proxies: dict[int, Proc] = {}
        self.agent: Proc | None = None
        self.everything: list[Proc] = []  # every process ever started, for stop_all
        self.clock_seq: dict[int, int] = dict.fromkeys(self.slots, 0)
        self.power = power  # node data directories on powerfs mounts (the power nemesis)
        self.fsync: FsyncMode = fsync  # "never" only to show what a power cut does without it
        self.power_mounts: dict[int, PowerMount] = {}
        self.cluster_id = f"torture-{secrets.token_hex(4)}"

    # -- configuration -----------------------------------------------------------------------

    @property
    def peer_secret(self) -> Path:
        return self.layout.config / "peer.secret"

    def write_configs(self) -> None:
        secret = self.peer_secret
        if not secret.exists():
            write_secret(secret)
        for i in self.slots:
            # Node i reaches every other node j through the proxy in front of j.
            members = tuple(
                self.own_member(j)
                if j == i
                else Member(id=j, peer=self.hosts.proxy_listen(j, i), client=self.hosts.client(j))
                for j in self.genesis
            )
            if i not in self.genesis:
                members += (self.own_member(i),)
            path = self.layout.config / f"node-{i}.toml"
            config = new_config(
                path,
                self.cluster_id,
                members,
                data_dir=self.layout.data,
                peer_secret_file=secret,
                # The nodes' addresses are in namespaces this run made; no one else is there.
                protected_mode=self.hosts.mode != "netns",
                fsync=self.fsync,
                state_digest=True,  # the verdict compares the replicas' digests
            )
            if i not in self.genesis:
                config = dataclasses.replace(config, initial_members=self.genesis)
            write_config(self.reads.apply(config))
            if self.clock:
                write_clock_file(self.clock_file(i), 0, 0.0, 1.0)

    def own_member(self, i: int) -> Member:
        """Node ``i``'s own entry: what it advertises (its any-sender proxy, its client
        address) and, apart from those, what it binds."""
        return Member(
            id=i,
            peer=self.hosts.proxy_any(i),
            client=self.hosts.client(i),
            peer_listen=self.hosts.peer_bind(i),
            client_listen=self.hosts.client_bind(i),
        )

    def clock_file(self, i: int) -> Path:
        return self.layout.config / f"clock-{i}.json"

    def control_socket(self, i: int) -> Path:
        return self.layout.sockets / f"p{i}.sock"

    @property
    def agent_socket(self) -> Path:
        return self.layout.sockets / "agent.sock"

    # -- starting ----------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        log = self.layout.logs / f"{name}.log"
        with log.open("ab") as out:
            out.write(f"--- {time.strftime('%H:%M:%S')} started: {' '.join(argv)}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.everything.append(proc)
        with (self.layout.run / "pids.txt").open("a") as pids:  # for a sweep after a crash
            pids.write(f"{popen.pid} {name}\n")
        return proc

    async def start_proxies(self) -> None:
        for i in self.slots:
            routes = [
                [j, self.hosts.proxy_listen(i, j), self.hosts.peer_bind(i)]
                for j in self.slots
                if j != i
            ]
            routes.append([ANY_SOURCE, self.hosts.proxy_any(i), self.hosts.peer_bind(i)])
            argv = [sys.executable, "-m", "pypaxos.torture.proxy", "--routes", json.dumps(routes)]
            argv += ["--control", str(self.control_socket(i)), "--seed", str(self.seed + i)]
            self.proxies[i] = self._spawn(f"proxy-{i}", self.hosts.node_argv(i, argv))
        for i in self.slots:
            await self._wait_for_socket(self.proxies[i], self.control_socket(i))

    async def start_agent(self) -> None:
        argv = [sys.executable, "-m", "pypaxos.torture.agent", "--socket", str(self.agent_socket)]
        argv += ["--addresses", ",".join(self.hosts.client(i) for i in self.ids)]
        argv += ["--history", str(self.layout.history), "--seed", str(self.seed)]
        self.agent = self._spawn("agent", self.hosts.client_argv(argv))
        await self._wait_for_socket(self.agent, self.agent_socket)

    async def run_hostile(self, seed: int, duration_s: float) -> dict[str, int]:
        """Run the ``hostile`` attacker (``hostile.py``) against every peer address for
        ``duration_s``, from where the clients are; returns its counts."""
        targets = [[i, self.hosts.proxy_listen(i, j)] for i in self.ids for j in self.ids if j != i]
        argv = [sys.executable, "-m", "pypaxos.torture.hostile", "--targets", json.dumps(targets)]
        argv += ["--cluster-id", self.cluster_id, "--secret-file", str(self.peer_secret)]
        argv += ["--seed", str(seed), "--duration-s", f"{duration_s:.2f}"]
        proc = self._spawn("hostile", self.hosts.client_argv(argv))
        deadline = time.monotonic() + duration_s + 15.0
        while proc.popen.poll() is None:
            if time.monotonic() > deadline:
                proc.popen.kill()
                raise RuntimeError(f"the hostile attacker did not finish; see {proc.log}")
            await asyncio.sleep(0.1)
        last = proc.log.read_text(errors="replace").strip().splitlines()[-1]
        if proc.popen.returncode != 0 or not last.startswith("{"):
            raise RuntimeError(f"the hostile attacker failed ({proc.popen.returncode}): {last}")
        counts: dict[str, int] = json.loads(last)
        return counts

    async def _wait_for_socket(self, proc: Proc, path: Path) -> None:
        """Until ``path`` accepts a connection (the file exists from ``bind``, before
        ``listen``: its existence alone is not enough)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.popen.poll() is not None:
                code = proc.popen.returncode
                raise RuntimeError(f"{proc.name} exited with {code}; see {proc.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.name} not ready after {READY_TIMEOUT_S:g}s")
            try:
                _, writer = await asyncio.open_unix_connection(str(path))
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return

    def node_argv(self, i: int, extra: tuple[str, ...] = ()) -> list[str]:
        node_args = ["--config", str(self.layout.config / f"node-{i}.toml"), "--id", str(i)]
        node_args += extra
        for bug in self.bugs:
            node_args += ["--bug", bug]
        if self.clock:
            argv = [sys.executable, "-m", "pypaxos.cli.skewed_node"]
            argv += ["--clock-file", str(self.clock_file(i)), "--", *node_args]
        else:
            argv = [sys.executable, "-m", "pypaxos", "node", *node_args]
        return self.hosts.node_argv(i, argv)

    def start_node(self, i: int, extra: tuple[str, ...] = ()) -> Proc:
        old = self.nodes.get(i)
        assert old is None or old.popen.poll() is not None, f"node {i} is running"
        proc = self._spawn(f"node-{i}", self.node_argv(i, extra))
        self.nodes[i] = proc
        return proc

    def node_ready(self, i: int) -> bool:
        """The node wrote its pid file: it listens on every port (runtime contract)."""
        proc = self.nodes.get(i)
        pid_file = self.layout.node_dir(i) / "node.pid"
        if proc is None or proc.popen.poll() is not None:
            return False
        try:
            return int(pid_file.read_text().strip()) == proc.popen.pid
        except (OSError, ValueError):
            return False

    # -- power-cut filesystems -----------------------------------------------------------------

    def mount_power(self) -> None:
        """Put each node's data directory on a powerfs mount of its own, backed by
        ``RUN/power/node-N`` (which holds, at every instant, what a power cut would leave)."""
        for i in self.slots:
            mount = PowerMount(
                self.layout.node_dir(i),
                self.layout.run / "power" / f"node-{i}",
                self.layout.sockets / f"fs{i}.sock",
                self.layout.logs / f"powerfs-{i}.log",
            )
            mount.mountpoint.mkdir(parents=True, exist_ok=True)
            mount.backing.mkdir(parents=True, exist_ok=True)
            self.power_mounts[i] = mount
            mount.start()
            assert mount.process is not None
            with (self.layout.run / "pids.txt").open("a") as pids:
                pids.write(f"{mount.process.pid} powerfs-{i}\n")

    def unmount_power(self) -> None:
        """Detach every mount and end its process (after the nodes have stopped)."""
        for mount in self.power_mounts.values():
            mount.close()

    # -- faults on processes -----------------------------------------------------------------

    def wipe(self, i: int) -> None:
        """Empty the data directory of node ``i`` (stopped): a spare joins with nothing."""
        assert not self.alive(i), f"node {i} is running"
        folder = self.layout.node_dir(i)
        for child in folder.iterdir() if folder.exists() else ():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def alive(self, i: int) -> bool:
        proc = self.nodes.get(i)
        return proc is not None and proc.popen.poll() is None

    def signal_node(self, i: int, sig: signal.Signals) -> bool:
        proc = self.nodes.get(i)
        if proc is None or proc.popen.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.popen.pid, sig)
        if sig == signal.SIGSTOP:
            proc.paused = True
        elif sig == signal.SIGCONT:
            proc.paused = False
        return True

    async def kill(self, i: int) -> bool:
        if not self.signal_node(i, signal.SIGKILL):
            return False
        await self.wait_exit(i, 10.0)
        return True

    async def wait_exit(self, i: int, timeout_s: float) -> int | None:
        proc = self.nodes[i]
        deadline = time.monotonic() + timeout_s
        while proc.popen.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return proc.popen.poll()

    def set_clock(self, i: int, jump_s: float, rate: float) -> bool:
        """Jump node ``i``'s clock and set its rate (only once it listens: see clock.py)."""
        if not self.clock or not self.node_ready(i):
            return False
        self.clock_seq[i] += 1
        write_clock_file(self.clock_file(i), self.clock_seq[i], jump_s, rate)
        return self.signal_node(i, signal.SIGUSR1)

    async def set_proxy(self, i: int, faults: Faults) -> dict[str, Any]:
        return await _ask(self.control_socket(i), faults.to_json())

    async def proxy_stats(self) -> dict[int, dict[str, Any]]:
        return {i: await _ask(self.control_socket(i), {"stats": True}) for i in self.slots}

    async def ask_agent(self, request: dict[str, Any], timeout_s: float = 60.0) -> dict[str, Any]:
        return await _ask(self.agent_socket, request, timeout_s)

    # -- stopping ----------------------------------------------------------------------------

    def stop_all(self) -> None:
        """End every process this run started, by pid; agent first (it writes the history)."""
        procs = [p for p in self.everything if p.popen.poll() is None]
        procs.sort(key=lambda p: p.name != "agent")
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.popen.pid, signal.SIGCONT)
                os.kill(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.01, deadline - time.monotonic()))
        for proc in procs:
            if proc.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.popen.pid, signal.SIGKILL)
                proc.popen.wait()

    def pids(self) -> list[int]:
        return [p.popen.pid for p in self.everything]


AGENT_REPLY_MAX_BYTES = 256 * 1024 * 1024
"""The agent's final answer carries every unique key read back: a long or fast run's is far
beyond asyncio's default 64 KiB line limit."""


async def _ask(path: Path, request: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    async def once() -> dict[str, Any]:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=AGENT_REPLY_MAX_BYTES)
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
        if not line:
            raise ConnectionError(f"{path} closed without an answer")
        reply: dict[str, Any] = json.loads(line)
        return reply

    return await asyncio.wait_for(once(), timeout_s)
