"""The schema (SQLAlchemy 2 declarative). Alembic migrations in migrations/ create it."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AuditEvent",
    "Base",
    "Blob",
    "DataFile",
    "FileOwner",
    "Function",
    "IdempotencyRecord",
    "Place",
    "RevokedToken",
    "Role",
    "Task",
    "TaskParticipant",
    "User",
]


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Role(enum.StrEnum):
    PLATFORM_ADMIN = "PlatformAdmin"
    FUNCTION_OWNER = "FunctionOwner"
    DATA_OWNER = "DataOwner"


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(32))
    attribute: Mapped[str] = mapped_column(String(256), default="")  # Teaclave's role attribute
    # Tokens carry the epoch they were issued in; raising it revokes every token of the user.
    token_epoch: Mapped[int] = mapped_column(Integer, default=0)
    # An admin's reset: when, and whether the user has yet to choose a password of their own
    # (until then their tokens may only change it and read /v1/users/me).
    password_reset_at: Mapped[datetime | None] = mapped_column(nullable=True)
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=now)


class RevokedToken(Base):
    """A single token revoked before it expired (logout)."""

    __tablename__ = "revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column()


class AuditEvent(Base):
    """One state-changing request: who, what, on which ids, the outcome, when."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=now, index=True)
    user_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="SET NULL"), nullable=True, index=True
    )
    username: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64), index=True)
    targets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[int] = mapped_column(Integer)


class Function(Base):
    """A registered wasm function; `sha256` is its identity in every later record."""

    __tablename__ = "functions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    owner_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    allowlist: Mapped[list[Any]] = mapped_column(default=list)  # user ids
    arguments: Mapped[list[Any]] = mapped_column(default=list)  # {name, default, overwritable}
    inputs: Mapped[list[Any]] = mapped_column(default=list)  # {name, description, optional}
    outputs: Mapped[list[Any]] = mapped_column(default=list)
    quota: Mapped[int] = mapped_column(Integer, default=-1)  # invocations; < 0: unlimited
    usage: Mapped[int] = mapped_column(Integer, default=0)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    profile: Mapped[str] = mapped_column(String(32))
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {} without one
    # Registered with our builder's manifest (a Teaclave-ABI function may come without): its
    # negative return values are statuses, and it has tensor shapes. Stated here, never read off
    # `manifest`. True for functions older than the column: all came with one.
    has_manifest: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    size: Mapped[int] = mapped_column(Integer)
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict)  # executor Limits fields
    # The owner lets the users who may run it run it in their own browsers too: its wasm and,
    # with separate weights, this input file of the owner's and its key are handed to them.
    browser: Mapped[bool] = mapped_column(Boolean, default=False)
    browser_weights: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=now)


class DataFile(Base):
    """An input or output file: where it lives and how it is encrypted (never its key in the
    clear: `wrapped_key` is sealed to the platform's public key)."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(8))  # input | output
    url: Mapped[str] = mapped_column(Text)  # blob:<id>, file://..., http(s)://...
    schema: Mapped[str] = mapped_column(String(32))  # a vocabulary.Schema, e.g. aes-gcm-128
    wrapped_key: Mapped[str] = mapped_column(Text, default="")  # base64
    # The file id bound in the wrapped key's HPKE info: this file's own id, or, for an input made
    # from an output, the output's.
    key_file_id: Mapped[str] = mapped_column(String(32), default="")
    iv: Mapped[str] = mapped_column(String(64), default="")  # hex
    cmac: Mapped[str | None] = mapped_column(String(64), nullable=True)  # hex; outputs: at finish
    created_by: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(default=now)


class FileOwner(Base):
    """An owner of a file. Co-owners named by another user own it only once they accept."""

    __tablename__ = "file_owners"

    file_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    accepted: Mapped[bool] = mapped_column(Boolean, default=True)


class Place(Base):
    """A place files are registered at (a file:// path or an http(s):// URL), by its canonical
    spelling's SHA-256 (urls.url_key), and the owners it belongs to: the primary key makes
    claiming one atomic on every database, so two users can never register files at one place."""

    __tablename__ = "places"

    url_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    owners: Mapped[str] = mapped_column(Text)  # the owners' ids, sorted, space-separated


class Blob(Base):
    """A blob uploaded through the API: only its uploader may register it as a file."""

    __tablename__ = "blobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=now)


class Task(Base):
    """One run of a function on assigned data, through Teaclave's lifecycle."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    function_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("functions.id", ondelete="SET NULL"), nullable=True
    )
    function_sha256: Mapped[str] = mapped_column(String(64))
    creator_id: Mapped[str] = mapped_column(String(32), ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(16), index=True)
    arguments: Mapped[dict[str, Any]] = mapped_column(default=dict)  # defaults merged in
    input_owners: Mapped[dict[str, Any]] = mapped_column(default=dict)  # name -> [user ids]
    output_owners: Mapped[dict[str, Any]] = mapped_column(default=dict)
    assigned_inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)  # name -> file id
    assigned_outputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # at the end
    result_kind: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    # The queue: a worker holds a task while `lease_expires` is ahead and renews it; a task whose
    # lease ran out is claimed again, `attempts` counting the claims.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    lease_expires: Mapped[datetime | None] = mapped_column(nullable=True)
    invoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)
    # Raised by every route's write (assign, approve, invoke, cancel): their compare-and-swaps
    # compare it, with the state. The worker's writes leave it alone: they swap on (lease owner,
    # attempt) and touch only Staged and Running tasks, which no versioned swap changes.
    version: Mapped[int] = mapped_column(Integer, default=0)


class TaskParticipant(Base):
    """Everyone who must approve a task: the creator, the data owners, the owner of a private
    function."""

    __tablename__ = "task_participants"

    task_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    approved: Mapped[bool] = mapped_column(Boolean, default=False)


class IdempotencyRecord(Base):
    """The first response to a create request with an Idempotency-Key, replayed on retries."""

    __tablename__ = "idempotency_records"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    request: Mapped[str] = mapped_column(String(256))  # method and path
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=now)
