"""The wire form of replicated-object calls and their results, in msgspec's MessagePack.

A call is a ``Call``: who asks (``client_id``, ``seq``: the exactly-once session of
``objects.machine``), which object of the machine (``target``, ``""`` for a machine holding
one object), which method, its arguments, and the proposer's clock (``now_ms``, the only time a
replicated object may look at, see ``objects.api.log_time_ms``).  A result is one of five
tagged structs: the method returned (``Returned``), raised (``Raised``, with the exception's type
name and message), the machine refused the call (``Rejected``, with one of the ``REJECT_*``
reasons), the request is older than the client's last (``Stale``) or its session expired
(``SessionExpired``).

Never pickle: arguments and return values must be values msgspec encodes (``None``, bools,
numbers, strings, bytes, lists, tuples, dicts, sets, msgspec ``Struct`` s, dataclasses, enums,
datetimes...).  ``encode_call`` checks this when the call is made, so a bad argument fails in
the caller with ``NotEncodable``, not in the log.

Sets have no order of their own (a set of strings iterates in an order that changes with the
process's hash seed), so ``canonical`` turns every set met in a value into a list sorted by the
elements' encodings before it is encoded: the same value gives the same bytes on every replica.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from pypaxos.objects.errors import NotEncodable

REJECT_MALFORMED = "malformed"  # the command bytes are no ``Call``
REJECT_UNKNOWN_TARGET = "unknown target"  # no object of that name in the machine
REJECT_UNKNOWN_METHOD = "unknown method"  # the object has no public method of that name
REJECT_NOT_A_COMMAND = "not a command"  # through the log, but the method is a read
REJECT_NOT_A_READ = "not a read"  # through the read path, but the method is a command
REJECT_BAD_ARGUMENTS = "bad arguments"  # the arguments do not fit the method's signature
REJECT_REASONS = (
    REJECT_MALFORMED,
    REJECT_UNKNOWN_TARGET,
    REJECT_UNKNOWN_METHOD,
    REJECT_NOT_A_COMMAND,
    REJECT_NOT_A_READ,
    REJECT_BAD_ARGUMENTS,
)

UNENCODABLE_RESULT = "UnencodableResult"
"""The ``Raised.type_name`` of a method whose return value msgspec cannot encode."""


class Call(msgspec.Struct, frozen=True, array_like=True, tag="call"):
    """One call of a method of a replicated object, as it is proposed to the log."""

    client_id: int
    seq: int
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    target: str = ""
    now_ms: int = 0


class Returned(msgspec.Struct, frozen=True, array_like=True, tag="returned"):
    """The method returned ``value`` (as msgspec decodes it: tuples come back as lists)."""

    value: Any


class Raised(msgspec.Struct, frozen=True, array_like=True, tag="raised"):
    """The method raised; the command still counts as applied (``objects.machine``)."""

    type_name: str
    message: str


class Rejected(msgspec.Struct, frozen=True, array_like=True, tag="rejected"):
    """The machine refused the call before running anything; ``reason`` is a ``REJECT_*``."""

    reason: str
    detail: str = ""


class Stale(msgspec.Struct, frozen=True, array_like=True, tag="stale"):
    """The client already had request ``last_seq`` applied, which is newer: nothing done."""

    last_seq: int


class SessionExpired(msgspec.Struct, frozen=True, array_like=True, tag="expired"):
    """The client's session was forgotten: nothing done; start over with a new client id."""


Result = Returned | Raised | Rejected | Stale | SessionExpired

_ENCODER = msgspec.msgpack.Encoder()
_CALL_DECODER = msgspec.msgpack.Decoder(Call)
_RESULT_DECODER: msgspec.msgpack.Decoder[Result] = msgspec.msgpack.Decoder(Result)


_NESTED = (set, frozenset, list, tuple, dict)


def canonical(value: Any) -> Any:
    """``value`` with every set (at any depth of lists, tuples and dicts) made a sorted list.

    Sorted by each element's encoding, so mixed element types sort too.  Dicts keep their
    order: it is the order of insertion, which every replica shares.  A container holding no
    container is returned as it is (the common case, and the hot path of a snapshot).
    """
    kind = type(value)
    if kind is set or kind is frozenset or isinstance(value, set | frozenset):
        items = [canonical(item) for item in value]
        return [item for _, item in sorted((_ENCODER.encode(item), item) for item in items)]
    if kind is list or kind is tuple or isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, _NESTED):
                return [canonical(item) for item in value]
        return value
    if kind is dict or isinstance(value, dict):
        for item in value.values():
            if isinstance(item, _NESTED):
                return {key: canonical(item) for key, item in value.items()}
        return value
    return value


def encode(value: Any) -> bytes:
    """MessagePack bytes of ``canonical(value)``; ``NotEncodable`` if msgspec cannot."""
    try:
        return _ENCODER.encode(canonical(value))
    except (TypeError, ValueError, OverflowError, RecursionError) as error:
        raise NotEncodable(f"{type(value).__name__} value cannot be encoded: {error}") from None


def encode_call(
    client_id: int,
    seq: int,
    method: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    target: str = "",
    now_ms: int = 0,
) -> bytes:
    """The command bytes of one call; ``NotEncodable`` names the argument msgspec refuses."""
    kwargs = dict(kwargs or {})
    for position, arg in enumerate(args):
        _check_encodable(arg, f"argument {position} of {method}()")
    for name, arg in kwargs.items():
        _check_encodable(arg, f"argument {name!r} of {method}()")
    call = Call(
        client_id,
        seq,
        method,
        args=tuple(canonical(a) for a in args),
        kwargs={k: canonical(v) for k, v in kwargs.items()},
        target=target,
        now_ms=now_ms,
    )
    return _ENCODER.encode(call)


def _check_encodable(value: Any, what: str) -> None:
    try:
        _ENCODER.encode(canonical(value))
    except (TypeError, ValueError, OverflowError, RecursionError) as error:
        raise NotEncodable(
            f"{what} is a {type(value).__name__}, which msgspec cannot encode ({error}); "
            "pass plain values, msgspec Structs or dataclasses"
        ) from None


ARGUMENT_DEPTH_MAX = 32
"""How deeply arguments may nest.  The decoder's own limit is Python's recursion limit minus
however deep the stack already is, which differs between processes; a fixed, lower bound makes
every replica refuse the same calls."""


def decode_call(data: bytes) -> Call:
    """The ``Call`` in ``data``; ``ValueError`` for anything else (untrusted bytes), including
    arguments nested deeper than ``ARGUMENT_DEPTH_MAX``."""
    try:
        call = _CALL_DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError) as error:
        raise ValueError(f"not a call: {error}") from None
    if not _shallow([call.args, call.kwargs], ARGUMENT_DEPTH_MAX):
        raise ValueError(f"not a call: arguments nested deeper than {ARGUMENT_DEPTH_MAX}")
    return call


def _shallow(value: Any, depth_max: int) -> bool:
    """Whether ``value``'s lists and dicts nest at most ``depth_max`` deep (no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | tuple):
            children: Any = item
        elif isinstance(item, dict):
            children = [*item.keys(), *item.values()]
        else:
            continue
        if depth >= depth_max:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def encode_result(result: Result) -> bytes:
    return _ENCODER.encode(result)


def decode_result(data: bytes) -> Result:
    """The result in ``data``; ``ValueError`` if it is none."""
    try:
        result: Result = _RESULT_DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError) as error:
        raise ValueError(f"not a result: {error}") from None
    return result


def returned(value: Any) -> bytes:
    """The encoded ``Returned(value)``, or a ``Raised`` naming ``UNENCODABLE_RESULT``."""
    try:
        return _ENCODER.encode(Returned(canonical(value)))
    except (TypeError, ValueError, OverflowError, RecursionError):
        message = f"a {type(value).__name__} was returned, which msgspec cannot encode"
        return _ENCODER.encode(Raised(UNENCODABLE_RESULT, message))
