"""Request and response bodies, one schema per direction (a function's are in
function_schemas.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from teaclave_client.vocabulary import Schema

from ..domain.models import Role
from .bounded import Body, Name, one_of

T = TypeVar("T")

Username = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
Password = Field(min_length=8, max_length=1024)


class Login(Body):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    username: str
    role: Role
    attribute: str
    created_at: datetime
    # Set by an admin's password reset; until the user changes the password, their tokens may
    # only do that and read /v1/users/me.
    password_reset_at: datetime | None = None
    must_change_password: bool = False


class Token(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: UserPublic
    notice: str | None = None  # for the person logging in (their password was reset)


class UserCreate(Body):
    username: str = Username
    password: str = Password
    role: Role
    attribute: str = Field(default="", max_length=256)


class UserUpdate(Body):
    role: Role | None = None
    attribute: str | None = Field(default=None, max_length=256)


class PasswordChange(Body):
    old_password: str = Field(max_length=1024)
    new_password: str = Password


class PasswordReset(Body):
    password: str = Password


class AuditPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    at: datetime
    user_id: str | None
    username: str
    action: str
    targets: dict[str, Any]
    status: int


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


Hex = Field(default="", max_length=64, pattern=r"^([0-9a-fA-F]{2})*$")


FileId = Field(default=None, pattern=r"^[0-9a-f]{32}$")


class _Sealed(Body):
    """A file whose key is wrapped to the platform key with the file's id bound in: the client
    chooses the id (a random 32-hex-digit one) before wrapping."""

    id: str | None = FileId

    @model_validator(mode="after")
    def _bound(self) -> _Sealed:
        schema = getattr(self, "schema_", None)  # every subclass has one
        sealed = schema is not None and Schema(schema).sealed
        if sealed and (self.id is None or not getattr(self, "wrapped_key", "")):
            raise ValueError("an encrypted file needs `id` and `wrapped_key` (bound to that id)")
        if not sealed and bool(getattr(self, "wrapped_key", "")):
            raise ValueError("a raw file has no key")
        return self


class InputFileCreate(_Sealed):
    url: str = Field(max_length=2048, pattern=r"^(blob:[0-9a-f]{32}|file://.+|https?://.+)$")
    schema_: str = Field(alias="schema", pattern=one_of(list(Schema)))
    wrapped_key: str = Field(default="", max_length=4096)  # base64, sealed to the platform key
    iv: str = Hex
    cmac: str = Field(pattern=r"^[0-9a-fA-F]{32}$")
    owners: list[str] = Field(default_factory=list, max_length=100)  # besides the caller

    @model_validator(mode="after")
    def _no_iv(self) -> InputFileCreate:
        schema = Schema(self.schema_)
        if schema.sealed and not schema.takes_iv and self.iv:
            raise ValueError(f"a {schema} file has no iv (its nonces are inside it)")
        return self


class OutputFileCreate(_Sealed):
    url: str = Field(default="blob:", max_length=2048, pattern=r"^(blob:|file://.+|https?://.+)$")
    schema_: str = Field(alias="schema", pattern=one_of([s for s in Schema if s.sealed]))
    wrapped_key: str = Field(max_length=4096)
    owners: list[str] = Field(default_factory=list, max_length=100)


class InputFromOutput(Body):
    output_id: str


class FilePublic(BaseModel):
    id: str
    kind: str
    url: str
    schema_: str = Field(serialization_alias="schema")
    iv: str
    cmac: str | None
    owners: list[str]
    pending_owners: list[str] = Field(default_factory=list)  # named, not yet accepted
    created_at: datetime


class Ownership(Body):
    name: str = Name
    owners: list[str] = Field(min_length=1, max_length=100)


class Assignment(Body):
    inputs: dict[str, str] = Field(default_factory=dict)  # slot name -> file id
    outputs: dict[str, str] = Field(default_factory=dict)
    approve: bool = False  # and approve, in the same transaction, once the data is complete


class TaskCreate(Body):
    """A task; with `assign`, `approve` and `invoke`, the caller's own steps in the same
    transaction, each taken as far as the rules allow (the response says where it stopped)."""

    function_id: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    inputs_ownership: list[Ownership] = Field(default_factory=list)
    outputs_ownership: list[Ownership] = Field(default_factory=list)
    assign: Assignment | None = None  # the caller's files (its `approve` is `approve` here)
    approve: bool = False
    invoke: bool = False


class Approval(Body):
    invoke: bool = False  # the creator's: an approval that completes the task also stages it


class TaskPublic(BaseModel):
    id: str
    function_id: str | None
    function_sha256: str
    creator_id: str
    state: str
    arguments: dict[str, Any]
    input_owners: dict[str, list[str]]
    output_owners: dict[str, list[str]]
    assigned_inputs: dict[str, str]
    assigned_outputs: dict[str, str]
    approvals: dict[str, bool]
    result: dict[str, Any] | None
    result_kind: str | None
    attempts: int
    invoked_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TaskProgress(TaskPublic):
    """A task as a request that asked for several steps left it: what it still waits for
    (`inputs` and `outputs` not assigned, `approvals` not given) and, if the request asked for
    more than the rules allowed yet, why it stopped."""

    waiting_for: dict[str, list[str]] = Field(default_factory=dict)
    stopped: str | None = None
