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

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'teaclave.db'}"

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def secret_file(self) -> Path:
        return self.data_dir / "token-secret"
