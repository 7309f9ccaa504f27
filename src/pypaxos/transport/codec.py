"""Wire frames for pypaxos messages: versioned, length-prefixed msgpack, decoded incrementally.

A frame is ``[u32 length BE][u8 version][msgpack payload]``; the length is checked against
``frame_bytes_max`` *before* the body is buffered, so a hostile or confused peer cannot make us
allocate more than the limit, and a version we do not speak is refused, not misparsed.  The
payload is decoded against the message union, so what comes out is a typed, validated message
or an error.  Errors are split by blame, as in h11: ``ProtocolError`` means the *remote peer*
sent bad bytes (drop that connection); ``MessageTooLarge`` means *we* tried to send too much (a
local bug).  ``FrameDecoder`` is sans-I/O: byte chunks in, whole messages out.

More: docs/design.md, 'The peer transport'.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from typing import Any, Final, Generic, NoReturn, TypeVar

import msgspec

from pypaxos.multi.membership import RemovalNotice

M = TypeVar("M")

FRAME_VERSION: Final = 1
"""The only frame format this module speaks."""

PROTOCOL_VERSION: Final = 3
"""The peer protocol this build speaks, announced in every ``Hello``: what the frames carry
(every peer message, of every layer) and what the log and snapshots replicate.  Bump it in any
release whose nodes could not read a message, a log entry or a snapshot of the previous one:
a node refuses a peer announcing another version at the handshake (``Refusal``), which both
ends log with both versions, instead of failing later on something it cannot decode.  Version
1 is every build from before the handshake carried it (its Hello has no such field).  Version 3:
a follower reports its durable applied index (``HeartbeatAck.durable_index``) and a promise's
``log_start`` may be it; a leader of version 3 would wait for it from a version-2 follower
forever before bringing a membership change into force."""

PROTOCOL_VERSION_UNANNOUNCED: Final = 1
"""What a Hello without a ``protocol`` field is taken to speak."""

FRAME_BYTES_MAX_DEFAULT: Final = 16 * 1024 * 1024
"""Default bound on ``length`` (version byte + payload): 16 MiB."""

HEADER = struct.Struct(">IB")
"""The length prefix and the version byte."""

_LENGTH = struct.Struct(">I")
LENGTH_BYTES: Final = _LENGTH.size
HEADER_BYTES: Final = HEADER.size


class Hello(msgspec.Struct, frozen=True, tag="transport.Hello"):
    """The first frame on every connection: who is connecting, and to which cluster.

    ``cluster_id`` guards against a node of one cluster talking to another by a stale address;
    ``None`` means the sender does not say (a receiver with its own cluster id refuses that).
    ``proof`` answers the acceptor's ``auth.Challenge`` when the cluster has a secret.
    """

    node_id: int
    cluster_id: str | None = None
    proof: bytes | None = None
    protocol: int = PROTOCOL_VERSION_UNANNOUNCED
    nonce: bytes | None = None  # the dialler's, for the acceptor's ``Refusal.proof``


class Refusal(msgspec.Struct, frozen=True, tag="transport.Refusal"):
    """The acceptor's last frame on a connection it refuses, so the dialling node learns why.

    ``node_id`` and ``protocol`` are the refusing node's; ``reason`` is a ``RefusalReason``
    value (a string, so a reason a later version adds still decodes).  ``cluster_id`` and
    ``notice`` come with ``"not-member"`` only, to a node whose Hello named the cluster and
    passed its checks: which configuration of that cluster no longer has it
    (``multi.membership.RemovalNotice``: the node decides what it means).  ``proof`` binds it
    all to the connection with the cluster secret (``auth.refusal_proof``).  New fields may
    only be added with defaults: a node of any version must read every version's refusal.
    """

    node_id: int
    reason: str
    protocol: int = PROTOCOL_VERSION
    cluster_id: str | None = None
    notice: RemovalNotice | None = None
    proof: bytes | None = None


class RefusalReason(enum.Enum):
    """Why an acceptor refused a connection, as its ``Refusal`` says."""

    VERSION = "version"  # the Hello announced another protocol version
    NOT_MEMBER = "not-member"  # no configuration the acceptor knows has the dialling node


REFUSAL_BYTES_MAX: Final = 4096
"""The largest refusal frame a dialling node reads (version byte and payload)."""


class CodecError(Exception):
    """Base of every error this module raises."""


class ProtocolError(CodecError):
    """The remote peer sent bytes that are not a valid frame stream; drop the connection."""


class FrameTooLarge(ProtocolError):
    """A frame header announced more than ``frame_bytes_max`` bytes."""

    def __init__(self, length: int, frame_bytes_max: int) -> None:
        super().__init__(
            f"frame of {length} bytes exceeds frame_bytes_max={frame_bytes_max} "
            f"(length header {length:#010x})"
        )
        self.length = length
        self.frame_bytes_max = frame_bytes_max


class UnsupportedVersion(ProtocolError):
    """A frame carried a version byte this codec does not speak."""

    def __init__(self, version: int) -> None:
        super().__init__(f"unsupported frame version {version} (this codec speaks {FRAME_VERSION})")
        self.version = version


class MalformedReason(enum.Enum):
    """Why a payload was refused: the field tests and callers look at, not the wording."""

    EMPTY = "empty frame"
    NOT_MSGPACK = "not msgpack (a str that is not UTF-8 included)"
    WRONG_SHAPE = "wrong type, fields or tag"
    TOO_DEEP = "nesting too deep"


class MalformedFrame(ProtocolError):
    """A frame's payload is not a valid message (bad msgpack, wrong fields, unknown tag).

    ``what`` names what was expected (``"message"`` or ``"Hello handshake"``), ``reason`` is
    a ``MalformedReason``; the text after them is the decoder's own detail, for logs only.
    """

    def __init__(self, what: str, payload_bytes: int, reason: MalformedReason, detail: str):
        super().__init__(f"invalid {what} in a {payload_bytes}-byte payload: {detail}")
        self.what = what
        self.payload_bytes = payload_bytes
        self.reason = reason
        self.detail = detail


class MessageTooLarge(CodecError, ValueError):
    """Local misuse: a message we were asked to send encodes to more than ``frame_bytes_max``."""


class Codec(Generic[M]):
    """Encodes and decodes frames of one message type (a tagged Struct or a Union of them).

    ``message_type`` is the runtime type object, e.g. ``pypaxos.core.messages.Message``;
    mypy cannot infer ``M`` from a Union object, so spell it: ``Codec[Message](Message)``.
    One codec can be shared by any number of decoders and connections.
    """

    def __init__(
        self, message_type: Any, *, frame_bytes_max: int = FRAME_BYTES_MAX_DEFAULT
    ) -> None:
        if not 1 <= frame_bytes_max <= 0xFFFFFFFF:
            raise ValueError(f"frame_bytes_max must be in [1, 2**32-1], got {frame_bytes_max}")
        self.message_type = message_type
        self.frame_bytes_max = frame_bytes_max
        self._encoder = msgspec.msgpack.Encoder()
        self._message_decoder: msgspec.msgpack.Decoder[M] = msgspec.msgpack.Decoder(message_type)
        self._hello_decoder = msgspec.msgpack.Decoder(Hello)
        self._refusal_decoder = msgspec.msgpack.Decoder(Refusal)

    # -- encoding -------------------------------------------------------------------------

    def encode_frame(self, msg: M) -> bytes:
        """One message as one frame."""
        # Encode, then prepend the header: measured faster than encoding into a reserved
        # buffer, since msgspec sizes its output itself and the concatenation is one copy.
        # (The body of ``_frame``, inlined: this is the hot path of every send.)
        payload = self._encoder.encode(msg)
        if len(payload) >= self.frame_bytes_max:
            self._too_large(msg, len(payload) + 1)
        return HEADER.pack(len(payload) + 1, FRAME_VERSION) + payload

    def encode_frames(self, msgs: Iterable[M]) -> bytes:
        """Many messages as consecutive frames in one buffer, for a single write."""
        return b"".join([self._frame(msg) for msg in msgs])

    def encode_hello(self, hello: Hello) -> bytes:
        """The handshake frame that opens a connection."""
        return self._frame(hello)

    def encode_refusal(self, refusal: Refusal) -> bytes:
        """The frame an acceptor sends before it closes a connection it refuses."""
        return self._frame(refusal)

    def _frame(self, obj: object) -> bytes:
        payload = self._encoder.encode(obj)
        if len(payload) >= self.frame_bytes_max:
            self._too_large(obj, len(payload) + 1)
        return HEADER.pack(len(payload) + 1, FRAME_VERSION) + payload

    def _too_large(self, obj: object, length: int) -> NoReturn:
        raise MessageTooLarge(
            f"{type(obj).__name__} encodes to a {length}-byte frame, over "
            f"frame_bytes_max={self.frame_bytes_max}"
        )

    # -- decoding -------------------------------------------------------------------------

    def decoder(self, *, handshake: bool = False) -> FrameDecoder[M]:
        """A fresh incremental decoder; with ``handshake`` the first frame must be a Hello."""
        return FrameDecoder(self, handshake=handshake)

    def decode_message(self, payload: bytes | bytearray | memoryview) -> M:
        """Decode one payload (the bytes after the version byte) as a message."""
        return _decode(self._message_decoder, payload, "message")

    def decode_hello(self, payload: bytes | bytearray | memoryview) -> Hello:
        """Decode one payload as the handshake."""
        return _decode(self._hello_decoder, payload, "Hello handshake")

    def decode_refusal(self, payload: bytes | bytearray | memoryview) -> Refusal:
        """Decode one payload as an acceptor's refusal."""
        return _decode(self._refusal_decoder, payload, "refusal")


T = TypeVar("T")


def _decode(
    decoder: msgspec.msgpack.Decoder[T], payload: bytes | bytearray | memoryview, what: str
) -> T:
    try:
        return decoder.decode(payload)
    except (ValueError, RecursionError) as exc:
        raise _malformed(what, payload, exc) from exc


def _malformed(
    what: str, payload: bytes | bytearray | memoryview, exc: BaseException
) -> MalformedFrame:
    # msgspec.DecodeError and ValidationError (wrong fields, unknown tag) are ValueErrors;
    # a str that is not UTF-8 is invalid msgpack, reported by msgspec as a DecodeError or a
    # UnicodeDecodeError depending on its version; RecursionError comes from absurdly
    # nested input into an ``Any``-typed field.
    reason = _reason(exc)
    detail = reason.value if isinstance(exc, RecursionError) else str(exc)
    return MalformedFrame(what, len(payload), reason, detail)


def _reason(exc: BaseException) -> MalformedReason:
    if isinstance(exc, RecursionError):
        return MalformedReason.TOO_DEEP
    if isinstance(exc, msgspec.ValidationError):
        return MalformedReason.WRONG_SHAPE
    return MalformedReason.NOT_MSGPACK


class FrameDecoder(Generic[M]):
    """Turns a byte stream, in chunks of any size, into messages.

    ``feed`` buffers at most one partial frame (bounded by ``frame_bytes_max`` plus the
    header) and returns every message completed by the new bytes, in order.  With
    ``handshake=True`` the first frame must be a ``Hello``; it is kept in ``hello`` rather
    than returned, and a later Hello is refused like any unknown tag.

    After a ``ProtocolError`` the stream cannot be resynchronised (the frame boundaries are
    lost), so the decoder stays failed: every later ``feed`` raises the same error.
    """

    def __init__(self, codec: Codec[M], *, handshake: bool = False) -> None:
        self._codec = codec
        self._buffer = bytearray()
        self._awaiting_hello = handshake
        self._error: ProtocolError | None = None
        self.hello: Hello | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buffer)

    @property
    def awaiting_hello(self) -> bool:
        return self._awaiting_hello

    def feed(self, data: bytes | bytearray | memoryview) -> list[M]:
        """Consume ``data``; return the messages it completes.  Raises ``ProtocolError``."""
        if self._error is not None:
            raise self._error
        if not self._buffer and not self._awaiting_hello and len(data) > HEADER_BYTES:
            # The common case of a small message: the read holds one whole frame and nothing
            # is buffered, so decode it from ``data`` itself (no copy into the buffer and out).
            # Anything else (two frames, a partial one, a bad header) takes the path below,
            # which checks and reports it.
            (length,) = _LENGTH.unpack_from(data)
            if (
                length + LENGTH_BYTES == len(data)
                and length <= self._codec.frame_bytes_max
                and data[LENGTH_BYTES] == FRAME_VERSION
            ):
                try:
                    return [self._codec._message_decoder.decode(data[HEADER_BYTES:])]
                except (ValueError, RecursionError) as exc:
                    self._error = _malformed("message", data[HEADER_BYTES:], exc)
                    raise self._error from exc
        self._buffer += data
        try:
            return self._drain()
        except ProtocolError as exc:
            self._error = exc
            self._buffer.clear()
            raise

    def _drain(self) -> list[M]:
        # The hot path of every receiver: locals instead of attribute lookups, and each payload
        # decoded in place through a view of the buffer, released before the buffer is cut,
        # even on an error.  msgspec copies what a message keeps into its own objects; a
        # message type must not hold ``msgspec.Raw`` or ``memoryview`` fields, which would
        # refer to the buffer.
        out: list[M] = []
        buf = self._buffer
        size = len(buf)
        pos = 0
        frame_bytes_max = self._codec.frame_bytes_max
        unpack_length = _LENGTH.unpack_from
        decode = self._codec._message_decoder.decode
        with memoryview(buf) as view:
            while size - pos >= LENGTH_BYTES:
                (length,) = unpack_length(buf, pos)
                # The bound is checked on the header alone, before waiting for the body.
                if length > frame_bytes_max:
                    raise FrameTooLarge(length, frame_bytes_max)
                if length == 0:
                    raise MalformedFrame(
                        "frame", 0, MalformedReason.EMPTY, "length 0 leaves no room for the version"
                    )
                end = pos + LENGTH_BYTES + length
                if size < end:
                    break
                version = buf[pos + LENGTH_BYTES]
                if version != FRAME_VERSION:
                    raise UnsupportedVersion(version)
                with view[pos + HEADER_BYTES : end] as payload:
                    if self._awaiting_hello:
                        self.hello = self._codec.decode_hello(payload)
                        self._awaiting_hello = False
                    else:
                        try:
                            out.append(decode(payload))
                        except (ValueError, RecursionError) as exc:
                            raise _malformed("message", payload, exc) from exc
                pos = end
        del buf[:pos]
        return out
