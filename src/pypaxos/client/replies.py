"""RESP2 replies, parsed without I/O: the client's half of ``pypaxos.transport.resp``.

The server side (``runtime.resp``) parses *commands*, which are always arrays of bulk strings.
A client reads *replies*, which come in all five RESP2 kinds; ``ReplyParser.feed(data)`` returns
every complete reply in ``data`` and keeps a partial one for the next call, so the socket code
around it stays a read loop.  Kinds map to Python values:

====================  ===========================
``+OK``               ``Simple("OK")``
``-ERR message``      ``ErrorReply("ERR", "message")``
``:42``               ``42``
``$3 abc`` / ``$-1``  ``b"abc"`` / ``None``
``*2 ...`` / ``*-1``  ``[...]`` / ``None``
====================  ===========================

Lengths are bounded before anything is buffered (as in ``runtime.resp``), and a reply that is
not RESP raises ``ReplyProtocolError``: the stream cannot be resynchronised, so the caller drops
the connection.
"""

from __future__ import annotations

from dataclasses import dataclass

CRLF = b"\r\n"
HEADER_BYTES_MAX = 64 * 1024  # a simple string, error or length line
NESTING_MAX = 32  # arrays inside arrays


class ReplyProtocolError(Exception):
    """The server sent bytes that are not a RESP2 reply (or exceed a limit)."""


class Simple(str):
    """A simple-string reply (``+OK``), told apart from a bulk string, which is ``bytes``."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An error reply: ``kind`` is its first word (``ERR``, ``TRYAGAIN``, ``BUSY``...)."""

    kind: str
    message: str

    @classmethod
    def parse(cls, line: str) -> ErrorReply:
        kind, _, message = line.partition(" ")
        return cls(kind, message)

    def __str__(self) -> str:
        return f"{self.kind} {self.message}".strip()


Reply = Simple | ErrorReply | int | bytes | list["Reply"] | None


class _Incomplete(Exception):
    """Internal: the buffer ends inside a reply."""


class ReplyParser:
    __slots__ = ("_buffer", "array_items_max", "bulk_bytes_max")

    def __init__(
        self, bulk_bytes_max: int = 512 * 1024 * 1024, array_items_max: int = 1024 * 1024
    ) -> None:
        self._buffer = bytearray()
        self.bulk_bytes_max = bulk_bytes_max
        self.array_items_max = array_items_max

    def feed(self, data: bytes) -> list[Reply]:
        """Add received bytes; return the replies now complete, oldest first."""
        self._buffer += data
        replies: list[Reply] = []
        position = 0
        while position < len(self._buffer):
            try:
                reply, position = self._parse(position, 0)
            except _Incomplete:
                break
            replies.append(reply)
        del self._buffer[:position]
        return replies

    @property
    def pending_bytes(self) -> int:
        """Bytes of an incomplete reply still waiting for the rest."""
        return len(self._buffer)

    def _line(self, start: int) -> tuple[bytes, int]:
        end = self._buffer.find(CRLF, start)
        if end < 0:
            if len(self._buffer) - start > HEADER_BYTES_MAX:
                raise ReplyProtocolError("reply line too long")
            raise _Incomplete
        return bytes(self._buffer[start + 1 : end]), end + 2

    def _parse(self, start: int, depth: int) -> tuple[Reply, int]:
        if start >= len(self._buffer):
            raise _Incomplete
        marker = self._buffer[start]
        line, position = self._line(start)
        if marker == ord("+"):
            return Simple(line.decode(errors="replace")), position
        if marker == ord("-"):
            return ErrorReply.parse(line.decode(errors="replace")), position
        if marker == ord(":"):
            return _integer(line, "integer"), position
        if marker == ord("$"):
            size = _integer(line, "bulk length")
            if size == -1:
                return None, position
            if size < 0 or size > self.bulk_bytes_max:
                raise ReplyProtocolError(f"invalid bulk length {size}")
            if len(self._buffer) < position + size + 2:
                raise _Incomplete
            if self._buffer[position + size : position + size + 2] != CRLF:
                raise ReplyProtocolError("bulk string not terminated by CRLF")
            return bytes(self._buffer[position : position + size]), position + size + 2
        if marker == ord("*"):
            count = _integer(line, "array length")
            if count == -1:
                return None, position
            if count < 0 or count > self.array_items_max or depth >= NESTING_MAX:
                raise ReplyProtocolError(f"invalid array length {count}")
            items: list[Reply] = []
            for _ in range(count):
                item, position = self._parse(position, depth + 1)
                items.append(item)
            return items, position
        raise ReplyProtocolError(f"unknown reply type {chr(marker)!r}")


def _integer(raw: bytes, what: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ReplyProtocolError(f"invalid {what} {raw[:40]!r}") from None


def parse_info(text: bytes | str) -> dict[str, str]:
    """``INFO``'s ``key:value`` lines as a dict; ``#`` section headers and blanks are skipped."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    fields: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        key, separator, value = line.partition(":")
        if separator:
            fields[key.strip()] = value.split(" #", 1)[0].strip()
    return fields
