"""The replicated script cache: sha1 (hex) -> script body, bounded, least recently used out.

The script cache (``ScriptCache``) is replicated: ``EVAL`` and ``SCRIPT LOAD`` add to it
through the log, ``EVALSHA`` is resolved in the state machine, so every node knows every script
and the cache survives a leader change; it is bounded and in the snapshot.  A body that does
not compile is not added (by ``EVAL`` inside ``MULTI`` or not), as in Redis (``kv.programs``).
"""

from __future__ import annotations

from collections import OrderedDict
from hashlib import sha1

SCRIPTS_MAX = 1_000
SCRIPT_CACHE_BYTES_MAX = 16 * 1024 * 1024

NOSCRIPT = b"NOSCRIPT No matching script. Please use EVAL."


def sha1_hex(body: bytes) -> bytes:
    return sha1(body).hexdigest().encode()


class ScriptCache:
    """sha1 (hex) -> script body, least recently used first, bounded by ``SCRIPTS_MAX`` and
    ``SCRIPT_CACHE_BYTES_MAX`` (past them the least recently used go: their ``EVALSHA`` then
    answers ``NOSCRIPT``, and clients such as redis-py load them again)."""

    __slots__ = ("bodies", "total_bytes")

    def __init__(self) -> None:
        self.bodies: OrderedDict[bytes, bytes] = OrderedDict()
        self.total_bytes = 0

    def add(self, body: bytes) -> bytes:
        sha = sha1_hex(body)
        if sha in self.bodies:
            self.bodies.move_to_end(sha)
            return sha
        self.bodies[sha] = body
        self.total_bytes += len(body)
        while len(self.bodies) > SCRIPTS_MAX or (
            self.total_bytes > SCRIPT_CACHE_BYTES_MAX and len(self.bodies) > 1
        ):
            _, dropped = self.bodies.popitem(last=False)
            self.total_bytes -= len(dropped)
        return sha

    def get(self, sha: bytes) -> bytes | None:
        body = self.bodies.get(sha)
        if body is not None:
            self.bodies.move_to_end(sha)
        return body

    def exists(self, sha: bytes) -> bool:
        return sha.lower() in self.bodies

    def flush(self) -> None:
        self.bodies.clear()
        self.total_bytes = 0

    def state(self) -> tuple[bytes, ...]:
        return tuple(self.bodies.values())

    @classmethod
    def from_state(cls, bodies: tuple[bytes, ...]) -> ScriptCache:
        cache = cls()
        for body in bodies:
            cache.add(body)
        if len(cache.bodies) != len(bodies):
            raise ValueError("malformed snapshot: script cache over its bounds or repeated")
        return cache
