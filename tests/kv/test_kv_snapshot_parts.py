"""The store's data parts as a snapshot writes them: each shard's dictionary encoded as it
stands and joined under one map header (``kv.state_machine._data_chunks``), which must be
byte for byte the encoding of the merged dictionary, bounded and complete (a machine's whole
chunks, collections included, rebuilding it: ``test_kv_snapshot_chunks.py``)."""

from __future__ import annotations

from zlib import crc32

import msgspec
import pytest

from pypaxos.kv.state_machine import (
    _SNAPSHOT_ENCODER,
    SHARD_WHOLE_MAX,
    _ChunkPartOut,
    _data_chunks,
    _map_header,
    _map_header_of,
)
from pypaxos.kv.store import SHARD_MASK, KeyStore

ENCODE = _SNAPSHOT_ENCODER.encode


def _store(keys: int, value_bytes: int) -> KeyStore[bytes]:
    store: KeyStore[bytes] = KeyStore()
    for i in range(keys):
        store[b"key:%d" % i] = b"v" * (value_bytes + i % 7)
    return store


def _one_shard_keys(count: int) -> list[bytes]:
    """Keys that all fall in shard 0."""
    keys, i = [], 0
    while len(keys) < count:
        key = b"s%d" % i
        if crc32(key) & SHARD_MASK == 0:
            keys.append(key)
        i += 1
    return keys


def _parts_data(parts: list[bytes]) -> list[dict[bytes, bytes]]:
    """Each part's data map, after checking it is exactly the merged map's encoding."""
    maps = []
    for part in parts:
        data = msgspec.msgpack.decode(part)[1]
        assert part == ENCODE(_ChunkPartOut(data=data))
        maps.append(data)
    return maps


@pytest.mark.parametrize("entries", [0, 1, 15, 16, 65_535, 65_536, 70_000])
def test_map_headers_round_trip_at_every_width(entries: int) -> None:
    header = _map_header(entries)
    assert _map_header_of(header + b"rest") == (entries, len(header))
    assert ENCODE({b"%d" % i: b"" for i in range(entries)}).startswith(header)  # msgspec's form


def test_anything_but_a_map_is_refused() -> None:
    with pytest.raises(ValueError):
        _map_header_of(ENCODE([1, 2]))


@pytest.mark.parametrize(
    ("keys", "value_bytes", "bytes_max"),
    [(3000, 20, 4096), (70_000, 0, 1 << 22), (5000, 100, 1 << 20), (0, 0, 4096)],
)
def test_joined_parts_are_the_merged_maps_bytes_bounded_and_complete(
    keys: int, value_bytes: int, bytes_max: int
) -> None:
    store = _store(keys, value_bytes)
    parts = list(_data_chunks(store, bytes_max, ENCODE))
    maps = _parts_data(parts)
    assert all(len(part) <= bytes_max + 16 for part in parts)  # the envelope's few bytes
    assert [key for data in maps for key in data] == list(store)  # each key once, in order
    # joined, not one part per shard: every part but the last is filled to near the bound
    assert all(len(part) >= bytes_max // 2 for part in parts[:-1])


def test_a_shard_over_the_bound_is_kept_whole_up_to_a_limit_then_cut_key_by_key() -> None:
    bytes_max = 1024
    keys = _one_shard_keys(30)
    whole: KeyStore[bytes] = KeyStore()
    for key in keys[:4]:  # about 2.4 KiB in one shard: over the bound, under the limit
        whole[key] = b"x" * 600
    assert [len(data) for data in _parts_data(list(_data_chunks(whole, bytes_max, ENCODE)))] == [4]
    cut: KeyStore[bytes] = KeyStore()
    for key in keys:  # about 18 KiB in one shard: cut as the bound says
        cut[key] = b"x" * 600
    parts = list(_data_chunks(cut, bytes_max, ENCODE))
    assert len(parts) > 18_000 // (bytes_max * SHARD_WHOLE_MAX)
    assert all(len(part) <= bytes_max + 600 + 64 for part in parts)  # one entry past at most
    assert [key for data in _parts_data(parts) for key in data] == list(cut)
