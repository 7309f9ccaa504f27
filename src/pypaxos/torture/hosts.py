"""Where a torture run's processes live and how their addresses are laid out: two modes.

* **loopback**: every process on 127.0.0.1; partitions and loss are the
  proxies dropping frames (``proxy.Faults.blocked`` / ``loss``).
* **netns**: ``netns.NetnsHosts`` gives every node a network namespace on a private bridge and
  the clients one more; each node's proxy runs inside the node's namespace.  Partitions and loss
  are real packet drops in the namespaces; the proxies add delay, duplication and reordering.

The layout is the same in both: node ``i`` serves clients on ``client(i)``, listens for peers on
``peer_bind(i)``, and its proxy listens for node ``j`` on ``proxy_listen(i, j)``, forwarding to
``peer_bind(i)``.  Node ``j``'s own ``cluster.toml`` names ``proxy_listen(i, j)`` as node
``i``'s peer address, so every byte between two nodes crosses exactly one proxy.

A node added at run time (the ``member`` nemesis, ``members.py``) advertises one peer address
to every member, since the address travels in the replicated configuration: ``proxy_any(i)``,
where its proxy learns the sender from the connection's ``Hello``.  It binds ``peer_bind(i)``
and, in netns mode, ``client_bind(i)`` (every interface), advertising the other two: bound and
advertised addresses differ, as behind NAT or in a container network.
"""

from __future__ import annotations

import errno
import random
import socket
from typing import Protocol

from pypaxos.torture.netns import NetnsHosts

EPHEMERAL_PORT_LOW = 32768  # Linux's default ``ip_local_port_range`` starts here
BLOCK_SPAN = 320  # a loopback cluster's ports: base .. base + 300 + slots (``ports``)

LOCALHOST = "127.0.0.1"
NETNS_CLIENT_PORT = 7001
NETNS_PEER_PORT = 7101
NETNS_PROXY_BASE = 7200  # + sender id; + 0 for any sender (``proxy_any``)
SLOTS_MAX = 9  # the loopback port layout holds ids 1..9


class Hosts(Protocol):
    mode: str

    def client(self, i: int) -> str: ...
    def peer_bind(self, i: int) -> str: ...
    def proxy_listen(self, i: int, j: int) -> str: ...
    def proxy_any(self, i: int) -> str: ...
    def client_bind(self, i: int) -> str | None: ...
    def node_argv(self, i: int, argv: list[str]) -> list[str]: ...
    def client_argv(self, argv: list[str]) -> list[str]: ...
    def partition(self, groups: list[set[int]]) -> bool: ...
    def set_loss(self, percent: float) -> bool: ...
    def heal(self) -> None: ...
    def close(self) -> None: ...


class LoopbackHosts:
    """Everything on 127.0.0.1: clients ``base+i-1``, peers ``base+100+i-1``, proxies
    ``base+200+10*(i-1)+(j-1)``, a proxy for any sender ``base+300+i-1``.  ``partition`` and
    ``set_loss`` return False: the proxies do them."""

    mode = "loopback"

    def __init__(self, nodes: int, base_port: int) -> None:
        if not 1 <= nodes <= SLOTS_MAX:
            raise ValueError(f"the loopback layout holds 1..{SLOTS_MAX} nodes, not {nodes}")
        self.nodes = nodes
        self.base = base_port

    @classmethod
    def on_free_ports(cls, nodes: int, rng: random.Random) -> LoopbackHosts:
        # Below Linux's ephemeral range (``EPHEMERAL_PORT_LOW``): a port free now but in that
        # range can become the local end of any outgoing connection (a proxy's, a client's),
        # and a node started or restarted later then cannot bind it.
        for _ in range(200):
            hosts = cls(nodes, rng.randrange(20000, EPHEMERAL_PORT_LOW - BLOCK_SPAN, 10))
            if not any(_in_use(port) for port in hosts.ports()):
                return hosts
        raise OSError("no free block of ports on 127.0.0.1 for the torture cluster")

    def ports(self) -> list[int]:
        ids = range(1, self.nodes + 1)
        addresses = [self.client(i) for i in ids] + [self.peer_bind(i) for i in ids]
        addresses += [self.proxy_listen(i, j) for i in ids for j in ids if i != j]
        addresses += [self.proxy_any(i) for i in ids]
        return [int(a.rpartition(":")[2]) for a in addresses]

    def client(self, i: int) -> str:
        return f"{LOCALHOST}:{self.base + i - 1}"

    def peer_bind(self, i: int) -> str:
        return f"{LOCALHOST}:{self.base + 100 + i - 1}"

    def proxy_listen(self, i: int, j: int) -> str:
        return f"{LOCALHOST}:{self.base + 200 + 10 * (i - 1) + (j - 1)}"

    def proxy_any(self, i: int) -> str:
        return f"{LOCALHOST}:{self.base + 300 + i - 1}"

    def client_bind(self, i: int) -> str | None:
        return None  # loopback: the client address is bound as advertised

    def node_argv(self, i: int, argv: list[str]) -> list[str]:
        return argv

    def client_argv(self, argv: list[str]) -> list[str]:
        return argv

    def partition(self, groups: list[set[int]]) -> bool:
        return False

    def set_loss(self, percent: float) -> bool:
        return False

    def heal(self) -> None:
        pass

    def close(self) -> None:
        pass


class NamespaceHosts:
    """Node ``i`` at ``NetnsHosts.node_address(i)`` inside its own namespace; the proxy of node
    ``i`` is in that namespace too and reaches the node on its loopback."""

    mode = "netns"

    def __init__(self, nodes: int, prefix: str) -> None:
        self.net = NetnsHosts(nodes, prefix)
        self.net.__enter__()

    def client(self, i: int) -> str:
        return f"{self.net.node_address(i)}:{NETNS_CLIENT_PORT}"

    def peer_bind(self, i: int) -> str:
        return f"{LOCALHOST}:{NETNS_PEER_PORT}"  # loopback of node i's own namespace

    def proxy_listen(self, i: int, j: int) -> str:
        return f"{self.net.node_address(i)}:{NETNS_PROXY_BASE + j}"

    def proxy_any(self, i: int) -> str:
        return f"{self.net.node_address(i)}:{NETNS_PROXY_BASE}"

    def client_bind(self, i: int) -> str | None:
        return f"0.0.0.0:{NETNS_CLIENT_PORT}"  # every interface of node i's namespace

    def node_argv(self, i: int, argv: list[str]) -> list[str]:
        return self.net.wrap(self.net.node_ns(i), argv)

    def client_argv(self, argv: list[str]) -> list[str]:
        return self.net.wrap(self.net.client_ns, argv)

    def partition(self, groups: list[set[int]]) -> bool:
        self.net.partition(groups)
        return True

    def set_loss(self, percent: float) -> bool:
        self.net.set_loss(percent)
        return True

    def heal(self) -> None:
        self.net.heal()

    def close(self) -> None:
        self.net.cleanup()

    @property
    def namespaces(self) -> list[str]:
        return self.net.namespaces


def netns_available() -> tuple[bool, str]:
    return NetnsHosts.available()


def _in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOCALHOST, port))
        except OSError as error:
            return error.errno in (errno.EADDRINUSE, errno.EACCES)
    return False
