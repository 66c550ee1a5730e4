"""Request dependencies: the database session, the caller, role checks, the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from ..domain.models import RevokedToken, Role, User
from ..domain.passwords import PasswordKdf, password_kdf
from .problems import Problem
from .security import TokenClaims, read_token

__all__ = ["AdminUser", "CurrentUser", "KdfDep", "SessionDep"]

_bearer = HTTPBearer(auto_error=False)
# All that a token of a user whose password an admin reset may do until they change it.
_WHILE_RESET = {"/v1/auth/password", "/v1/auth/logout", "/v1/users/me"}


def get_session(request: Request) -> Iterator[Session]:
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def _claims(request: Request, credentials: HTTPAuthorizationCredentials | None) -> TokenClaims:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(401, "Not authenticated", "send Authorization: Bearer <token> from login")
    claims = read_token(request.app.state.secret, credentials.credentials)
    if claims is None:
        raise Problem(401, "Invalid token", "the token is malformed, forged or expired: log in")
    return claims


def current_user(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    claims = _claims(request, credentials)
    user = session.get(User, claims.user_id)
    revoked = session.get(RevokedToken, claims.jti) is not None
    if user is None or revoked or claims.epoch != user.token_epoch:
        raise Problem(401, "Token revoked", "this token was revoked: log in again")
    request.state.claims, request.state.user = claims, (user.id, user.username)
    route = getattr(request.scope.get("route"), "path", request.url.path)
    if user.must_change_password and route not in _WHILE_RESET:
        raise Problem(
            403,
            "Password reset",
            f"an admin reset your password at {user.password_reset_at}: change it with "
            "POST /v1/auth/password before anything else",
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def admin_user(user: CurrentUser) -> User:
    if user.role != Role.PLATFORM_ADMIN:
        raise Problem(403, "Forbidden", "only a PlatformAdmin may do this")
    return user


AdminUser = Annotated[User, Depends(admin_user)]

# The password KDF (tests override password_kdf with a counting fake).
KdfDep = Annotated[PasswordKdf, Depends(password_kdf)]
