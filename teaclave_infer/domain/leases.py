"""One thread per process that renews every lease held in it when the renewal is due.

A lease is renewed a third of its length after it was taken or last renewed, so a task that
ends sooner costs no renewal, and holding a lease costs no thread of its own (starting and
joining one took ~0.4 ms, measured: a tenth of a small task).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Renewals", "Renewing"]

log = logging.getLogger(__name__)


class Renewing:
    """One held lease: `renew` is called every `period` seconds until it returns False (the
    lease is lost: `lost` is set) or the lease is let go."""

    def __init__(self, renew: Callable[[], bool], period: float, what: dict[str, object]) -> None:
        self.renew, self.period, self.what = renew, period, what
        self.lost = threading.Event()
        self.released = threading.Event()


class Renewals:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._cond = threading.Condition()
        self._due: dict[Renewing, float] = {}
        self._thread: threading.Thread | None = None

    def hold(self, lease: Renewing) -> None:
        with self._cond:
            self._due[lease] = self.clock() + lease.period
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="leases", daemon=True)
                self._thread.start()
            self._cond.notify()

    def release(self, lease: Renewing) -> None:
        """Stops renewing; a renewal already under way ends without effect on `lost`."""
        with self._cond:
            lease.released.set()
            self._due.pop(lease, None)

    def _loop(self) -> None:
        while True:
            for lease in self._next_due():
                self._renew(lease)

    def _next_due(self) -> list[Renewing]:
        """Waits until some lease is due; returns those, taken off the schedule."""
        with self._cond:
            while True:
                now = self.clock()
                due = [lease for lease, at in self._due.items() if at <= now]
                if due:
                    for lease in due:
                        del self._due[lease]
                    return due
                self._cond.wait(min(self._due.values(), default=now + 3600) - now)

    def _renew(self, lease: Renewing) -> None:
        try:
            held = lease.renew()
        except Exception:  # a busy or lost database: the next renewal will tell
            log.warning("lease renewal failed", extra=lease.what, exc_info=True)
            held = True
        with self._cond:
            if lease.released.is_set():
                return
            if not held:
                lease.lost.set()
                log.warning("lease lost", extra=lease.what)
                return
            self._due[lease] = self.clock() + lease.period


RENEWALS = Renewals()  # this process's
