"""Login (throttled, its KDF in a bounded pool off the event loop), logout and password
change."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from ...domain.db import changed
from ...domain.models import RevokedToken, User
from ...domain.password_policy import require_strong
from ..deps import CurrentUser, KdfDep, SessionDep
from ..problems import Problem
from ..schemas import Login, PasswordChange, Token, UserPublic
from ..security import issue_token
from ..throttle import LoginThrottle

router = APIRouter(prefix="/v1/auth", tags=["auth"])


async def login_throttle(request: Request) -> LoginThrottle:
    """The app's throttle, made at its first login (tests override this dependency)."""
    state = request.app.state
    if getattr(state, "login_throttle", None) is None:
        state.login_throttle = LoginThrottle()
    throttle: LoginThrottle = state.login_throttle
    return throttle


ThrottleDep = Annotated[LoginThrottle, Depends(login_throttle)]


def _too_many(detail: str, wait: float) -> Problem:
    seconds = max(1, math.ceil(wait))
    return Problem(
        429, "Too many attempts", f"{detail}: retry in {seconds} s", {"Retry-After": str(seconds)}
    )


def _find(sessions: sessionmaker[Session], username: str) -> User | None:
    with sessions() as session:  # closed at once: no connection is held during the KDF
        return session.query(User).filter_by(username=username).one_or_none()


def _store_rehash(sessions: sessionmaker[Session], user: User, new_hash: str) -> None:
    with sessions() as session:  # only if the password did not change meanwhile
        session.execute(
            update(User)
            .where(User.id == user.id, User.password_hash == user.password_hash)
            .values(password_hash=new_hash)
        )
        session.commit()


def _notice(user: User) -> str | None:
    if not user.must_change_password or user.password_reset_at is None:
        return None
    return (
        f"an admin reset your password at {user.password_reset_at.isoformat()}; your approvals "
        "of tasks not yet invoked were withdrawn. Change the password (POST /v1/auth/password) "
        "before anything else; if you did not ask for the reset, tell the platform's operator"
    )


@router.post("/login")
async def login(body: Login, request: Request, throttle: ThrottleDep, kdf: KdfDep) -> Token:
    """A token for the user, after one password derivation whether or not the user exists.
    A 429 with Retry-After while the account or the caller's address is throttled (see
    throttle.py), or while too many logins wait for the KDF."""
    address = request.client.host if request.client else ""
    request.state.user = (None, body.username)  # the audit row's, even a refused one's
    # Refused before any database work: a flood of logins costs no thread and no connection.
    if kdf.pool.busy:
        raise _too_many("too many logins at once", 1.0)
    if (wait := throttle.attempt(body.username, address)) > 0:
        raise _too_many(f"too many failed logins as {body.username!r} or from {address}", wait)
    sessions = request.app.state.sessions
    user = await run_in_threadpool(_find, sessions, body.username)
    request.state.user = (user.id if user else None, body.username)
    verdict = await kdf.verify_async(body.password, user.password_hash if user else None)
    if user is None or not verdict.ok:
        raise Problem(401, "Login failed", "unknown user or wrong password")
    throttle.succeeded(body.username, address)
    if verdict.rehash:  # a legacy hash, or costs raised since: store today's
        await run_in_threadpool(_store_rehash, sessions, user, await kdf.hash_async(body.password))
    settings = request.app.state.settings
    token, claims = issue_token(
        request.app.state.secret, user.id, user.token_epoch, settings.token_ttl_s
    )
    return Token(
        token=token,
        expires_at=claims.expires_at,
        user=UserPublic.model_validate(user),
        notice=_notice(user),
    )


@router.post("/logout", status_code=204)
def logout(user: CurrentUser, request: Request, session: SessionDep) -> None:
    claims = request.state.claims
    session.add(RevokedToken(jti=claims.jti, expires_at=claims.expires_at))
    session.commit()


@router.post("/password", status_code=204)
async def change_password(
    body: PasswordChange,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    throttle: ThrottleDep,
    kdf: KdfDep,
) -> None:
    """Sets the caller's own password (which ends an admin's reset) and revokes every token
    of theirs, this one too. Throttled like a login (a stolen token must not buy unlimited
    guesses of the password), its KDF in the same pool, no database connection held while it
    runs."""
    user_id, username, stored = user.id, user.username, user.password_hash
    await run_in_threadpool(session.close)  # the connection back to the pool meanwhile
    address = request.client.host if request.client else ""
    if kdf.pool.busy:
        raise _too_many("too many password checks at once", 1.0)
    if (wait := throttle.attempt(username, address)) > 0:
        raise _too_many(f"too many wrong passwords for {username!r} or from {address}", wait)
    if not (await kdf.verify_async(body.old_password, stored)).ok:
        raise Problem(403, "Wrong password", "old_password does not match")
    throttle.succeeded(username, address)
    if body.new_password == body.old_password:
        raise Problem(422, "Same password", "new_password must differ from old_password")
    require_strong(body.new_password, username)
    new_hash = await kdf.hash_async(body.new_password)
    sessions = request.app.state.sessions
    if not await run_in_threadpool(_set_password, sessions, user_id, stored, new_hash):
        raise Problem(409, "Conflict", "the password changed meanwhile: log in again")


def _set_password(
    sessions: sessionmaker[Session], user_id: str, old_hash: str, new_hash: str
) -> bool:
    """The new hash, if the password is still the one checked; every token revoked."""
    with sessions() as session:
        done = changed(
            session,
            update(User)
            .where(User.id == user_id, User.password_hash == old_hash)
            .values(
                password_hash=new_hash,
                must_change_password=False,
                token_epoch=User.token_epoch + 1,  # every token issued before is revoked
            ),
        )
        session.commit()
    return done == 1
