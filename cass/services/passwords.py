"""Secrets at rest: passwords and charger keys hashed memory-hard (argon2id); random bearer
tokens (API tokens, calendar feed URLs) by SHA-256, looked up by that hash."""

from __future__ import annotations

import hashlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): memory-hard, and quick enough that a
# sign-in costs ~40 ms on a 2-core machine rather than ~130 ms with argon2-cffi's defaults.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified against when the e-mail is unknown, so both paths cost the same time.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def hash_password(password: str) -> str:
    """Return the argon2id hash of `password`."""
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Return whether `password` matches `stored_hash` (spending the same time when it is None)."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Return whether the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored_hash)


def token_hash(token: str) -> str:
    """Return the hex SHA-256 of a random token: what is stored, and looked up, in its place.

    A token of 32 random bytes cannot be guessed, so a fast hash is enough, and it can be
    indexed (argon2's salt would make a lookup by hash impossible).
    """
    return hashlib.sha256(token.encode()).hexdigest()
