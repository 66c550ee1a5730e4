"""`teaclave-infer worker`: one process running workers in threads until SIGTERM or SIGINT,
after which it finishes its current tasks and exits.

The stopping signals are blocked in every thread and taken by `sigwait` in the main thread, so
no handler runs in the middle of a worker's code. A supervised worker (started by `serve` or by
`worker --concurrency N`) also stops when its supervisor is gone, even killed: the supervisor
holds the other end of the worker's stdin, and its death closes it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from ..domain.db import make_engine, migrate, session_factory
from ..domain.settings import Settings, private_data_dir
from .loop import workers

__all__ = ["STOPPING", "run_standalone"]

log = logging.getLogger(__name__)

STOPPING = {signal.SIGTERM, signal.SIGINT}


def run_standalone(settings: Settings, concurrency: int = 1, supervised: bool = False) -> int:
    """Runs `concurrency` workers in threads of this process until a stopping signal; returns
    the exit status. A supervised worker leaves the schema to its supervisor."""
    from . import context_for  # the package's: it composes storage, keys and the module cache

    signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)  # before any thread: each inherits it
    private_data_dir(settings)
    engine = make_engine(settings.database_url)
    try:
        if not supervised:
            migrate(engine)
        ctx = context_for(settings, session_factory(engine), create_keys=False)
        if supervised:
            _stop_when_stdin_ends()
        with workers(ctx, settings, concurrency):
            signum = signal.sigwait(STOPPING)
            log.info("stopping", extra={"signal": signal.Signals(signum).name})
    finally:
        engine.dispose()
    return 0


def _stop_when_stdin_ends() -> None:
    def watch() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        log.warning("supervisor gone: stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()
