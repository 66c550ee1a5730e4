"""Login, logout and password change."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..deps import CurrentUser, SessionDep
from ..models import RevokedToken, User
from ..problems import Problem
from ..schemas import Login, PasswordChange, Token, UserPublic
from ..security import hash_password, issue_token, verify_password

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/login")
def login(body: Login, request: Request, session: SessionDep) -> Token:
    user = session.query(User).filter_by(username=body.username).one_or_none()
    if user is None or not verify_password(body.password, user.password_hash):
        raise Problem(401, "Login failed", "unknown user or wrong password")
    settings = request.app.state.settings
    token, claims = issue_token(
        request.app.state.secret, user.id, user.token_epoch, settings.token_ttl_s
    )
    request.state.user = (user.id, user.username)
    return Token(token=token, expires_at=claims.expires_at, user=UserPublic.model_validate(user))


@router.post("/logout", status_code=204)
def logout(user: CurrentUser, request: Request, session: SessionDep) -> None:
    claims = request.state.claims
    session.add(RevokedToken(jti=claims.jti, expires_at=claims.expires_at))
    session.commit()


@router.post("/password", status_code=204)
def change_password(body: PasswordChange, user: CurrentUser, session: SessionDep) -> None:
    if not verify_password(body.old_password, user.password_hash):
        raise Problem(403, "Wrong password", "old_password does not match")
    user.password_hash = hash_password(body.new_password)
    user.token_epoch += 1  # every token issued before is revoked
    session.commit()
