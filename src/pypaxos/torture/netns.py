"""Network-namespace hosts for the torture harness: one namespace per node, real packet drops.

Each node, and the clients, get a namespace of the run (``{prefix}-{pid}-{token}-n1`` ...),
joined by veth pairs to a bridge in one more; every veth pair is created from the bridge
namespace, so no interface of a run ever appears in the root namespace.  Topology:
docs/testing.md, 'Network namespaces'.

Safety rules this module keeps:

- The addresses (``10.77.0.0/24``) exist only inside the run's namespaces and are used only
  from inside them (``wrap``); the root namespace has no route to them, so a packet for them
  sent from there would follow the default route off the machine -- never do that.
- No namespace gets a default route, or any route beyond its on-link /24; IPv6 link-local
  addresses are off (``addrgenmode none``), so there is no second, unfiltered path.
- Faults are drops on *ingress* (nftables, or iptables): a drop in OUTPUT makes ``connect`` /
  ``send`` fail at once with EPERM, which no real network does
  (a drop on the wire makes them time out).  Each change replaces the
  namespace's whole ruleset in one transaction.
- Deleting the namespaces removes everything a run made.  ``cleanup`` first SIGKILLs (by pid)
  any process still inside (it would keep a namespace alive), then deletes them; it runs from
  ``__exit__`` (so on exceptions and Ctrl-C), from SIGTERM/SIGHUP (as ``SystemExit`` during the
  ``with`` block) and from ``atexit``.
- ``sweep(prefix)``, called by ``__enter__``, deletes namespaces left by a SIGKILLed run, only
  those whose owner pid (in the name) is dead, so parallel runs never delete each other's.

No ``tc netem`` is used: the kernel here has none.  Not thread-safe: one thread per
``NetnsHosts``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import FrameType, TracebackType

SUBNET_PREFIX = "10.77.0"
SUBNET_BITS = 24
NODE_HOST_BASE = 10  # node i is 10.77.0.(10 + i)
CLIENT_HOST = 5
NODES_MAX = 200  # keeps 10 + n inside the /24
ENDPOINT_IFACE = "eth0"
BRIDGE_IFACE = "br0"
CLIENT_PORT_IFACE = "cl"
NFT_TABLE = "pypaxos_torture"
COMMAND_TIMEOUT_S = 20.0
KILL_WAIT_S = 2.0
LOSS_STEPS = 10_000  # loss resolution: 0.01 %

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_ROLE_RE = r"(?:br|cl|n[0-9]+|probe)"


class NetnsError(RuntimeError):
    """A namespace, link or packet-filter command failed (the message carries its stderr)."""


def _run(argv: Sequence[str], stdin_text: str | None = None) -> str:
    try:
        done = subprocess.run(
            list(argv),
            input=stdin_text,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()
        raise NetnsError(f"{' '.join(argv)} exited {done.returncode}: {detail}")
    return done.stdout


def _ip_batch(lines: Iterable[str], ns: str | None = None) -> None:
    """Run many ``ip`` commands in one process (``ip -b -``); it stops at the first failure."""
    argv = ["ip", "-b", "-"] if ns is None else ["ip", "-n", ns, "-b", "-"]
    _run(argv, "".join(line + "\n" for line in lines))


def _list_netns() -> list[str]:
    # Lines look like "pxt-12-ab-n1 (id: 3)" or just "pxt-12-ab-n1".
    return [line.split()[0] for line in _run(["ip", "netns", "list"]).splitlines() if line.strip()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_pids_in(ns: str) -> None:
    """SIGKILL, by pid, every process still inside ``ns``; wait briefly for them to go."""
    try:
        out = _run(["ip", "netns", "pids", ns])
    except NetnsError:
        return
    me = os.getpid()
    pids = [int(tok) for tok in out.split() if tok.isdigit() and int(tok) != me]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + KILL_WAIT_S
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if os.path.exists(f"/proc/{pid}/ns/net")]
        if pids:
            time.sleep(0.01)


def _delete_ns(ns: str) -> bool:
    _kill_pids_in(ns)
    try:
        _run(["ip", "netns", "delete", ns])
    except NetnsError:
        return ns not in _list_netns()
    return True


# --- packet filters ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rules:
    """What one endpoint namespace drops on ingress at ``eth0``."""

    drop_from: tuple[str, ...] = ()  # source addresses, sorted
    loss_percent: float = 0.0


class _Filter:
    name = "none"

    @staticmethod
    def usable() -> bool:
        raise NotImplementedError

    def apply(self, ns: str, rules: _Rules) -> None:
        raise NotImplementedError


class _Nft(_Filter):
    """nftables: one ``inet`` table per namespace, replaced whole by ``nft -f`` (atomic)."""

    name = "nftables"

    @staticmethod
    def usable() -> bool:
        return shutil.which("nft") is not None

    def apply(self, ns: str, rules: _Rules) -> None:
        body = []
        if rules.drop_from:
            body.append(
                f'iifname "{ENDPOINT_IFACE}" ip saddr {{ {", ".join(rules.drop_from)} }} drop'
            )
        steps = round(rules.loss_percent / 100 * LOSS_STEPS)
        if steps >= LOSS_STEPS:
            body.append(f'iifname "{ENDPOINT_IFACE}" drop')
        elif steps > 0:
            body.append(f'iifname "{ENDPOINT_IFACE}" numgen random mod {LOSS_STEPS} < {steps} drop')
        chain = "\n".join(["type filter hook input priority filter; policy accept;", *body])
        # The namespace is ours alone, so its whole ruleset is ours to replace.
        script = f"flush ruleset\ntable inet {NFT_TABLE} {{\nchain input {{\n{chain}\n}}\n}}\n"
        _run(["ip", "netns", "exec", ns, "nft", "-f", "-"], script)


class _Iptables(_Filter):
    """iptables: the filter table rewritten whole by ``iptables-restore`` (atomic)."""

    name = "iptables"

    @staticmethod
    def usable() -> bool:
        return shutil.which("iptables-restore") is not None

    def apply(self, ns: str, rules: _Rules) -> None:
        lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
        lines += [f"-A INPUT -i {ENDPOINT_IFACE} -s {addr} -j DROP" for addr in rules.drop_from]
        if rules.loss_percent >= 100:
            lines.append(f"-A INPUT -i {ENDPOINT_IFACE} -j DROP")
        elif rules.loss_percent > 0:
            probability = f"{rules.loss_percent / 100:.6f}"
            lines.append(
                f"-A INPUT -i {ENDPOINT_IFACE} -m statistic --mode random"
                f" --probability {probability} -j DROP"
            )
        lines.append("COMMIT")
        # -w: iptables-legacy serialises on a machine-wide lock file, even across namespaces.
        restore = ["ip", "netns", "exec", ns, "iptables-restore", "-w", "10"]
        _run(restore, "\n".join(lines) + "\n")


_FILTERS: dict[str, type[_Filter]] = {"nftables": _Nft, "iptables": _Iptables}


def _pick_filter(name: str | None = None) -> _Filter | None:
    """The named filter if usable; by default nftables (atomic, numgen for loss), else iptables."""
    candidates = list(_FILTERS.values()) if name is None else [_FILTERS[name]]
    for cls in candidates:
        if cls.usable():
            return cls()
    return None


# --- the hosts --------------------------------------------------------------------------------


@dataclass(slots=True)
class _FaultState:
    partition_groups: list[frozenset[int]] = field(default_factory=list)
    clients_isolated_from: frozenset[int] = frozenset()
    loss_percent: dict[int, float] = field(default_factory=dict)  # node id -> percent


class NetnsHosts:
    """``n_nodes`` node namespaces and one client namespace on a private bridge.

    Use as a context manager: ``__enter__`` creates everything (after sweeping leftovers of
    crashed runs with the same prefix), ``__exit__`` removes everything.  ``prefix`` is a short
    lowercase word without dashes (``[a-z][a-z0-9]{0,11}``) so ``sweep`` can parse the names.
    """

    def __init__(self, n_nodes: int, prefix: str = "pxt", packet_filter: str | None = None) -> None:
        """``packet_filter``: "nftables" or "iptables"; by default nftables where installed."""
        if packet_filter is not None and packet_filter not in _FILTERS:
            raise ValueError(
                f"packet_filter must be one of {sorted(_FILTERS)}, got {packet_filter}"
            )
        if not 1 <= n_nodes <= NODES_MAX:
            raise ValueError(f"n_nodes must be in 1..{NODES_MAX}, got {n_nodes}")
        if not _PREFIX_RE.match(prefix):
            raise ValueError(f"prefix must match {_PREFIX_RE.pattern}, got {prefix!r}")
        self.n_nodes = n_nodes
        self.prefix = prefix
        self.packet_filter = packet_filter
        self.run_name = f"{prefix}-{os.getpid()}-{secrets.token_hex(3)}"
        self._filter: _Filter | None = None
        self._faults = _FaultState()
        self._applied: dict[str, _Rules] = {}
        self._entered = False
        self._closed = False
        self._handled_signals: list[signal.Signals] = []

    # -- names and addresses

    @property
    def bridge_ns(self) -> str:
        return f"{self.run_name}-br"

    def node_ns(self, node_id: int) -> str:
        self._check_node(node_id)
        return f"{self.run_name}-n{node_id}"

    @property
    def client_ns(self) -> str:
        return f"{self.run_name}-cl"

    @property
    def namespaces(self) -> list[str]:
        """Every namespace of this run: the bridge's, the nodes', the clients'."""
        return [self.bridge_ns, *self._endpoint_namespaces()]

    def node_address(self, node_id: int) -> str:
        self._check_node(node_id)
        return f"{SUBNET_PREFIX}.{NODE_HOST_BASE + node_id}"

    def client_address(self) -> str:
        return f"{SUBNET_PREFIX}.{CLIENT_HOST}"

    @property
    def filter_name(self) -> str:
        """``"nftables"`` or ``"iptables"``, once entered."""
        return self._filter.name if self._filter is not None else "none"

    def wrap(self, ns: str, argv: list[str]) -> list[str]:
        """The command line that runs ``argv`` inside namespace ``ns`` of this run."""
        if ns not in self._endpoint_namespaces():
            raise ValueError(f"{ns!r} is not a node or client namespace of run {self.run_name}")
        return ["ip", "netns", "exec", ns, *argv]

    # -- lifecycle

    @staticmethod
    def available() -> tuple[bool, str]:
        """(True, "") when namespaces, a bridge, veths and drop rules all work here."""
        if os.geteuid() != 0:
            return False, "network namespaces need root"
        if shutil.which("ip") is None:
            return False, "`ip` (iproute2) is not installed"
        flt = _pick_filter()
        if flt is None:
            return False, "neither nft nor iptables-restore is installed (apt-get install nftables)"
        probe = f"pxt-{os.getpid()}-{secrets.token_hex(3)}-probe"
        try:
            _ip_batch([f"netns add {probe}"])
            _ip_batch(
                [
                    "link set lo up",
                    f"link add {BRIDGE_IFACE} type bridge",
                    f"link add {CLIENT_PORT_IFACE} type veth peer name {ENDPOINT_IFACE}",
                    f"link set {CLIENT_PORT_IFACE} master {BRIDGE_IFACE}",
                ],
                ns=probe,
            )
            flt.apply(probe, _Rules(drop_from=(f"{SUBNET_PREFIX}.1",), loss_percent=12.5))
        except NetnsError as exc:
            return False, f"network namespace probe failed: {exc}"
        finally:
            with contextlib.suppress(NetnsError):
                _delete_ns(probe)
        return True, ""

    def __enter__(self) -> NetnsHosts:
        if self._entered:
            raise RuntimeError("a NetnsHosts can be entered once")
        self._entered = True
        flt = _pick_filter(self.packet_filter)
        if flt is None:
            raise NetnsError(f"no usable packet filter ({self.packet_filter or 'nft, iptables'})")
        self._filter = flt
        self._install_signal_handlers()
        atexit.register(self.cleanup)
        try:
            self.sweep(self.prefix)
            self._create()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def cleanup(self) -> None:
        """Remove every namespace of this run (and so every veth, bridge and rule); idempotent.

        SIGINT and SIGTERM are held back while it runs, so a second Ctrl-C does not cut the
        cleanup short; they are delivered when it is done.
        """
        if self._closed:
            return
        blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
        try:
            mine = re.compile(rf"^{re.escape(self.run_name)}-{_ROLE_RE}$")
            leftover = [ns for ns in _list_netns() if mine.match(ns) and not _delete_ns(ns)]
            if leftover:
                raise NetnsError(f"could not delete namespaces: {', '.join(leftover)}")
            self._closed = True
            self._applied.clear()
            atexit.unregister(self.cleanup)
        finally:
            self._restore_signal_handlers()
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    @staticmethod
    def sweep(prefix: str) -> list[str]:
        """Delete namespaces ``{prefix}-{pid}-*`` whose owner pid is gone; return their names.

        Namespaces of a live process (another run in parallel, or this one) are left alone.
        """
        pattern = re.compile(rf"^{re.escape(prefix)}-([0-9]+)-[0-9a-f]+-{_ROLE_RE}$")
        removed = []
        for ns in _list_netns():
            match = pattern.match(ns)
            if match is None or _pid_alive(int(match.group(1))):
                continue
            if _delete_ns(ns):
                removed.append(ns)
        return removed

    # -- faults

    def partition(
        self, groups: list[set[int]], isolate_clients_from: set[int] | None = None
    ) -> None:
        """Cut the nodes of different groups apart, both ways; replaces any earlier partition.

        Nodes in no group stay connected to everyone.  The client namespace stays connected to
        every node except those in ``isolate_clients_from``.  Loss settings are kept.
        """
        seen: set[int] = set()
        for group in groups:
            for node_id in group:
                self._check_node(node_id)
            if seen & group:
                raise ValueError(f"node(s) {sorted(seen & group)} are in more than one group")
            seen |= group
        for node_id in isolate_clients_from or ():
            self._check_node(node_id)
        self._faults.partition_groups = [frozenset(g) for g in groups]
        self._faults.clients_isolated_from = frozenset(isolate_clients_from or ())
        self._apply_all()

    def heal(self) -> None:
        """Remove every partition and loss rule."""
        self._faults = _FaultState()
        self._apply_all()

    def set_loss(self, percent: float, nodes: set[int] | None = None) -> None:
        """Drop, at random, ``percent`` % of the packets arriving at ``nodes`` (default: all).

        ``percent`` 0 removes the loss for those nodes.  Partitions are kept.
        """
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"percent must be in 0..100, got {percent}")
        targets = set(range(1, self.n_nodes + 1)) if nodes is None else nodes
        for node_id in targets:
            self._check_node(node_id)
        for node_id in targets:
            if percent > 0:
                self._faults.loss_percent[node_id] = percent
            else:
                self._faults.loss_percent.pop(node_id, None)
        self._apply_all()

    # -- internals

    def _check_node(self, node_id: int) -> None:
        if not 1 <= node_id <= self.n_nodes:
            raise ValueError(f"node id must be in 1..{self.n_nodes}, got {node_id}")

    def _endpoint_namespaces(self) -> list[str]:
        nodes = [f"{self.run_name}-n{i}" for i in range(1, self.n_nodes + 1)]
        return [*nodes, self.client_ns]

    def _endpoints(self) -> list[tuple[str, str, str]]:
        """(namespace, bridge-side port name, address) for every node and the clients."""
        ends = [
            (self.node_ns(i), f"n{i}", self.node_address(i)) for i in range(1, self.n_nodes + 1)
        ]
        ends.append((self.client_ns, CLIENT_PORT_IFACE, self.client_address()))
        return ends

    def _create(self) -> None:
        _ip_batch(f"netns add {ns}" for ns in self.namespaces)
        bridge = [
            "link set lo up",
            f"link add {BRIDGE_IFACE} type bridge",
            f"link set {BRIDGE_IFACE} addrgenmode none",
            f"link set {BRIDGE_IFACE} up",
        ]
        for ns, port, _addr in self._endpoints():
            # Created from the bridge namespace, the peer goes straight into the endpoint one:
            # neither end is ever in the root namespace.
            bridge += [
                f"link add {port} type veth peer name {ENDPOINT_IFACE} netns {ns}",
                f"link set {port} addrgenmode none",
                f"link set {port} master {BRIDGE_IFACE}",
                f"link set {port} up",
            ]
        _ip_batch(bridge, ns=self.bridge_ns)
        for ns, _port, addr in self._endpoints():
            _ip_batch(
                [
                    "link set lo up",
                    f"link set {ENDPOINT_IFACE} addrgenmode none",
                    f"addr add {addr}/{SUBNET_BITS} dev {ENDPOINT_IFACE}",
                    f"link set {ENDPOINT_IFACE} up",
                ],
                ns=ns,
            )
        self._apply_all(force=True)  # an empty ruleset everywhere: proves the filter works now

    def _rules_for(self) -> dict[str, _Rules]:
        faults = self._faults
        drops: dict[str, set[str]] = {ns: set() for ns in self._endpoint_namespaces()}
        group_of = {n: i for i, group in enumerate(faults.partition_groups) for n in group}
        for a, ga in group_of.items():
            for b, gb in group_of.items():
                if ga != gb:
                    drops[self.node_ns(a)].add(self.node_address(b))
        for n in faults.clients_isolated_from:
            drops[self.node_ns(n)].add(self.client_address())
            drops[self.client_ns].add(self.node_address(n))
        rules = {}
        for ns, addrs in drops.items():
            rules[ns] = _Rules(drop_from=tuple(sorted(addrs, key=_address_key)))
        for n, percent in faults.loss_percent.items():
            ns = self.node_ns(n)
            rules[ns] = _Rules(drop_from=rules[ns].drop_from, loss_percent=percent)
        return rules

    def _apply_all(self, force: bool = False) -> None:
        if self._closed or self._filter is None:
            raise RuntimeError("NetnsHosts is not active (use it as a context manager)")
        for ns, rules in self._rules_for().items():
            if force or self._applied.get(ns) != rules:
                self._filter.apply(ns, rules)
                self._applied[ns] = rules

    def _install_signal_handlers(self) -> None:
        """Turn SIGTERM/SIGHUP into SystemExit so the ``with`` block unwinds and cleans up.

        Only in the main thread, and only where the signal still has its default action: a
        harness that handles them itself keeps its handlers (and must then exit the block).
        """
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _raise_system_exit)
                self._handled_signals.append(signum)

    def _restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self._handled_signals:
            if signal.getsignal(signum) is _raise_system_exit:
                signal.signal(signum, signal.SIG_DFL)
        self._handled_signals.clear()


def _raise_system_exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _address_key(addr: str) -> tuple[int, ...]:
    return tuple(int(part) for part in addr.split("."))
