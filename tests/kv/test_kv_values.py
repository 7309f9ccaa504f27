"""Typed values across the machine: snapshots of collections, determinism whatever the hash
seed, exactly-once collection commands, deadlines on collections, ``TYPE``/``COPY``/``SCAN``."""

from __future__ import annotations

import os
import subprocess
import sys

import msgspec
import pytest
from collection_store import Store

from pypaxos.kv import (
    Array,
    Command,
    Delete,
    Error,
    Expire,
    Integer,
    KVStateMachine,
    Page,
    Rename,
    Request,
    Scan,
    Set,
    Ttl,
    Value,
    decode_result,
    encode_request,
)
from pypaxos.kv.collection_ops import (
    Copy,
    HGetAll,
    HSet,
    KeyType,
    LPush,
    LRange,
    SAdd,
    SMembers,
    SPop,
    ZAdd,
    ZRangeByRank,
)
from pypaxos.kv.commands import Scored
from pypaxos.kv.state_machine import SNAPSHOT_VERSION, _SnapshotV3
from pypaxos.kv.values import WRONGTYPE, HashSnapshot, SetSnapshot, ZSetSnapshot

MIXED: list[Command] = [
    Set(b"str", b"v"),
    HSet(b"h", ((b"f", b"1"), (b"g", b"2"))),
    LPush(b"l", (b"a", b"b", b"c")),
    SAdd(b"s", tuple(b"m%d" % n for n in range(50))),
    ZAdd(b"z", ((2.5, b"x"), (1.0, b"y"), (1.0, b"a"))),
    Expire(b"h", 60_000),
]


def test_snapshot_round_trips_every_type_with_deadlines() -> None:
    store = Store()
    for op in MIXED:
        store.run(op)
    restored = KVStateMachine()
    restored.restore(store.machine.snapshot())
    assert restored.snapshot() == store.machine.snapshot()
    again = Store()
    again.machine = restored
    again.seq = store.seq
    assert again.run(HGetAll(b"h")) == Array((b"f", b"1", b"g", b"2"))
    assert again.run(LRange(b"l", 0, -1)) == Array((b"c", b"b", b"a"))
    assert again.run(ZRangeByRank(b"z", 0, -1)) == Scored(((b"a", 1.0), (b"y", 1.0), (b"x", 2.5)))
    assert again.run(SPop(b"s")) == store.run(SPop(b"s"))  # the same "random" choice
    ttl = again.run(Ttl(b"h"))
    assert isinstance(ttl, Integer) and 0 < ttl.value <= 60_000


def test_a_version_3_snapshot_still_restores() -> None:
    assert SNAPSHOT_VERSION == 4
    old = _SnapshotV3(3, 7, 100, {b"k": b"v"}, (), {b"k": 5_000}, 1_000)
    machine = KVStateMachine()
    machine.restore(msgspec.msgpack.encode(old))
    assert (machine.get(b"k"), machine.applied, machine.now_ms) == (b"v", 7, 1_000)


@pytest.mark.parametrize(
    "bad",
    [
        SetSnapshot([b"a", b"a"]),
        SetSnapshot([]),
        HashSnapshot({}),
        ZSetSnapshot([(b"b", 1.0), (b"a", 1.0)]),  # out of order
        ZSetSnapshot([(b"a", float("nan"))]),
    ],
)
def test_restore_refuses_a_collection_no_history_makes(bad: object) -> None:
    store = Store()
    store.run(Set(b"keep", b"v"))
    snapshot = msgspec.msgpack.decode(store.machine.snapshot())
    snapshot[3][b"bad"] = msgspec.to_builtins(bad)
    machine = KVStateMachine()
    with pytest.raises(ValueError, match="malformed snapshot"):
        machine.restore(msgspec.msgpack.encode(snapshot))
    assert machine.applied == 0 and machine.get(b"keep") is None  # nothing half-restored


_SNAPSHOT_SCRIPT = """
import sys
from pypaxos.kv import KVStateMachine, Request, encode_request
from pypaxos.kv.collection_ops import SAdd, SPop, SRem, HSet, HDel, SMembers
machine = KVStateMachine()
ops = [SAdd(b"s", tuple(b"m%d" % n for n in range(200))), SRem(b"s", (b"m7", b"m99")),
       HSet(b"h", tuple((b"f%d" % n, b"v") for n in range(100))), HDel(b"h", (b"f3",)),
       SPop(b"s", 5), SMembers(b"s")]
answers = [machine.apply(encode_request(Request(1, seq, op))) for seq, op in enumerate(ops, 1)]
sys.stdout.buffer.write(machine.snapshot() + b"".join(answers))
"""


def _outputs_per_hash_seed(script: str) -> list[bytes]:
    outputs = []
    for seed in ("1", "2"):
        environment = {**os.environ, "PYTHONHASHSEED": seed}
        run = [sys.executable, "-c", script]
        outputs.append(subprocess.run(run, env=environment, capture_output=True, check=True).stdout)
    return outputs


def test_replicas_agree_whatever_their_hash_seed() -> None:
    """Python salts ``bytes`` hashes per process; two replicas with different seeds must still
    answer and snapshot byte for byte alike (no set or dict iteration by hash)."""
    outputs = _outputs_per_hash_seed(_SNAPSHOT_SCRIPT)
    assert outputs[0] == outputs[1] and len(outputs[0]) > 1000


def test_the_hash_seed_check_catches_a_set_iterated_by_hash() -> None:
    """The planted mistake the check above is for: members kept in a Python ``set`` (as a
    naive ``SetValue`` would) come out in a different order under another seed."""
    planted = (
        "import sys\n"
        "members = set(b'm%d' % n for n in range(200))\n"
        "sys.stdout.buffer.write(b','.join(members))\n"
    )
    outputs = _outputs_per_hash_seed(planted)
    assert outputs[0] != outputs[1]


def test_a_retried_collection_command_is_applied_once() -> None:
    machine = KVStateMachine()
    request = encode_request(Request(7, 1, LPush(b"l", (b"x",))))
    first = machine.apply(request)
    assert machine.apply(request) == first  # the retry: the same answer, nothing pushed
    answer = machine.apply(encode_request(Request(7, 2, LRange(b"l", 0, -1))))
    assert decode_result(answer) == Array((b"x",))


def test_deadlines_type_copy_rename_and_scan_type_on_collections() -> None:
    store = Store(now_ms=1_000)
    store.run(HSet(b"h", ((b"f", b"v"),)))
    store.run(SAdd(b"s", (b"m",)))
    store.run(Set(b"str", b"v"))
    assert store.run(Expire(b"h", 500)) == Integer(1)
    assert store.run(Copy(b"h", b"h2")) == Integer(1)  # with the deadline
    assert store.run(Copy(b"s", b"h2")) == Integer(0)  # no REPLACE
    store.run(SAdd(b"s", (b"n",)))
    assert store.run(SMembers(b"h2")) == Error(WRONGTYPE)
    assert store.run(KeyType(b"h2")) == Value(b"hash")
    assert store.run(Rename(b"s", b"moved")) is not None
    assert store.run(KeyType(b"moved")) == Value(b"set")
    assert store.run(Scan(0, None, 100, b"set")) == Page(0, (b"moved",))
    hashes = store.run(Scan(0, None, 100, b"hash"))
    assert isinstance(hashes, Page) and sorted(hashes.keys) == [b"h", b"h2"]
    store.now_ms = 1_500  # the deadline passes
    assert store.run(KeyType(b"h")) == Value(None)
    assert store.run(KeyType(b"h2")) == Value(None)
    assert store.run(HGetAll(b"h")) == Array(())
    assert store.run(Delete(b"moved")) == Integer(1)
    assert store.run(KeyType(b"moved")) == Value(None)
