"""Frame layout, limits and error classes of the wire codec (sans-I/O, no sockets)."""

from __future__ import annotations

import struct

import msgspec
import pytest

from pypaxos.core.messages import (
    Accept,
    Accepted,
    Decided,
    Message,
    Nack,
    Prepare,
    Promise,
    Query,
)
from pypaxos.core.types import Ballot
from pypaxos.transport.codec import (
    FRAME_VERSION,
    HEADER_BYTES,
    Codec,
    FrameTooLarge,
    Hello,
    MalformedFrame,
    MalformedReason,
    MessageTooLarge,
    ProtocolError,
    UnsupportedVersion,
)

CODEC = Codec[Message](Message)
B = Ballot(3, 1)
ALL_KINDS: list[Message] = [
    Prepare(1, B),
    Promise(2, B),
    Promise(2, B, Ballot(2, 0), "v"),
    Accept(1, B, "value"),
    Accepted(2, B, "value"),
    Nack(2, B, Ballot(4, 0)),
    Query(3),
    Decided(3, "chosen"),
]


def frame(version: int, payload: bytes) -> bytes:
    return struct.pack(">IB", len(payload) + 1, version) + payload


def test_frame_layout_is_length_version_payload() -> None:
    msg = Accept(1, B, "x")
    data = CODEC.encode_frame(msg)
    (length, version) = struct.unpack_from(">IB", data)
    assert length == len(data) - 4
    assert version == FRAME_VERSION == 1
    assert msgspec.msgpack.decode(data[HEADER_BYTES:], type=Message) == msg


@pytest.mark.parametrize("msg", ALL_KINDS, ids=lambda m: type(m).__name__)
def test_every_message_kind_round_trips_typed(msg: Message) -> None:
    assert CODEC.decoder().feed(CODEC.encode_frame(msg)) == [msg]


def test_batch_is_the_concatenation_of_single_frames() -> None:
    batch = CODEC.encode_frames(ALL_KINDS)
    assert batch == b"".join(CODEC.encode_frame(m) for m in ALL_KINDS)
    assert CODEC.decoder().feed(batch) == ALL_KINDS


def test_handshake_is_consumed_and_kept() -> None:
    decoder = CODEC.decoder(handshake=True)
    data = CODEC.encode_hello(Hello(7, "c")) + CODEC.encode_frame(Query(7))
    assert decoder.feed(data) == [Query(7)]
    assert decoder.hello == Hello(7, "c")
    assert not decoder.awaiting_hello


def test_message_before_handshake_is_malformed() -> None:
    decoder = CODEC.decoder(handshake=True)
    with pytest.raises(MalformedFrame) as info:
        decoder.feed(CODEC.encode_frame(Prepare(1, B)))
    assert (info.value.what, info.value.reason) == ("Hello handshake", MalformedReason.WRONG_SHAPE)


def test_second_hello_is_an_unknown_tag() -> None:
    decoder = CODEC.decoder(handshake=True)
    decoder.feed(CODEC.encode_hello(Hello(1)))
    with pytest.raises(MalformedFrame) as info:
        decoder.feed(CODEC.encode_hello(Hello(1)))
    assert (info.value.what, info.value.reason) == ("message", MalformedReason.WRONG_SHAPE)


def test_unknown_tag_is_malformed() -> None:
    payload = msgspec.msgpack.encode({"type": "Bogus", "sender": 1})
    with pytest.raises(MalformedFrame) as info:
        CODEC.decoder().feed(frame(FRAME_VERSION, payload))
    assert info.value.reason is MalformedReason.WRONG_SHAPE


def test_wrong_field_type_is_malformed() -> None:
    payload = msgspec.msgpack.encode({"type": "Query", "sender": "one"})
    with pytest.raises(MalformedFrame) as info:
        CODEC.decoder().feed(frame(FRAME_VERSION, payload))
    assert info.value.reason is MalformedReason.WRONG_SHAPE
    assert info.value.payload_bytes == len(payload)


def test_invalid_msgpack_is_malformed() -> None:
    with pytest.raises(MalformedFrame) as info:
        CODEC.decoder().feed(frame(FRAME_VERSION, b"\xc1"))
    assert info.value.reason is MalformedReason.NOT_MSGPACK


def test_empty_frame_is_malformed() -> None:
    with pytest.raises(MalformedFrame) as info:
        CODEC.decoder().feed(b"\0\0\0\0")
    assert info.value.reason is MalformedReason.EMPTY


def test_bad_version_is_refused_before_decoding() -> None:
    data = frame(2, msgspec.msgpack.encode(Query(1)))
    with pytest.raises(UnsupportedVersion, match="version 2") as info:
        CODEC.decoder().feed(data)
    assert info.value.version == 2


def test_frame_size_limit_is_checked_on_the_header_alone() -> None:
    codec = Codec[Message](Message, frame_bytes_max=100)
    decoder = codec.decoder()
    with pytest.raises(FrameTooLarge, match="101 bytes exceeds frame_bytes_max=100"):
        decoder.feed(struct.pack(">I", 101))  # no body sent at all
    assert decoder.buffered_bytes == 0


def test_frame_exactly_at_the_limit_is_accepted() -> None:
    msg = Decided(1, "")
    size = len(CODEC.encode_frame(msg)) - 4
    pad = 50
    big = Decided(1, "x" * pad)
    big_size = size + pad + 1  # a str of 50 takes one more header byte in msgpack
    assert len(CODEC.encode_frame(big)) - 4 == big_size
    exact = Codec[Message](Message, frame_bytes_max=big_size)
    assert exact.decoder().feed(exact.encode_frame(big)) == [big]
    under = Codec[Message](Message, frame_bytes_max=big_size - 1)
    with pytest.raises(FrameTooLarge):
        under.decoder().feed(exact.encode_frame(big))


def test_encoding_over_the_limit_is_local_misuse_not_a_protocol_error() -> None:
    codec = Codec[Message](Message, frame_bytes_max=64)
    with pytest.raises(MessageTooLarge) as info:
        codec.encode_frames([Query(1), Decided(1, "x" * 100)])
    assert not isinstance(info.value, ProtocolError)


def test_decoder_stays_failed_after_an_error() -> None:
    decoder = CODEC.decoder()
    with pytest.raises(UnsupportedVersion):
        decoder.feed(frame(9, b"\x90"))
    with pytest.raises(UnsupportedVersion):
        decoder.feed(CODEC.encode_frame(Query(1)))


def test_one_whole_frame_per_read_decodes_and_a_bad_one_fails_the_decoder() -> None:
    # A read holding exactly one frame, with nothing buffered, is decoded without the buffer:
    # it must behave as the buffered path does, and an error must leave the decoder failed.
    decoder = CODEC.decoder()
    first, second = Accept(1, B, "a"), Accepted(2, B, "b")
    assert decoder.feed(CODEC.encode_frame(first)) == [first]
    assert decoder.buffered_bytes == 0
    assert decoder.feed(memoryview(CODEC.encode_frame(second))) == [second]
    with pytest.raises(MalformedFrame) as info:
        decoder.feed(frame(FRAME_VERSION, b"\xc1\xc1"))
    assert info.value.reason is MalformedReason.NOT_MSGPACK
    assert info.value.payload_bytes == 2
    with pytest.raises(MalformedFrame):
        decoder.feed(CODEC.encode_frame(first))  # failed for good, a good frame too


def test_partial_frame_is_buffered_until_complete() -> None:
    data = CODEC.encode_frame(Accept(1, B, "abc"))
    decoder = CODEC.decoder()
    assert decoder.feed(data[:3]) == []
    assert decoder.feed(data[3:-1]) == []
    assert decoder.buffered_bytes == len(data) - 1
    assert decoder.feed(data[-1:]) == [Accept(1, B, "abc")]
    assert decoder.buffered_bytes == 0


class Ping(msgspec.Struct, frozen=True, tag="test.Ping"):
    sender: int
    seq: int


class Blob(msgspec.Struct, frozen=True, tag="test.Blob"):
    sender: int
    data: bytes


def test_codec_is_generic_over_the_message_union() -> None:
    codec = Codec[Ping | Blob](Ping | Blob)
    msgs: list[Ping | Blob] = [Ping(1, 2), Blob(1, b"\x00\xff")]
    assert codec.decoder().feed(codec.encode_frames(msgs)) == msgs
    with pytest.raises(MalformedFrame) as info:
        codec.decoder().feed(CODEC.encode_frame(Query(1)))
    assert info.value.reason is MalformedReason.WRONG_SHAPE


def test_invalid_utf8_in_a_string_is_malformed() -> None:
    # Older msgspec raised UnicodeDecodeError here (found by the property tests), newer a
    # DecodeError: either way it is our MalformedFrame, with our reason.
    payload = bytearray(msgspec.msgpack.encode(Decided(1, "ab")))
    payload[-2] = 0x80
    with pytest.raises(MalformedFrame) as info:
        CODEC.decoder().feed(frame(FRAME_VERSION, bytes(payload)))
    assert info.value.reason is MalformedReason.NOT_MSGPACK


def test_decoded_bytes_do_not_refer_to_the_buffer_and_errors_release_it() -> None:
    # Payloads are decoded through a view of the decoder's buffer: what a message keeps must
    # be its own copy, and a failure must leave the buffer free to be cleared.
    codec = Codec[Ping | Blob](Ping | Blob)
    decoder = codec.decoder()
    good = codec.encode_frame(Blob(1, b"\x01" * 1000))
    (blob,) = decoder.feed(good + good[:10])  # a whole frame and the start of the next
    assert decoder.buffered_bytes == 10
    assert decoder.feed(good[10:] + good) == [blob, blob]
    assert type(blob.data) is bytes and blob.data == b"\x01" * 1000
    with pytest.raises(MalformedFrame):
        decoder.feed(good + frame(FRAME_VERSION, b"\xc1") + good[:5])
    assert decoder.buffered_bytes == 0  # cleared: no view of it outlived the error
    with pytest.raises(MalformedFrame):
        decoder.feed(good)
