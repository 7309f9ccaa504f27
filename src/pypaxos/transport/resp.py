"""RESP2, the Redis serialization protocol, without I/O (in the manner of h11).

``RespParser.feed(data)`` takes whatever bytes arrived and returns every complete command as a
list of byte strings; a partial command waits for more bytes.  Clients send commands as arrays
of bulk strings (``*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n``); humans typing into a raw socket send
inline commands (``GET k\\r\\n``); both are accepted.  Replies are built with the ``encode_*``
functions.

Every length is bounded *before* the bytes are buffered, so a hostile client cannot make the
server allocate more than ``bulk_bytes_max`` per argument, ``array_items_max`` arguments, and
``command_bytes_max`` for a whole command (each argument counted with ``ITEM_OVERHEAD_BYTES``
for the object that holds it, so a million empty arguments are as costly as they are).
The parser is linear in its input: the arguments of a command still arriving are kept as they
complete and their bytes dropped, a partial line is searched for its end only in the new bytes,
and the fast path examines at most twice the bytes of a feed, so no byte is parsed twice
however the command is split (a bulk header waiting for its body is read again, 34 bytes at
most).
A ``RespProtocolError`` means the byte stream cannot be resynchronised: the server answers it
with an error reply and closes that connection, like Redis does.
"""

from __future__ import annotations

from collections.abc import Iterable

CRLF = b"\r\n"
ASTERISK = ord("*")
FAST_BYTES_MAX = 1024 * 1024
"""Above this many buffered bytes (a big value still arriving) only the positional parser runs,
so a multi-megabyte bulk string is not split again on every chunk."""
FAST_BUDGET_SLACK_BYTES = 64
"""Beyond twice a feed's new bytes, what the fast path may examine in that feed (a partial
array header kept from the feed before is at most 32 bytes)."""
ITEM_OVERHEAD_BYTES = 64
"""What one argument costs beyond its bytes (a ``bytes`` object and its list entry), counted
against ``command_bytes_max``."""
_ARRAY_COUNTS = {b"*%d" % n: n for n in range(1, 65)}  # the fast path's array headers
_BULK_HEADERS = [b"$%d" % n for n in range(4096)]  # and its bulk headers, by length
_GET_HEADS = (b"*2\r\n$3\r\nGET\r\n", b"*2\r\n$3\r\nget\r\n")  # a GET run starts so
_BULK_PREFIXES = [b"$%d\r\n" % n for n in range(len(_BULK_HEADERS))]  # replies' ones, with CRLF


class RespProtocolError(Exception):
    """The peer sent bytes that are not RESP (or exceed a limit); close the connection."""


class CommandTooLarge(RespProtocolError):
    """A command's arguments add up to more than ``command_bytes_max``."""

    def __init__(self, command_bytes_max: int) -> None:
        super().__init__(f"command larger than command_bytes_max={command_bytes_max}")
        self.command_bytes_max = command_bytes_max


class RespParser:
    __slots__ = (
        "_buffer",
        "_fast",
        "_line_scanned",
        "_pending",
        "_pending_bytes",
        "_pending_count",
        "array_items_max",
        "bulk_bytes_max",
        "command_bytes_max",
        "error",
        "inline_bytes_max",
    )

    def __init__(
        self,
        bulk_bytes_max: int = 16 * 1024 * 1024,
        array_items_max: int = 1024 * 1024,
        inline_bytes_max: int = 64 * 1024,
        command_bytes_max: int = 64 * 1024 * 1024,
    ) -> None:
        self._buffer = bytearray()
        self.bulk_bytes_max = bulk_bytes_max
        self.array_items_max = array_items_max
        self.inline_bytes_max = inline_bytes_max
        self.command_bytes_max = command_bytes_max
        # The fast path does not count a command's cost: it runs only when none of the
        # commands it takes (up to 64 arguments of up to 4095 bytes) can exceed the bound.
        fast_cost_max = min(len(_ARRAY_COUNTS), array_items_max) * (
            min(bulk_bytes_max, len(_BULK_HEADERS) - 1) + ITEM_OVERHEAD_BYTES
        )
        self._fast = fast_cost_max <= command_bytes_max
        self.error: RespProtocolError | None = None
        # A partial line kept at the buffer's start holds no CRLF in its first this many
        # bytes: the next feed looks for its end from there, not from its start again.
        self._line_scanned = 0
        # The command still arriving: the arguments complete so far (their bytes are gone from
        # the buffer), how many it announced, and what they cost against command_bytes_max.
        self._pending: list[bytes] | None = None
        self._pending_count = 0
        self._pending_bytes = 0

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for the next ``feed``: unparsed input and a partial command's arguments."""
        return len(self._buffer) + self._pending_bytes

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Add received bytes; return the commands now complete (possibly none).

        Raises ``RespProtocolError`` on bytes that are not RESP.  If complete commands came
        before the bad bytes, they are returned first and the error is kept in ``error`` (a
        server answers them, then the error, then closes, as Redis does); every later ``feed``
        raises it again.
        """
        if self.error is not None:
            raise self.error
        buffer = self._buffer
        buffer += data
        commands: list[list[bytes]] = []
        position = 0
        size = len(buffer)
        # The fast path copies and splits everything from where it starts, and stops at a
        # command it does not take (a value holding CRLF, say) for _parse_one to parse; were
        # it re-entered after each such command, a pipeline of them would cost the square of
        # its length.  So it may examine at most twice the new bytes (plus a partial header
        # left from the last feed) per feed, and the positional parser does the rest.
        fast_budget = 2 * len(data) + FAST_BUDGET_SLACK_BYTES if self._fast else -1
        try:
            while position < size:
                if (
                    self._pending is None
                    and buffer[position] == ASTERISK
                    and size - position <= min(FAST_BYTES_MAX, fast_budget)
                ):
                    fast_budget -= size - position
                    position = self._parse_fast(position, commands)
                    if position >= size:
                        break
                command, position = self._parse_one(position)
                if command is None:
                    break
                if command:
                    commands.append(command)
        except RespProtocolError as error:
            self.error = error
            buffer.clear()
            self._pending, self._pending_bytes = None, 0
            if not commands:
                raise
            return commands
        del buffer[:position]
        return commands

    def feed_gets(self, data: bytes) -> list[bytes] | None:
        """The keys of ``data`` when it is, whole, a run of complete ``GET key`` commands
        (arrays of bulk strings, ``GET`` or ``get``) and nothing is buffered; else ``None``,
        having consumed nothing (then ``feed(data)`` parses it as always).

        What a pipeline of ``GET`` s costs to parse, without Python code per command: one
        ``split`` on CRLF, then the pieces are checked as strided slices (every fifth piece an
        ``*2``, a ``$3``, the name, and a bulk header that is exactly ``$len`` of the key after
        it).  A key holding CRLF, a partial command, another command, or a key longer than the
        header table fails a check, so the answer equals what ``feed`` would return.  The
        bounds are ``feed``'s fast path's: its header table, ``bulk_bytes_max`` and
        ``FAST_BYTES_MAX``.
        """
        if (
            type(data) is not bytes  # its pieces become keys: never a mutable buffer's
            or self._buffer
            or self._pending is not None
            or self.error is not None
            or not self._fast
            or len(data) > FAST_BYTES_MAX
            or self.bulk_bytes_max < len(_BULK_HEADERS) - 1
            or self.array_items_max < 2
            or not data.startswith(_GET_HEADS)  # other pipelines pay no split for this
        ):
            return None
        parts = data.split(CRLF)
        count, rest = divmod(len(parts) - 1, 5)
        if rest or not count or parts[-1]:  # a partial command, or not five pieces each
            return None
        if parts[0:-1:5].count(b"*2") != count or parts[1::5].count(b"$3") != count:
            return None
        names = parts[2::5]
        upper = names.count(b"GET")
        if upper != count and upper + names.count(b"get") != count:
            return None
        keys = parts[4::5]
        try:
            headers = list(map(_BULK_HEADERS.__getitem__, map(len, keys)))
        except IndexError:  # a key longer than the table
            return None
        if parts[3::5] != headers:
            return None
        return keys

    def _parse_fast(self, position: int, commands: list[list[bytes]]) -> int:
        """Parse complete, well-formed arrays of bulk strings from ``position`` on, in bulk.

        One ``split`` on CRLF cuts the whole pipelined buffer into header and argument pieces
        (each piece a ready ``bytes``, no further copy).  A command ``*N`` is then its next
        ``2N`` pieces: the arguments are every other piece (one slice), and the bulk headers
        must be exactly ``$len`` of each argument (compared as lists, against precomputed
        headers), so no Python code runs per argument.  A bulk string whose declared length
        differs from its piece (it contains CRLF), a partial command, or anything unusual stops
        the fast path at the start of that command: ``_parse_one`` then handles it, errors
        included, exactly as it always did.  Returns the position of the first command not
        parsed here.
        """
        chunk = bytes(memoryview(self._buffer)[position:])
        parts = chunk.split(CRLF)
        last = len(parts) - 1  # parts[last] is not followed by CRLF: never a whole piece
        items_max = self.array_items_max
        bulk_bytes_max = self.bulk_bytes_max
        check_sizes = bulk_bytes_max < len(_BULK_HEADERS) - 1
        array_counts = _ARRAY_COUNTS
        bulk_header = _BULK_HEADERS.__getitem__
        append = commands.append
        # GET k and SET k v, the bulk of any pipeline, get a loop without slices or maps.
        short_forms = not check_sizes and items_max >= 3
        bulk_headers = _BULK_HEADERS
        index = 0
        while index < last:
            if short_forms:
                head = parts[index]
                try:
                    if head == b"*3" and index + 6 < last:
                        a, b, c = parts[index + 2], parts[index + 4], parts[index + 6]
                        if (
                            parts[index + 1] == bulk_headers[len(a)]
                            and parts[index + 3] == bulk_headers[len(b)]
                            and parts[index + 5] == bulk_headers[len(c)]
                        ):
                            append([a, b, c])
                            index += 7
                            continue
                    elif head == b"*2" and index + 4 < last:
                        a, b = parts[index + 2], parts[index + 4]
                        if (
                            parts[index + 1] == bulk_headers[len(a)]
                            and parts[index + 3] == bulk_headers[len(b)]
                        ):
                            append([a, b])
                            index += 5
                            continue
                except IndexError:  # an argument longer than the table: the general path
                    pass
            count = array_counts.get(parts[index])
            if count is None or count > items_max:
                break
            end = index + 2 * count
            if end >= last:
                break
            items = parts[index + 2 : end + 1 : 2]
            try:
                expected = list(map(bulk_header, map(len, items)))
            except IndexError:  # an argument longer than the table: the positional parser
                break
            if parts[index + 1 : end : 2] != expected:
                break
            if check_sizes and max(map(len, items)) > bulk_bytes_max:
                break
            append(items)
            index = end + 1
        if index == last:  # all parsed but the piece after the last CRLF (usually empty)
            return position + len(chunk) - len(parts[last])
        return position + sum(map(len, parts[:index])) + 2 * index

    def _line(self, start: int, limit: int) -> tuple[bytes, int] | None:
        """The line at ``start`` and the position after its CRLF; ``None`` if it is partial.

        ``limit`` bounds the line whether or not its CRLF has arrived: a whole inline line
        over ``inline_bytes_max`` is refused like a partial one (it would otherwise become a
        command of any number of arguments), and a header line stays short.
        """
        buffer = self._buffer
        scan_from = start
        if start == 0 and self._line_scanned:  # the partial line of the last feed
            scan_from = self._line_scanned - 1  # its last byte may be the CR of a CRLF
        self._line_scanned = 0
        end = buffer.find(CRLF, scan_from)
        if end < 0:
            if len(buffer) - start > limit:
                raise RespProtocolError("line too long")
            self._line_scanned = len(buffer) - start  # feed() keeps the line from ``start``
            return None
        if end - start > limit:
            raise RespProtocolError("line too long")
        return bytes(buffer[start:end]), end + 2

    def _parse_one(self, start: int) -> tuple[list[bytes] | None, int]:
        """One command from ``start``, or ``None`` and the position to resume from.

        A command cut short keeps its completed arguments in ``_pending``, and the position
        returned is past them, so the next ``feed`` goes on from there.
        """
        buffer = self._buffer
        items = self._pending
        position = start
        if items is None:
            if buffer[start] != ASTERISK:
                return self._parse_inline(start)
            header = self._line(start, 32)
            if header is None:
                return None, start
            line, position = header
            count = self._integer(line[1:], "multibulk length")
            if count > self.array_items_max:
                raise RespProtocolError("invalid multibulk length")
            if count <= 0:
                return [], position
            items = self._pending = []
            self._pending_count, self._pending_bytes = count, 0
        while len(items) < self._pending_count:
            if position >= len(buffer):
                return None, position
            if buffer[position] != ord("$"):
                raise RespProtocolError(f"expected '$', got '{chr(buffer[position])}'")
            bulk_header = self._line(position, 32)
            if bulk_header is None:
                return None, position
            line, body = bulk_header
            size = self._integer(line[1:], "bulk length")
            if size < 0 or size > self.bulk_bytes_max:
                raise RespProtocolError("invalid bulk length")
            cost = self._pending_bytes + size + ITEM_OVERHEAD_BYTES
            if cost > self.command_bytes_max:
                raise CommandTooLarge(self.command_bytes_max)
            if len(buffer) < body + size + 2:
                return None, position
            if buffer[body + size : body + size + 2] != CRLF:
                raise RespProtocolError("bulk string not terminated by CRLF")
            items.append(bytes(buffer[body : body + size]))
            self._pending_bytes = cost
            position = body + size + 2
        self._pending, self._pending_bytes = None, 0
        return items, position

    def _parse_inline(self, start: int) -> tuple[list[bytes] | None, int]:
        parsed = self._line(start, self.inline_bytes_max)
        if parsed is None:
            return None, start
        line, position = parsed
        return line.split(), position

    @staticmethod
    def _integer(raw: bytes, what: str) -> int:
        # ASCII digits with an optional minus, as Redis reads them: int() alone would also
        # take "+3", " 3" and "1_0", which no other RESP reader sees as numbers.
        digits = raw[1:] if raw[:1] == b"-" else raw
        if not digits.isdigit():
            raise RespProtocolError(f"invalid {what}")
        return int(raw)


def encode_simple(text: str) -> bytes:
    return b"+" + text.encode() + CRLF


def encode_error(text: str) -> bytes:
    """An error reply; ``text`` starts with the error kind, e.g. ``ERR unknown command``."""
    return b"-" + text.replace("\r", " ").replace("\n", " ").encode() + CRLF


def encode_integer(value: int) -> bytes:
    return b":%d\r\n" % value


def encode_bulk(value: bytes | None) -> bytes:
    # Every GET's reply: the header of a short value from a table, a long one's formatted.
    if value is None:
        return b"$-1\r\n"
    try:
        return _BULK_PREFIXES[len(value)] + value + b"\r\n"
    except IndexError:
        return b"$%d\r\n%b\r\n" % (len(value), value)


def encode_bulks(values: Iterable[bytes | None], null: bytes) -> bytes:
    """The bulk replies of ``values`` one after another, as ``encode_bulk`` writes each but
    with ``null`` for a ``None`` (RESP2's or RESP3's): a pipeline's ``GET`` replies in one
    call, not one per command."""
    parts: list[bytes] = []
    append = parts.append
    prefixes = _BULK_PREFIXES
    limit = len(prefixes)
    for value in values:
        if value is None:
            append(null)
            continue
        size = len(value)
        append(prefixes[size] if size < limit else b"$%d\r\n" % size)
        append(value)
        append(CRLF)
    return b"".join(parts)


def encode_bulk_values(values: list[bytes]) -> bytes | None:
    """``encode_bulks`` of byte strings none of them ``None``, without Python code per value
    (their headers from the table, interleaved by slice assignment, one join); ``None`` when
    a value is longer than the table (``encode_bulks`` then)."""
    try:
        headers = list(map(_BULK_HEADERS.__getitem__, map(len, values)))
    except IndexError:
        return None
    parts: list[bytes] = [b""] * (2 * len(values) + 1)
    parts[0:-1:2] = headers
    parts[1::2] = values
    return CRLF.join(parts)


def encode_array(items: Iterable[bytes | None]) -> bytes:
    parts = [encode_bulk(item) for item in items]
    return b"*" + str(len(parts)).encode() + CRLF + b"".join(parts)


def encode_command(*args: bytes | str) -> bytes:
    """A command as a client sends it (an array of bulk strings); used by clients and tests."""
    return encode_array(a.encode() if isinstance(a, str) else a for a in args)
