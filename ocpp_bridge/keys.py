"""Charger keys (the OCPP Basic-auth password): a salted PBKDF2-SHA256 hash.

A charger key is a machine secret of at least 16 random characters, not a person's password, so a
memory-hard hash buys nothing but makes a reconnect storm of thousands of chargers cost minutes
of CPU: PBKDF2 with a modest count checks one in well under a millisecond. Older argon2 hashes
still verify. Used by both the bridge and the web (for imports and the demo seed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCHEME = "pbkdf2_sha256"
ITERATIONS = 1000
MIN_KEY_LENGTH = 16


def hash_key(key: str, iterations: int = ITERATIONS) -> str:
    """Return the salted hash of a charger key, as stored in charger.key_hash."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", key.encode(), salt, iterations)
    return f"{SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_key(stored: str | None, key: str) -> bool:
    """Return whether `key` matches the stored hash (False for no hash or a malformed one)."""
    if not stored:
        return False
    if stored.startswith("$argon2"):
        from argon2 import PasswordHasher
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return PasswordHasher().verify(stored, key)
        except (VerificationError, InvalidHashError):
            return False
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != SCHEME:
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.pbkdf2_hmac(
            "sha256", key.encode(), base64.b64decode(salt), int(iterations)
        )
    except ValueError:
        return False
    return hmac.compare_digest(expected, actual)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
