"""RESP2, the Redis serialization protocol, without I/O (in the manner of h11).

``RespParser.feed(data)`` takes whatever bytes arrived and returns every complete command as a
list of byte strings; a partial command waits for more bytes.  Clients send commands as arrays
of bulk strings (``*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n``); humans typing into a raw socket send
inline commands (``GET k\\r\\n``); both are accepted.  Replies are built with the ``encode_*``
functions.

Every length is bounded *before* the bytes are buffered, so a hostile client cannot make the
server allocate more than ``bulk_bytes_max`` per argument and ``array_items_max`` arguments.
A ``RespProtocolError`` means the byte stream cannot be resynchronised: the server answers it
with an error reply and closes that connection, like Redis does.
"""

from __future__ import annotations

from collections.abc import Iterable

CRLF = b"\r\n"


class RespProtocolError(Exception):
    """The peer sent bytes that are not RESP (or exceed a limit); close the connection."""


class RespParser:
    __slots__ = ("_buffer", "array_items_max", "bulk_bytes_max", "error", "inline_bytes_max")

    def __init__(
        self,
        bulk_bytes_max: int = 16 * 1024 * 1024,
        array_items_max: int = 1024 * 1024,
        inline_bytes_max: int = 64 * 1024,
    ) -> None:
        self._buffer = bytearray()
        self.bulk_bytes_max = bulk_bytes_max
        self.array_items_max = array_items_max
        self.inline_bytes_max = inline_bytes_max
        self.error: RespProtocolError | None = None

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Add received bytes; return the commands now complete (possibly none).

        Raises ``RespProtocolError`` on bytes that are not RESP.  If complete commands came
        before the bad bytes, they are returned first and the error is kept in ``error`` (a
        server answers them, then the error, then closes, as Redis does); every later ``feed``
        raises it again.
        """
        if self.error is not None:
            raise self.error
        self._buffer += data
        commands: list[list[bytes]] = []
        position = 0
        try:
            while position < len(self._buffer):
                parsed = self._parse_one(position)
                if parsed is None:
                    break
                command, position = parsed
                if command:
                    commands.append(command)
        except RespProtocolError as error:
            self.error = error
            self._buffer.clear()
            if not commands:
                raise
            return commands
        del self._buffer[:position]
        return commands

    def _line(self, start: int, limit: int) -> tuple[bytes, int] | None:
        end = self._buffer.find(CRLF, start)
        if end < 0:
            if len(self._buffer) - start > limit:
                raise RespProtocolError("line too long")
            return None
        return bytes(self._buffer[start:end]), end + 2

    def _parse_one(self, start: int) -> tuple[list[bytes], int] | None:
        if self._buffer[start] != ord("*"):
            return self._parse_inline(start)
        header = self._line(start, 32)
        if header is None:
            return None
        line, position = header
        count = self._integer(line[1:], "multibulk length")
        if count > self.array_items_max:
            raise RespProtocolError("invalid multibulk length")
        items: list[bytes] = []
        for _ in range(max(count, 0)):
            if position >= len(self._buffer):
                return None
            if self._buffer[position] != ord("$"):
                found = chr(self._buffer[position])
                raise RespProtocolError(f"expected '$', got '{found}'")
            bulk_header = self._line(position, 32)
            if bulk_header is None:
                return None
            line, position = bulk_header
            size = self._integer(line[1:], "bulk length")
            if size < 0 or size > self.bulk_bytes_max:
                raise RespProtocolError("invalid bulk length")
            if len(self._buffer) < position + size + 2:
                return None
            if self._buffer[position + size : position + size + 2] != CRLF:
                raise RespProtocolError("bulk string not terminated by CRLF")
            items.append(bytes(self._buffer[position : position + size]))
            position += size + 2
        return items, position

    def _parse_inline(self, start: int) -> tuple[list[bytes], int] | None:
        parsed = self._line(start, self.inline_bytes_max)
        if parsed is None:
            return None
        line, position = parsed
        return line.split(), position

    @staticmethod
    def _integer(raw: bytes, what: str) -> int:
        try:
            return int(raw)
        except ValueError:
            raise RespProtocolError(f"invalid {what}") from None


def encode_simple(text: str) -> bytes:
    return b"+" + text.encode() + CRLF


def encode_error(text: str) -> bytes:
    """An error reply; ``text`` starts with the error kind, e.g. ``ERR unknown command``."""
    return b"-" + text.replace("\r", " ").replace("\n", " ").encode() + CRLF


def encode_integer(value: int) -> bytes:
    return b":" + str(value).encode() + CRLF


def encode_bulk(value: bytes | None) -> bytes:
    if value is None:
        return b"$-1\r\n"
    return b"$" + str(len(value)).encode() + CRLF + value + CRLF


def encode_array(items: Iterable[bytes | None]) -> bytes:
    parts = [encode_bulk(item) for item in items]
    return b"*" + str(len(parts)).encode() + CRLF + b"".join(parts)


def encode_command(*args: bytes | str) -> bytes:
    """A command as a client sends it (an array of bulk strings); used by clients and tests."""
    return encode_array(a.encode() if isinstance(a, str) else a for a in args)
