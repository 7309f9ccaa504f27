"""What the state digest (``kv.digest``) costs: per key written, per collection changed.

* ``apply``: 100,000 ``SET`` s of 16-byte values applied in batches of 64 (the pipelined hot
  path), then one ``state_digest()``; the same batches with the digest's bookkeeping switched
  off (the machine's dirty set replaced by a sink that keeps nothing), so the difference is
  the digest's whole cost;
* ``settle``: settling 1,024 dirty string keys (the most one ``INFO`` settles, and what the
  machine settles by itself each time that many are dirty);
* ``collection``: hashing one changed list of 10,000 / 100,000 / 1,000,000 items.

Best of ``--repeat`` passes, milliseconds.  Run::

    .venv/bin/python bench/digest_bench.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from collections import deque
from collections.abc import Callable

from pypaxos.kv import KVStateMachine, RequestBatch, Set, encode_request
from pypaxos.kv.digest import FOLD_DIRTY_MAX, KeySums, key_hash
from pypaxos.kv.values import ListValue

T0 = 1_700_000_000_000
KEYS = 100_000
BATCH = 64


class _Sink(set[bytes]):
    """A dirty set that keeps nothing: the bookkeeping switched off."""

    def add(self, key: bytes) -> None:
        pass


def _batches() -> list[bytes]:
    return [
        encode_request(
            RequestBatch(
                1,
                seq + 1,
                tuple(Set(b"key:%07d" % (seq * BATCH + i), b"v" * 16) for i in range(BATCH)),
                T0,
            )
        )
        for seq in range(KEYS // BATCH)
    ]


def _apply(batches: list[bytes], digest: bool) -> float:
    machine = KVStateMachine()
    if not digest:
        machine._digest.dbs[0].dirty = _Sink()
    started = time.perf_counter()
    for batch in batches:
        machine.apply(batch)
    machine.state_digest()
    return time.perf_counter() - started


def _settle() -> float:
    data = {b"key:%07d" % i: b"v" * 32 for i in range(KEYS)}
    part = KeySums()
    part.dirty.update(data)
    part.settle(data, {})
    part.dirty.update(list(data)[:FOLD_DIRTY_MAX])
    started = time.perf_counter()
    part.settle(data, {})
    return time.perf_counter() - started


def _collection(items: int) -> Callable[[], float]:
    value = ListValue(deque(b"item%07d" % i for i in range(items)))

    def run() -> float:
        started = time.perf_counter()
        key_hash(b"list", value, None)
        return time.perf_counter() - started

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="passes; the best is shown (5)")
    args = parser.parse_args()
    batches = _batches()

    def best(run: Callable[[], float]) -> float:
        return min(run() for _ in range(args.repeat)) * 1000

    with_digest = best(lambda: _apply(batches, True))
    without = best(lambda: _apply(batches, False))
    print(
        f"apply {KEYS:,} SET in batches of {BATCH}: {with_digest:.0f} ms with the digest, "
        f"{without:.0f} ms without ({(with_digest - without) * 1000 / KEYS:.2f} us a key)"
    )
    print(f"settle {FOLD_DIRTY_MAX:,} dirty keys: {best(_settle):.1f} ms")
    for items in (10_000, 100_000, 1_000_000):
        print(f"hash a changed list of {items:,} items: {best(_collection(items)):.1f} ms")


if __name__ == "__main__":
    main()
