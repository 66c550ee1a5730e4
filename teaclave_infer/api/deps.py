"""Request dependencies, typed: the platform's parts, the database session, the caller, role
checks. Routes name what they need here; nothing else reads `app.state`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ..domain.blobs import BlobStore
from ..domain.keys import PlatformKeys
from ..domain.models import RevokedToken, Role, User
from ..domain.passwords import PasswordKdf, password_kdf
from ..domain.settings import Settings
from ..domain.signals import Signals
from .problems import Problem
from .security import TokenClaims, read_token
from .throttle import LoginThrottle
from .waits import TaskWaits

__all__ = [
    "AdminUser",
    "CurrentUser",
    "KdfDep",
    "Platform",
    "PlatformDep",
    "SessionDep",
    "user_of",
]

_bearer = HTTPBearer(auto_error=False)
# All that a token of a user whose password an admin reset may do until they change it.
_WHILE_RESET = {"/v1/auth/password", "/v1/auth/logout", "/v1/users/me"}


@dataclass(frozen=True)
class Platform:
    """The parts of the platform that routes use, made once by create_app."""

    settings: Settings
    sessions: sessionmaker[Session]
    blobs: BlobStore
    keys: PlatformKeys
    signals: Signals
    secret: bytes  # signs tokens
    metrics: CollectorRegistry
    waits: TaskWaits  # long-polls on tasks
    # Failed logins, counted in this API process (see throttle.py).
    throttle: LoginThrottle = field(default_factory=LoginThrottle)


async def get_platform(request: Request) -> Platform:  # async: no thread for a lookup
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def get_session(platform: PlatformDep) -> Iterator[Session]:
    with platform.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def _claims(secret: bytes, credentials: HTTPAuthorizationCredentials | None) -> TokenClaims:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(401, "Not authenticated", "send Authorization: Bearer <token> from login")
    claims = read_token(secret, credentials.credentials)
    if claims is None:
        raise Problem(401, "Invalid token", "the token is malformed, forged or expired: log in")
    return claims


def user_of(session: Session, claims: TokenClaims, route: str) -> User:
    """The user a token's claims name, if the token still holds (not revoked, not from before a
    password change, the account not deleted) and may call `route`. A long-poll asks again
    each time it re-reads, so a token revoked while it waits stops being answered."""
    # One statement for the user and the token's revocation (every request makes it).
    row = session.execute(
        select(User, RevokedToken.jti)
        .outerjoin(RevokedToken, RevokedToken.jti == claims.jti)
        .where(User.id == claims.user_id)
    ).first()
    user, revoked = (row[0], row[1] is not None) if row is not None else (None, False)
    if user is None or revoked or claims.epoch != user.token_epoch:
        raise Problem(401, "Token revoked", "this token was revoked: log in again")
    if user.must_change_password and route not in _WHILE_RESET:
        raise Problem(
            403,
            "Password reset",
            f"an admin reset your password at {user.password_reset_at}: change it with "
            "POST /v1/auth/password before anything else",
        )
    return user


def current_user(
    request: Request,
    platform: PlatformDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    claims = _claims(platform.secret, credentials)
    route = getattr(request.scope.get("route"), "path", request.url.path)
    user = user_of(session, claims, route)
    request.state.claims, request.state.user = claims, (user.id, user.username)
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def admin_user(user: CurrentUser) -> User:
    if user.role != Role.PLATFORM_ADMIN:
        raise Problem(403, "Forbidden", "only a PlatformAdmin may do this")
    return user


AdminUser = Annotated[User, Depends(admin_user)]

# The password KDF (tests override password_kdf with a counting fake).
KdfDep = Annotated[PasswordKdf, Depends(password_kdf)]
