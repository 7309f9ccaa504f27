"""The caller's side: ``Caller`` numbers and checks calls, ``Stub`` makes them look local.

A ``Caller`` is one client session: it checks a call against the class (a command of it, the
arguments fit the signature, every argument encodable) before anything is sent, numbers it
with the next ``seq``, and turns the result bytes back into the value or the error
(``unwrap``).  A ``Stub`` wraps a class and a ``submit`` function (command bytes in, result bytes
out: whatever carries them to the log and waits for the answer) so that ``stub.incr(3)`` reads
like a local call (``AsyncStub``: ``await stub.incr(3)``).  The runtime supplies ``submit``;
``pypaxos.testing.LocalCluster`` supplies one that runs a simulated cluster in-process.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from pypaxos.objects.api import MethodTable
from pypaxos.objects.codec import (
    Raised,
    Rejected,
    Returned,
    SessionExpired,
    Stale,
    decode_result,
    encode_call,
)
from pypaxos.objects.errors import (
    CallRejected,
    CommandRaised,
    NotACommand,
    SessionLost,
    StaleCall,
)
from pypaxos.objects.machine import bind_arguments

Submit = Callable[[bytes, bool], bytes]
"""Carries command bytes to the cluster and returns the result bytes; the flag is ``True`` for
a read (the read path, ``StateMachine.query``), ``False`` for a command (the log)."""


class Caller:
    """One client session of calls on objects of ``cls`` (a ``target`` of a machine)."""

    __slots__ = ("client_id", "cls", "seq", "table", "target")

    def __init__(self, cls: type, client_id: int, target: str = "") -> None:
        if client_id < 1:
            raise ValueError("client ids start at 1")
        self.cls = cls
        self.table = MethodTable(cls)
        self.client_id = client_id
        self.target = target
        self.seq = 0

    def is_read(self, method: str) -> bool:
        spec = self.table.methods.get(method)
        if spec is None:
            raise NotACommand(f"{self.cls.__name__} has no public method {method!r}")
        return not spec.is_command

    def check(
        self, method: str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None
    ) -> bool:
        """Whether the call is a read; ``NotACommand`` for no such method, ``TypeError`` for
        arguments that do not fit, ``NotEncodable`` for one msgspec cannot encode."""
        read = self.is_read(method)
        try:
            bind_arguments(self.table.methods[method], tuple(args), dict(kwargs or {}))
        except ValueError as error:
            raise TypeError(str(error)) from None
        encode_call(self.client_id, 0, method, args, kwargs)  # raises NotEncodable
        return read

    def encode(
        self,
        method: str,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        now_ms: int = 0,
    ) -> bytes:
        """The checked command bytes of the next call (a command takes the next ``seq``, only
        once it encoded: a call refused here uses up no ``seq``)."""
        read = self.is_read(method)
        kwargs = dict(kwargs or {})
        try:
            bind_arguments(self.table.methods[method], tuple(args), kwargs)
        except ValueError as error:
            raise TypeError(str(error)) from None
        seq = 0 if read else self.seq + 1
        data = encode_call(
            self.client_id, seq, method, args, kwargs, target=self.target, now_ms=now_ms
        )  # raises NotEncodable
        if not read:
            self.seq = seq
        return data

    def renew(self, client_id: int) -> None:
        """Start a new session (after ``SessionLost``)."""
        self.client_id = client_id
        self.seq = 0


def unwrap(data: bytes) -> Any:
    """The value a call returned, or the matching ``CallFailed`` raised."""
    result = decode_result(data)
    match result:
        case Returned(value):
            return value
        case Raised(type_name, message):
            raise CommandRaised(type_name, message)
        case Rejected(reason, detail):
            raise CallRejected(reason, detail)
        case Stale(last_seq):
            raise StaleCall(f"a newer request (seq {last_seq}) was applied already")
        case SessionExpired():
            raise SessionLost("the session expired; the call was not applied")


class Stub:
    """``stub.method(*args)`` encodes the call, ``submit`` s it, and unwraps the result."""

    def __init__(self, caller: Caller, submit: Submit, clock_ms: Callable[[], int]) -> None:
        self._caller = caller
        self._submit = submit
        self._clock_ms = clock_ms

    def __getattr__(self, method: str) -> Callable[..., Any]:
        caller = self._caller
        if method.startswith("_") or method not in caller.table.methods:
            raise AttributeError(f"{caller.cls.__name__} has no public method {method!r}")

        def call(*args: Any, **kwargs: Any) -> Any:
            read = caller.is_read(method)
            command = caller.encode(method, args, kwargs, now_ms=self._clock_ms())
            return unwrap(self._submit(command, read))

        call.__name__ = method
        return call


AsyncSubmit = Callable[[bytes, bool], Awaitable[bytes]]
"""``Submit`` for an event loop: a coroutine that returns the result bytes."""


class AsyncStub:
    """``await stub.method(*args)``: ``Stub`` for callers on an event loop."""

    def __init__(self, caller: Caller, submit: AsyncSubmit, clock_ms: Callable[[], int]) -> None:
        self._caller = caller
        self._submit = submit
        self._clock_ms = clock_ms

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        caller = self._caller
        if method.startswith("_") or method not in caller.table.methods:
            raise AttributeError(f"{caller.cls.__name__} has no public method {method!r}")

        async def call(*args: Any, **kwargs: Any) -> Any:
            read = caller.is_read(method)
            command = caller.encode(method, args, kwargs, now_ms=self._clock_ms())
            return unwrap(await self._submit(command, read))

        call.__name__ = method
        return call
