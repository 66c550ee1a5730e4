"""Worker processes kept running: `serve --workers N` and `worker --concurrency N` start N copies
of one command, restart a copy that dies (after a backoff that grows while copies keep dying
young), and stop them all with SIGTERM, waiting while they finish their current tasks.

Each copy's stdin is a pipe whose other end only the supervisor holds: if the supervisor dies,
even by SIGKILL, the copies see their stdin end and stop on their own. This module imports
neither the API nor the worker: the process that supervises never runs a task.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Backoff", "Process", "Supervisor"]

log = logging.getLogger(__name__)


class Process(Protocol):
    """What the supervisor needs of a child process (subprocess.Popen has it)."""

    pid: int

    def wait(self) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


@dataclass(frozen=True)
class Backoff:
    """How long to wait before restarting a copy: nothing after a copy that lived `healthy_s`,
    else first_s, doubling with each copy in a row that died young, up to max_s."""

    first_s: float = 0.5
    max_s: float = 30.0
    healthy_s: float = 60.0

    def delay(self, young_deaths: int) -> float:
        if young_deaths <= 0:
            return 0.0
        return float(min(self.first_s * 2 ** (young_deaths - 1), self.max_s))


def _popen(command: Sequence[str]) -> Process:
    # stdout and stderr are the supervisor's: the copies' log lines join its log
    return subprocess.Popen(list(command), stdin=subprocess.PIPE)


class Supervisor:
    """Keeps `count` copies of `command` running between start() and stop()."""

    def __init__(
        self,
        command: Sequence[str],
        count: int,
        backoff: Backoff = Backoff(),
        spawn: Callable[[Sequence[str]], Process] = _popen,
        clock: Callable[[], float] = time.monotonic,
        pause: Callable[[float], None] | None = None,
    ) -> None:
        self.command, self.count, self.backoff = list(command), count, backoff
        self._spawn, self._clock = spawn, clock
        self._stopping = threading.Event()
        self._pause = pause or self._stopping.wait
        self._lock = threading.Lock()
        self._current: dict[int, Process] = {}  # slot -> its running copy
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._keep, args=(slot,), name=f"supervise-{slot}", daemon=True)
            for slot in range(self.count)
        ]
        for t in self._threads:
            t.start()

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._current.values()]

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM to every copy, then waits for them (and no copy is started again). Idempotent."""
        with self._lock:
            self._stopping.set()
            running = list(self._current.values())
        for process in running:
            with contextlib.suppress(ProcessLookupError):  # it just exited
                process.send_signal(signal.SIGTERM)
        for t in self._threads:
            if t.ident is not None:  # a stop signal may have cut start() short: never started
                t.join(timeout)

    def kill(self) -> None:
        """SIGKILL to every copy: for a second stop request. Takes no lock (a signal handler
        may call it while stop() holds one)."""
        self._stopping.set()
        for process in list(self._current.values()):
            process.kill()

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _keep(self, slot: int) -> None:
        young_deaths = 0
        while not self._stopping.is_set():
            born = self._clock()
            self._run_copy(slot)
            if self._stopping.is_set():
                return
            lived = self._clock() - born
            young_deaths = 0 if lived >= self.backoff.healthy_s else young_deaths + 1
            delay = self.backoff.delay(young_deaths)
            log.info("worker process restarting", extra={"slot": slot, "in_s": delay})
            self._pause(delay)

    def _run_copy(self, slot: int) -> None:
        """Starts a copy in `slot` and waits for its end; returns at once when stopping."""
        with self._lock:
            if self._stopping.is_set():
                return
            try:
                process = self._spawn(self.command)
            except OSError as err:  # counted as a copy that died young
                log.error("worker process not started", extra={"slot": slot, "error": str(err)})
                return
            self._current[slot] = process
        log.info("worker process started", extra={"pid": process.pid, "slot": slot})
        status = process.wait()
        with self._lock:
            del self._current[slot]
        if self._stopping.is_set():
            log.info("worker process stopped", extra={"pid": process.pid, "status": status})
        else:
            log.warning("worker process exited", extra={"pid": process.pid, "status": status})
