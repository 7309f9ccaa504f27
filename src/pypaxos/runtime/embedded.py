"""A node inside the application's process, replicating the application's own object.

``serve(obj, config=..., node_id=...)`` starts one member of the cluster (``NodeApp``, the same
storage, transport, durability contract, TLS, auth, metrics and health as ``pypaxos node``) on a
background thread with its own event loop, and gives back a ``Replicated``::

    with serve(Counter(), config="cluster.toml", node_id=1) as counter:
        counter.increment()        # proposed, chosen, applied here; returns its result
        counter.get()              # a read of this member's own state (possibly stale)
        counter.linearizable().get()   # a read on the cluster's read path

``serve_async`` does the same on the application's running event loop (``await
counter.increment()``).

A marked (``@command``) method call is encoded by a ``Caller`` (exactly-once session), handed to
the router (proposed here when this member leads, forwarded to the leader otherwise), resent
with the same bytes after a timeout or a leader change until ``timeout_s``, and answered with
the method's result or its ``objects.CallFailed``.  Concurrent calls each take a session of a
pool (a session allows one request at a time).  ``callback=fn`` makes the call fire-and-forget:
it returns at once and ``fn(value, error)`` runs on the node's thread when it is answered.
``timeout_s=`` and ``callback=`` are the proxy's own keywords, never passed to the method.

The object passed in *is* the replicated state: read it only through the ``Replicated`` (its
reads run on the node's thread, between two applied commands) and change it only through
commands.  Starting a node tunes the process's garbage collector as ``pypaxos node`` does
(``app.tune_gc``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from pypaxos.objects import (
    Caller,
    ObjectMachine,
    ObjectsError,
    SessionLost,
    encode_call,
    unwrap,
)
from pypaxos.runtime.app import NodeApp
from pypaxos.runtime.config import ClusterConfig, load_config
from pypaxos.runtime.router import Failure, Router
from pypaxos.storage.file import FsyncMode

DEFAULT_TIMEOUT_S = 10.0
RETRY_PAUSE_S = 0.05
"""The pause before resending a call whose attempt failed (no leader yet, a full queue)."""

Callback = Callable[[Any, BaseException | None], None]


class CallTimedOut(ObjectsError):
    """No answer within the timeout: the call may or may not have been applied (never twice)."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _new_client_id() -> int:
    return secrets.randbits(62) | (1 << 62)


class _Core:
    """The member's side of every call, run on the node's event loop."""

    def __init__(self, app: NodeApp, machine: ObjectMachine) -> None:
        self.app = app
        self.machine = machine
        self._pools: dict[str, list[Caller]] = {}

    @property
    def router(self) -> Router:
        assert self.app.router is not None, "the node is not running"
        return self.app.router

    def cls(self, target: str) -> type:
        return type(self.machine.object(target))

    async def run(
        self, target: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], path: str
    ) -> Any:
        """``path``: ``"log"`` (a command), ``"read"`` (the read path) or ``"local"``."""
        pool = self._pools.setdefault(target, [])
        caller = pool.pop() if pool else Caller(self.cls(target), _new_client_id(), target)
        try:
            read = caller.is_read(method)  # the arguments are checked when encoded
            if path == "log" and read:
                path = "local"  # an unmarked method is a read wherever it is called
            if path != "log" and not read:
                path = "log"
            if path == "local":
                caller.check(method, args, kwargs)
                command = encode_call(caller.client_id, 0, method, args, kwargs, target=target)
                return unwrap(self.machine.query(command))
            return await self._submit(caller, method, args, kwargs, read=path == "read")
        finally:
            pool.append(caller)

    async def _submit(
        self,
        caller: Caller,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        read: bool,
    ) -> Any:
        command = caller.encode(method, args, kwargs, now_ms=_now_ms())
        renewed = False
        while True:
            result = await self._until_answered(command, read)
            try:
                return unwrap(result)
            except SessionLost:
                if renewed:
                    raise
                # Not applied (the session idled out): a new session runs it once.
                caller.renew(_new_client_id())
                command = caller.encode(method, args, kwargs, now_ms=_now_ms())
                renewed = True

    async def _until_answered(self, command: bytes, read: bool) -> bytes:
        loop = asyncio.get_running_loop()
        while True:
            answer: asyncio.Future[bytes | Failure] = loop.create_future()

            def done(
                outcome: bytes | Failure, answer: asyncio.Future[bytes | Failure] = answer
            ) -> None:
                if not answer.done():
                    answer.set_result(outcome)

            self.router.submit_raw(command, done, read=read)
            outcome = await answer
            if not isinstance(outcome, Failure):
                return outcome
            if self.app.stopped.is_set() or self.app.failed is not None:
                raise CallTimedOut("the node stopped before the call was answered")
            await asyncio.sleep(RETRY_PAUSE_S)  # resend the same bytes: exactly once


class _Member:
    """Calls on one object of the machine: the proxy's methods."""

    def __init__(
        self,
        run: Callable[[str, tuple[Any, ...], dict[str, Any], str, float, Callback | None], Any],
        cls: type | None,
        path: str,
    ) -> None:
        self._run = run
        self._cls = cls
        self._path = path

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if self._cls is None:
            raise AttributeError(f"a Group has no methods: call .member(name).{method}(...)")
        if method.startswith("_") or not hasattr(self._cls, method):
            raise AttributeError(f"{self._cls.__name__} has no public method {method!r}")
        path = self._path

        def call(
            *args: Any,
            timeout_s: float = DEFAULT_TIMEOUT_S,
            callback: Callback | None = None,
            **kwargs: Any,
        ) -> Any:
            return self._run(method, args, kwargs, path, timeout_s, callback)

        call.__name__ = method
        return call


class Replicated(_Member):
    """The served object, replicated: see the module docstring.  For a ``Group``,
    ``replicated.member("name")`` calls one of its objects."""

    def __init__(self, runner: _Runner, target: str = "", path: str = "log") -> None:
        self._runner = runner
        self._target = target
        core = runner.core
        cls = core.cls(target) if target in core.machine.targets() else None
        super().__init__(self._call, cls, path)

    def _call(
        self,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        path: str,
        timeout_s: float,
        callback: Callback | None,
    ) -> Any:
        return self._runner.call(self._target, method, args, kwargs, path, timeout_s, callback)

    def member(self, target: str) -> Replicated:
        """The object called ``target`` of a ``Group``."""
        if target not in self._runner.core.machine.targets():
            raise KeyError(f"no object {target!r} in this machine")
        return Replicated(self._runner, target, self._path)

    def linearizable(self) -> Replicated:
        """The same object whose reads go through the cluster's read path (read-index, lease
        or follower reads, per the config): they see every call acknowledged before them."""
        return Replicated(self._runner, self._target, "read")

    @property
    def app(self) -> NodeApp:
        """The member's node (status, ``info()``, ``health()``)."""
        return self._runner.core.app


class _Runner:
    """Runs calls on the node's loop: from another thread (``serve``) or on it
    (``serve_async``)."""

    def __init__(
        self, core: _Core, loop: asyncio.AbstractEventLoop, node_thread: int | None = None
    ) -> None:
        self.core = core
        self.loop = loop
        self.node_thread = node_thread  # the node's thread (``serve``), None on the caller's loop
        self.threaded = node_thread is not None

    def call(
        self,
        target: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        path: str,
        timeout_s: float,
        callback: Callback | None,
    ) -> Any:
        coroutine = self._bounded(target, method, args, kwargs, path, timeout_s)
        if not self.threaded:
            if callback is None:
                return coroutine
            task = self.loop.create_task(coroutine)
            task.add_done_callback(lambda done: _report(done, callback))
            return None
        if callback is None and threading.get_ident() == self.node_thread:
            coroutine.close()
            raise RuntimeError(
                f"{method}: a blocking call on the node's own thread (a callback) would wait "
                "for itself forever; pass callback= instead"
            )
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        if callback is not None:
            future.add_done_callback(lambda done: _report(done, callback))
            return None
        return future.result()

    async def _bounded(
        self,
        target: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        path: str,
        timeout_s: float,
    ) -> Any:
        try:
            async with asyncio.timeout(timeout_s):  # no task per call, unlike wait_for
                return await self.core.run(target, method, args, kwargs, path)
        except TimeoutError:
            raise CallTimedOut(
                f"{method}: no answer in {timeout_s} s; it may or may not have been applied"
            ) from None


def _report(done: asyncio.Future[Any] | Future[Any], callback: Callback) -> None:
    if done.cancelled():
        callback(None, CallTimedOut("cancelled"))
    elif done.exception() is not None:
        callback(None, done.exception())
    else:
        callback(done.result(), None)


def _machine(obj: object) -> ObjectMachine:
    return obj if isinstance(obj, ObjectMachine) else ObjectMachine(obj)


def _config(config: ClusterConfig | str | Path) -> ClusterConfig:
    return config if isinstance(config, ClusterConfig) else load_config(config)


@contextlib.asynccontextmanager
async def serve_async(
    obj: object,
    *,
    config: ClusterConfig | str | Path,
    node_id: int,
    fsync: FsyncMode | None = None,
) -> AsyncIterator[Replicated]:
    """``serve`` on the running event loop: the proxy's calls are coroutines."""
    machine = _machine(obj)
    app = NodeApp(_config(config), node_id, fsync=fsync, machine_factory=lambda: machine)
    await app.start()
    try:
        yield Replicated(_Runner(_Core(app, machine), asyncio.get_running_loop()))
    finally:
        await app.stop()


@contextlib.contextmanager
def serve(
    obj: object,
    *,
    config: ClusterConfig | str | Path,
    node_id: int,
    fsync: FsyncMode | None = None,
) -> Iterator[Replicated]:
    """Run member ``node_id`` of ``config`` (a ``cluster.toml`` or its model) replicating
    ``obj`` (an object, an ``ObjectMachine`` or a ``Group``) on a background thread until the
    block ends; start-up errors (``ConfigError``, ``CorruptStorageError``...) raise here."""
    machine = _machine(obj)
    app = NodeApp(_config(config), node_id, fsync=fsync, machine_factory=lambda: machine)
    loop = asyncio.new_event_loop()
    started: Future[asyncio.Event] = Future()

    def main() -> None:
        asyncio.set_event_loop(loop)

        async def run() -> None:
            finish = asyncio.Event()  # set by the block's end: the loop outlives a failed node
            try:
                await app.start()
            except BaseException as error:
                started.set_exception(error)
                return
            started.set_result(finish)
            await finish.wait()

        try:
            loop.run_until_complete(run())
        finally:
            loop.close()

    thread = threading.Thread(target=main, name=f"pypaxos-node-{node_id}", daemon=True)
    thread.start()
    try:
        finish = started.result()
    except BaseException:
        thread.join()
        raise
    try:
        yield Replicated(_Runner(_Core(app, machine), loop, thread.ident))
    finally:
        asyncio.run_coroutine_threadsafe(app.stop(), loop).result()
        loop.call_soon_threadsafe(finish.set)
        thread.join()
