"""The worker loop: claim a task and run it; when there is none, sleep until one is staged.

An idle worker listens on `Channel.STAGED` and makes no database query until a signal comes or
its fallback period (`settings.poll_s`) runs out; the fallback finds leases that ran out and
signals that were lost. After a task it looks again at once (more may be waiting).

A pool stops by setting its stop event and publishing a stop token on the same channel, so that
its listeners wake at once; every other worker that hears a token goes back to sleep without a
query.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..domain.queue import claim_next
from ..domain.settings import Settings
from ..domain.signals import Channel, Listener, Signals
from .task import Context, execute

__all__ = ["STOP_PREFIX", "Worker", "workers"]

log = logging.getLogger(__name__)

STOP_PREFIX = "stop:"  # a STAGED payload that only wakes a stopping pool's own listeners
_EARLY_S = 0.05  # an empty wake this long before the deadline means the listener broke


class _ListenerLost(Exception):
    """The listener returned early with nothing: its connection is gone."""


class Worker:
    """Claims and runs tasks one at a time until stopped."""

    def __init__(
        self,
        ctx: Context,
        settings: Settings,
        name: str | None = None,
        signals: Signals | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx, self.settings, self.clock = ctx, settings, clock
        self.signals = signals or ctx.signals
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def run_once(self) -> bool:
        """Claims one task and runs it to its end; False if there was nothing to claim."""
        s = self.settings
        claim = claim_next(
            self.ctx.sessions, self.name, s.lease_s, s.max_attempts, ended=self._ended
        )
        if claim is None:
            return False
        log.info("claimed", extra=claim.log())
        execute(self.ctx, claim)
        return True

    def _ended(self, task_id: str) -> None:
        """A task failed as lost while claiming: its waits hear it at once."""
        self.ctx.signals.publish(Channel.ENDED, task_id)

    def serve(self, stop: threading.Event) -> None:
        """Runs tasks until `stop` is set (the current task is finished first)."""
        log.info("worker started", extra={"worker": self.name})
        while not stop.is_set():
            try:
                with self.signals.listen(Channel.STAGED) as staged:
                    self._serve_listening(stop, staged)
            except Exception:  # no listener (a lost database): wait a period, then listen again
                log.exception("worker listener failed", extra={"worker": self.name})
                stop.wait(self.settings.poll_s)
        log.info("worker stopped", extra={"worker": self.name})

    def _serve_listening(self, stop: threading.Event, staged: Listener) -> None:
        while not stop.is_set():
            if self._attempt():
                continue
            try:
                self._idle(stop, staged)
            except _ListenerLost:
                log.warning("worker listener lost", extra={"worker": self.name})
                stop.wait(self.settings.poll_s)
                return  # to listen again

    def _attempt(self) -> bool:
        try:
            return self.run_once()
        except Exception:  # a bug or a lost database: logged, and the loop goes on
            log.exception("worker error", extra={"worker": self.name})
            return False

    def _idle(self, stop: threading.Event, staged: Listener) -> None:
        """Returns when a task may be there: a STAGED signal, or the fallback period ran out;
        also when `stop` is set. Raises _ListenerLost if the listener stops waiting."""
        deadline = self.clock() + self.settings.poll_s
        while not stop.is_set():
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            got = staged.wait(remaining)
            if any(not payload.startswith(STOP_PREFIX) for payload in got):
                return
            if not got and deadline - self.clock() > _EARLY_S:
                raise _ListenerLost


@contextmanager
def workers(
    ctx: Context, settings: Settings, count: int, signals: Signals | None = None
) -> Iterator[list[Worker]]:
    """`count` workers in threads of this process, listening on `signals` (by default the
    context's); on exit they are stopped (woken at once, current tasks finished) and joined."""
    signals = signals or ctx.signals
    stop = threading.Event()
    pool = [Worker(ctx, settings, signals=signals) for _ in range(count)]
    threads = [
        threading.Thread(target=w.serve, args=(stop,), name=f"worker-{i}", daemon=True)
        for i, w in enumerate(pool)
    ]
    for t in threads:
        t.start()
    try:
        yield pool
    finally:
        stop.set()
        if threads:
            signals.publish(Channel.STAGED, f"{STOP_PREFIX}{uuid.uuid4().hex}")
        for t in threads:
            t.join()
