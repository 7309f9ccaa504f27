"""What goes wrong with replicated objects, split by who is to blame.

``DefinitionError``: the class itself cannot be replicated as written (found when a machine is
built around it, or at a snapshot).  ``NotEncodable``: a caller passed an argument msgspec cannot
encode.  ``CallFailed`` and its subclasses: what a caller gets back from a call that did not
return (the method raised, the machine refused it, the session is gone).
"""

from __future__ import annotations


class ObjectsError(Exception):
    """Every error of ``pypaxos.objects``."""


class DefinitionError(ObjectsError):
    """The class breaks a rule of replicated objects (undeclared state, a bad hook...)."""


class NotEncodable(ObjectsError, TypeError):
    """A value msgspec cannot encode was passed as an argument or returned."""


class NotACommand(ObjectsError):
    """A call named a method that is not a command of the class (or no method at all)."""


class CallFailed(ObjectsError):
    """A call applied (or refused) by the machine did not return a value."""


class CommandRaised(CallFailed):
    """The method raised ``type_name(message)`` on every replica; the command was applied."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class CallRejected(CallFailed):
    """The machine refused the call (``reason`` is one of ``codec.REJECT_REASONS``)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class StaleCall(CallFailed):
    """A newer request of the same client was applied already; this one was not."""


class SessionLost(CallFailed):
    """The client's session expired before this request; it was not applied."""
