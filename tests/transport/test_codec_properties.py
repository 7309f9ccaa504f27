"""Property tests of FrameDecoder: chunking never matters, and hostile bytes only ever raise
ProtocolError (never a msgspec, struct, buffer or index error leaking out)."""

from __future__ import annotations

import contextlib
import itertools
import struct

from hypothesis import given
from hypothesis import strategies as st

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
from pypaxos.transport.codec import Codec, FrameDecoder, Hello, ProtocolError

CODEC = Codec[Message](Message)
SMALL = Codec[Message](Message, frame_bytes_max=64)  # so random length headers often fit

ids = st.integers(min_value=0, max_value=2**63 - 1)
ballots = st.builds(Ballot, st.integers(-1, 2**40), ids)
values = st.text(max_size=40)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Prepare, ids, ballots),
    st.builds(Promise, ids, ballots, ballots, st.none() | values),
    st.builds(Accept, ids, ballots, values),
    st.builds(Accepted, ids, ballots, values),
    st.builds(Nack, ids, ballots, ballots),
    st.builds(Query, ids),
    st.builds(Decided, ids, values),
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def feed_all(decoder: FrameDecoder[Message], chunks: list[bytes]) -> list[Message]:
    out: list[Message] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out


@given(st.lists(messages, max_size=30), st.lists(st.integers(0, 10_000), max_size=40))
def test_any_chunking_yields_the_same_messages(msgs: list[Message], cuts: list[int]) -> None:
    stream = CODEC.encode_hello(Hello(5, "c")) + CODEC.encode_frames(msgs)
    decoder = CODEC.decoder(handshake=True)
    assert feed_all(decoder, chunked(stream, cuts)) == msgs
    assert decoder.hello == Hello(5, "c")
    assert decoder.buffered_bytes == 0


@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=10), st.booleans())
def test_random_bytes_raise_only_protocol_errors(
    data: bytes, cuts: list[int], handshake: bool
) -> None:
    for codec in (CODEC, SMALL):
        decoder = codec.decoder(handshake=handshake)
        with contextlib.suppress(ProtocolError):
            feed_all(decoder, chunked(data, cuts))
        assert decoder.buffered_bytes <= codec.frame_bytes_max + 4


@given(
    st.lists(messages, min_size=1, max_size=10),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    st.lists(st.integers(0, 10_000), max_size=10),
)
def test_corrupted_valid_streams_raise_only_protocol_errors(
    msgs: list[Message], flips: list[tuple[int, int]], cuts: list[int]
) -> None:
    # Corrupting a valid stream reaches deep into msgpack and struct validation, which
    # uniformly random bytes rarely do.
    stream = bytearray(CODEC.encode_hello(Hello(1)) + CODEC.encode_frames(msgs))
    for index, byte in flips:
        stream[index % len(stream)] = byte
    decoder = CODEC.decoder(handshake=True)
    try:
        decoded = feed_all(decoder, chunked(bytes(stream), cuts))
    except ProtocolError:
        return
    assert all(isinstance(m, Message) for m in decoded)


@given(st.integers(0, 2**32 - 1))
def test_length_headers_over_the_limit_fail_at_once(length: int) -> None:
    decoder = SMALL.decoder()
    try:
        decoder.feed(struct.pack(">I", length))
    except ProtocolError:
        assert length > SMALL.frame_bytes_max or length == 0
    else:
        assert 0 < length <= SMALL.frame_bytes_max
