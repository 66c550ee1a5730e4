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
import socket
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from .domain.setting_sources import definitions, from_sources
from .domain.settings import Command, Settings
from .errors import TeaclaveInferError

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
READY = "teaclave-infer: serving on "  # then the URL, on stdout once the service listens


def _add_settings(parser: argparse.ArgumentParser, command: Command) -> None:
    """A flag for each of the command's settings (domain/settings.py defines them). A flag not
    given leaves no attribute, so that the variable or the default applies (settings_from)."""
    for s in definitions():
        if command not in s.commands:
            continue
        parser.add_argument(
            s.flag,
            dest=s.name,
            action="append" if s.repeatable else "store",
            default=argparse.SUPPRESS,
            metavar=s.metavar,
            help=f"{s.help} (default: {s.default}; or set {s.env})".replace("%", "%%"),
        )


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    _add_settings(parser, "worker")
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
    _add_settings(parser, "serve")


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings the flags give, else the TEACLAVE_* variables, else the defaults; a value
    that does not hold is a TeaclaveInferError naming it."""
    names = {s.name for s in definitions()}
    return from_sources({k: v for k, v in vars(args).items() if k in names})


def worker_argv(settings: Settings) -> list[str]:
    """The `worker` flags that give a worker process these settings (settings_from's inverse),
    but for the database URL, which may hold a password (worker_command)."""
    argv = []
    for s in definitions():
        value = getattr(settings, s.name)
        if "worker" not in s.commands or s.name == "db_url" or value is None:
            continue
        for one in value if s.repeatable else (value,):
            argv += [s.flag, repr(one) if isinstance(one, float) else str(one)]
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
        for requests in flight, and a long-poll may take a minute. Once it listens it calls
        `ready`."""

        def __init__(
            self,
            config: uvicorn.Config,
            finish: Callable[[], None],
            ready: Callable[[], None] = lambda: None,
        ) -> None:
            super().__init__(config)
            self.finish, self.ready = finish, ready

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if not self.should_exit:
                self.ready()

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self.finish()
            super().handle_exit(sig, frame)

    return Server


def _listener(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, first of all: a port in use is one line, before the admin
    and its one-time password are made."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise TeaclaveInferError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise TeaclaveInferError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    return sock


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce(url: str) -> None:
    """The READY line, in one write: the workers and the supervisor's threads log to the same
    file, and print() writes the text and its newline apart when stdout is unbuffered
    (PYTHONUNBUFFERED), so a log line could land between them and hide the line from a reader."""
    sys.stdout.write(f"{READY}{url}\n")
    sys.stdout.flush()


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .api import create_app
    from .logs import configure
    from .supervisor import Supervisor

    settings = settings_from(args)
    configure()
    os.umask(0o077)  # whatever the service writes (logs, caches, temporary files) is owner-only
    with _listener(settings.host, settings.port) as sock:
        app = create_app(settings)  # the schema migrated, the admin and the keys made
        supervisor = Supervisor(worker_command(settings), settings.workers)
        _on_stop_signals(_exit)  # uvicorn takes the signals while it serves, then raises them
        try:
            supervisor.start()
            # proxy_headers off: uvicorn would otherwise take the client's address from
            # X-Forwarded-For sent by any local peer, and the login throttle counts by it.
            config = uvicorn.Config(app, log_config=None, proxy_headers=False)

            def ready() -> None:
                announce(_address(sock))

            _server_class()(config, app.state.platform.waits.finish, ready).run([sock])
        finally:

            def kill(signum: int, frame: FrameType | None) -> None:
                supervisor.kill()  # a second signal: no more patience

            _on_stop_signals(kill)
            supervisor.stop()
    return 0


def run_worker(args: argparse.Namespace) -> int:
    from .logs import configure

    settings = settings_from(args)
    configure()
    os.umask(0o077)
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
