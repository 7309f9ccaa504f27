"""``kv.store.KeyStore``: a dict in behaviour, a deterministic order, growth one shard at a time."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from pypaxos.kv.store import SHARDS, KeyStore, shard_of

_KEYS = st.binary(max_size=3)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), _KEYS, st.integers(0, 9)),
        st.tuples(st.just("del"), _KEYS, st.just(0)),
        st.tuples(st.just("pop"), _KEYS, st.just(0)),
        st.tuples(st.just("pop_default"), _KEYS, st.integers(0, 9)),
        st.tuples(st.just("setdefault"), _KEYS, st.integers(0, 9)),
        st.tuples(st.just("get"), _KEYS, st.just(0)),
        st.tuples(st.just("clear"), st.just(b""), st.just(0)),
    ),
    max_size=60,
)


def _in_store_order(model: dict[bytes, int]) -> list[bytes]:
    """The order the store promises: by shard, then first-write order within a shard (a
    stable sort of the dict's own first-write order)."""
    return sorted(model, key=shard_of)


@settings(max_examples=300, deadline=None)
@given(_OPS)
def test_store_behaves_as_a_dict(ops: list[tuple[str, bytes, int]]) -> None:
    store: KeyStore[int] = KeyStore()
    model: dict[bytes, int] = {}
    for name, key, value in ops:
        if name == "set":
            store[key] = value
            model[key] = value
        elif name in ("del", "pop"):
            if key in model:
                assert (store.pop(key) if name == "pop" else store[key]) == model.pop(key)
                if name == "del":
                    del store[key]
            else:
                assert key not in store
                try:
                    store.pop(key) if name == "pop" else store.__delitem__(key)
                except KeyError:
                    pass
                else:
                    raise AssertionError("removing an absent key must raise KeyError")
        elif name == "pop_default":
            assert store.pop(key, value) == model.pop(key, value)
        elif name == "setdefault":
            assert store.setdefault(key, value) == model.setdefault(key, value)
        elif name == "get":
            assert store.get(key) == model.get(key)
            assert store.get(key, -1) == model.get(key, -1)
        else:
            store.clear()
            model.clear()
        assert len(store) == len(model)
        assert bool(store) == bool(model)
    order = _in_store_order(model)
    assert list(store) == order
    assert list(store.keys()) == order
    assert list(store.items()) == [(key, model[key]) for key in order]
    assert list(store.values()) == [model[key] for key in order]
    assert store == model
    assert dict(store.items()) == model
    assert all(key in store for key in model)
    assert 1 not in store  # not bytes: absent, not an error


def test_a_store_built_from_its_own_order_has_that_order() -> None:
    """A snapshot is written in the store's order and loaded in it: the order survives."""
    store: KeyStore[int] = KeyStore()
    for i in range(3000):
        store[b"k%d" % (i * 7919 % 3001)] = i
    for i in range(0, 3000, 3):
        store.pop(b"k%d" % i, None)
    loaded: KeyStore[int] = KeyStore()
    loaded.add_all(store.items())
    assert list(loaded.items()) == list(store.items())


_ORDER_SCRIPT = textwrap.dedent(
    """
    from pypaxos.kv import KVStateMachine, MSet, RandomKey, Request, encode_request
    from pypaxos.kv.commands import Delete
    from pypaxos.kv.store import KeyStore

    store = KeyStore()
    for i in range(2000):
        store[b"key:%d" % (i * 37 % 2003)] = i
    for i in range(0, 2000, 5):
        del store[b"key:%d" % i]
    print(list(store)[:50], len(store))

    machine = KVStateMachine()
    pairs = tuple((b"user:%d" % (i * 13 % 101), b"v") for i in range(100))
    machine.apply(encode_request(Request(1, 1, MSet(pairs))))
    machine.apply(encode_request(Request(1, 2, Delete(b"user:13"))))
    print(machine.apply(encode_request(Request(1, 3, RandomKey()))))
    print(machine.snapshot().hex())
    """
)


def test_order_is_the_same_under_any_hash_seed() -> None:
    """Iteration order, ``RANDOMKEY`` and the snapshot's bytes do not depend on Python's
    salted ``hash``: two processes with different ``PYTHONHASHSEED`` agree."""
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _ORDER_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert outputs[0].count("\n") == 3


def _entries_moved_by_growth(table: dict[bytes, int], key: bytes) -> int:
    """Insert ``key`` into ``table``; the entries a table rebuild moved (0: no rebuild).  A
    rebuild is seen as a change of the table's allocated size."""
    before_bytes, before_len = sys.getsizeof(table), len(table)
    table[key] = 0
    return before_len if sys.getsizeof(table) != before_bytes else 0


def test_no_insertion_rebuilds_more_than_one_shard() -> None:
    """Filling a store grows one shard at a time: the largest rebuild moves about
    ``1 / SHARDS`` of the keys, where a plain dict's moves two thirds of them."""
    keys = [b"key:%012d" % i for i in range(60_000)]
    plain: dict[bytes, int] = {}
    plain_worst = max(_entries_moved_by_growth(plain, key) for key in keys)
    store: KeyStore[int] = KeyStore()
    store_worst = 0
    for key in keys:
        shard = store.shards[shard_of(key)]
        sizes_elsewhere = sys.getsizeof(store.shards[(shard_of(key) + 1) % SHARDS])
        store_worst = max(store_worst, _entries_moved_by_growth(shard, key))
        assert sys.getsizeof(store.shards[(shard_of(key) + 1) % SHARDS]) == sizes_elsewhere
    assert len(store) == len(keys)
    assert plain_worst > len(keys) // 2
    # An even spread puts len(keys) / SHARDS keys in a shard; allow twice that.
    assert 0 < store_worst <= 2 * len(keys) // SHARDS
