"""The Transport protocol: how the runtime hands messages to the network and gets them back.

The runtime owns the event loop and the actor; a transport only moves messages.  It is
deliberately small so that the real TCP transport and the simulator's network are
interchangeable (STYLE.md: network, disk and clock are swappable parts):

- ``send(to, msg)`` is synchronous and never blocks: it queues the message and returns.
  Delivery is best effort, as Paxos assumes (Paxos Made Simple, section 2.1: "messages can
  take arbitrarily long to be delivered, can be duplicated, and can be lost").  A message to
  an unreachable peer waits in a bounded queue and may be dropped; nothing is retried beyond
  the reconnection itself, since the protocol's own timeouts resend what matters.
- Received messages are handed to a ``Deliver`` callback given at construction, called on the
  event loop's thread, one message at a time, in arrival order per connection.  The callback
  must not block; a runtime that wants a mailbox passes ``queue.put_nowait``.  A callback
  rather than a queue owned by the transport keeps the choice of bound and of overflow policy
  with the runtime, and lets the simulator deliver synchronously.
- ``start()`` and ``close()`` bracket the transport's life; ``close()`` stops every task and
  socket it owns, and a closed transport sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

M = TypeVar("M")
M_contra = TypeVar("M_contra", contravariant=True)

Deliver = Callable[[M], None]
"""Called with each received message, on the event loop thread; must not block."""


class UnknownPeer(KeyError):
    """Local misuse: ``send`` to a node id the transport has no address for."""


class Transport(Protocol[M_contra]):
    """What the runtime needs from a network: send, start, close; delivery by callback."""

    @property
    def node_id(self) -> int:
        """The id of the node this transport speaks for."""
        ...

    async def start(self) -> None:
        """Begin listening; after this, peers can connect and messages are delivered."""
        ...

    def send(self, to: int, msg: M_contra) -> None:
        """Queue ``msg`` for node ``to``; never blocks, may drop.  Raises ``UnknownPeer``."""
        ...

    async def close(self) -> None:
        """Stop every task and connection; idempotent."""
        ...
