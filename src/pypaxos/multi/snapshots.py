"""Snapshots in chunks: how a machine is cut up and rebuilt, and one incoming transfer.

A state machine hands its state out as a sequence of chunks (``snapshot_chunks``), each at most
about ``chunk_bytes_max``, and rebuilds it with a ``SnapshotLoader``: one ``load`` per chunk,
each a bounded piece of work, then ``finish``, which checks the whole and swaps it in at once
(the old state serves until then).  So neither a shell writing a snapshot nor a node installing
a peer's snapshot ever handles the whole state in one step.

``IncomingSnapshot`` is a receiver's side of a transfer (``messages``, ``SnapshotChunk``): the
chunks are taken strictly in order, each loaded as it arrives; the window of chunks outstanding
is kept full by asking for one more per chunk taken, and a transfer that went quiet is asked
again from the first chunk it lacks (resumable after a lost message or a dropped connection).

``chunk_messages`` and ``capture`` are for shells: what to send for a ``SendSnapshot`` effect,
and what a ``TakeSnapshot`` effect takes from the node.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

from pypaxos.multi.effects import SendSnapshot, SnapshotRecord
from pypaxos.multi.messages import SnapshotChunk

if TYPE_CHECKING:
    from pypaxos.multi.node import Node


class SnapshotLoader(Protocol):
    """Rebuilds a machine from its chunks, in order; the machine is untouched until ``finish``.

    ``load`` and ``finish`` raise ``ValueError`` for chunks that do not decode or do not make a
    valid state (a peer's or a disk's bytes are untrusted).
    """

    def load(self, chunk: bytes) -> None: ...

    def finish(self) -> None: ...


class WholeStateSnapshots:
    """Chunks for a machine that only knows ``snapshot()``/``restore()``: one chunk, the whole
    state.  For small test machines; a real store cuts its state into bounded chunks."""

    def snapshot(self) -> bytes:
        raise NotImplementedError

    def restore(self, data: bytes) -> None:
        raise NotImplementedError

    def snapshot_chunks(self, chunk_bytes_max: int) -> Iterator[bytes]:
        yield self.snapshot()

    def snapshot_loader(self) -> SnapshotLoader:
        return _WholeStateLoader(self)


class _WholeStateLoader:
    __slots__ = ("_chunks", "_machine")

    def __init__(self, machine: WholeStateSnapshots) -> None:
        self._machine = machine
        self._chunks: list[bytes] = []

    def load(self, chunk: bytes) -> None:
        if self._chunks:
            raise ValueError("a whole-state snapshot has one chunk")
        self._chunks.append(chunk)

    def finish(self) -> None:
        if not self._chunks:
            raise ValueError("a whole-state snapshot has one chunk, none came")
        self._machine.restore(self._chunks[0])


class IncomingSnapshot:
    """A snapshot being received from ``source`` (module docstring)."""

    __slots__ = (
        "chunk_count",
        "last_progress_tick",
        "loader",
        "next_seq",
        "retries",
        "slot",
        "source",
    )

    def __init__(
        self, source: int, slot: int, chunk_count: int, loader: SnapshotLoader, now: int
    ) -> None:
        self.source = source
        self.slot = slot
        self.chunk_count = chunk_count
        self.loader = loader
        self.next_seq = 0  # every chunk below is loaded
        self.last_progress_tick = now
        self.retries = 0  # silences in a row; the transfer is dropped after a few

    @property
    def complete(self) -> bool:
        return self.next_seq == self.chunk_count


def chunk_messages(
    node_id: int, effect: SendSnapshot, snapshot: SnapshotRecord | None
) -> list[SnapshotChunk]:
    """The messages a shell sends for ``effect`` when its durable snapshot is ``snapshot``."""
    if snapshot is None or snapshot.slot != effect.slot or not snapshot.chunks:
        return [SnapshotChunk(node_id, effect.slot, effect.first_seq, 0)]
    chunks: Sequence[bytes] = snapshot.chunks
    stop = min(len(chunks), effect.first_seq + effect.count)
    count = len(chunks)
    return [
        SnapshotChunk(node_id, effect.slot, seq, count, chunks[seq])
        for seq in range(effect.first_seq, stop)
    ]


def capture(node: Node) -> SnapshotRecord:
    """What ``TakeSnapshot`` asks a shell to save, taken synchronously (the simulators)."""
    replica = node.replica
    chunks = tuple(replica.snapshot_chunks(node.config.snapshot_chunk_bytes_max))
    return SnapshotRecord(node.replica.applied_index, chunks)
