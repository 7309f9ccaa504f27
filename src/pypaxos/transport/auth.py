"""Peer authentication with a shared secret: a challenge and an HMAC proof, never the secret.

When a cluster has a secret, the node that accepts a peer connection first sends a
``Challenge`` with a fresh random nonce; the dialling node answers with its ``Hello``, whose
``proof`` is HMAC-SHA256 (RFC 2104) over the cluster id, both node ids and that nonce.  The
acceptor recomputes it and compares in constant time.  A recorded Hello is worthless on
another connection (the nonce differs), and the cluster id alone no longer opens the door.

The other way round, an acceptor that refuses a dialling node says why (``codec.Refusal``);
when the refusal could stop the dialling node (it says the node is no longer a member), the
dialling node trusts it only if it is authenticated: by TLS (it checked the acceptor's
certificate), or by ``refusal_proof``, HMAC-SHA256 over the refusal and a nonce the dialling
node put in its own Hello, so a refusal made without the secret, or recorded on another
connection, proves nothing.

What this does not give: confidentiality, or protection from someone on the path who takes
over a connection after its handshake.  Mutual TLS on the peer port is the answer to those.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

import msgspec

NONCE_BYTES = 32
SECRET_BYTES_MIN = 32
_CONTEXT = b"pypaxos peer hello v1\0"
_REFUSAL_CONTEXT = b"pypaxos peer refusal v1\0"


class Challenge(msgspec.Struct, frozen=True, tag="transport.Challenge"):
    """The acceptor's first frame when the cluster has a secret."""

    nonce: bytes


class SecretError(Exception):
    """A peer secret file that is missing, too short, or readable by others."""


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def hello_proof(
    secret: bytes, cluster_id: str | None, sender_id: int, receiver_id: int, nonce: bytes
) -> bytes:
    """What a dialling node proves it knows the secret with, bound to this one connection."""
    message = b"".join(
        (
            _CONTEXT,
            (cluster_id or "").encode(),
            b"\0",
            sender_id.to_bytes(8, "big", signed=True),
            receiver_id.to_bytes(8, "big", signed=True),
            nonce,
        )
    )
    return hmac.new(secret, message, hashlib.sha256).digest()


def refusal_proof(
    secret: bytes,
    cluster_id: str | None,
    refuser_id: int,
    dialler_id: int,
    nonce: bytes,
    refusal_bytes: bytes,
) -> bytes:
    """What an acceptor proves its refusal with: bound to the dialling node's nonce (this one
    connection) and to every byte of the refusal (encoded without its proof)."""
    message = b"".join(
        (
            _REFUSAL_CONTEXT,
            (cluster_id or "").encode(),
            b"\0",
            refuser_id.to_bytes(8, "big", signed=True),
            dialler_id.to_bytes(8, "big", signed=True),
            nonce,
            refusal_bytes,
        )
    )
    return hmac.new(secret, message, hashlib.sha256).digest()


def proof_matches(expected: bytes, offered: bytes | None) -> bool:
    return offered is not None and hmac.compare_digest(expected, offered)


def write_secret(path: Path) -> bytes:
    """Create a new random secret at ``path``, readable and writable by its owner only."""
    secret = os.urandom(SECRET_BYTES_MIN)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(secret.hex().encode() + b"\n")
        file.flush()
        os.fsync(file.fileno())
    return secret


def read_secret(path: Path) -> bytes:
    """The secret in ``path`` (hex), refusing a file that others may read, as ssh does."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as error:
        raise SecretError(f"cannot read {path}: {error.strerror or error}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SecretError(f"{path} is readable by others (mode {stat.S_IMODE(mode):o}): chmod 600")
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise SecretError(f"{path} does not hold a hex secret") from None
    if len(secret) < SECRET_BYTES_MIN:
        raise SecretError(f"{path} holds {len(secret)} bytes; at least {SECRET_BYTES_MIN} needed")
    return secret
