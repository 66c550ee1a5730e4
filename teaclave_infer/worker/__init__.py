"""Workers: claim invoked tasks from the database and run them (see task.py for one run, loop.py
for the loop).

A worker is a process: `teaclave-infer serve --workers N` supervises N of them beside the API,
and `teaclave-infer worker` runs on machines that share the database and hold a copy of the
platform's keys. `in_threads` runs workers in threads of the caller's process (tests, tools).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from ..domain.db import make_engine, session_factory
from ..domain.keys import PlatformKeys
from ..domain.settings import Settings
from ..domain.signals import Signals, signals_for
from ..executor import ModuleCache
from .addresses import AddressPolicy
from .caches import BytesCache, Caches
from .loop import Worker, workers
from .remote_blobs import blob_store_for
from .standalone import run_standalone
from .storage import Storage
from .task import Context, execute

__all__ = [
    "Context",
    "Worker",
    "context_for",
    "execute",
    "in_threads",
    "run_standalone",
    "workers",
]


def context_for(
    settings: Settings, sessions: sessionmaker[Session], create_keys: bool = True
) -> Context:
    """A worker process's context: its blob store (the shared directory, or the API's worker
    endpoints), keys, module cache, signals and in-memory caches, made once."""
    keys = PlatformKeys.load_or_create(settings.keys_dir, create_keys)
    storage = Storage(
        blob_store_for(settings, keys),
        settings.max_input_bytes,
        settings.fetch_timeout_s,
        settings.file_roots,
        AddressPolicy.allowing(settings.fetch_allow),
    )
    return Context(
        sessions,
        storage,
        keys,
        ModuleCache(settings.module_cache_dir),
        settings.lease_s,
        signals_for(settings.database_url),
        Caches(BytesCache(settings.wasm_cache_bytes), BytesCache(settings.weights_cache_bytes)),
    )


@contextmanager
def in_threads(
    settings: Settings, count: int, signals: Signals | None = None
) -> Iterator[list[Worker]]:
    """`count` workers in threads of this process on their own database engine, for a service
    that is already set up (schema migrated, keys made); stopped and joined on exit."""
    engine = make_engine(settings.database_url)
    try:
        ctx = context_for(settings, session_factory(engine), create_keys=False)
        with workers(ctx, settings, count, signals) as pool:
            yield pool
    finally:
        engine.dispose()
