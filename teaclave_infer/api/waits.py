"""Long-polls on tasks: a request waits until its task ends (or reaches a state it names) or its
time is up, without blocking the event loop and without polling the database.

One thread per API process listens on `Channel.ENDED` (a worker publishes a task's id when the
task ends, the API when it cancels one) and wakes the waits on that task through their own
event loops (`call_soon_threadsafe`). A signal is a hint: a woken wait reads the task again, in
the threadpool, and every wait also reads it every `recheck_s` in case a signal was lost (or
the listener is down: it reconnects with backoff, then wakes every wait once). Waits are
bounded per user and in all, so that memory, threads and database reads stay bounded: past
either bound, a 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from ..domain.signals import Channel, Signals
from .problems import Problem

__all__ = ["TaskWaits"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class _Wake:
    """One wait's alarm: an asyncio event on the loop the wait runs on, settable from any
    thread."""

    __slots__ = ("event", "loop")

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def ring(self) -> None:
        with contextlib.suppress(RuntimeError):  # its loop is closed: the wait is gone
            self.loop.call_soon_threadsafe(self.event.set)


class TaskWaits:
    """The long-polls of one API process. `start()` and `stop()` bracket the app's lifespan;
    without them waits still answer, each within `recheck_s` of its task's change."""

    def __init__(
        self,
        signals: Signals,
        *,
        max_per_user: int = 8,
        max_total: int = 256,
        recheck_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.signals = signals
        self.max_per_user, self.max_total = max_per_user, max_total
        self.recheck_s = recheck_s
        self.clock = clock  # deadlines only; tests give one that jumps
        self._lock = threading.Condition()
        self._wakes: dict[str, set[_Wake]] = {}
        self._users: Counter[str] = Counter()
        self._asleep = 0  # waits between two reads (see settle)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the listener ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._listen, name="task-waits", daemon=True)
            self._thread.start()

    def finish(self) -> None:
        """Answers every wait now with its task as it is, and every later one at once: what a
        server shutting down calls first, since it waits for requests in flight before the
        lifespan's end (`stop`). Never blocks; safe in a signal handler."""
        self._stopping.set()
        self.notify_all()

    def stop(self, timeout: float = 5.0) -> None:
        """`finish`, then stops the listener; idempotent."""
        thread, self._thread = self._thread, None
        self.finish()
        if thread is not None:
            self.signals.publish(Channel.ENDED)  # wakes the listener out of its wait
            thread.join(timeout)

    @contextlib.contextmanager
    def running(self) -> Iterator[TaskWaits]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def _listen(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                with self.signals.listen(Channel.ENDED) as listener:
                    self.notify_all()  # what ended while nobody listened
                    backoff = 0.5
                    while not self._stopping.is_set():
                        began = time.monotonic()
                        ended = listener.wait(self.recheck_s)
                        for task_id in set(ended):
                            self.notify(task_id)
                        if not ended and time.monotonic() - began < self.recheck_s / 2:
                            break  # an answer before its time with nothing: a broken listener
            except Exception as err:  # the database is away: waits fall back to re-reading
                log.warning("task waits cannot listen", extra={"error": str(err)})
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, 30.0)

    # -- waking ----------------------------------------------------------------------------------

    def notify(self, task_id: str) -> None:
        """Wakes the waits on `task_id` (any thread)."""
        with self._lock:
            wakes = list(self._wakes.get(task_id, ()))
        for wake in wakes:
            wake.ring()

    def notify_all(self) -> None:
        with self._lock:
            wakes = [w for ws in self._wakes.values() for w in ws]
        for wake in wakes:
            wake.ring()

    # -- waiting ---------------------------------------------------------------------------------

    def waiting(self) -> int:
        """How many waits are in progress."""
        with self._lock:
            return sum(self._users.values())

    def settle(self, count: int, timeout: float) -> bool:
        """Blocks (a thread, not the loop) until exactly `count` waits are in progress, each
        asleep between two reads: 0 to drain, or a test's way to know its waits have begun and
        hold nothing. False if `timeout` passed first."""
        with self._lock:
            return self._lock.wait_for(
                lambda: sum(self._users.values()) == self._asleep == count, timeout
            )

    @contextlib.contextmanager
    def _sleeping(self) -> Iterator[None]:
        with self._lock:
            self._asleep += 1
            self._lock.notify_all()
        try:
            yield
        finally:
            with self._lock:
                self._asleep -= 1

    @contextlib.contextmanager
    def _slot(self, user_id: str, task_id: str) -> Iterator[_Wake]:
        wake = _Wake()
        with self._lock:
            if self._users[user_id] >= self.max_per_user:
                self._refuse(f"at most {self.max_per_user} waits at once per user")
            if sum(self._users.values()) >= self.max_total:
                self._refuse(f"the platform holds {self.max_total} waits already")
            self._users[user_id] += 1
            self._wakes.setdefault(task_id, set()).add(wake)
            self._lock.notify_all()
        try:
            yield wake
        finally:
            with self._lock:
                self._users[user_id] -= 1
                if not self._users[user_id]:
                    del self._users[user_id]
                self._wakes[task_id].discard(wake)
                if not self._wakes[task_id]:
                    del self._wakes[task_id]
                self._lock.notify_all()

    def _refuse(self, why: str) -> None:
        retry = max(1, round(self.recheck_s))
        raise Problem(
            429,
            "Too many waits",
            f"{why}: wait for fewer tasks at once, or get them without `wait`",
            headers={"Retry-After": str(retry)},
        )

    async def wait(
        self,
        user_id: str,
        task_id: str,
        seconds: float,
        read: Callable[[], T],
        done: Callable[[T], bool],
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> T:
        """`read()` (in the threadpool) once `done` holds for what it returns, or once
        `seconds` passed (or the client went away, `gone`, or the waits stop). Registered
        before the first read, so that a signal between that read and the sleep is not
        lost. A 429 past the bounds; whatever `read` raises."""
        deadline = self.clock() + seconds
        with self._slot(user_id, task_id) as wake:
            while True:
                wake.event.clear()
                got = await run_in_threadpool(read)
                remaining = deadline - self.clock()
                if done(got) or remaining <= 0 or self._stopping.is_set():
                    return got
                with contextlib.suppress(TimeoutError), self._sleeping():
                    async with asyncio.timeout(min(remaining, self.recheck_s)):
                        await wake.event.wait()
                if gone is not None and await gone():
                    return got
