"""Fuzzing the RESP parser (``transport.resp``): what a hostile client can do with bytes.

The client port is open to anyone who can reach it, so ``RespParser.feed`` must hold up to
any byte stream in any chunking.  Checked on random bytes, RESP-shaped garbage, mutations of
the corpus (``corpus/resp/``) and valid streams:

* the only exception is ``RespProtocolError`` (or a subclass), and once raised it sticks;
* a valid stream parses exactly as sent, however it is cut;
* memory stays bounded: ``buffered_bytes`` never exceeds the configured bounds (a partial
  command's finished arguments, one partial argument or line), whatever the chunk sizes, and
  no command returned breaks a bound;
* the work is linear in the input, asserted structurally rather than by wall clock: a
  counting buffer adds up every byte that ``find`` scans and every byte the fast path copies,
  and the total must stay within a constant times the bytes fed (plus, per feed, a bulk
  header read again while its body arrives).

Small bounds are used so that the fuzzer reaches them with short inputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fuzz_helpers import CORPUS, chunkings, corpus_bytes, corpus_files, fuzz_settings, mutated
from hypothesis import given
from hypothesis import strategies as st

from pypaxos.transport.resp import (
    ITEM_OVERHEAD_BYTES,
    CommandTooLarge,
    RespParser,
    RespProtocolError,
    encode_command,
)

FAST = {"bulk_bytes_max": 64, "array_items_max": 200, "inline_bytes_max": 64}
FAST["command_bytes_max"] = 64 * (FAST["bulk_bytes_max"] + ITEM_OVERHEAD_BYTES)
"""Bounds that leave the fast path on (no command it takes can exceed command_bytes_max)."""
TIGHT = {**FAST, "command_bytes_max": 1024}
"""Bounds under which only the positional parser runs (it counts every argument)."""
CONFIGS = [FAST, TIGHT]
HEADER_LINE_MAX = 32  # what resp allows an array or bulk header line
WORK_PER_BYTE = 4
WORK_PER_FEED = HEADER_LINE_MAX + 4  # a bulk header read again while its body arrives


def partial_bytes_max(limits: dict[str, int]) -> int:
    """What a parser may hold between feeds, whatever the chunk sizes."""
    return limits["command_bytes_max"] + max(  # a partial command's finished arguments
        limits["inline_bytes_max"], HEADER_LINE_MAX + 2 + limits["bulk_bytes_max"] + 2
    )


SEEDS = corpus_bytes("resp")


class CountingBuffer(bytearray):
    """The parser's buffer, counting the bytes each ``find`` scans."""

    examined = 0

    def find(self, sub: Any, start: Any = 0, end: Any = None) -> int:
        index = super().find(sub, start) if end is None else super().find(sub, start, end)
        stop = index + len(sub) if index >= 0 else len(self) if end is None else end
        self.examined += max(0, stop - start)
        return index


class CountingParser(RespParser):
    """A ``RespParser`` that counts its work: bytes scanned and bytes the fast path copies."""

    def __init__(self, limits: dict[str, int]) -> None:
        super().__init__(**limits)
        self._buffer = CountingBuffer()
        self.fast_examined = 0

    def _parse_fast(self, position: int, commands: list[list[bytes]]) -> int:
        self.fast_examined += len(self._buffer) - position  # it copies and splits the rest
        return super()._parse_fast(position, commands)

    @property
    def work(self) -> int:
        buffer = self._buffer
        assert isinstance(buffer, CountingBuffer)
        return buffer.examined + self.fast_examined


def check_command_bounds(command: list[bytes], limits: dict[str, int]) -> None:
    assert command, "an empty command is never returned"
    assert len(command) <= limits["array_items_max"]
    assert all(len(arg) <= limits["bulk_bytes_max"] for arg in command)
    inline_bytes = sum(map(len, command)) + len(command) - 1  # if it came as an inline line
    cost = sum(len(arg) + ITEM_OVERHEAD_BYTES for arg in command)
    assert cost <= limits["command_bytes_max"] or inline_bytes <= limits["inline_bytes_max"]


def run_stream(
    chunks: list[bytes], limits: dict[str, int]
) -> tuple[list[list[bytes]], RespProtocolError | None]:
    """Feed ``chunks``; check the invariants after each; the commands and the error, if any."""
    parser = CountingParser(limits)
    commands: list[list[bytes]] = []
    error: RespProtocolError | None = None
    fed = feeds = 0
    for chunk in chunks:
        try:
            got = parser.feed(chunk)
        except RespProtocolError as raised:
            assert error is None or raised is error, "a later feed raises the first error"
            error = raised
            got = []
        else:
            assert error is None, "after an error every feed raises it"
            error = parser.error  # commands came before the bad bytes: the error is kept
        for command in got:
            check_command_bounds(command, limits)
        commands += got
        fed, feeds = fed + len(chunk), feeds + 1
        assert parser.buffered_bytes <= partial_bytes_max(limits)
        if parser._pending is not None:  # a partial array: its finished arguments left the buffer
            assert len(parser._buffer) <= HEADER_LINE_MAX + 2 + limits["bulk_bytes_max"] + 1
        if error is not None:
            assert parser.buffered_bytes == 0, "a failed parser holds nothing"
        assert parser.work <= WORK_PER_BYTE * fed + WORK_PER_FEED * feeds, (
            f"{parser.work} bytes examined for {fed} bytes fed in {feeds} feeds"
        )
    if error is not None:
        with pytest.raises(RespProtocolError) as again:
            parser.feed(b"PING\r\n")
        assert again.value is error
    return commands, error


def run_both(chunks: list[bytes]) -> tuple[list[list[bytes]], RespProtocolError | None]:
    """Run under both bounds; where neither bound is reached they must agree."""
    fast, fast_error = run_stream(chunks, FAST)
    tight, tight_error = run_stream(chunks, TIGHT)
    if not isinstance(tight_error, CommandTooLarge):
        assert tight == fast
        assert type(tight_error) is type(fast_error)
    return fast, fast_error


cuts = st.lists(st.integers(0, 4096), max_size=12)


@pytest.mark.parametrize("path", corpus_files("resp"), ids=lambda p: p.name)
@pytest.mark.parametrize("chunk_bytes", [0, 1, 7])
def test_corpus_inputs_in_any_chunking(path: Path, chunk_bytes: int) -> None:
    data = path.read_bytes()
    step = chunk_bytes or max(len(data), 1)
    for limits in CONFIGS:
        whole, _ = run_stream([data], limits)
        pieces = [data[i : i + step] for i in range(0, max(len(data), 1), step)]
        split, _ = run_stream(pieces, limits)
        assert split == whole, "the chunking does not change what parses"


def test_corpus_shrunk_six_megabyte_array_of_empty_strings_is_refused_by_its_cost() -> None:
    """The 6 MB array of empty strings, at fuzz scale: each argument costs its overhead."""
    data = (CORPUS / "resp" / "empty-strings-array-over-cost.resp").read_bytes()
    for limits in CONFIGS:
        _, error = run_stream([data[i : i + 3] for i in range(0, len(data), 3)], limits)
        assert isinstance(error, CommandTooLarge)
        assert error.command_bytes_max == limits["command_bytes_max"]


@fuzz_settings(800)
@given(st.binary(max_size=512), cuts)
def test_random_bytes(data: bytes, cut_at: list[int]) -> None:
    run_both(chunkings(data, cut_at))


RESP_TOKENS = st.sampled_from(
    [
        *(b"*", b"$", b"\r\n", b"\r", b"\n", b"-1", b"0", b"1", b"2", b"3", b"64", b"65"),
        *(b"200", b"201", b"99999999999", b" ", b"+", b"_", b"\xff", b"\x00", b"GET", b"*2\r\n"),
    ]
)
resp_shaped = st.lists(st.one_of(RESP_TOKENS, st.binary(max_size=6)), max_size=80).map(b"".join)


@fuzz_settings(800)
@given(resp_shaped, cuts)
def test_resp_shaped_garbage(data: bytes, cut_at: list[int]) -> None:
    run_both(chunkings(data, cut_at))


@fuzz_settings(800)
@given(mutated(SEEDS), cuts)
def test_mutated_corpus(data: bytes, cut_at: list[int]) -> None:
    run_both(chunkings(data, cut_at))


array_command = st.lists(st.binary(max_size=FAST["bulk_bytes_max"]), min_size=1, max_size=12)
inline_command = st.lists(
    st.from_regex(rb"\A[A-Za-z0-9_.:-]{1,8}\Z"), min_size=1, max_size=6
).filter(lambda words: not words[0].startswith(b"*"))


@fuzz_settings(300)
@given(st.lists(st.one_of(array_command, inline_command.map(tuple)), max_size=12), cuts)
def test_valid_streams_parse_exactly_as_sent(
    commands: list[list[bytes] | tuple[bytes, ...]], cut_at: list[int]
) -> None:
    stream = b"".join(
        encode_command(*c) if isinstance(c, list) else b" ".join(c) + b"\r\n" for c in commands
    )
    got, error = run_both(chunkings(stream, cut_at))
    assert error is None
    assert got == [list(c) for c in commands]


def test_a_pipeline_the_fast_path_refuses_command_by_command_is_linear() -> None:
    """Found by this fuzzer: values holding CRLF made the fast path copy and split the rest of
    the buffer once per command (96 KB of them took 1.5 s, quadratic in the pipeline)."""
    data = b"*1\r\n$2\r\n\r\n\r\n" * 2000
    parser = CountingParser(FAST)
    assert parser.feed(data) == [[b"\r\n"]] * 2000
    assert parser.work <= WORK_PER_BYTE * len(data)


def test_a_whole_inline_line_over_its_bound_is_refused_like_a_partial_one() -> None:
    """Found by this fuzzer: a line over ``inline_bytes_max`` was refused only while its CRLF
    had not arrived; whole, it became a command of any number of arguments."""
    parser = RespParser(inline_bytes_max=64, array_items_max=40)
    with pytest.raises(RespProtocolError):
        parser.feed(b"SET " + b"x " * 60 + b"\r\n")
    assert RespParser(inline_bytes_max=64).feed(b"SET k v\r\n") == [[b"SET", b"k", b"v"]]


def test_command_bytes_max_holds_for_commands_the_fast_path_would_take() -> None:
    """Found by this fuzzer: the fast path did not count a command's cost, so a small
    ``command_bytes_max`` held only when the command arrived in pieces."""
    data = b"*40\r\n" + b"$0\r\n\r\n" * 40  # 40 arguments cost 2560 bytes
    with pytest.raises(CommandTooLarge):
        RespParser(command_bytes_max=1024).feed(data)
    assert RespParser(command_bytes_max=2560).feed(data) == [[b""] * 40]


def test_a_partial_line_is_searched_for_its_end_only_in_new_bytes() -> None:
    """Found by this fuzzer: a partial inline line was searched from its start on every feed,
    so 64 KB sent a byte at a time cost 1.9 s (quadratic in ``inline_bytes_max``)."""
    parser = CountingParser({**FAST, "inline_bytes_max": 8192})
    line = b"SET key " + b"v" * 7990 + b"\r"
    for byte in range(len(line)):
        assert parser.feed(line[byte : byte + 1]) == []
    assert parser.feed(b"\n") == [[b"SET", b"key", b"v" * 7990]]
    assert parser.work <= 3 * (len(line) + 1)


@pytest.mark.parametrize("header", [b"$+1", b"$ 1", b"$1 ", b"$1_0", b"$\xd9\xa1", b"$--1", b"$"])
def test_lengths_are_ascii_digits_as_redis_reads_them(header: bytes) -> None:
    """Found while building this fuzzer's corpus: lengths went through ``int()``, which
    takes a sign, spaces and underscores that no other RESP reader accepts."""
    with pytest.raises(RespProtocolError):
        RespParser().feed(b"*2\r\n$1\r\nx\r\n" + header + b"\r\na\r\n")
    assert RespParser().feed(b"*1\r\n$01\r\na\r\n") == [[b"a"]]  # leading zeros still read
