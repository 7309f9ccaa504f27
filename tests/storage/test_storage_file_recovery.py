"""Recovery on open: a torn tail is truncated and logged; anything else damaged stops the node."""

from __future__ import annotations

import logging
import random
import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from pypaxos.storage import CorruptLogError, FileStorage
from pypaxos.storage.file import encode_frame, segment_name

RECORDS = [b"record-%d-" % i + b"p" * (i * 7) for i in range(1, 6)]
FRAME_OFFSETS = [sum(len(encode_frame(r)) for r in RECORDS[:i]) for i in range(len(RECORDS))]


def write_log(data_dir: Path, **options: int) -> Path:
    with FileStorage(data_dir, **options) as s:  # type: ignore[arg-type]
        for record in RECORDS:
            s.append(record)
    return data_dir / segment_name(1)


def append_bytes(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def flip_byte(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x40
    path.write_bytes(bytes(raw))


def garbage(n: int) -> bytes:
    return random.Random(7).randbytes(n)


TORN_TAILS: dict[str, Callable[[Path], None]] = {
    "half a header": lambda p: append_bytes(p, encode_frame(b"next record")[:5]),
    "header but half a payload": lambda p: append_bytes(p, encode_frame(b"next record")[:14]),
    "random garbage": lambda p: append_bytes(p, garbage(300)),
    "a whole frame with a bad CRC": lambda p: append_bytes(
        p, struct.pack("<II", 11, 12345) + b"next record"
    ),
}


def test_zeros_after_the_last_record_are_a_clean_end_not_a_tear(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What preallocation leaves (and some file systems after a crash): no warning, nothing
    truncated, and the next record overwrites the zeros."""
    segment = write_log(tmp_path)
    good_size = segment.stat().st_size
    append_bytes(segment, bytes(8192))
    with caplog.at_level(logging.WARNING, logger="pypaxos.storage.file"):
        s = FileStorage(tmp_path)
    assert "truncating" not in caplog.text
    assert [r.data for r in s.records()] == RECORDS
    assert s.append(b"after the zeros") == 6
    s.close()
    assert segment.stat().st_size == good_size + 8192  # written over the zeros, not after
    with FileStorage(tmp_path) as s:
        assert [r.data for r in s.records()] == [*RECORDS, b"after the zeros"]


@pytest.mark.parametrize("damage", TORN_TAILS.values(), ids=TORN_TAILS.keys())
def test_a_torn_tail_is_truncated_logged_and_the_log_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Callable[[Path], None]
) -> None:
    segment = write_log(tmp_path)
    good_size = segment.stat().st_size
    damage(segment)
    with caplog.at_level(logging.WARNING, logger="pypaxos.storage.file"):
        s = FileStorage(tmp_path)
    assert f"truncating torn tail of {segment} at byte offset {good_size}" in caplog.text
    assert segment.stat().st_size == good_size
    assert [r.data for r in s.records()] == RECORDS
    assert s.append(b"after the tear") == 6
    s.close()
    with FileStorage(tmp_path) as s:
        assert [r.data for r in s.records()] == [*RECORDS, b"after the tear"]


def test_a_bad_crc_on_the_very_last_record_is_a_torn_tail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    segment = write_log(tmp_path)
    flip_byte(segment, segment.stat().st_size - 1)
    with caplog.at_level(logging.WARNING), FileStorage(tmp_path) as s:
        assert [r.data for r in s.records()] == RECORDS[:4]
    assert f"at byte offset {FRAME_OFFSETS[4]}: CRC mismatch" in caplog.text


def test_a_crc_mismatch_before_the_tail_refuses_to_start(tmp_path: Path) -> None:
    segment = write_log(tmp_path)
    flip_byte(segment, FRAME_OFFSETS[2] + 8 + 3)  # inside record 3's payload
    with pytest.raises(CorruptLogError) as info:
        FileStorage(tmp_path)
    message = str(info.value)
    assert f"{segment} at byte offset {FRAME_OFFSETS[2]}: CRC mismatch" in message
    assert f"valid record at byte offset {FRAME_OFFSETS[3]}" in message
    assert "will not start" in message
    assert (info.value.path, info.value.offset) == (str(segment), FRAME_OFFSETS[2])
    assert segment.stat().st_size == FRAME_OFFSETS[-1] + len(encode_frame(RECORDS[-1]))


def test_an_impossible_length_before_the_tail_refuses_to_start(tmp_path: Path) -> None:
    segment = write_log(tmp_path)
    raw = bytearray(segment.read_bytes())
    raw[FRAME_OFFSETS[1] : FRAME_OFFSETS[1] + 4] = struct.pack("<I", 0xFFFFFFF0)
    segment.write_bytes(bytes(raw))
    with pytest.raises(CorruptLogError, match=f"byte offset {FRAME_OFFSETS[1]}: impossible"):
        FileStorage(tmp_path)


def test_a_damaged_record_followed_by_zeros_and_then_data_is_corruption(tmp_path: Path) -> None:
    # Zero runs are skipped quickly when looking for valid data; the data after them still counts.
    segment = write_log(tmp_path)
    good_size = segment.stat().st_size
    append_bytes(segment, bytes(5000) + encode_frame(b"a later record"))
    with pytest.raises(CorruptLogError) as info:
        FileStorage(tmp_path)
    assert f"byte offset {good_size}: impossible record length 0" in str(info.value)
    assert f"valid record at byte offset {good_size + 5000}" in str(info.value)


def test_damage_in_a_segment_that_is_not_the_last_refuses_to_start(tmp_path: Path) -> None:
    with FileStorage(tmp_path, segment_bytes_max=64) as s:
        for i in range(6):
            s.append(b"r%d" % i + b"." * 30)  # 40-byte frames: one per segment
    first = tmp_path / segment_name(1)
    with first.open("r+b") as f:
        f.truncate(30)  # even a clean cut is corruption here: finished segments were fsynced
    with pytest.raises(CorruptLogError) as info:
        FileStorage(tmp_path, segment_bytes_max=64)
    assert info.value.path == str(first)
    assert "byte offset 0" in str(info.value) and "not the last" in str(info.value)


def test_a_missing_segment_refuses_to_start(tmp_path: Path) -> None:
    with FileStorage(tmp_path, segment_bytes_max=64) as s:
        for i in range(6):
            s.append(b"r%d" % i + b"." * 30)
    (tmp_path / segment_name(3)).unlink()
    with pytest.raises(CorruptLogError, match="starts at index 4 but the one before it ends at 2"):
        FileStorage(tmp_path, segment_bytes_max=64)


def test_a_missing_first_segment_without_a_snapshot_refuses_to_start(tmp_path: Path) -> None:
    with FileStorage(tmp_path, segment_bytes_max=64) as s:
        for i in range(3):
            s.append(b"r%d" % i + b"." * 30)
    (tmp_path / segment_name(1)).unlink()
    with pytest.raises(CorruptLogError, match=r"records 1\.\.1 are missing"):
        FileStorage(tmp_path, segment_bytes_max=64)


def test_damage_after_open_is_reported_when_the_records_are_read(tmp_path: Path) -> None:
    segment = write_log(tmp_path)
    with FileStorage(tmp_path) as s:
        flip_byte(segment, FRAME_OFFSETS[0] + 9)
        with pytest.raises(CorruptLogError, match="byte offset 0: CRC mismatch"):
            list(s.records())


def test_an_empty_last_segment_after_a_crash_during_rotation_is_fine(tmp_path: Path) -> None:
    with FileStorage(tmp_path, segment_bytes_max=64) as s:
        for i in range(3):
            s.append(b"r%d" % i + b"." * 30)
    (tmp_path / segment_name(4)).touch()  # created, then the process died before writing
    with FileStorage(tmp_path, segment_bytes_max=64) as s:
        assert s.last_index == 3
        assert s.append(b"four") == 4
