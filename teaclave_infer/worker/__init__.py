"""Workers: claim invoked tasks from the database and run them (see task.py for one run).

In the service's process (`serve --workers N`: threads, woken when a task is invoked) or as
standalone processes (`teaclave-infer worker`) on machines that share the database, the blob
store and a copy of the platform's keys.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from ..domain.blobs import LocalBlobStore
from ..domain.db import make_engine, migrate, session_factory
from ..domain.keys import PlatformKeys
from ..domain.queue import claim_next
from ..domain.settings import Settings, private_data_dir
from ..executor import ModuleCache
from .addresses import AddressPolicy
from .storage import Storage
from .task import Context, execute

__all__ = ["Context", "Worker", "context_for", "run_standalone", "workers"]

log = logging.getLogger(__name__)


def context_for(
    settings: Settings, sessions: sessionmaker[Session], create_keys: bool = True
) -> Context:
    storage = Storage(
        LocalBlobStore(settings.blob_dir),
        settings.max_input_bytes,
        settings.fetch_timeout_s,
        settings.file_roots,
        AddressPolicy.allowing(settings.fetch_allow),
    )
    keys = PlatformKeys.load_or_create(settings.keys_dir, create_keys)
    return Context(
        sessions, storage, keys, ModuleCache(settings.module_cache_dir), settings.lease_s
    )


class Worker:
    """Claims and runs tasks one at a time until stopped."""

    def __init__(self, ctx: Context, settings: Settings, name: str | None = None) -> None:
        self.ctx, self.settings = ctx, settings
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"

    def run_once(self) -> bool:
        """Claims one task and runs it to its end; False if there was nothing to claim."""
        s = self.settings
        claim = claim_next(self.ctx.sessions, self.name, s.lease_s, s.max_attempts)
        if claim is None:
            return False
        log.info("claimed", extra=claim.log())
        execute(self.ctx, claim)
        return True

    def serve(self, stop: threading.Event, wake: threading.Event) -> None:
        log.info("worker started", extra={"worker": self.name})
        while not stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # a bug or a lost database: logged, and the loop goes on
                log.exception("worker error", extra={"worker": self.name})
                busy = False
            if not busy:
                wake.wait(self.settings.poll_s)
                wake.clear()
        log.info("worker stopped", extra={"worker": self.name})


@contextmanager
def workers(
    ctx: Context, settings: Settings, count: int, wake: threading.Event
) -> Iterator[list[Worker]]:
    """`count` workers in threads of this process; stopped (current tasks finished) on exit."""
    stop = threading.Event()
    pool = [Worker(ctx, settings) for _ in range(count)]
    threads = [
        threading.Thread(target=w.serve, args=(stop, wake), name=f"worker-{i}", daemon=True)
        for i, w in enumerate(pool)
    ]
    for t in threads:
        t.start()
    try:
        yield pool
    finally:
        stop.set()
        wake.set()
        for t in threads:
            t.join()


def run_standalone(settings: Settings, concurrency: int = 1) -> int:
    """A worker process: runs until SIGTERM or SIGINT, then finishes its current tasks."""
    private_data_dir(settings)
    engine = make_engine(settings.database_url)
    migrate(engine)
    ctx = context_for(settings, session_factory(engine), create_keys=False)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    wake = threading.Event()
    with workers(ctx, settings, concurrency, wake):
        while not stop.wait(1.0):
            pass
    engine.dispose()
    return 0
