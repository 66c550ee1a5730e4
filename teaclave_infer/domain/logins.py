"""A user's own credentials: finding the account a login names, storing a rehash, changing the
password, logging out. Login and password change hold no database connection while the KDF
runs, so these take the session factory and open a short session each."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from .db import changed
from .errors import Conflict, Invalid
from .models import RevokedToken, User
from .password_policy import require_strong

__all__ = ["check_new_password", "find", "reset_notice", "revoke", "set_password", "store_rehash"]


def find(sessions: sessionmaker[Session], username: str) -> User | None:
    with sessions() as session:  # closed at once: no connection is held during the KDF
        return session.scalars(select(User).where(User.username == username)).one_or_none()


def store_rehash(sessions: sessionmaker[Session], user: User, new_hash: str) -> None:
    """Stores today's hash of the password the user just logged in with, unless it changed
    meanwhile."""
    with sessions() as session:
        session.execute(
            update(User)
            .where(User.id == user.id, User.password_hash == user.password_hash)
            .values(password_hash=new_hash)
        )
        session.commit()


def reset_notice(user: User) -> str | None:
    """What the person logging in must know when an admin reset their password."""
    if not user.must_change_password or user.password_reset_at is None:
        return None
    return (
        f"an admin reset your password at {user.password_reset_at.isoformat()}; your approvals "
        "of tasks not yet invoked were withdrawn. Change the password (POST /v1/auth/password) "
        "before anything else; if you did not ask for the reset, tell the platform's operator"
    )


def check_new_password(old: str, new: str, username: str) -> None:
    """Invalid unless `new` may replace `old` as `username`'s password."""
    if new == old:
        raise Invalid("new_password must differ from old_password", title="Same password")
    require_strong(new, username)


def set_password(
    sessions: sessionmaker[Session], user_id: str, old_hash: str, new_hash: str
) -> None:
    """The new hash, if the password is still the one checked (Conflict otherwise); ends an
    admin's reset and revokes every token of the user's."""
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
    if done != 1:
        raise Conflict("the password changed meanwhile: log in again")


def revoke(session: Session, jti: str, expires_at: datetime) -> None:
    """Revokes one token (a logout) until it would have expired anyway."""
    session.add(RevokedToken(jti=jti, expires_at=expires_at))
    session.flush()
