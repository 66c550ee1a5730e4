"""Request and response bodies, one schema per direction."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from .models import Role

T = TypeVar("T")

Username = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
Password = Field(min_length=8, max_length=1024)


class Login(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    username: str
    role: Role
    attribute: str
    created_at: datetime


class Token(BaseModel):
    token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: UserPublic


class UserCreate(BaseModel):
    username: str = Username
    password: str = Password
    role: Role
    attribute: str = Field(default="", max_length=256)


class UserUpdate(BaseModel):
    role: Role | None = None
    attribute: str | None = Field(default=None, max_length=256)


class PasswordChange(BaseModel):
    old_password: str = Field(max_length=1024)
    new_password: str = Password


class PasswordReset(BaseModel):
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
