"""How a class says what is replicated: the ``command`` decorator and the log's clock.

A method marked ``@command`` changes state: calling it on a member proposes it, and every
replica runs it at the same position of the log.  Unmarked public methods only read.  The
class's state is its declared fields (class annotations, as for a dataclass) unless it defines
the two hooks ``snapshot_state()`` / ``restore_state(state)`` (``objects.state``).

Determinism is the user's side of the contract (Schneider 1990): a command must compute its
result and its new state from the object's state and its arguments alone.  No clock (use
``log_time_ms()``, the proposer's time carried in the log), no randomness, no iteration over a
set (a set of strings changes order with the process's hash seed), no ``id()`` or ``hash()`` of
strings, no I/O.  ``pypaxos.testing.lint`` flags these; ``pypaxos.testing.check`` runs the class
under faults and catches what slipped through.

The machine dispatches through a table of the class's methods built once (``MethodTable``),
never by looking up an arbitrary name on the object.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from pypaxos.objects.errors import DefinitionError

F = TypeVar("F", bound=Callable[..., Any])

COMMAND_MARK = "__pypaxos_command__"
SNAPSHOT_HOOK = "snapshot_state"
RESTORE_HOOK = "restore_state"
HOOKS = (SNAPSHOT_HOOK, RESTORE_HOOK)

_LOG_TIME_MS: ContextVar[int | None] = ContextVar("pypaxos_log_time_ms", default=None)


def command(method: F) -> F:
    """Mark ``method`` as a command: it is proposed to the log and run on every replica."""
    if not callable(method):
        raise DefinitionError("@command marks a method")
    if inspect.iscoroutinefunction(method) or inspect.isgeneratorfunction(method):
        raise DefinitionError(f"{method.__name__}: a command runs start to end, it cannot wait")
    if method.__name__.startswith("_") or method.__name__ in HOOKS:
        raise DefinitionError(f"{method.__name__}: a command must be a public method")
    setattr(method, COMMAND_MARK, True)
    return method


def is_command(method: object) -> bool:
    return getattr(method, COMMAND_MARK, False) is True


def log_time_ms() -> int:
    """The time of the call being applied, in Unix milliseconds, as the log carries it.

    The largest ``now_ms`` stamped on any call run so far (so it never goes back, and every
    replica sees the same value at the same position of the log).  Only valid while a machine
    runs a method: anywhere else it raises ``RuntimeError``.
    """
    now_ms = _LOG_TIME_MS.get()
    if now_ms is None:
        raise RuntimeError("log_time_ms() is only known while a replicated call is applied")
    return now_ms


def run_at(now_ms: int, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with ``log_time_ms()`` answering ``now_ms`` (what the machine does)."""
    token = _LOG_TIME_MS.set(now_ms)
    try:
        return fn()
    finally:
        _LOG_TIME_MS.reset(token)


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One public method: whether it is a command, its signature and argument types."""

    name: str
    function: Callable[..., Any]
    is_command: bool
    signature: inspect.Signature
    hints: dict[str, Any]
    # For the common signature, only plain parameters after ``self``: their names, and which
    # have no default (the fast path of ``machine.bind_arguments``); ``None`` otherwise.
    plain: tuple[tuple[str, ...], frozenset[str]] | None = None


class MethodTable:
    """The public methods of a class, built once: what calls may name."""

    __slots__ = ("cls", "methods")

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.methods: dict[str, MethodSpec] = {}
        for name in sorted(dir(cls)):
            if name.startswith("_") or name in HOOKS:
                continue
            function = inspect.getattr_static(cls, name)
            if isinstance(function, staticmethod | classmethod | property):
                if is_command(getattr(function, "__func__", None)):
                    raise DefinitionError(f"{cls.__name__}.{name}: a command must be a method")
                continue
            if not inspect.isfunction(function):
                continue
            overridden = [
                base.__name__
                for base in cls.__mro__[1:]
                if is_command(base.__dict__.get(name)) and not is_command(function)
            ]
            if overridden:
                raise DefinitionError(
                    f"{cls.__name__}.{name} overrides the command of {overridden[0]} without "
                    "@command: mark it (or it would become a read)"
                )
            hints = _hints(function)
            for parameter, hint in hints.items():
                require_supported(hint, f"{cls.__name__}.{name}, parameter {parameter!r}")
            signature = inspect.signature(function)
            self.methods[name] = MethodSpec(
                name, function, is_command(function), signature, hints, _plain(signature)
            )

    def commands(self) -> list[str]:
        return [name for name, spec in self.methods.items() if spec.is_command]

    def reads(self) -> list[str]:
        return [name for name, spec in self.methods.items() if not spec.is_command]


def _plain(signature: inspect.Signature) -> tuple[tuple[str, ...], frozenset[str]] | None:
    parameters = list(signature.parameters.values())[1:]
    if not all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in parameters):
        return None
    required = frozenset(p.name for p in parameters if p.default is inspect.Parameter.empty)
    return tuple(p.name for p in parameters), required


def require_supported(hint: Any, where: str) -> None:
    """``DefinitionError`` unless msgspec can decode into ``hint`` (checked once, up front,
    so that a call never meets an unsupported annotation while it is applied)."""
    try:
        msgspec.msgpack.Decoder(hint)
    except TypeError as error:
        raise DefinitionError(f"{where}: msgspec cannot decode into {hint!r}: {error}") from None


def _hints(function: Callable[..., Any]) -> dict[str, Any]:
    """The annotated types of ``function``'s parameters (none if they cannot be resolved)."""
    try:
        hints = typing.get_type_hints(function)
    except (NameError, TypeError):
        return {}
    hints.pop("return", None)
    return hints
