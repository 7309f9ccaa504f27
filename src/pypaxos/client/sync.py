"""``Client``: the blocking twin of ``AsyncClient``, for scripts and tests without asyncio.

It owns a private event loop and runs each call of an ``AsyncClient`` to completion on it, so
both share one implementation of sessions, retries and leader discovery.  A ``threading.Lock``
keeps it to one request at a time even when threads share it (the session rule of
``AsyncClient``).  Do not call it from inside a running event loop: use ``AsyncClient`` there.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Coroutine, Sequence
from ssl import SSLContext
from types import TracebackType
from typing import Any, Self, TypeVar

from pypaxos.client.aio import Address, Arg, AsyncClient
from pypaxos.client.members import MembershipInfo
from pypaxos.client.replies import Reply
from pypaxos.objects import Caller, Stub

T = TypeVar("T")


class Client:
    """Blocking client; arguments as for ``AsyncClient``."""

    def __init__(
        self,
        addresses: Sequence[str | Address],
        *,
        timeout_s: float = 2.0,
        retries: int = 10,
        backoff_s: float = 0.05,
        backoff_max_s: float = 1.0,
        rng: random.Random | None = None,
        client_id: int | None = None,
        follow_leader: bool = True,
        ssl: SSLContext | None = None,
        db: int = 0,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread_lock = threading.Lock()
        self._client = AsyncClient(
            addresses,
            timeout_s=timeout_s,
            retries=retries,
            backoff_s=backoff_s,
            backoff_max_s=backoff_max_s,
            rng=rng,
            client_id=client_id,
            follow_leader=follow_leader,
            ssl=ssl,
            db=db,
            credentials=credentials,
        )

    def _run(self, call: Coroutine[Any, Any, T]) -> T:
        with self._thread_lock:
            if self._loop.is_closed():
                call.close()
                raise RuntimeError("Client is closed")
            return self._loop.run_until_complete(call)

    @property
    def client_id(self) -> int:
        return self._client.client_id

    @property
    def seq(self) -> int:
        return self._client.seq

    @property
    def connected_to(self) -> str | None:
        return self._client.connected_to

    def get(self, key: Arg) -> bytes | None:
        return self._run(self._client.get(key))

    def set(self, key: Arg, value: Arg) -> None:
        self._run(self._client.set(key, value))

    def delete(self, *keys: Arg) -> int:
        return self._run(self._client.delete(*keys))

    def incr(self, key: Arg) -> int:
        return self._run(self._client.incr(key))

    def cas(self, key: Arg, expected: Arg, new: Arg) -> bool:
        return self._run(self._client.cas(key, expected, new))

    def exists(self, *keys: Arg) -> int:
        return self._run(self._client.exists(*keys))

    def mget(self, *keys: Arg) -> list[bytes | None]:
        return self._run(self._client.mget(*keys))

    def ping(self) -> bool:
        return self._run(self._client.ping())

    def info(self) -> dict[str, str]:
        return self._run(self._client.info())

    def write(self, *args: Arg) -> Reply:
        return self._run(self._client.write(*args))

    def execute(self, *args: Arg) -> Reply:
        return self._run(self._client.execute(*args))

    def call(self, method: str, *args: Any, target: str = "", **kwargs: Any) -> Any:
        """``AsyncClient.call``: a command of the served object, exactly once."""
        return self._run(self._client.call(method, *args, target=target, **kwargs))

    def query(self, method: str, *args: Any, target: str = "", **kwargs: Any) -> Any:
        """``AsyncClient.query``: a read on the cluster's read path."""
        return self._run(self._client.query(method, *args, target=target, **kwargs))

    def proxy(self, cls: type, target: str = "") -> Stub:
        """``proxy.method(...)`` for the served object of class ``cls``, in its own session."""
        caller = Caller(cls, self._client._new_client_id(), target)
        submit = self._client.session_submit(caller)
        return Stub(
            caller,
            lambda command, read: self._run(submit(command, read)),
            lambda: time.time_ns() // 1_000_000,
        )

    def submit_call(self, command: bytes, read: bool) -> bytes:
        """``objects.Submit``: call bytes out, result bytes back."""
        return self._run(self._client.submit_call(command, read))

    def member_list(self) -> MembershipInfo:
        return self._run(self._client.member_list())

    def member_add(self, node_id: int, peer: str, client: str) -> int:
        return self._run(self._client.member_add(node_id, peer, client))

    def member_promote(self, node_id: int) -> int:
        return self._run(self._client.member_promote(node_id))

    def member_remove(self, node_id: int) -> int:
        return self._run(self._client.member_remove(node_id))

    def member_replace(self, old_id: int, new_id: int) -> int:
        return self._run(self._client.member_replace(old_id, new_id))

    def close(self) -> None:
        with self._thread_lock:
            if self._loop.is_closed():
                return
            self._loop.run_until_complete(self._client.aclose())
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
