"""The ``cluster.toml`` a local cluster runs from, planned from a node count and a base port.

``plan(nodes, base_port)`` lays the ports out in three blocks so they are easy to read in a
process list: client ports ``base, base+1, ...``, peer ports ``base+100, ...`` and metrics ports
``base+200, ...`` (7001, 7101, 7201 for node 1 by default).  The file is written into the data
directory itself with ``data_dir = "."``, so a data directory is self-contained: it can be moved,
and ``pypaxos cluster up`` on it again restarts the same cluster on its old data.  The format is
the one in docs/runtime-contract.md; ``load`` reads back any file in that format.
"""

from __future__ import annotations

import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "cluster.toml"
DEFAULT_BASE_PORT = 7001
PEER_PORT_OFFSET = 100
METRICS_PORT_OFFSET = 200
NODES_MAX = 99  # the port blocks are 100 wide
FSYNC_MODES = ("always", "never")
HOST = "127.0.0.1"


class ConfigError(Exception):
    """A ``cluster.toml`` that cannot be read or does not describe a cluster."""


@dataclass(frozen=True, slots=True)
class Member:
    id: int
    client: str
    peer: str
    metrics: str | None

    def ports(self) -> list[tuple[str, int]]:
        addresses = [self.client, self.peer] + ([self.metrics] if self.metrics else [])
        return [_split(address) for address in addresses]


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """A cluster as ``cluster.toml`` describes it; ``path`` is the file itself."""

    path: Path
    cluster_id: str
    data_dir: Path  # absolute: the file's ``data_dir`` resolved against the file's directory
    fsync: str
    tick_ms: int
    members: tuple[Member, ...]
    thrifty: bool = True  # each Accept to a quorum's worth of followers (runtime.config)

    def node_dir(self, node_id: int) -> Path:
        return self.data_dir / f"node-{node_id}"

    def pid_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "node.pid"

    def log_file(self, node_id: int) -> Path:
        return self.node_dir(node_id) / "node.log"

    def member(self, node_id: int) -> Member:
        for member in self.members:
            if member.id == node_id:
                return member
        raise KeyError(node_id)

    @property
    def client_addresses(self) -> list[str]:
        return [member.client for member in self.members]


def plan(
    data_dir: Path,
    nodes: int,
    base_port: int = DEFAULT_BASE_PORT,
    fsync: str = "always",
    thrifty: bool = True,
) -> ClusterSpec:
    """A fresh cluster of ``nodes`` members on 127.0.0.1 whose config lives in ``data_dir``."""
    if not 1 <= nodes <= NODES_MAX:
        raise ConfigError(f"--nodes must be between 1 and {NODES_MAX}, not {nodes}")
    if base_port < 1024 or base_port + METRICS_PORT_OFFSET + nodes > 65535:
        raise ConfigError(f"--base-port {base_port} leaves no room for {nodes} nodes")
    if fsync not in FSYNC_MODES:
        raise ConfigError(f"fsync must be one of {', '.join(FSYNC_MODES)}")
    members = tuple(
        Member(
            id=i,
            client=f"{HOST}:{base_port + i - 1}",
            peer=f"{HOST}:{base_port + PEER_PORT_OFFSET + i - 1}",
            metrics=f"{HOST}:{base_port + METRICS_PORT_OFFSET + i - 1}",
        )
        for i in range(1, nodes + 1)
    )
    data_dir = data_dir.resolve()
    return ClusterSpec(
        path=data_dir / CONFIG_NAME,
        # Unique per cluster: a node refuses peers of another cluster that reuse its ports.
        cluster_id=f"pypaxos-local-{secrets.token_hex(4)}",
        data_dir=data_dir,
        fsync=fsync,
        tick_ms=10,
        members=members,
        thrifty=thrifty,
    )


def render(spec: ClusterSpec) -> str:
    lines = [
        "# Written by `pypaxos cluster up`; the format is docs/runtime-contract.md.",
        f"cluster_id = {_quote(spec.cluster_id)}",
        'data_dir = "."  # node N keeps its files in ./node-N',
        f"fsync = {_quote(spec.fsync)}",
        f"tick_ms = {spec.tick_ms}",
        f"thrifty = {'true' if spec.thrifty else 'false'}",
    ]
    for member in spec.members:
        lines += ["", "[[members]]", f"id = {member.id}"]
        lines += [f"peer = {_quote(member.peer)}", f"client = {_quote(member.client)}"]
        if member.metrics:
            lines.append(f"metrics = {_quote(member.metrics)}")
    return "\n".join(lines) + "\n"


def write(spec: ClusterSpec) -> None:
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    temporary = spec.path.with_suffix(".toml.tmp")
    temporary.write_text(render(spec))
    temporary.replace(spec.path)


def load(path: Path) -> ClusterSpec:
    """Read a ``cluster.toml``; ``ConfigError`` names the file and what is wrong."""
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from error
    try:
        members = tuple(
            Member(
                id=int(entry["id"]),
                client=str(entry["client"]),
                peer=str(entry["peer"]),
                metrics=str(entry["metrics"]) if entry.get("metrics") else None,
            )
            for entry in raw["members"]
        )
        spec = ClusterSpec(
            path=path.resolve(),
            cluster_id=str(raw.get("cluster_id", "pypaxos-local")),
            data_dir=(path.resolve().parent / str(raw.get("data_dir", "."))).resolve(),
            fsync=str(raw.get("fsync", "always")),
            tick_ms=int(raw.get("tick_ms", 10)),
            members=members,
            thrifty=_boolean(raw.get("thrifty", True), "thrifty"),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"{path}: not a cluster description ({error!r})") from error
    if not members:
        raise ConfigError(f"{path}: no [[members]]")
    return spec


def _boolean(value: object, key: str) -> bool:
    if not isinstance(value, bool):  # bool("false") would be True
        raise ValueError(f"{key} must be true or false, got {value!r}")
    return value


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)
