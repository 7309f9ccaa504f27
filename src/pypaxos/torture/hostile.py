"""The ``hostile`` nemesis: a process on the peer network that tries to talk its way in.

Run as ``python -m pypaxos.torture.hostile`` in the clients' place (inside the client
namespace in network-namespace mode), it opens connections to the nodes' peer addresses and,
on each, one attack chosen by ``--seed``:

* ``stranger``: a Hello from a node id that is not a member, then a forged snapshot and
  heartbeat;
* ``no-proof`` / ``wrong-proof``: a member's id with no answer to the challenge, or an answer
  made with another secret (a guess, or a proof recorded for another connection);
* ``garbage``, ``oversized``, ``bad-version``: bytes that are no frame, a length header of
  2 GiB, a frame of an unknown version;
* with the real secret (a member's credentials, as a confused or compromised peer would have):
  ``out-of-range`` (ballot rounds and slots past what a log encodes), ``impersonation`` (a
  message whose sender is another node than the Hello's) and ``unasked-snapshot`` (a snapshot
  nobody asked for, of junk).

None of these may change what the cluster stores or stop it serving: the run's verdict (the
history checked for linearizability, every acknowledged write present) must stay clean.  The
attacker prints one JSON line of counts when it ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
from pathlib import Path

import msgspec

from pypaxos.core.types import Ballot
from pypaxos.multi.messages import Heartbeat, Message, Prepare, SnapshotChunk
from pypaxos.runtime.wire import CODEC
from pypaxos.transport.auth import Challenge, hello_proof, read_secret
from pypaxos.transport.codec import FRAME_VERSION, HEADER, HEADER_BYTES, PROTOCOL_VERSION, Hello

ATTACKS = (
    "stranger",
    "no-proof",
    "wrong-proof",
    "garbage",
    "oversized",
    "bad-version",
    "out-of-range",
    "impersonation",
    "unasked-snapshot",
)
CONNECT_TIMEOUT_S = 2.0
LINGER_S = 0.2  # how long a connection stays open after its attack, so the node reads it


async def attack(
    kind: str,
    target: tuple[int, str],
    members: list[int],
    cluster_id: str,
    secret: bytes | None,
    rng: random.Random,
) -> None:
    """One connection to node ``target`` carrying attack ``kind``."""
    node_id, address = target
    host, port = address.rsplit(":", 1)
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        reader, writer = await asyncio.open_connection(host, int(port))
    try:
        member = rng.choice([m for m in members if m != node_id])
        hello = await _hello(kind, reader, member, node_id, cluster_id, secret, rng)
        writer.write(hello + _payload(kind, member, members, rng))
        await writer.drain()
        await asyncio.sleep(LINGER_S)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _hello(
    kind: str,
    reader: asyncio.StreamReader,
    member: int,
    node_id: int,
    cluster_id: str,
    secret: bytes | None,
    rng: random.Random,
) -> bytes:
    if kind in ("garbage", "oversized", "bad-version"):
        return b""
    if kind == "stranger":
        return CODEC.encode_hello(
            Hello(members_ceiling(member), cluster_id, protocol=PROTOCOL_VERSION)
        )
    nonce = await _challenge(reader) if secret is not None else b""
    if kind == "no-proof":
        return CODEC.encode_hello(Hello(member, cluster_id, protocol=PROTOCOL_VERSION))
    if kind == "wrong-proof" or secret is None:
        guess = rng.randbytes(32)
        return CODEC.encode_hello(
            Hello(
                member,
                cluster_id,
                hello_proof(guess, cluster_id, member, node_id, nonce),
                PROTOCOL_VERSION,
            )
        )
    proof = hello_proof(secret, cluster_id, member, node_id, nonce)
    return CODEC.encode_hello(Hello(member, cluster_id, proof, PROTOCOL_VERSION))


def members_ceiling(member: int) -> int:
    """An id no torture cluster uses (they have at most 9 members)."""
    return member + 997


async def _challenge(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        length, _ = HEADER.unpack(await reader.readexactly(HEADER_BYTES))
        payload = await reader.readexactly(min(length, 256) - 1)
    return msgspec.msgpack.decode(payload, type=Challenge).nonce


def _payload(kind: str, member: int, members: list[int], rng: random.Random) -> bytes:
    stranger = members_ceiling(member)
    match kind:
        case "garbage":
            return rng.randbytes(rng.randint(1, 4096))
        case "oversized":
            return HEADER.pack(2**31, FRAME_VERSION)
        case "bad-version":
            return HEADER.pack(3, FRAME_VERSION + 7) + b"\x90\x90"
        case "stranger":
            forged: list[Message] = [
                SnapshotChunk(stranger, rng.randint(1, 10**6), 0, 1, b"\x80"),
                Heartbeat(stranger, Ballot(rng.randint(1, 10**6), stranger), 0),
            ]
            return CODEC.encode_frames(forged)
        case "out-of-range":
            high = 2**64 - 1
            return CODEC.encode_frames(
                [Prepare(member, Ballot(high, member), 0), Prepare(member, Ballot(1, member), high)]
            )
        case "impersonation":
            other = rng.choice(members)
            return CODEC.encode_frames(
                [Heartbeat(other if other != member else stranger, Ballot(1, other), 0)]
            )
        case "unasked-snapshot":
            chunk = SnapshotChunk(member, rng.randint(1, 10**6), 0, 1, rng.randbytes(64))
            return CODEC.encode_frames([chunk])
        case _:  # no-proof, wrong-proof: the handshake is the attack; a message to go with it
            return CODEC.encode_frames(
                [Heartbeat(member, Ballot(rng.randint(1, 10**6), member), 0)]
            )


async def run(
    targets: list[tuple[int, str]],
    cluster_id: str,
    secret: bytes | None,
    seed: int,
    duration_s: float,
) -> dict[str, int]:
    """Attack until ``duration_s`` is over; counts of attacks made and connections refused."""
    rng = random.Random(seed)
    members = sorted({node_id for node_id, _ in targets})
    counts: dict[str, int] = dict.fromkeys(ATTACKS, 0)
    counts["unreachable"] = 0
    loop = asyncio.get_running_loop()
    until = loop.time() + duration_s
    while loop.time() < until:
        kind = rng.choice(ATTACKS)
        try:
            await attack(kind, rng.choice(targets), members, cluster_id, secret, rng)
            counts[kind] += 1
        except (OSError, TimeoutError, EOFError, msgspec.DecodeError):
            counts["unreachable"] += 1  # a node down (another fault) or a closed connection
        await asyncio.sleep(rng.uniform(0.01, 0.05))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="attack a cluster's peer ports (torture only)")
    parser.add_argument("--targets", required=True, help='JSON: [[node id, "host:port"], ...]')
    parser.add_argument("--cluster-id", required=True)
    parser.add_argument("--secret-file", type=Path, help="the peer secret, for member attacks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration-s", type=float, default=2.0)
    args = parser.parse_args(argv)
    targets = [(int(i), str(a)) for i, a in json.loads(args.targets)]
    secret = read_secret(args.secret_file) if args.secret_file else None
    counts = asyncio.run(run(targets, args.cluster_id, secret, args.seed, args.duration_s))
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
