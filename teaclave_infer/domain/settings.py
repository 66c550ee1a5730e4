"""Service settings and the data directory's layout.

Each setting is defined once, below: its name, type, default, bounds and help. Its environment
variable is the field's alias (`TEACLAVE_...`) and its flag is made from that name
(`TEACLAVE_LEASE` -> `--lease`): setting_sources.py reads them, and writes the documentation's
table, from these definitions alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import ByteSize, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

__all__ = ["ENV_PREFIX", "Command", "Settings", "private_data_dir"]

ENV_PREFIX = "TEACLAVE_"
MIB = 1 << 20

Command = Literal["serve", "worker"]
BOTH: tuple[Command, ...] = ("serve", "worker")  # a worker's settings: `serve` passes them on
SERVE: tuple[Command, ...] = ("serve",)  # the API's own
WORKER: tuple[Command, ...] = ("worker",)


def _setting(
    default: Any,
    env: str,
    help: str,
    commands: tuple[Command, ...],
    metavar: str | None = None,
    shown: str | None = None,
    **bounds: Any,
) -> Any:
    """One setting's definition: `env` is its variable (without the prefix); `shown` is the
    default as the docs say it, where the value itself would mislead."""
    extra: dict[str, Any] = {"commands": list(commands), "metavar": metavar, "shown": shown}
    factory = default if callable(default) else None
    return Field(
        **({"default_factory": factory} if factory else {"default": default}),
        validation_alias=ENV_PREFIX + env,
        description=help,
        json_schema_extra=extra,
        **bounds,
    )


def _cores() -> int:
    return os.cpu_count() or 1


Bytes = Annotated[ByteSize, Field(gt=0)]  # a number of bytes, or a size such as "64MiB"


class Settings(BaseSettings):
    """What `serve` and `worker` may be told. Built in code (tests), it reads nothing from the
    environment: only `from_sources` does."""

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True
    )

    data_dir: Path = _setting(
        Path("teaclave-data"),
        "DATA_DIR",
        "the data directory: the SQLite database, blobs and keys unless placed elsewhere, and "
        "a worker's module cache",
        BOTH,
        "DIR",
    )
    db_url: str | None = _setting(
        None,
        "DB",
        "database URL, e.g. postgresql://user:pass@host/db. Prefer the variable: a flag shows "
        "the password to every local user in the process list",
        BOTH,
        "URL",
        shown="SQLite in the data dir",
    )
    keys_path: Path | None = _setting(
        None, "KEYS", "the platform's key files", BOTH, "DIR", shown="DATA/keys"
    )
    # A blob directory the worker shares with the API; a worker given platform_url and no
    # blob_path reads and writes blobs through the API instead.
    blob_path: Path | None = _setting(
        None,
        "BLOBS",
        "the blob store's directory (a worker given --platform and no --blobs reads and "
        "writes blobs through the API)",
        BOTH,
        "DIR",
        shown="DATA/blobs",
    )
    host: str = _setting("127.0.0.1", "HOST", "the address the API listens on", SERVE, "HOST")
    port: int = _setting(
        8000, "PORT", "the API's port (0: any free one)", SERVE, "PORT", ge=0, le=65535
    )
    admin_password_file: Path | None = _setting(
        None,
        "ADMIN_PASSWORD_FILE",
        "the first admin's password, read on first start",
        SERVE,
        "FILE",
        shown="a one-time password, printed",
    )
    # Worker processes `serve` supervises (0: none; standalone `teaclave-infer worker`s may
    # serve); the API process itself never runs a task.
    workers: int = _setting(
        _cores,
        "WORKERS",
        "worker processes to start and keep running (0: only standalone workers)",
        SERVE,
        "N",
        shown="one per core",
        ge=0,
    )
    token_ttl_s: int = _setting(  # a stolen token is good for an hour at most
        3600, "TOKEN_TTL", "seconds a login token is valid", SERVE, "S", gt=0
    )
    max_body_bytes: Bytes = _setting(  # uploads have their own limit
        ByteSize(MIB), "MAX_BODY_BYTES", "largest JSON request body", SERVE, "BYTES"
    )
    max_function_bytes: Bytes = _setting(
        ByteSize(64 * MIB), "MAX_FUNCTION_BYTES", "largest function registered", SERVE, "BYTES"
    )
    max_upload_bytes: Bytes = _setting(
        ByteSize(256 * MIB),
        "MAX_UPLOAD_BYTES",
        "largest encrypted file uploaded to the blob store",
        SERVE,
        "BYTES",
    )
    # A worker renews its lease every lease_s / 3; a task whose worker died is claimed again
    # once the lease runs out, at most max_attempts times in all.
    lease_s: float = _setting(30.0, "LEASE", "a worker's lease on a task", BOTH, "S", gt=0)
    max_attempts: int = _setting(
        3, "MAX_ATTEMPTS", "runs of a task whose workers die before it fails", BOTH, "N", ge=1
    )
    # An idle worker sleeps until a task is staged (a signal); it also looks every poll_s, for
    # leases that ran out and signals that were lost.
    poll_s: float = _setting(
        5.0,
        "POLL",
        "an idle worker, woken when a task is staged, also looks every S seconds (for leases "
        "that ran out and lost wake-ups)",
        BOTH,
        "S",
        gt=0,
    )
    # A standalone worker on another machine: the platform's address (its blobs come through
    # the API) and the platform's key files, copied there by the operator.
    platform_url: str | None = _setting(
        None,
        "PLATFORM",
        "the platform's address, e.g. https://platform.example:8000 (without --blobs, the "
        "worker reads and writes blobs through it)",
        WORKER,
        "URL",
    )
    # A worker process's in-memory caches (never written to disk): wasm bytes by sha256, and
    # the plaintext of function owners' separate weights files.
    wasm_cache_bytes: Bytes = _setting(
        ByteSize(128 * MIB), "WASM_CACHE_BYTES", "a worker's cache of functions", BOTH, "BYTES"
    )
    weights_cache_bytes: Bytes = _setting(
        ByteSize(256 * MIB),
        "WEIGHTS_CACHE_BYTES",
        "a worker's cache of decrypted weights files",
        BOTH,
        "BYTES",
    )
    # Inputs fetched from file:// and http(s):// URLs: size and time limits (the time is the
    # whole of one fetch or upload). file:// URLs must lie under one of file_roots (none by
    # default: a data owner must not read the worker's disk); http(s):// URLs must resolve to
    # public addresses, or to hosts or CIDRs in fetch_allow (e.g. "localhost", "10.0.0.0/8").
    max_input_bytes: Bytes = _setting(
        ByteSize(256 * MIB),
        "MAX_INPUT_BYTES",
        "largest input file a worker reads (from the blob store or a URL)",
        BOTH,
        "BYTES",
    )
    fetch_timeout_s: float = _setting(
        30.0, "FETCH_TIMEOUT", "time for one fetch or upload of a URL", BOTH, "S", gt=0
    )
    file_roots: Annotated[tuple[Path, ...], NoDecode] = _setting(
        (),
        "ALLOW_FILE_ROOT",
        "file:// input and output URLs may lie under DIR (repeatable; the variable: "
        "comma-separated)",
        BOTH,
        "DIR",
        shown="none",
    )
    fetch_allow: Annotated[tuple[str, ...], NoDecode] = _setting(
        (),
        "ALLOW_FETCH",
        "http(s):// URLs may reach this host name (any port) or these addresses, besides "
        "public ones (repeatable; the variable: comma-separated; e.g. localhost,10.0.0.0/8)",
        BOTH,
        "HOST_OR_CIDR",
        shown="none",
    )

    @field_validator("file_roots", "fetch_allow", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("platform_url", mode="after")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("expected http(s)://HOST[:PORT]")
        return value.rstrip("/")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the arguments only: the environment is from_sources's to read

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
