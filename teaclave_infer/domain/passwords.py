"""Password hashing: Argon2id through argon2-cffi (its costs travel in the PHC string, so they
can be raised later and old hashes are upgraded at the next login), run in a small bounded pool
of threads off the event loop.

cryptography's Argon2id, used before, deadlocks when two threads derive at once with several
lanes (two concurrent logins hung the service for good); argon2-cffi's reference implementation
does not. Hashes of before (`argon2id$<b64 salt>$<b64 key>`) still verify, with their fixed
parameters, and are replaced by a PHC string at the next successful login.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import functools
import hmac
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from argon2 import Parameters, PasswordHasher, profiles
from argon2.exceptions import HashingError, InvalidHashError, VerificationError
from argon2.low_level import Type, hash_secret_raw

__all__ = [
    "LEGACY_PREFIX",
    "PARAMETERS",
    "KdfPool",
    "PasswordKdf",
    "Verdict",
    "default_kdf",
    "hash_password",
    "password_kdf",
]

T = TypeVar("T")

# RFC 9106's second recommended option: 64 MiB, 3 passes, 4 lanes; about 0.2 s here. Not a
# setting: nothing in Settings or on the command line reaches it; tests swap in cheap
# parameters with monkeypatch (tests/conftest.py), which a deployment cannot.
PARAMETERS: Parameters = profiles.RFC_9106_LOW_MEMORY

# The hashes written before argon2-cffi: the same costs, the raw key after its salt.
LEGACY_PREFIX = "argon2id$"
_LEGACY = Parameters(
    type=Type.ID,
    version=19,
    salt_len=16,
    hash_len=32,
    time_cost=3,
    memory_cost=64 * 1024,
    parallelism=4,
)

# Derivations at once: about the core count (each takes 64 MiB and, with 4 lanes, up to 4
# threads of libargon2), at most 4. Logins waiting beyond 16 per thread are refused at once
# (429): at ~0.2 s a derivation, a waiting login would otherwise wait for seconds.
POOL_THREADS = max(1, min(4, os.cpu_count() or 1))
WAITING_PER_THREAD = 16


class KdfPool:
    """A few threads that run derivations; the event loop awaits them without holding a
    database connection or a thread of the default pool."""

    def __init__(self, threads: int = POOL_THREADS, max_pending: int | None = None) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="password-kdf")
        self.max_pending = max_pending or threads * WAITING_PER_THREAD
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        """Whether as many derivations as allowed are queued or running."""
        return self._pending >= self.max_pending

    def submit(self, fn: Callable[..., T], *args: object) -> Future[T]:
        with self._lock:
            self._pending += 1
        future = self._executor.submit(fn, *args)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future[Any]) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args))

    def run_sync(self, fn: Callable[..., T], *args: object) -> T:
        """For a route that already runs in a thread (an admin's user creation)."""
        return self.submit(fn, *args).result()


@functools.cache
def _pool() -> KdfPool:
    return KdfPool()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rehash: bool = False  # a legacy hash, or costs below today's: store a new hash


class PasswordKdf:
    """Hashes and verifies passwords in `pool`. Every verification costs one derivation at
    today's costs, also for a user that does not exist (against a dummy hash), so that the
    time of a failed login does not tell whether the user exists."""

    def __init__(self, hasher: PasswordHasher | None = None, pool: KdfPool | None = None) -> None:
        self.hasher = hasher or PasswordHasher.from_parameters(PARAMETERS)
        self.pool = pool or _pool()
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))  # one derivation, here

    def hash_now(self, password: str) -> str:
        """A PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$key`), in this thread."""
        return self.hasher.hash(password)

    def verify_now(self, password: str, stored: str | None) -> Verdict:
        """Whether `password` matches `stored` (None: no such user), in this thread."""
        if stored is None:
            self._matches(self._dummy, password)
            return Verdict(False)
        if stored.startswith(LEGACY_PREFIX):
            ok = _legacy_matches(stored, password)
            return Verdict(ok, rehash=ok)
        if not self._matches(stored, password):
            return Verdict(False)
        return Verdict(True, rehash=self.hasher.check_needs_rehash(stored))

    def _matches(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):  # a mismatch, or a corrupt hash
            return False

    def hash(self, password: str) -> str:
        """hash_now in the pool, for a caller in a thread."""
        return self.pool.run_sync(self.hash_now, password)

    def verify(self, password: str, stored: str | None) -> Verdict:
        """verify_now in the pool, for a caller in a thread."""
        return self.pool.run_sync(self.verify_now, password, stored)

    async def hash_async(self, password: str) -> str:
        return await self.pool.run(self.hash_now, password)

    async def verify_async(self, password: str, stored: str | None) -> Verdict:
        return await self.pool.run(self.verify_now, password, stored)


def _legacy_matches(stored: str, password: str) -> bool:
    try:
        _, salt, key = stored.split("$")
        expected = base64.b64decode(key, validate=True)
        derived = hash_secret_raw(
            password.encode(),
            base64.b64decode(salt, validate=True),
            time_cost=_LEGACY.time_cost,
            memory_cost=_LEGACY.memory_cost,
            parallelism=_LEGACY.parallelism,
            hash_len=_LEGACY.hash_len,
            type=_LEGACY.type,
        )
    except (ValueError, binascii.Error, HashingError):  # a corrupt hash
        return False
    return hmac.compare_digest(derived, expected)


_kdfs: dict[tuple[object, ...], PasswordKdf] = {}  # by parameters (tests swap them)


def default_kdf() -> PasswordKdf:
    """The process's KDF at today's PARAMETERS (its dummy hash made once)."""
    key = dataclasses.astuple(PARAMETERS)
    if (kdf := _kdfs.get(key)) is None:
        kdf = _kdfs.setdefault(key, PasswordKdf(PasswordHasher.from_parameters(PARAMETERS)))
    return kdf


def password_kdf() -> PasswordKdf:
    """The routes' dependency (tests override it with a counting fake). Not async: the first
    call makes the dummy hash, in a thread."""
    return default_kdf()


def hash_password(password: str) -> str:
    """A PHC string at today's costs, in the pool."""
    return default_kdf().hash(password)
