"""The replicated log's values: client entries, batches and per-slot votes.

Multi-Paxos runs one instance of Paxos per *slot* of a log (Paxos Made Simple, section 3).  Here
a slot's value is a ``Batch``: a tuple of client ``Entry`` values, so one consensus round carries
many commands (throughput under load).  The empty batch ``NOOP`` is what a new leader proposes
for a hole it found while taking over: it lets later slots be applied and changes no state.

An entry names the node that took the client's proposal (``origin``) and that node's
``request_id``: only the origin answers the client, once the slot holding the entry is applied.
"""

from __future__ import annotations

import msgspec

from pypaxos.core.types import Ballot


class Entry(msgspec.Struct, frozen=True, array_like=True):
    """One client command as it sits in a slot."""

    origin: int
    request_id: int
    command: bytes


Batch = tuple[Entry, ...]
"""A slot's value: the commands applied, in order, when the slot is applied."""

NOOP: Batch = ()
"""The no-op that fills holes (van Renesse & Altinbuken, "Paxos Made Moderately Complex")."""


class Vote(msgspec.Struct, frozen=True, array_like=True):
    """An acceptor's accepted proposal for one slot, as reported in a ``Promise``."""

    slot: int
    ballot: Ballot
    value: Batch


def batch_size_bytes(batch: Batch) -> int:
    return sum(len(entry.command) for entry in batch)
