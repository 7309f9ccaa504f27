"""``cluster.toml``: the one model of a cluster's description, its loader and its writer.

Every tool that reads or writes the file (the node, ``pypaxos cluster``, the torture harness,
the benchmarks) goes through ``ClusterConfig``, ``load_config`` and ``render_config`` here.
The file format is the one in ``docs/runtime-contract.md``.  Loading is strict: an unknown key, a
value of the wrong type, a duplicate node id or address, or protocol timings that
``pypaxos.multi.MultiConfig`` refuses all raise ``ConfigError`` naming the file and the key
(``members[2].client``), so a typo is a clear exit-2 message rather than a silently ignored
setting or a cluster that elects no leader.

Two optional tables tune the protocol, with ``MultiConfig``'s field names and units:
``[timeouts]`` takes the ``*_ticks`` fields and ``[limits]`` the windows, batch, queue and log
bounds.  The runtime's defaults differ from ``MultiConfig``'s (which are sized for the
simulator): a real node serves hundreds of pipelined clients, so its batches and queue are
larger, it snapshots less often because a snapshot is a full copy of the store (written by a
forked process, in ``snapshot_chunk_bytes_max`` chunks), and its
election timeout is longer because a real process stalls now and then.  ``thrifty`` (a
boolean, default true) is ``MultiConfig.thrifty``: the leader sends each ``Accept`` to a
quorum's worth of followers only and the others catch up from heartbeats; ``false`` sends every
``Accept`` to every follower.  ``reads`` (``"log"``, ``"read-index"`` or ``"lease"``) is how
plain reads (``GET``, ``MGET``, ``EXISTS``) are served: as log commands, or answered by the
leader from its state after one heartbeat round (``multi.reads``; docs/design.md, "Reads"); with
``follower_reads = true`` as well, a follower answers them from its own state after asking the
leader for a read index, instead of forwarding them (``MultiConfig.follower_reads``).
``thrifty_reads`` (a boolean, default false) is ``MultiConfig.thrifty_reads``: a read-index
round started for reads goes only to the peers a quorum needs, those that answered the last
round first, instead of to every peer (``multi.reads``, step 2).
``reads = "lease"`` is read-index with leader leases (``multi.lease``): the leader answers at
once while a majority acknowledged it within ``lease_ticks`` (a ``[timeouts]`` key, with
``clock_drift_ppm``, the stated bound on how much faster one node's clock may run than
another's); under any other read path those two keys are kept but unused.  The
optional ``[tls]`` table (which ports speak TLS, with which certificates) is parsed and rendered
by ``runtime.tls``.

Membership.  The cluster's membership is replicated state (``multi.membership``): it changes
through the log (``PAXOS.MEMBER``, ``runtime.members_admin``) and the nodes learn it from their
snapshot and log.  The file only bootstraps it: the voters of the first configuration are
``initial_members`` (default: every ``[[members]]`` entry), and ``[[members]]`` is the address
book of the nodes the file knows (a node reads its own addresses there; a member added later
also carries its advertised addresses in the replicated configuration).  ``bootstrapped = true``
says the cluster has started once (``pypaxos cluster up`` writes it): from then on a member
whose data directory is empty refuses to start as a voter (``runtime.identity``).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from pypaxos.core.bugs import UnknownBug, parse_bugs
from pypaxos.kv import KvBug
from pypaxos.kv.commands import DATABASES
from pypaxos.multi import LogBug, MultiConfig
from pypaxos.multi.config import SNAPSHOT_GROWTH_PERCENT_MAX
from pypaxos.runtime.auth import PasswordHashError, Role, User, check_hash_format
from pypaxos.runtime.tls import TlsConfig, TlsConfigError, parse_tls, render_tls
from pypaxos.storage.durable import fsync_dir, make_dirs_durably
from pypaxos.storage.file import FSYNC_MODES, FsyncMode
from pypaxos.transport.auth import SecretError, read_secret
from pypaxos.transport.tcp import parse_address

CONFIG_NAME = "cluster.toml"
PID_FILE = "node.pid"  # written by the node, read by ``pypaxos cluster``
LOG_FILE = "node.log"  # a node's stdout and stderr when ``pypaxos cluster`` starts it

ReadPath = Literal["log", "read-index", "lease"]
READ_PATHS: tuple[ReadPath, ...] = get_args(ReadPath)
DEFAULT_READS: ReadPath = "read-index"
"""Both are linearizable; read-index skips the slot and the fsyncs (docs/design.md, "Reads")."""

TIMEOUT_KEYS: tuple[str, ...] = (
    "heartbeat_ticks",
    "election_timeout_min_ticks",
    "election_timeout_max_ticks",
    "leader_stickiness_ticks",
    "step_down_ticks",
    "catch_up_retry_ticks",
    "lease_ticks",
    "clock_drift_ppm",
)
LEASE_KEYS = ("lease_ticks", "clock_drift_ppm")  # passed to MultiConfig with reads = "lease"
TICKS_PER_BATCH_MAX = 2
"""The most ticks the driver steps after a batch's inputs, beyond those it let come due while
asleep (``Driver.ticks_per_batch_max``'s default)."""


def follower_clock_lag_ticks(heartbeat_ticks: int) -> int:
    """How far a follower's clock may step right after its driver stepped an acknowledgement:
    the batch's ticks come after its messages, at most ``TICKS_PER_BATCH_MAX`` plus the
    ``heartbeat_ticks - 1`` a quiet follower lets come due (``Driver.tick_wake_ticks``);
    ``MultiConfig.lease_clock_lag_ticks``."""
    return TICKS_PER_BATCH_MAX + heartbeat_ticks - 1


LIMIT_KEYS: tuple[str, ...] = (
    "window_slots",
    "batch_max_commands",
    "batch_max_bytes",
    "queue_max_commands",
    "snapshot_every_slots",
    "log_retained_bytes_max",
    "log_window_slots",
    "snapshot_lag_bytes_max",
    "catch_up_max_slots",
    "catch_up_max_bytes",
    "snapshot_window_chunks",
    "snapshot_chunk_bytes_max",
    "apply_max_commands",
    "snapshot_growth_percent",
    "log_memory_bytes_max",
)
# Limits whose range is not [1, 2**31]: (lowest, highest).
LIMIT_RANGES: dict[str, tuple[int, int]] = {
    "snapshot_growth_percent": (0, SNAPSHOT_GROWTH_PERCENT_MAX),
    "log_memory_bytes_max": (0, 2**31),
}


def limit_range(key: str) -> tuple[int, int]:
    """The range (lowest, highest) a ``[timeouts]`` or ``[limits]`` integer must fall in:
    ``LIMIT_RANGES``' for the keys it names, else [1, 2**31]."""
    return LIMIT_RANGES.get(key, (1, 2**31))


# Runtime defaults (see the module docstring).  Timings at tick_ms = 10: heartbeats every
# 50 ms, elections after 0.5-1 s of silence.  MultiConfig's own (150-300 ms elections) are
# sized for the simulator; a real Python process that fsyncs on a busy machine stalls for
# longer than that now and then, and each stall would otherwise depose a healthy leader.
RUNTIME_TIMEOUTS: dict[str, int] = {
    "heartbeat_ticks": 5,
    "election_timeout_min_ticks": 50,
    "election_timeout_max_ticks": 100,
    "leader_stickiness_ticks": 40,
    "step_down_ticks": 100,
    "catch_up_retry_ticks": 10,
    # reads = "lease": 400 ms at tick_ms = 10, under the 500 ms shortest election timeout (a
    # failed leader is replaced no later than without leases); 1 % drift (real clocks: well
    # under 0.1 %; the rest is room for the loop's timer slack).
    "lease_ticks": 40,
    "clock_drift_ppm": 10_000,
}
RUNTIME_LIMITS: dict[str, int] = {
    "window_slots": 8,
    "batch_max_commands": 512,
    "batch_max_bytes": 256 * 1024,
    "queue_max_commands": 8192,
    "snapshot_every_slots": 1024,
    # ...or once 8 MiB of commands were applied since the last snapshot, whichever is first,
    # and the interval before it kept for catch-up cut to 8 MiB: the decided log a node keeps
    # in memory stays about 16 MiB of commands however large the batches or the keyspace.
    "log_retained_bytes_max": 16 * 1024 * 1024,
    "log_window_slots": 2048,
    # Writes go on while a snapshot is being written until this many bytes of commands were
    # applied beyond the last durable one (then they wait for it): a state of millions of keys
    # takes many seconds to write, and the decided values held meanwhile are this much memory.
    "snapshot_lag_bytes_max": 256 * 1024 * 1024,
    # A catch-up answer is bounded by bytes, and the next one is asked for as soon as it is
    # applied: 2 MiB keeps each step of the asker (decode and apply) near 50 ms while a node
    # a million entries behind needs only a few dozen round trips after the snapshot.
    "catch_up_max_slots": 512,
    "catch_up_max_bytes": 2 * 1024 * 1024,
    # A snapshot is written, sent and installed in chunks of 1 MiB (a few ms of decoding each
    # on the receiver), sixteen in flight per receiver (16 MiB): a receiver loads about three
    # chunks per step before its requests for more leave, and the rest of the window keeps it
    # busy meanwhile (with four, it could run dry between steps).
    "snapshot_window_chunks": 16,
    "snapshot_chunk_bytes_max": 1024 * 1024,
    # A node applies about one full slot per input; the rest of a run of decided slots (a
    # window's worth acknowledged at once, a catch-up answer) waits for the next batch, so one
    # step is a slot's apply, not a window's.
    "apply_max_commands": 512,
    # A snapshot copies the whole store, so it is due once the commands applied since the last
    # one reach its size (100%, Redis's AOF rewrite default; at least the 8 MiB above), and
    # the backstop is at least twice that: a snapshot then costs a fixed share of each write
    # whatever the keyspace.  The log on disk and replayed after a restart is up to twice the
    # state; the log in memory is bounded apart (``log_memory_bytes_max``).
    "snapshot_growth_percent": 100,
    # The decided log held in memory (the replica's values and the acceptor's votes of applied
    # slots) stays about this size however far apart snapshots are: older applied values are
    # read back from no one but a snapshot taken for the peer that needs them (0: the log
    # since the last snapshot stays in memory, as the interval above then sets).
    "log_memory_bytes_max": 16 * 1024 * 1024,
}

TOP_KEYS = (
    "cluster_id",
    "data_dir",
    "fsync",
    "tick_ms",
    "thrifty",
    "reads",
    "follower_reads",
    "thrifty_reads",
    "databases",
    "state_digest",
    "timeouts",
    "limits",
    "bugs",
    "peer_secret_file",
    "protected_mode",
    "users",
    "tls",
    "initial_members",
    "bootstrapped",
    "members",
)
MEMBER_KEYS = ("id", "peer", "client", "metrics", "peer_listen", "client_listen")
USER_KEYS = ("name", "role", "password_hash")
NODE_ID_MAX = 2**31 - 1
WILDCARD_HOSTS = ("0.0.0.0", "::", "")  # every interface: the same on many machines


class ConfigError(Exception):
    """A bad configuration; ``str()`` names the file (when there is one) and the key."""

    def __init__(self, path: Path | str | None, key: str | None, message: str) -> None:
        self.path = None if path is None else str(path)
        self.key = key
        self.message = message
        where = ": ".join(part for part in (self.path, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True, slots=True)
class Member:
    """One node's addresses.  ``peer`` and ``client`` are advertised: what the other members
    dial and what clients are redirected to.  The node binds ``peer_listen`` and
    ``client_listen`` when given (behind NAT or in a container network the two differ, e.g.
    bind ``0.0.0.0:7001``, advertise ``node-1.pypaxos:7001``), the advertised ones otherwise."""

    id: int
    peer: str
    client: str
    metrics: str | None = None
    peer_listen: str | None = None
    client_listen: str | None = None

    @property
    def peer_bind(self) -> str:
        return self.peer_listen or self.peer

    @property
    def client_bind(self) -> str:
        return self.client_listen or self.client

    def ports(self) -> list[tuple[str, int]]:
        """Every (host, port) this member listens on."""
        addresses = [self.client_bind, self.peer_bind] + ([self.metrics] if self.metrics else [])
        return [parse_address(address) for address in addresses]


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    path: Path
    cluster_id: str
    data_dir: Path  # absolute: relative paths in the file are resolved against the file
    fsync: FsyncMode
    tick_ms: int
    members: tuple[Member, ...]
    protocol: dict[str, int]  # MultiConfig keyword arguments (timeouts and limits)
    bugs: frozenset[LogBug] = frozenset()  # planted pypaxos.multi bugs switched on (tests only)
    kv_bugs: frozenset[KvBug] = frozenset()  # planted pypaxos.kv bugs (tests only)
    thrifty: bool = True  # MultiConfig.thrifty: each Accept to a quorum's worth of peers only
    reads: ReadPath = DEFAULT_READS  # how plain reads are served (module docstring)
    follower_reads: bool = False  # MultiConfig.follower_reads (with reads = "read-index")
    thrifty_reads: bool = False  # MultiConfig.thrifty_reads: a read's round to a quorum only
    databases: int = DATABASES  # SELECT's 0 to databases - 1 (the store has kv.DATABASES)
    # Keep the running state digest (kv.digest, INFO's state_digest): it costs memory per key
    # and hashing per write, so it is off unless asked for; backups carry one either way
    # (computed in the backup's child when the node keeps none).
    state_digest: bool = False
    # Peers must prove they know the secret in this file (transport.auth); absolute.
    peer_secret_file: Path | None = None
    users: tuple[User, ...] = ()  # clients must AUTH as one of these (runtime.auth)
    # Refuse to serve clients on a non-loopback address without users (Redis's protected mode).
    protected_mode: bool = True
    tls: TlsConfig | None = None  # the [tls] table (runtime.tls); None: no TLS anywhere
    # The voters of the cluster's first configuration (module docstring, "Membership");
    # empty: every member listed.
    initial_members: tuple[int, ...] = ()
    # The cluster has started once: a member whose data directory is empty lost its data and
    # must not vote again (it would forget its promises); it rejoins as a new member.
    bootstrapped: bool = False

    @property
    def tls_enabled(self) -> bool:
        """Whether the client port speaks TLS (what a protected-mode check asks)."""
        return self.tls is not None and self.tls.client

    def peer_secret(self) -> bytes | None:
        """The peer secret, read now; ``ConfigError`` if the file is unusable."""
        if self.peer_secret_file is None:
            return None
        try:
            return read_secret(self.peer_secret_file)
        except SecretError as error:
            raise ConfigError(self.path, "peer_secret_file", str(error)) from None

    def check_protected(self, node_id: int) -> None:
        """``ConfigError`` if node ``node_id`` would serve clients beyond loopback with no
        authentication, and ``protected_mode`` was not turned off (as Redis refuses)."""
        host, _ = parse_address(self.member(node_id).client_bind)
        if not self.protected_mode or self.users or self.tls_enabled or _is_loopback(host):
            return
        raise ConfigError(
            self.path,
            "protected_mode",
            f"node {node_id} would serve clients on {host} with no [[users]]: add users "
            "(pypaxos passwd) or set protected_mode = false",
        )

    def member(self, node_id: int) -> Member:
        for member in self.members:
            if member.id == node_id:
                return member
        ids = ", ".join(str(m.id) for m in self.members)
        raise ConfigError(self.path, "members", f"no member with id {node_id} (ids: {ids})")

    def node_dir(self, node_id: int) -> Path:
        return self.data_dir / f"node-{node_id}"

    def pid_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / PID_FILE

    def log_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / LOG_FILE

    @property
    def member_ids(self) -> tuple[int, ...]:
        return tuple(m.id for m in self.members)

    @property
    def genesis_voters(self) -> tuple[int, ...]:
        """The voters of the first configuration: ``initial_members``, or every member."""
        return tuple(sorted(self.initial_members or self.member_ids))

    def find_member(self, node_id: int) -> Member | None:
        return next((m for m in self.members if m.id == node_id), None)

    @property
    def client_addresses(self) -> list[str]:
        return [member.client for member in self.members]

    def multi_config(self) -> MultiConfig:
        settings: dict[str, Any] = dict(self.protocol)  # ints, checked by parse_config
        if self.reads != "lease":
            for key in LEASE_KEYS:
                del settings[key]
        else:  # the driver steps a follower's messages before its ticks (``multi.lease``)
            lag_ticks = follower_clock_lag_ticks(settings["heartbeat_ticks"])
            settings["lease_clock_lag_ticks"] = lag_ticks
        return MultiConfig(
            node_ids=self.genesis_voters,
            reconfigurable=True,
            fill_to_pending_change=True,
            bugs=self.bugs,
            thrifty=self.thrifty,
            follower_reads=self.follower_reads,
            thrifty_reads=self.thrifty_reads,
            **settings,
        )

    def with_bugs(self, names: list[str] | tuple[str, ...]) -> ClusterConfig:
        """This config with the planted bugs ``names`` switched on too; ``ConfigError`` on a
        name neither ``pypaxos.multi.LogBug`` nor ``pypaxos.kv.KvBug`` knows."""
        try:
            chosen = parse_bugs(names, LogBug, KvBug)
        except UnknownBug as error:
            raise ConfigError(self.path, "bugs", str(error)) from None
        log_bugs = frozenset(b for b in chosen if isinstance(b, LogBug))
        kv_bugs = frozenset(b for b in chosen if isinstance(b, KvBug))
        return dataclasses.replace(self, bugs=self.bugs | log_bugs, kv_bugs=self.kv_bugs | kv_bugs)


def new_config(
    path: Path,
    cluster_id: str,
    members: tuple[Member, ...],
    *,
    data_dir: Path | None = None,
    fsync: FsyncMode = "always",
    tick_ms: int = 10,
    thrifty: bool = True,
    peer_secret_file: Path | None = None,
    protected_mode: bool = True,
    tls: TlsConfig | None = None,
    reads: ReadPath = DEFAULT_READS,
    state_digest: bool = False,
) -> ClusterConfig:
    """A configuration with the runtime's protocol defaults, checked as a loaded one is.

    ``data_dir`` defaults to the file's own directory, which keeps a data directory
    self-contained (it can be moved, and is restarted from its own ``cluster.toml``).
    """
    path = path.resolve()
    raw: dict[str, Any] = {
        "cluster_id": cluster_id,
        "data_dir": str(data_dir.resolve()) if data_dir is not None else ".",
        "fsync": fsync,
        "tick_ms": tick_ms,
        "thrifty": thrifty,
        "reads": reads,
        "state_digest": state_digest,
        **({"peer_secret_file": str(peer_secret_file)} if peer_secret_file else {}),
        "protected_mode": protected_mode,
        "members": [
            {k: v for k, v in dataclasses.asdict(m).items() if v is not None} for m in members
        ],
    }
    return dataclasses.replace(parse_config(raw, path), tls=tls)


def render_config(config: ClusterConfig) -> str:
    """The TOML text of ``config``; ``load_config`` of it gives ``config`` back."""
    lines = [
        "# The format is docs/runtime-contract.md.",
        f"cluster_id = {_quote(config.cluster_id)}",
        f"data_dir = {_quote(_relative_to_file(config, config.data_dir))}",
        f"fsync = {_quote(config.fsync)}",
        f"tick_ms = {config.tick_ms}",
        f"thrifty = {'true' if config.thrifty else 'false'}",
        f"reads = {_quote(config.reads)}",
        f"follower_reads = {'true' if config.follower_reads else 'false'}",
    ]
    if config.thrifty_reads:
        lines.append("thrifty_reads = true")
    if config.peer_secret_file is not None:
        secret = _relative_to_file(config, config.peer_secret_file)
        lines.append(f"peer_secret_file = {_quote(secret)}")
    if not config.protected_mode:
        lines.append("protected_mode = false")
    if config.databases != DATABASES:
        lines.append(f"databases = {config.databases}")
    if config.state_digest:
        lines.append("state_digest = true")
    if config.bugs or config.kv_bugs:
        names = sorted(b.value for b in (*config.bugs, *config.kv_bugs))
        lines.append(f"bugs = [{', '.join(_quote(name) for name in names)}]")
    if config.initial_members:
        lines.append(f"initial_members = [{', '.join(map(str, config.initial_members))}]")
    if config.bootstrapped:
        lines.append("bootstrapped = true")
    for table, keys, defaults in (
        ("timeouts", TIMEOUT_KEYS, RUNTIME_TIMEOUTS),
        ("limits", LIMIT_KEYS, RUNTIME_LIMITS),
    ):
        changed = [k for k in keys if config.protocol[k] != defaults[k]]
        if changed:
            lines += ["", f"[{table}]"] + [f"{k} = {config.protocol[k]}" for k in changed]
    for user in config.users:
        lines += [
            "",
            "[[users]]",
            f"name = {_quote(user.name)}",
            f"role = {_quote(user.role.value)}",
        ]
        lines.append(f"password_hash = {_quote(user.password_hash)}")
    if config.tls is not None:
        relative = functools.partial(_relative_to_file, config)
        lines += ["", *render_tls(config.tls, relative, _quote)]
    for member in config.members:
        lines += ["", "[[members]]", f"id = {member.id}"]
        lines += [f"peer = {_quote(member.peer)}", f"client = {_quote(member.client)}"]
        if member.metrics:
            lines.append(f"metrics = {_quote(member.metrics)}")
        for key in ("peer_listen", "client_listen"):
            if (listen := getattr(member, key)) is not None:
                lines.append(f"{key} = {_quote(listen)}")
    return "\n".join(lines) + "\n"


def write_config(config: ClusterConfig) -> None:
    """Write ``config`` to its ``path`` atomically (a temporary file, fsynced, then renamed),
    readable by its owner only."""
    make_dirs_durably(config.path.parent, mode=0o777)  # the umask decides, as for mkdir
    temporary = config.path.with_suffix(".toml.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(render_config(config))
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(config.path)
    fsync_dir(config.path.parent)


def _relative_to_file(config: ClusterConfig, path: Path) -> str:
    """``path`` as the file should name it: relative to the file's folder when inside it."""
    base = config.path.parent
    if path == base:
        return "."
    if path.is_relative_to(base):
        return str(path.relative_to(base))
    return str(path)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def load_config(path: str | Path) -> ClusterConfig:
    """Read and check ``path``; raises ``ConfigError`` for any problem, I/O included."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
    except OSError as error:
        raise ConfigError(path, None, f"cannot read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(path, None, f"not valid TOML: {error}") from None
    return parse_config(raw, path)


def parse_config(raw: dict[str, Any], path: Path) -> ClusterConfig:
    """Check an already-parsed TOML document (``path`` is for messages and ``data_dir``)."""
    _no_unknown_keys(raw, TOP_KEYS, path, "")
    cluster_id = _string(raw, "cluster_id", path, required=True)
    assert cluster_id is not None
    data_dir_text = _string(raw, "data_dir", path, required=False) or "data"
    data_dir = Path(data_dir_text)
    if not data_dir.is_absolute():
        data_dir = path.resolve().parent / data_dir
    fsync = raw.get("fsync", "always")
    if fsync not in FSYNC_MODES:
        raise ConfigError(path, "fsync", f'must be "always" or "never", got {fsync!r}')
    tick_ms = _integer(raw, "tick_ms", path, default=10, low=1, high=60_000)
    databases = _integer(raw, "databases", path, default=DATABASES, low=1, high=DATABASES)
    thrifty = raw.get("thrifty", True)
    if not isinstance(thrifty, bool):
        raise ConfigError(path, "thrifty", f"must be true or false, got {thrifty!r}")
    reads = raw.get("reads", DEFAULT_READS)
    if reads not in READ_PATHS:
        shown = " or ".join(f'"{r}"' for r in READ_PATHS)
        raise ConfigError(path, "reads", f"must be {shown}, got {reads!r}")
    follower_reads = raw.get("follower_reads", False)
    if not isinstance(follower_reads, bool):
        raise ConfigError(path, "follower_reads", f"must be true or false, got {follower_reads!r}")
    thrifty_reads = raw.get("thrifty_reads", False)
    if not isinstance(thrifty_reads, bool):
        raise ConfigError(path, "thrifty_reads", f"must be true or false, got {thrifty_reads!r}")
    protocol = {**RUNTIME_TIMEOUTS, **RUNTIME_LIMITS}
    protocol.update(_int_table(raw, "timeouts", TIMEOUT_KEYS, path))
    protocol.update(_int_table(raw, "limits", LIMIT_KEYS, path))
    members = _members(raw, path)
    bugs = raw.get("bugs", [])
    if not isinstance(bugs, list) or not all(isinstance(b, str) for b in bugs):
        raise ConfigError(path, "bugs", f"must be a list of bug names, got {bugs!r}")
    secret_text = _string(raw, "peer_secret_file", path, required=False)
    peer_secret_file = None
    if secret_text is not None:
        peer_secret_file = Path(secret_text)
        if not peer_secret_file.is_absolute():
            peer_secret_file = path.resolve().parent / peer_secret_file
    protected_mode = raw.get("protected_mode", True)
    if not isinstance(protected_mode, bool):
        raise ConfigError(path, "protected_mode", f"must be true or false, got {protected_mode!r}")
    state_digest = raw.get("state_digest", False)
    if not isinstance(state_digest, bool):
        raise ConfigError(path, "state_digest", f"must be true or false, got {state_digest!r}")
    bootstrapped = raw.get("bootstrapped", False)
    if not isinstance(bootstrapped, bool):
        raise ConfigError(path, "bootstrapped", f"must be true or false, got {bootstrapped!r}")
    config = ClusterConfig(
        path,
        cluster_id,
        data_dir,
        fsync,
        tick_ms,
        members,
        protocol,
        thrifty=thrifty,
        reads=reads,
        follower_reads=follower_reads,
        thrifty_reads=thrifty_reads,
        databases=databases,
        state_digest=state_digest,
        peer_secret_file=peer_secret_file,
        users=_users(raw, path),
        protected_mode=protected_mode,
        tls=_tls(raw, path),
        initial_members=_initial_members(raw, path),
        bootstrapped=bootstrapped,
    )
    try:
        config.multi_config()
    except ValueError as error:
        raise ConfigError(path, "timeouts/limits", str(error)) from None
    return config.with_bugs(bugs) if bugs else config


def _initial_members(raw: dict[str, Any], path: Path) -> tuple[int, ...]:
    ids = raw.get("initial_members", [])
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= NODE_ID_MAX for i in ids
    ):
        raise ConfigError(path, "initial_members", f"must be a list of node ids, got {ids!r}")
    if len(set(ids)) != len(ids):
        raise ConfigError(path, "initial_members", f"duplicate node id in {ids!r}")
    return tuple(sorted(ids))


def _tls(raw: dict[str, Any], path: Path) -> TlsConfig | None:
    if "tls" not in raw:
        return None
    base = path.resolve().parent
    try:
        return parse_tls(raw["tls"], lambda text: base / text)  # an absolute text stays as is
    except TlsConfigError as error:
        raise ConfigError(path, f"tls.{error.key}" if error.key else "tls", error.message) from None


def _no_unknown_keys(table: dict[str, Any], known: tuple[str, ...], path: Path, at: str) -> None:
    for key in table:
        if key not in known:
            allowed = ", ".join(known)
            raise ConfigError(path, f"{at}{key}", f"unknown key (allowed: {allowed})")


def _string(table: dict[str, Any], key: str, path: Path, *, required: bool) -> str | None:
    if key not in table:
        if required:
            raise ConfigError(path, key, "missing (a string is required)")
        return None
    value = table[key]
    if not isinstance(value, str) or not value:
        raise ConfigError(path, key, f"must be a non-empty string, got {value!r}")
    return value


def _integer(
    table: dict[str, Any], key: str, path: Path, *, default: int, low: int, high: int, at: str = ""
) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(path, f"{at}{key}", f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(path, f"{at}{key}", f"must be in [{low}, {high}], got {value}")
    return value


def _int_table(raw: dict[str, Any], name: str, keys: tuple[str, ...], path: Path) -> dict[str, int]:
    table = raw.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(path, name, "must be a table")
    _no_unknown_keys(table, keys, path, f"{name}.")
    defaults = {f.name: f.default for f in dataclasses.fields(MultiConfig)}
    out: dict[str, int] = {}
    for key in table:
        default = defaults[key]
        assert isinstance(default, int)
        low, high = limit_range(key)
        out[key] = _integer(table, key, path, default=default, low=low, high=high, at=f"{name}.")
    return out


def _users(raw: dict[str, Any], path: Path) -> tuple[User, ...]:
    entries = raw.get("users", [])
    if not isinstance(entries, list):
        raise ConfigError(path, "users", "must be [[users]] tables")
    users: list[User] = []
    for position, entry in enumerate(entries):
        at = f"users[{position}]"
        if not isinstance(entry, dict):
            raise ConfigError(path, at, "must be a table")
        _no_unknown_keys(entry, USER_KEYS, path, f"{at}.")
        name = _string(entry, "name", path, required=True)
        role_text = _string(entry, "role", path, required=True)
        stored = _string(entry, "password_hash", path, required=True)
        assert name is not None and role_text is not None and stored is not None
        if any(user.name == name for user in users):
            raise ConfigError(path, f"{at}.name", f"duplicate user {name!r}")
        try:
            role = Role(role_text)
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            raise ConfigError(path, f"{at}.role", f"must be one of {roles}") from None
        try:
            check_hash_format(stored)
        except PasswordHashError as error:
            raise ConfigError(path, f"{at}.password_hash", str(error)) from None
        users.append(User(name, role, stored))
    return tuple(users)


def _members(raw: dict[str, Any], path: Path) -> tuple[Member, ...]:
    entries = raw.get("members")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(path, "members", "at least one [[members]] table is required")
    members: list[Member] = []
    seen_ids: set[int] = set()
    seen_addresses: dict[str, str] = {}
    for position, entry in enumerate(entries):
        at = f"members[{position}]"
        if not isinstance(entry, dict):
            raise ConfigError(path, at, "must be a table")
        _no_unknown_keys(entry, MEMBER_KEYS, path, f"{at}.")
        if "id" not in entry:
            raise ConfigError(path, f"{at}.id", "missing (an integer node id is required)")
        node_id = _integer(entry, "id", path, default=0, low=0, high=NODE_ID_MAX, at=f"{at}.")
        if node_id in seen_ids:
            raise ConfigError(path, f"{at}.id", f"duplicate node id {node_id}")
        seen_ids.add(node_id)
        addresses: dict[str, str | None] = {}
        for key in ("peer", "client", "metrics", "peer_listen", "client_listen"):
            required = key in ("peer", "client")
            value = _string(entry, key, path, required=required) if key in entry else None
            if value is None and required:
                raise ConfigError(path, f"{at}.{key}", "missing (host:port is required)")
            if value is not None:
                try:
                    parse_address(value)
                except ValueError as error:
                    raise ConfigError(path, f"{at}.{key}", str(error)) from None
                if value in seen_addresses:
                    other = seen_addresses[value]
                    raise ConfigError(path, f"{at}.{key}", f"address {value} is also {other}")
                if parse_address(value)[0] not in WILDCARD_HOSTS:  # bound on each machine
                    seen_addresses[value] = f"{at}.{key}"
            addresses[key] = value
        peer, client = addresses["peer"], addresses["client"]
        assert peer is not None and client is not None
        members.append(
            Member(
                node_id,
                peer,
                client,
                addresses["metrics"],
                peer_listen=addresses["peer_listen"],
                client_listen=addresses["client_listen"],
            )
        )
    return tuple(members)
