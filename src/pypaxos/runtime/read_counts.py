"""The read paths a node counts, and one reading of the counts.

Apart from ``runtime.metrics`` so that ``INFO`` can name them in a node started without a
metrics address, which never loads the Prometheus client.
"""

from __future__ import annotations

from collections.abc import Mapping

READ_PATHS = ("read-index", "lease", "follower", "forwarded", "stale", "log")
"""The ways a read command is served, as ``INFO`` and ``reads_total`` name them."""


class ReadCounts:
    """What a read-count source returns: reads per path (``READ_PATHS``) and read rounds."""

    __slots__ = ("by_path", "rounds")

    def __init__(self, by_path: Mapping[str, int], rounds: int) -> None:
        self.by_path = by_path
        self.rounds = rounds
