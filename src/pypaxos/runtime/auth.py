"""Client authentication and roles, as Redis clients expect them: ``AUTH`` and ``HELLO AUTH``.

A cluster with ``[[users]]`` in its ``cluster.toml`` answers nothing but ``AUTH``, ``HELLO``
and ``QUIT`` until a connection authenticates (``-NOAUTH``); wrong credentials get
``-WRONGPASS``; ``AUTH password`` alone names the user ``default``, as ``requirepass`` does.
Each user has a role: ``read-only`` runs reads, ``read-write`` every data command, ``admin``
also the commands that manage the cluster.  Passwords are stored as scrypt hashes (RFC 7914)
with a random salt, never in clear; a check costs one scrypt, so guessing is slow.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
import os
from dataclasses import dataclass

# scrypt's cost: 2**14 rounds of 8-block mixing, about 16 MiB of memory per check.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
HASH_PREFIX = "scrypt"
DEFAULT_USER = "default"


class Role(enum.Enum):
    READ_ONLY = "read-only"
    READ_WRITE = "read-write"
    ADMIN = "admin"


class Access(enum.Enum):
    """What a command needs; a connection command (AUTH, HELLO, QUIT) needs nothing."""

    CONNECTION = 0
    READ = 1
    WRITE = 2
    ADMIN = 3


_GRANTS: dict[Role, frozenset[Access]] = {
    Role.READ_ONLY: frozenset({Access.CONNECTION, Access.READ}),
    Role.READ_WRITE: frozenset({Access.CONNECTION, Access.READ, Access.WRITE}),
    Role.ADMIN: frozenset(Access),
}


class PasswordHashError(ValueError):
    """A stored password hash that is not ``scrypt$N$r$p$salt$hash``."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    password_hash: str

    def may(self, access: Access) -> bool:
        return access in _GRANTS[self.role]


def hash_password(password: str, salt: bytes | None = None) -> str:
    """The stored form of ``password``: ``scrypt$N$r$p$salt-hex$hash-hex``."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = _scrypt(password.encode(), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"{HASH_PREFIX}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_hash_format(stored: str) -> None:
    """Raise ``PasswordHashError`` unless ``stored`` is a hash ``hash_password`` could make."""
    _parse(stored)


def password_matches(stored: str, password: bytes) -> bool:
    n, r, p, salt, digest = _parse(stored)
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), digest)


class Users:
    """The configured users, looked up by name."""

    def __init__(self, users: tuple[User, ...]) -> None:
        self.by_name = {user.name: user for user in users}

    def authenticate(self, name: str | None, password: bytes) -> User | None:
        """The user whose password this is, or ``None`` (an unknown name costs a hash too)."""
        user = self.by_name.get(name or DEFAULT_USER)
        if user is None:
            password_matches(_dummy_hash(), password)  # the same time as a known name
            return None
        return user if password_matches(user.password_hash, password) else None


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=HASH_BYTES
    )


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != HASH_PREFIX:
        raise PasswordHashError("a password hash is scrypt$N$r$p$salt$hash (pypaxos passwd)")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
    except ValueError:
        raise PasswordHashError("a password hash has integer costs and hex salt and hash") from None
    if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        raise PasswordHashError(f"scrypt costs out of range: N={n} r={r} p={p}")
    if len(salt) < 8 or len(digest) != HASH_BYTES:
        raise PasswordHashError("a password hash needs a salt of 8+ bytes and a 32-byte hash")
    return n, r, p, salt, digest


@functools.cache
def _dummy_hash() -> str:
    return hash_password("", salt=bytes(SALT_BYTES))
