"""``LocalCluster``: a small simulated cluster in this process, members that look local.

For examples, tutorials and unit tests of a replicated class: ``cluster.member()`` returns an
object whose methods are calls through consensus (``member.incr(3)`` proposes, waits until it
is applied, returns the result; a read takes the read-index path), and ``crash``/``restart``
stop and rebuild a node from its disk.  It runs on the simulator's virtual time, without loss,
so a call completes unless a majority is down (then ``TimeoutError``).  The real thing, a node
inside the application's process, comes with the runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pypaxos.objects import ObjectMachine, unwrap
from pypaxos.objects.stub import Caller
from pypaxos.testing.world import CheckSettings, Factory, Invocation, ObjectWorld, machine_of

MEMBERS_MAX = 16
ELECTION_TICKS_MAX = 2_000


class LocalCluster:
    """``nodes`` simulated nodes running ``factory``'s objects, driven on demand."""

    def __init__(self, factory: Factory, nodes: int = 3, seed: int = 0) -> None:
        settings = CheckSettings(
            nodes=nodes, calls=0, faults=False, drop=0.0, dup=0.0, replay_hash_seeds=()
        )
        self.world = ObjectWorld(factory, None, seed, settings, clients=MEMBERS_MAX)
        self.world.healed = True  # no nemesis: nothing to heal, and crashes are ours
        self.world.begin()
        self._members = 0
        self._probe = machine_of(factory)
        if not self.world.run_until(self._has_leader, ELECTION_TICKS_MAX):
            raise TimeoutError("no leader elected")

    def _has_leader(self) -> bool:
        return self.world.current_leader() is not None

    def member(self, target: str = "") -> LocalMember:
        """A new client session on object ``target`` (``""``: the machine's only object)."""
        if self._members >= MEMBERS_MAX:
            raise RuntimeError(f"at most {MEMBERS_MAX} members per LocalCluster")
        self._members += 1
        cls = type(self._probe.object(target))
        return LocalMember(self, self.world.client_ids[self._members - 1], cls, target)

    def crash(self, node: int) -> None:
        self.world.crash(node)

    def restart(self, node: int) -> None:
        self.world.restart(node)

    def run(self, ticks: int) -> None:
        """Let ``ticks`` of virtual time pass (elections, catch-up, snapshots)."""
        self.world.run_until(lambda: False, self.world.now + ticks)

    def machine(self, node: int) -> ObjectMachine:
        """Node ``node``'s machine: read its objects locally (not linearizable)."""
        return self.world.machine(node)

    def call(self, actor: int, invocation: Invocation, read: bool) -> bytes:
        """Invoke from client ``actor`` and run until answered; the result bytes."""
        world = self.world
        client = world.client(actor)
        answer: list[bytes | None] = []
        client.on_finish = answer.append
        world.apply(actor, client.begin(invocation, read))
        settings = world.settings
        deadline = world.now + 2 * settings.timeout_ticks * settings.attempts_max
        world.run_until(lambda: bool(answer), deadline)
        if world.violations:
            raise AssertionError("; ".join(world.violations))
        if not answer or answer[0] is None:
            raise TimeoutError(f"{invocation.method}: no answer (is a majority up?)")
        return answer[0]


class LocalMember:
    """Calls on one object of a ``LocalCluster``: ``member.method(*args, **kwargs)``."""

    def __init__(self, cluster: LocalCluster, actor: int, cls: type, target: str) -> None:
        self._cluster = cluster
        self._actor = actor
        self._caller = Caller(cls, actor, target)
        self._target = target

    def __getattr__(self, method: str) -> Callable[..., Any]:
        caller = self._caller
        if method.startswith("_") or method not in caller.table.methods:
            raise AttributeError(f"{caller.cls.__name__} has no public method {method!r}")

        def call(*args: Any, **kwargs: Any) -> Any:
            read = caller.check(method, args, kwargs)
            invocation = Invocation(method, tuple(args), dict(kwargs), self._target)
            return unwrap(self._cluster.call(self._actor, invocation, read))

        call.__name__ = method
        return call
