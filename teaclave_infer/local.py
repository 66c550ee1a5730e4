"""`teaclave-infer serve` as a child process on a free loopback port: what the demo and the
tests start. The context managers yield once /v1/health answers, and stop it (SIGTERM, after
which its worker processes finish their tasks; then SIGKILL) however the block ends.

The service binds port 0 itself (the kernel picks a free port) and says which in its log once it
listens: a port picked here and handed over would be free only when picked, and another process
(a test's server, another service starting) may take it before the service binds it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from .errors import TeaclaveInferError
from .serve import DB_ENV, READY

__all__ = ["Served", "free_port", "local_service", "serve_process"]


def free_port() -> int:
    """A port that was free when asked (and may be taken as soon as this returns)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _announced(log: Path, start: int) -> str | None:
    """The URL the service announced in its log, past byte `start` (where its output begins:
    the log may hold earlier runs'); None while it has not."""
    with log.open("rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    for line in text.splitlines(keepends=True):
        if line.startswith(READY) and line.endswith("\n"):
            return line.removeprefix(READY).strip()
    return None


def _wait_until_up(process: subprocess.Popen, log: Path, start: int, timeout: float) -> str:
    """The service's URL once it announced it and /v1/health answers there."""
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise TeaclaveInferError(
                f"the service exited with status {process.returncode}; its log ({log}):\n{tail}"
            )
        url = url or _announced(log, start)
        try:
            if url is not None and requests.get(f"{url}/v1/health", timeout=1).ok:
                return url
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TeaclaveInferError(f"the service did not answer within {timeout:g} s; see {log}")


ENTRY = ("-m", "teaclave_infer.cli")  # the interpreter's arguments that run `teaclave-infer`


@dataclass(frozen=True)
class Served:
    """A running `teaclave-infer serve`: its URL, its process, its log (JSON lines)."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def serve_process(
    data_dir: Path,
    admin_password_file: Path,
    workers: int,
    timeout: float = 60.0,
    db: str | None = None,
    flags: Sequence[str] = (),
    python_flags: Sequence[str] = (),
    entry: Sequence[str] = ENTRY,
) -> Iterator[Served]:
    """The service on 127.0.0.1 with SQLite in `data_dir` (or the database at URL `db`) and
    `workers` worker processes, with more `serve` flags and interpreter flags if given; its
    log (the workers' too) is `data_dir/serve.log`. `entry` is what the interpreter runs (the
    tests run the CLI through a script of theirs)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        *(sys.executable, *python_flags, *entry, "serve"),
        *("--data-dir", str(data_dir), "--port", "0", "--workers", str(workers)),
        *("--admin-password-file", str(admin_password_file)),
        *flags,
    ]
    log_path = data_dir / "serve.log"
    # The log is the service's own: owner-only, like everything in its data dir.
    with os.fdopen(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
        start = os.fstat(log.fileno()).st_size  # this run's output begins here
        env = {**os.environ, **({DB_ENV: db} if db else {})}  # not on its command line
        process = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        try:
            url = _wait_until_up(process, log_path, start, timeout)
            yield Served(url, process, log_path)
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the workers finish their tasks), then SIGKILL if it takes too long."""
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def local_service(
    data_dir: Path,
    admin_password_file: Path,
    workers: int,
    timeout: float = 60.0,
    db: str | None = None,
    entry: Sequence[str] = ENTRY,
) -> Iterator[str]:
    """serve_process's URL: what the demo and most tests need."""
    with serve_process(data_dir, admin_password_file, workers, timeout, db, entry=entry) as served:
        yield served.url
