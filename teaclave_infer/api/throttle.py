"""Login throttling: failed attempts counted per (account, client address), per address and per
account, each with exponential backoff; in memory in each API process, bounded, with an
injected clock.

The three counters, and why the per-account one spares known addresses:
- (account, address), the tight one: 5 failures free, then waits of 1 s, 2 s, 4 s ... up to
  5 min. One address guessing at one account gets about 300 tries a day.
- address, any account: 20 free, the same backoff; one address spraying common passwords over
  many accounts.
- account, any address: 20 free, the same backoff; many addresses guessing at one account.
  This is the one an attacker could use to lock the owner out of their account from
  addresses of his own, so an address the account logged in from lately (its last 4) skips
  it: the owner keeps their own pair's limit only, which nobody else's failures touch.
An attempt counts as a failure when it begins (before the KDF) and is taken back when it
succeeds, so that parallel guesses get no more tries than sequential ones. A success clears
the pair's and the account's counts; counts are forgotten an hour after their last attempt.
Each table keeps its 10,000 most recently used entries: an attacker spraying addresses cannot
grow it, and evicting an entry of his own takes 10,000 failed logins through the KDF pool
(minutes), while the account's entry, touched by each of them, stays.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["Backoff", "LoginThrottle", "ThrottleLimits"]


@dataclass(frozen=True)
class Backoff:
    free: int  # failures allowed before any wait
    first_s: float  # the wait after the first failure beyond them; doubling after each
    cap_s: float

    def wait(self, failures: int) -> float:
        over = failures - self.free
        return 0.0 if over <= 0 else min(self.first_s * 2.0 ** min(over - 1, 40), self.cap_s)


@dataclass(frozen=True)
class ThrottleLimits:
    pair: Backoff = Backoff(5, 1.0, 300.0)
    address: Backoff = Backoff(20, 1.0, 300.0)
    account: Backoff = Backoff(20, 1.0, 300.0)
    forget_s: float = 3600.0
    max_entries: int = 10_000  # per table
    known_addresses: int = 4  # per account, skipping the account's counter


@dataclass
class _Count:
    failures: int = 0
    last: float = 0.0  # the clock at the last attempt counted


class _Counter:
    """Failures per key, least recently used out first beyond `max_entries`."""

    def __init__(self, backoff: Backoff, forget_s: float, max_entries: int) -> None:
        self.backoff, self.forget_s, self.max_entries = backoff, forget_s, max_entries
        self._counts: OrderedDict[Hashable, _Count] = OrderedDict()

    def __len__(self) -> int:
        return len(self._counts)

    def _get(self, key: Hashable, now: float) -> _Count | None:
        count = self._counts.get(key)
        if count is not None and now - count.last > self.forget_s:
            del self._counts[key]
            return None
        return count

    def wait(self, key: Hashable, now: float) -> float:
        count = self._get(key, now)
        if count is None:
            return 0.0
        return max(0.0, count.last + self.backoff.wait(count.failures) - now)

    def add(self, key: Hashable, now: float) -> None:
        count = self._get(key, now) or _Count()
        count.failures, count.last = count.failures + 1, now
        self._counts[key] = count
        self._counts.move_to_end(key)
        while len(self._counts) > self.max_entries:
            self._counts.popitem(last=False)

    def take_back(self, key: Hashable) -> None:
        if (count := self._counts.get(key)) is not None:
            count.failures = max(0, count.failures - 1)

    def clear(self, key: Hashable) -> None:
        self._counts.pop(key, None)


class LoginThrottle:
    def __init__(
        self, limits: ThrottleLimits | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits = limits or ThrottleLimits()
        self._clock = clock
        self._pairs, self._addresses, self._accounts = (
            _Counter(backoff, limits.forget_s, limits.max_entries)
            for backoff in (limits.pair, limits.address, limits.account)
        )
        self._known: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def entries(self) -> int:
        """Entries kept in all tables (bounded by 4 * max_entries)."""
        with self._lock:
            counters = (self._pairs, self._addresses, self._accounts)
            return sum(len(c) for c in counters) + len(self._known)

    def _counters(self, account: str, address: str) -> list[tuple[_Counter, Hashable]]:
        counters: list[tuple[_Counter, Hashable]] = [
            (self._pairs, (account, address)),
            (self._addresses, address),
        ]
        if address not in self._known.get(account, ()):
            counters.append((self._accounts, account))
        return counters

    def attempt(self, account: str, address: str) -> float:
        """Seconds to wait before `account` may be tried from `address`. 0: go on, and the
        attempt counts as a failure until `succeeded`; else nothing is counted."""
        with self._lock:
            now = self._clock()
            counters = self._counters(account, address)
            wait = max(counter.wait(key, now) for counter, key in counters)
            if wait == 0:
                for counter, key in counters:
                    counter.add(key, now)
            return wait

    def succeeded(self, account: str, address: str) -> None:
        """The attempt was right: the pair's and the account's counts start again, the
        address's attempt is taken back, and the address is one the account is known at."""
        with self._lock:
            self._pairs.clear((account, address))
            self._accounts.clear(account)
            self._addresses.take_back(address)
            known = [a for a in self._known.pop(account, ()) if a != address]
            self._known[account] = (address, *known)[: self.limits.known_addresses]
            while len(self._known) > self.limits.max_entries:
                self._known.popitem(last=False)
