"""A replicated object's state as bytes, and back: declared fields, or the user's hooks.

By default the state is the object's *declared fields*: every name annotated on the class or a
base class (as a dataclass declares its fields), ``ClassVar`` s excepted.  They are encoded as a
map from name to value, in declaration order, with ``codec.canonical`` (sets sorted), and
restored by converting each value back to its annotated type with ``msgspec.convert`` (a
``set[str]`` field comes back a set, a ``tuple[int, ...]`` a tuple, a Struct a Struct).  An
attribute the class does not declare would be silently lost at the first snapshot, so it is a
``DefinitionError`` instead, checked when the machine is built and at every snapshot.

A class that keeps its state otherwise defines both hooks: ``snapshot_state()`` returns any
msgspec-encodable value, and ``restore_state(state)`` gets it back as msgspec decodes it
(converted to the parameter's annotated type, when it has one).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Any, ClassVar

import msgspec

from pypaxos.objects.api import HOOKS, RESTORE_HOOK, SNAPSHOT_HOOK, require_supported
from pypaxos.objects.codec import canonical
from pypaxos.objects.errors import DefinitionError, NotEncodable

_ENCODER = msgspec.msgpack.Encoder()


class StateCodec:
    """How the state of instances of one class is taken and put back."""

    __slots__ = ("cls", "fields", "hooked", "restore_hint")

    def __init__(self, cls: type) -> None:
        self.cls = cls
        hooks = [callable(getattr(cls, name, None)) for name in HOOKS]
        if any(hooks) and not all(hooks):
            raise DefinitionError(
                f"{cls.__name__} defines only one of {SNAPSHOT_HOOK}() and {RESTORE_HOOK}()"
            )
        self.hooked = all(hooks)
        self.fields = {} if self.hooked else declared_fields(cls)
        for name, hint in self.fields.items():
            require_supported(hint, f"{cls.__name__}, field {name!r}")
        self.restore_hint: Any = Any
        if self.hooked:
            parameters = list(inspect.signature(getattr(cls, RESTORE_HOOK)).parameters)
            hints = _safe_hints(getattr(cls, RESTORE_HOOK))
            if len(parameters) >= 2:
                self.restore_hint = hints.get(parameters[1], Any)
                require_supported(self.restore_hint, f"{cls.__name__}.{RESTORE_HOOK}")

    def check(self, obj: object) -> None:
        """``DefinitionError`` if ``obj`` holds state its snapshot would lose."""
        if self.hooked:
            return
        undeclared = sorted(set(getattr(obj, "__dict__", {})) - set(self.fields))
        if undeclared:
            raise DefinitionError(
                f"{self.cls.__name__} has undeclared attributes {', '.join(undeclared)}: "
                "annotate them on the class (they are its replicated state), or define "
                f"{SNAPSHOT_HOOK}() and {RESTORE_HOOK}()"
            )
        missing = [name for name in self.fields if not hasattr(obj, name)]
        if missing:
            raise DefinitionError(
                f"{self.cls.__name__} declares {', '.join(missing)} but the object has no "
                "value for them: set every declared field in __init__"
            )

    def snapshot(self, obj: object) -> bytes:
        if self.hooked:
            state = getattr(obj, SNAPSHOT_HOOK)()
        else:
            self.check(obj)
            state = {name: getattr(obj, name) for name in self.fields}
        try:
            return _ENCODER.encode(canonical(state))
        except (TypeError, ValueError, OverflowError, RecursionError) as error:
            raise NotEncodable(
                f"the state of {self.cls.__name__} cannot be encoded: {error}"
            ) from None

    def restore(self, obj: object, data: bytes) -> None:
        """Put the state in ``data`` into ``obj``; ``ValueError`` if it does not fit."""
        self.prepare(obj, data)()

    def prepare(self, obj: object, data: bytes) -> Callable[[], None]:
        """Decode and check ``data`` now (``ValueError`` if it does not fit); the returned
        function puts it into ``obj``.  Split so that a machine of several objects changes
        none of them unless every one's state is valid."""
        try:
            raw = msgspec.msgpack.decode(data)
            if self.hooked:
                state = msgspec.convert(raw, self.restore_hint)
                return lambda: getattr(obj, RESTORE_HOOK)(state)
            if not isinstance(raw, dict) or set(raw) != set(self.fields):
                raise ValueError(f"the snapshot does not hold the fields of {self.cls.__name__}")
            values = {name: msgspec.convert(raw[name], hint) for name, hint in self.fields.items()}
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as error:
            raise ValueError(f"malformed state of {self.cls.__name__}: {error}") from None

        def put() -> None:
            for name, value in values.items():
                setattr(obj, name, value)

        return put


def declared_fields(cls: type) -> dict[str, Any]:
    """The annotated instance fields of ``cls`` and its bases, bases first."""
    hints = _safe_hints(cls, include_extras=False)
    if not hints and any(getattr(c, "__annotations__", None) for c in cls.__mro__):
        raise DefinitionError(f"{cls.__name__}: its field annotations cannot be resolved")
    return {
        name: hint
        for name, hint in hints.items()
        if typing.get_origin(hint) is not ClassVar and hint is not ClassVar
    }


def _safe_hints(obj: Any, include_extras: bool = False) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj, include_extras=include_extras)
    except (NameError, TypeError):
        return {}
