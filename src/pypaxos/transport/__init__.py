"""Moving messages between pypaxos nodes: the Transport protocol, the wire codec, TCP.

``base`` says what the runtime may expect of any transport, ``codec`` how a message becomes
bytes and back (sans-I/O, fuzzable), and ``tcp`` is the asyncio implementation over real sockets.
"""

from pypaxos.transport.base import Deliver, Transport, UnknownPeer
from pypaxos.transport.codec import (
    FRAME_BYTES_MAX_DEFAULT,
    FRAME_VERSION,
    Codec,
    CodecError,
    FrameDecoder,
    FrameTooLarge,
    Hello,
    MalformedFrame,
    MessageTooLarge,
    ProtocolError,
    UnsupportedVersion,
)
from pypaxos.transport.tcp import (
    HandshakeRejected,
    PeerStats,
    SenderMismatch,
    TcpConfig,
    TcpTransport,
    preferred_loop_factory,
)

__all__ = [
    "FRAME_BYTES_MAX_DEFAULT",
    "FRAME_VERSION",
    "Codec",
    "CodecError",
    "Deliver",
    "FrameDecoder",
    "FrameTooLarge",
    "HandshakeRejected",
    "Hello",
    "MalformedFrame",
    "MessageTooLarge",
    "PeerStats",
    "ProtocolError",
    "SenderMismatch",
    "TcpConfig",
    "TcpTransport",
    "Transport",
    "UnknownPeer",
    "UnsupportedVersion",
    "preferred_loop_factory",
]
