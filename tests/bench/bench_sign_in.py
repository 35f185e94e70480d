"""Benchmark: the cost of one sign-in's password check, ours against argon2-cffi's defaults.

Run: python tests/bench/bench_sign_in.py
"""

from __future__ import annotations

import statistics
import time

from argon2 import PasswordHasher

from cass.services import passwords

ROUNDS = 25


def median_ms(verify, stored: str) -> float:
    """Return the median time of `verify(stored, password)` in milliseconds."""
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        verify(stored, "correct horse battery")
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    ours = median_ms(passwords.verify_password, passwords.hash_password("correct horse battery"))
    default = PasswordHasher()
    baseline = median_ms(default.verify, default.hash("correct horse battery"))
    print(
        f"sign-in password check, median of {ROUNDS}: ours {ours:.1f} ms, "
        f"argon2-cffi default {baseline:.1f} ms, ratio {ours / baseline:.2f}"
    )


if __name__ == "__main__":
    main()
