"""Service settings and the data directory's layout."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings", "private_data_dir"]


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    db_url: str | None = None  # default: SQLite in the data dir
    token_ttl_s: int = 3600  # a stolen token is good for an hour at most
    max_body_bytes: int = 1 << 20  # JSON requests; uploads have their own limit
    max_function_bytes: int = 64 << 20
    max_upload_bytes: int = 256 << 20  # one encrypted file uploaded to the blob store
    admin_password_file: Path | None = None
    # Execution. Worker processes `serve` supervises (0: none; standalone `teaclave-infer
    # worker`s may serve); the API process itself never runs a task.
    workers: int = 0
    # A worker renews its lease every lease_s / 3; a task whose worker died is claimed again
    # once the lease runs out, at most max_attempts times in all.
    lease_s: float = 30.0
    max_attempts: int = 3
    # An idle worker sleeps until a task is staged (a signal); it also looks every poll_s, for
    # leases that ran out and signals that were lost.
    poll_s: float = 5.0
    # A standalone worker on another machine: the platform's address (its blobs come through
    # the API) and the platform's key files, copied there by the operator.
    platform_url: str | None = None
    keys_path: Path | None = None  # default: data_dir / "keys"
    # A blob directory the worker shares with the API (default: data_dir / "blobs"); a worker
    # given platform_url and no blob_path reads and writes blobs through the API instead.
    blob_path: Path | None = None
    # A worker process's in-memory caches (never written to disk): wasm bytes by sha256, and
    # the plaintext of function owners' separate weights files.
    wasm_cache_bytes: int = 128 << 20
    weights_cache_bytes: int = 256 << 20
    # Inputs fetched from file:// and http(s):// URLs: size and time limits (the time is the
    # whole of one fetch or upload). file:// URLs must lie under one of file_roots (none by
    # default: a data owner must not read the worker's disk); http(s):// URLs must resolve to
    # public addresses, or to hosts or CIDRs in fetch_allow (e.g. "localhost", "10.0.0.0/8").
    max_input_bytes: int = 256 << 20
    fetch_timeout_s: float = 30.0
    file_roots: tuple[Path, ...] = ()
    fetch_allow: tuple[str, ...] = ()

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'teaclave.db'}"

    @property
    def blob_dir(self) -> Path:
        return self.blob_path or self.data_dir / "blobs"

    @property
    def secret_file(self) -> Path:
        return self.data_dir / "token-secret"

    @property
    def keys_dir(self) -> Path:
        return self.keys_path or self.data_dir / "keys"

    @property
    def module_cache_dir(self) -> Path:
        return self.data_dir / "module-cache"


def private_data_dir(settings: Settings) -> None:
    """Makes the data dir owner-only, whatever the umask and however an older version left it:
    it holds password hashes, wrapped keys, the audit log and ciphertext. Directories 0700;
    the SQLite database created 0600 before SQLite opens it (SQLite gives its -wal and -shm
    files the database file's mode)."""
    for directory in (settings.data_dir, settings.blob_dir, settings.module_cache_dir):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
    if settings.db_url is None:
        database = settings.data_dir / "teaclave.db"
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
        for path in (
            database,
            database.with_name("teaclave.db-wal"),
            database.with_name("teaclave.db-shm"),
        ):
            if path.exists():
                path.chmod(0o600)
