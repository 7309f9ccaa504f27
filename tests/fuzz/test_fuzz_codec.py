"""Fuzzing the peer wire: frames, the Hello handshake and the auth challenge, on hostile bytes.

Anyone who can reach a peer port can send it bytes before proving anything, so the decoding
that runs first must hold up to any input.  Checked on random bytes, on streams of real frames
(the runtime's message union, ``runtime.wire.WireMessage``) whose payloads are mutated with
their length headers kept right (so the bytes reach msgpack and msgspec's validation), and on
the corpus (``corpus/codec/``, ``corpus/challenge/``):

* ``FrameDecoder(handshake=True)`` gives typed messages or raises a ``ProtocolError``
  subclass with its fields set, never another exception; the error sticks; messages only ever
  come after a ``Hello``; its buffer never holds more than one partial frame
  (``frame_bytes_max`` plus the length header), however the bytes are cut;
* a valid stream decodes exactly as sent;
* a dialling node's reading of the acceptor's ``auth.Challenge`` frame gives a nonce, or
  ``HandshakeRejected`` (a ``ProtocolError``), or ``EOFError`` for a stream that ends early:
  the three outcomes its caller handles (anything else would kill the peer's writer task).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, get_args

import msgspec
import pytest
from fuzz_helpers import chunkings, corpus_bytes, corpus_files, fuzz_settings, mutated
from hypothesis import given
from hypothesis import strategies as st

from pypaxos.core.types import Ballot
from pypaxos.multi import messages as mm
from pypaxos.multi.log import Entry, Vote
from pypaxos.runtime.wire import CODEC, Forward, ForwardReply, WireMessage
from pypaxos.transport.auth import NONCE_BYTES, Challenge
from pypaxos.transport.codec import (
    FRAME_VERSION,
    HEADER,
    LENGTH_BYTES,
    Codec,
    FrameTooLarge,
    Hello,
    MalformedFrame,
    MalformedReason,
    ProtocolError,
    UnsupportedVersion,
)
from pypaxos.transport.tcp import CHALLENGE_BYTES_MAX, HandshakeRejected, _read_challenge

SMALL: Codec[WireMessage] = Codec(WireMessage, frame_bytes_max=512)
"""The runtime's message union with a small frame bound, so random lengths often fit."""
CODECS = [SMALL, CODEC]
MESSAGE_TYPES = tuple(get_args(WireMessage))

ints = st.integers(-(2**63), 2**64 - 1)
small = st.integers(0, 2**16)
ballots = st.builds(Ballot, ints, ints)
entries = st.builds(Entry, ints, ints, st.binary(max_size=16))
batches = st.lists(entries, max_size=3).map(tuple)
messages: st.SearchStrategy[Any] = st.one_of(
    st.builds(mm.Prepare, small, ballots, small),
    st.builds(
        mm.Promise,
        small,
        ballots,
        small,
        small,
        small,
        st.lists(st.builds(Vote, small, ballots, batches), max_size=2).map(tuple),
    ),
    st.builds(mm.Accept, small, ballots, small, batches, small),
    st.builds(mm.Accepted, small, ballots, small),
    st.builds(mm.Nack, small, ballots, ballots),
    st.builds(mm.Heartbeat, small, ballots, small),
    st.builds(mm.HeartbeatAck, small, ballots, small),
    st.builds(mm.CatchUp, small, small),
    st.builds(mm.Decided, small, small, st.lists(batches, max_size=2).map(tuple), small),
    st.builds(mm.SnapshotChunk, small, small, small, small, st.binary(max_size=32)),
    st.builds(mm.SnapshotRequest, small, small, small, small),
    st.builds(mm.PreVoteRequest, small, small),
    st.builds(mm.PreVoteReply, small, small, st.booleans(), ballots),
    st.builds(Forward, small, small, st.binary(max_size=32)),
    st.builds(
        ForwardReply,
        small,
        small,
        st.sampled_from(["reply", "busy", "redirect"]),
        st.binary(max_size=16),
        st.none() | small,
    ),
)
hellos = st.builds(
    Hello, small, st.none() | st.text(max_size=12), st.none() | st.binary(max_size=32)
)


def frame(payload: bytes, version: int = FRAME_VERSION) -> bytes:
    return HEADER.pack(len(payload) + 1, version) + payload


def run_frames(
    chunks: list[bytes], codec: Codec[WireMessage]
) -> tuple[list[Any], ProtocolError | None]:
    """Feed ``chunks`` to a handshake decoder, checking its invariants after each one."""
    decoder = codec.decoder(handshake=True)
    out: list[Any] = []
    error: ProtocolError | None = None
    for chunk in chunks:
        try:
            got = decoder.feed(chunk)
        except ProtocolError as raised:
            assert error is None or raised is error, "a failed decoder raises its first error"
            error = raised
            check_error_fields(raised, codec)
            assert decoder.buffered_bytes == 0
            continue
        assert error is None, "after an error every feed raises it"
        assert all(isinstance(m, MESSAGE_TYPES) for m in got)
        if got:
            assert isinstance(decoder.hello, Hello), "messages only after a Hello"
        out += got
        assert decoder.buffered_bytes < LENGTH_BYTES + codec.frame_bytes_max
    assert decoder.awaiting_hello == (decoder.hello is None)
    return out, error


def check_error_fields(error: ProtocolError, codec: Codec[WireMessage]) -> None:
    match error:
        case FrameTooLarge():
            assert error.length > codec.frame_bytes_max == error.frame_bytes_max
        case UnsupportedVersion():
            assert error.version != FRAME_VERSION
        case MalformedFrame():
            assert isinstance(error.reason, MalformedReason)
            assert error.what in ("frame", "message", "Hello handshake")
        case _:
            raise AssertionError(f"unexpected ProtocolError subclass {type(error).__name__}")


cuts = st.lists(st.integers(0, 4096), max_size=10)


@pytest.mark.parametrize("path", corpus_files("codec"), ids=lambda p: p.name)
def test_corpus_streams(path: Path) -> None:
    data = path.read_bytes()
    for codec in CODECS:
        whole = run_frames([data], codec)
        bytewise = run_frames([data[i : i + 1] for i in range(len(data))], codec)
        assert repr(whole) == repr(bytewise)


@fuzz_settings(600)
@given(st.binary(max_size=600), cuts)
def test_random_bytes(data: bytes, cut_at: list[int]) -> None:
    for codec in CODECS:
        run_frames(chunkings(data, cut_at), codec)


@fuzz_settings(500)
@given(mutated(corpus_bytes("codec")), cuts)
def test_mutated_corpus(data: bytes, cut_at: list[int]) -> None:
    for codec in CODECS:
        run_frames(chunkings(data, cut_at), codec)


@fuzz_settings(600)
@given(hellos, st.lists(messages, max_size=6), st.data())
def test_mutated_payloads_behind_valid_headers(
    hello: Hello, msgs: list[Any], data: st.DataObject
) -> None:
    """Each frame's payload mutated, its length header rewritten to fit: msgpack and msgspec
    see the damage, not the framing."""
    payloads = [msgspec.msgpack.encode(hello), *map(msgspec.msgpack.encode, msgs)]
    seeds = data.draw(st.lists(st.sampled_from(range(len(payloads))), max_size=3))
    for index in seeds:
        payloads[index] = data.draw(mutated([payloads[index]]))
    stream = b"".join(frame(p) for p in payloads)
    run_frames(chunkings(stream, data.draw(cuts)), CODEC)


@fuzz_settings(500)
@given(hellos, st.lists(messages, max_size=8), cuts)
def test_valid_streams_decode_exactly_as_sent(
    hello: Hello, msgs: list[Any], cut_at: list[int]
) -> None:
    stream = CODEC.encode_hello(hello) + CODEC.encode_frames(msgs)
    decoder = CODEC.decoder(handshake=True)
    got: list[Any] = []
    for chunk in chunkings(stream, cut_at):
        got += decoder.feed(chunk)
    assert decoder.hello == hello
    assert got == msgs
    assert decoder.buffered_bytes == 0


def read_challenge(data: bytes) -> bytes | BaseException:
    async def read() -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await _read_challenge(reader)

    try:
        return asyncio.run(read())
    except (ProtocolError, EOFError) as error:  # what the dialling node's caller handles
        return error


def check_challenge(data: bytes) -> bytes | BaseException:
    got = read_challenge(data)
    if isinstance(got, HandshakeRejected):
        assert got.reason == "proof"
    elif isinstance(got, bytes):
        # A nonce came only from a whole, well-sized version-1 frame.
        length, version = HEADER.unpack_from(data)
        assert version == FRAME_VERSION and 1 < length <= CHALLENGE_BYTES_MAX
        assert len(data) >= LENGTH_BYTES + length
    return got


@pytest.mark.parametrize("path", corpus_files("challenge"), ids=lambda p: p.name)
def test_corpus_challenges(path: Path) -> None:
    check_challenge(path.read_bytes())


def test_a_real_challenge_gives_its_nonce() -> None:
    nonce = bytes(range(NONCE_BYTES))
    assert check_challenge(frame(msgspec.msgpack.encode(Challenge(nonce)))) == nonce


@fuzz_settings(500)
@given(st.one_of(st.binary(max_size=80), mutated(corpus_bytes("challenge"))))
def test_challenge_frames(data: bytes) -> None:
    check_challenge(data)


@fuzz_settings(500)
@given(st.data())
def test_challenge_payloads_behind_valid_headers(data: st.DataObject) -> None:
    seed = msgspec.msgpack.encode(Challenge(data.draw(st.binary(max_size=40))))
    payload = data.draw(mutated([seed]))[: CHALLENGE_BYTES_MAX - 1]
    check_challenge(frame(payload) + data.draw(st.binary(max_size=4)))
