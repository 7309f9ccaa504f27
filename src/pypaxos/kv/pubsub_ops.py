"""The publish/subscribe commands that travel through the log (semantics in ``kv.pubsub``)."""

from __future__ import annotations

import msgspec


class Publish(msgspec.Struct, frozen=True, tag="publish", array_like=True):
    """``PUBLISH channel message``: one log command; applying it emits a ``kv.pubsub.Publication``
    on every replica, at the same log position.  Answered ``Integer(0)``: how many subscribers
    receive it is not replicated state (each node counts its own, ``runtime.pubsub``)."""

    channel: bytes
    message: bytes


class NotifyConfig(msgspec.Struct, frozen=True, tag="notifyconfig", array_like=True):
    """``CONFIG SET notify-keyspace-events flags``: the keyspace notifications every replica
    emits from now on (``kv.pubsub.parse_notify_flags``).  ``Ok``, or ``Error`` for a flag
    that is not Redis's."""

    flags: bytes


PubSubCommand = Publish | NotifyConfig
