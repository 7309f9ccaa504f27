"""``PUBLISH`` through the log in the KV simulator, and the publications check.

Under ``KVSettings.publish`` a client's operation is now and then (``PUBLISH_SHARE``) a
``PUBLISH`` of a fresh message to one of ``CHANNELS``: a log command, answered with the
receiver count (0: the state machine knows no subscribers).  Every node's state machine
records the publications it emits (``KVStateMachine.record_publications``), from the moment it
is built, so a restarted node's replay is recorded too.  A machine's recording is a list of
segments: a snapshot installed skips the publications it covers, so a segment ends there and
the next one starts at the snapshot's applied count (``publications_floor``).

Checked at the end of the run (``publication_violations``): publications are a function of the
log, so

* the replicas agree: at each log position (a publication's ``revision``) every recording that
  covers it holds the same publications, none missing: each replica's sequence is the common
  one restricted to what it applied itself;
* exactly once: every acknowledged ``PUBLISH`` appears once in the common sequence, and no
  message appears twice or without a client having sent it.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pypaxos.kv import Integer, KVStateMachine
from pypaxos.kv.pubsub_ops import Publish
from pypaxos.sim.kv_client import Operation

CHANNELS = ("p0", "p1")
PUBLISH_SHARE = 0.1  # of a client's operations, when publish is on

Emitted = tuple[bytes, bytes]  # (channel, message)


@dataclass
class Segment:
    """Publications a machine recorded for the log positions in ``(floor, applied]``."""

    floor: int
    applied: int
    by_revision: dict[int, list[Emitted]] = field(default_factory=dict)


class Recording:
    """One machine incarnation's publications, in segments (module docstring)."""

    __slots__ = ("machine", "node", "segments")

    def __init__(self, node: int, machine: KVStateMachine) -> None:
        machine.record_publications()
        self.node = node
        self.machine = machine
        self.segments = [Segment(machine.publications_floor, machine.applied)]

    def take(self) -> None:
        """Collect what the machine emitted since the last call."""
        machine = self.machine
        segment = self.segments[-1]
        if machine.publications_floor != segment.floor:  # a snapshot skipped the ones between
            segment = Segment(machine.publications_floor, machine.publications_floor)
            self.segments.append(segment)
        for publication in machine.take_publications():
            emitted = (publication.channel, publication.message)
            segment.by_revision.setdefault(publication.revision, []).append(emitted)
        segment.applied = machine.applied


def draw_publish(rng: random.Random, fresh: Callable[[], str]) -> Operation | None:
    """Now and then (``PUBLISH_SHARE``) a ``PUBLISH`` of a fresh message to one of
    ``CHANNELS`` (``Client.draw_publish``)."""
    if rng.random() >= PUBLISH_SHARE:
        return None
    channel = CHANNELS[int(rng.random() * len(CHANNELS))]
    message = fresh()
    return Operation(
        "publish",
        channel,
        Publish(channel.encode(), message.encode()),
        [message],  # the arguments, as the Redis model reads a history
        decode=_decode_receivers,
    )


def _decode_receivers(answer: object) -> object:
    if isinstance(answer, Integer):
        return answer.value
    raise ValueError(f"PUBLISH answered {answer!r}")


def publication_violations(
    recordings: Iterable[Recording],
    sent: Iterable[tuple[str, str]],
    acknowledged: Iterable[tuple[str, str]],
) -> list[str]:
    """What breaks the publications' agreement or exactly-once (module docstring); ``sent``
    and ``acknowledged`` are ``(channel, message)`` of the clients' ``PUBLISH`` es."""
    recordings = list(recordings)
    for recording in recordings:
        recording.take()
    common: dict[int, list[Emitted]] = {}
    where: dict[int, int] = {}
    problems: list[str] = []
    for recording in recordings:
        for segment in recording.segments:
            for revision, emitted in segment.by_revision.items():
                known = common.setdefault(revision, emitted)
                where.setdefault(revision, recording.node)
                if known != emitted:
                    problems.append(
                        f"replicas disagree on the publications at log position {revision}: "
                        f"n{where[revision]} {_show(known)}, n{recording.node} {_show(emitted)}"
                    )
    revisions = sorted(common)
    for recording in recordings:
        for segment in recording.segments:
            low = bisect_right(revisions, segment.floor)
            high = bisect_left(revisions, segment.applied + 1)
            for revision in revisions[low:high]:
                if revision not in segment.by_revision:
                    problems.append(
                        f"n{recording.node} applied log position {revision} without its "
                        f"publications {_show(common[revision])}"
                    )
    sequence = [
        (channel.decode(), message.decode()) for r in revisions for channel, message in common[r]
    ]
    counts = Counter(sequence)
    sent_set = set(sent)
    twice = sorted(p for p, n in counts.items() if n > 1)
    if twice:
        problems.append(f"published more than once: {_show_pairs(twice)}")
    unsent = sorted(p for p in counts if p not in sent_set)
    if unsent:
        problems.append(f"published but sent by no client: {_show_pairs(unsent)}")
    missing = sorted(p for p in set(acknowledged) if p not in counts)
    if missing:
        problems.append(f"acknowledged but never published: {_show_pairs(missing)}")
    return problems[:5]


def _show(emitted: Sequence[Emitted]) -> str:
    return "[" + ", ".join(f"{c.decode()}:{m.decode()}" for c, m in emitted) + "]"


def _show_pairs(pairs: Sequence[tuple[str, str]]) -> str:
    shown = ", ".join(f"{channel}:{message}" for channel, message in pairs[:5])
    return shown + (f" (+{len(pairs) - 5})" if len(pairs) > 5 else "")
