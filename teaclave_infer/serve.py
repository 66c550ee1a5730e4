"""The `serve` and `worker` commands: their flags, the settings they make, the processes they
start.

`serve --workers N`: this process runs the API (uvicorn) and supervises N worker processes
(`teaclave-infer worker --supervised` with the same settings), started once the schema is
migrated. On SIGTERM or SIGINT the API stops, then every worker gets SIGTERM and finishes its
current task; a second signal kills them. This process never imports the worker package.

`worker`: one process with `--concurrency` workers in threads (`--threads`), or a supervisor of
that many single-worker processes (the default when N > 1: tasks are CPU work and threads share
one GIL).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from .domain.settings import Settings

__all__ = [
    "add_serve_arguments",
    "add_worker_arguments",
    "run_serve",
    "run_worker",
    "settings_from",
    "worker_argv",
    "worker_command",
]

STOPPING = {signal.SIGTERM, signal.SIGINT}
DB_ENV = "TEACLAVE_DB"  # the database URL: as a flag, its password would show in the process list


def _url(text: str) -> str:
    if urlsplit(text).scheme not in ("http", "https") or not urlsplit(text).netloc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected http(s)://HOST[:PORT]")
    return text.rstrip("/")


def _add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of serve and worker alike: where the data is, and how workers behave."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("teaclave-data"),
        help="the data directory: the SQLite database, blobs and keys unless placed elsewhere, "
        "and a worker's module cache (default: ./teaclave-data)",
    )
    parser.add_argument(
        "--db",
        default=os.environ.get(DB_ENV) or None,
        help="database URL (default: SQLite in the data dir); "
        f"postgresql://user:pass@host/db for PostgreSQL. Or set {DB_ENV}: unlike a flag, it "
        "does not show the password to every local user in the process list",
    )
    parser.add_argument(
        "--keys", type=Path, metavar="DIR", help="the platform's key files (default: DATA/keys)"
    )
    parser.add_argument(
        "--blobs",
        type=Path,
        metavar="DIR",
        help="the blob store's directory (default: DATA/blobs; a worker given --platform and "
        "no --blobs reads and writes blobs through the API)",
    )
    parser.add_argument(
        "--lease", type=float, default=30.0, metavar="S", help="a worker's lease on a task"
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=Settings.poll_s,
        metavar="S",
        help="an idle worker, woken when a task is staged, also looks every S seconds (for "
        f"leases that ran out and lost wake-ups; default {Settings.poll_s:g})",
    )
    parser.add_argument(
        "--allow-file-root",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="file:// input and output URLs may lie under DIR (repeatable; default: none)",
    )
    parser.add_argument(
        "--allow-fetch",
        action="append",
        default=[],
        metavar="HOST_OR_CIDR",
        help="http(s):// input and output URLs may reach this host name (any port) or these "
        "addresses, besides public ones (repeatable; e.g. localhost, 10.0.0.0/8; default: none)",
    )


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common_arguments(parser)
    parser.add_argument(
        "--platform",
        type=_url,
        metavar="URL",
        help="the platform's address, e.g. https://platform.example:8000 (without --blobs, the "
        "worker reads and writes blobs through it)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, metavar="N", help="tasks at once (default 1)"
    )
    parser.add_argument(
        "--threads",
        action="store_true",
        help="run the N workers as threads of one process (default: N processes when N > 1)",
    )
    parser.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    _add_common_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--admin-password-file",
        type=Path,
        help="the first admin's password (else a one-time one is printed)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="worker processes to start and keep running (default: one per core; 0: only "
        "standalone workers)",
    )


def settings_from(args: argparse.Namespace, **more: Any) -> Settings:
    return Settings(
        data_dir=args.data_dir,
        db_url=args.db,
        keys_path=args.keys,
        blob_path=args.blobs,
        lease_s=args.lease,
        poll_s=args.poll,
        file_roots=tuple(args.allow_file_root),
        fetch_allow=tuple(args.allow_fetch),
        platform_url=getattr(args, "platform", None),
        **more,
    )


def worker_argv(settings: Settings) -> list[str]:
    """The `worker` flags that give a worker process these settings (settings_from's inverse)."""
    argv = ["--data-dir", str(settings.data_dir), "--lease", repr(settings.lease_s)]
    argv += ["--poll", repr(settings.poll_s)]
    argv += ["--keys", str(settings.keys_path)] if settings.keys_path else []
    argv += ["--blobs", str(settings.blob_path)] if settings.blob_path else []
    argv += ["--platform", settings.platform_url] if settings.platform_url else []
    for root in settings.file_roots:
        argv += ["--allow-file-root", str(root)]
    for allowed in settings.fetch_allow:
        argv += ["--allow-fetch", allowed]
    return argv


def worker_command(settings: Settings) -> list[str]:
    """One supervised single-worker process with these settings. The database URL (it may hold
    a password) goes to the children in the environment, not on their command lines."""
    if settings.db_url:
        os.environ[DB_ENV] = settings.db_url
    cli = [sys.executable, "-m", "teaclave_infer.cli", "worker"]
    return [*cli, *worker_argv(settings), "--supervised"]


def _on_stop_signals(handler: Any) -> None:
    for signum in STOPPING:
        signal.signal(signum, handler)


def _exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, which first answers every long-poll when asked to stop: it waits
        for requests in flight, and a long-poll may take a minute."""

        def __init__(self, config: uvicorn.Config, finish: Callable[[], None]) -> None:
            super().__init__(config)
            self.finish = finish

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self.finish()
            super().handle_exit(sig, frame)

    return Server


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    _Server = _server_class()

    from .api import create_app
    from .logs import configure
    from .supervisor import Supervisor

    configure()
    os.umask(0o077)  # whatever the service writes (logs, caches, temporary files) is owner-only
    settings = settings_from(
        args, admin_password_file=args.admin_password_file, workers=args.workers
    )
    app = create_app(settings)  # the schema migrated, the admin and the keys made
    supervisor = Supervisor(worker_command(settings), settings.workers)
    _on_stop_signals(_exit)  # uvicorn takes the signals while it serves, then raises them again
    try:
        supervisor.start()
        # proxy_headers off: uvicorn would otherwise take the client's address from
        # X-Forwarded-For sent by any local peer, and the login throttle counts by that address.
        config = uvicorn.Config(
            app, host=args.host, port=args.port, log_config=None, proxy_headers=False
        )
        _Server(config, app.state.platform.waits.finish).run()
    finally:

        def kill(signum: int, frame: FrameType | None) -> None:
            supervisor.kill()  # a second signal: no more patience

        _on_stop_signals(kill)
        supervisor.stop()
    return 0


def run_worker(args: argparse.Namespace) -> int:
    from .logs import configure

    configure()
    os.umask(0o077)
    settings = settings_from(args)
    if args.concurrency > 1 and not args.threads:
        return _supervise_workers(settings, args.concurrency)
    from .worker import run_standalone

    return run_standalone(settings, args.concurrency, supervised=args.supervised)


def _supervise_workers(settings: Settings, count: int) -> int:
    """`count` single-worker processes, until a stopping signal (a second one kills them)."""
    from .domain.db import make_engine, migrate
    from .domain.settings import private_data_dir
    from .supervisor import Supervisor

    private_data_dir(settings)
    engine = make_engine(settings.database_url)
    migrate(engine)  # once, before the workers start
    engine.dispose()
    signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)  # taken by sigwait below, in any thread
    with Supervisor(worker_command(settings), count) as supervisor:
        signal.sigwait(STOPPING)

        def kill() -> None:  # a second signal: no more patience
            signal.sigwait(STOPPING)
            supervisor.kill()

        threading.Thread(target=kill, daemon=True).start()
    return 0
