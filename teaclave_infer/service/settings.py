"""Service settings and the data directory's layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    db_url: str | None = None  # default: SQLite in the data dir
    token_ttl_s: int = 3600  # a stolen token is good for an hour at most
    max_body_bytes: int = 1 << 20  # JSON requests; uploads have their own limit
    max_function_bytes: int = 64 << 20
    max_upload_bytes: int = 256 << 20  # one encrypted file uploaded to the blob store
    admin_password_file: Path | None = None
    # Execution. In-process workers (0: none; standalone `teaclave-infer worker`s may serve).
    workers: int = 0
    # A worker renews its lease every lease_s / 3; a task whose worker died is claimed again
    # once the lease runs out, at most max_attempts times in all.
    lease_s: float = 30.0
    max_attempts: int = 3
    poll_s: float = 0.5  # how often an idle worker looks for work (in-process ones are woken)
    # Inputs fetched from file:// and http(s):// URLs: size and time limits. file:// URLs must
    # lie under one of file_roots (none by default: a data owner must not read the worker's disk).
    max_input_bytes: int = 256 << 20
    fetch_timeout_s: float = 30.0
    file_roots: tuple[Path, ...] = ()

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'teaclave.db'}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def secret_file(self) -> Path:
        return self.data_dir / "token-secret"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def module_cache_dir(self) -> Path:
        return self.data_dir / "module-cache"
