"""Login (throttled, its KDF in a bounded pool off the event loop), logout and password
change. The account's rules are the domain's (domain/logins.py); the throttle, the KDF pool and
the token are the API's."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from ...domain import logins
from ...domain.errors import Forbidden
from ..deps import CurrentUser, KdfDep, PlatformDep, SessionDep
from ..problems import Problem
from ..schemas import Login, PasswordChange, Token, UserPublic
from ..security import TokenClaims, issue_token
from ..throttle import LoginThrottle

router = APIRouter(prefix="/v1/auth", tags=["auth"])


async def login_throttle(platform: PlatformDep) -> LoginThrottle:
    """The API process's throttle (tests override this dependency)."""
    return platform.throttle


ThrottleDep = Annotated[LoginThrottle, Depends(login_throttle)]


def _too_many(detail: str, wait: float) -> Problem:
    seconds = max(1, math.ceil(wait))
    return Problem(
        429, "Too many attempts", f"{detail}: retry in {seconds} s", {"Retry-After": str(seconds)}
    )


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


@router.post("/login")
async def login(
    body: Login, request: Request, platform: PlatformDep, throttle: ThrottleDep, kdf: KdfDep
) -> Token:
    """A token for the user, after one password derivation whether or not the user exists.
    A 429 with Retry-After while the account or the caller's address is throttled (see
    throttle.py), or while too many logins wait for the KDF."""
    address = _address(request)
    request.state.user = (None, body.username)  # the audit row's, even a refused one's
    # Refused before any database work: a flood of logins costs no thread and no connection.
    if kdf.pool.busy:
        raise _too_many("too many logins at once", 1.0)
    if (wait := throttle.attempt(body.username, address)) > 0:
        raise _too_many(f"too many failed logins as {body.username!r} or from {address}", wait)
    user = await run_in_threadpool(logins.find, platform.sessions, body.username)
    request.state.user = (user.id if user else None, body.username)
    verdict = await kdf.verify_async(body.password, user.password_hash if user else None)
    if user is None or not verdict.ok:
        raise Problem(401, "Login failed", "unknown user or wrong password")
    throttle.succeeded(body.username, address)
    if verdict.rehash:  # a legacy hash, or costs raised since: store today's
        new_hash = await kdf.hash_async(body.password)
        await run_in_threadpool(logins.store_rehash, platform.sessions, user, new_hash)
    ttl = platform.settings.token_ttl_s
    token, claims = issue_token(platform.secret, user.id, user.token_epoch, ttl)
    return Token(
        token=token,
        expires_at=claims.expires_at,
        user=UserPublic.model_validate(user),
        notice=logins.reset_notice(user),
    )


@router.post("/logout", status_code=204)
def logout(user: CurrentUser, request: Request, session: SessionDep) -> None:
    claims: TokenClaims = request.state.claims
    logins.revoke(session, claims.jti, claims.expires_at)
    session.commit()


@router.post("/password", status_code=204)
async def change_password(
    body: PasswordChange,
    request: Request,
    platform: PlatformDep,
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
    address = _address(request)
    if kdf.pool.busy:
        raise _too_many("too many password checks at once", 1.0)
    if (wait := throttle.attempt(username, address)) > 0:
        raise _too_many(f"too many wrong passwords for {username!r} or from {address}", wait)
    if not (await kdf.verify_async(body.old_password, stored)).ok:
        raise Forbidden("old_password does not match", title="Wrong password")
    throttle.succeeded(username, address)
    logins.check_new_password(body.old_password, body.new_password, username)
    new_hash = await kdf.hash_async(body.new_password)
    await run_in_threadpool(logins.set_password, platform.sessions, user_id, stored, new_hash)
