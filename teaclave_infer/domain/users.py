"""Accounts, as the admin administers them: create, list, change, delete, reset a password.

Each operation takes the session and plain values, raises the domain's errors, and leaves the
commit to its caller."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import case, select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from teaclave_client.vocabulary import id_shaped

from .errors import Conflict, Invalid, NotFound
from .lifecycle import Action, State, next_state
from .models import Task, TaskParticipant, User
from .pages import Slice, page
from .password_policy import require_strong
from .passwords import PasswordKdf

__all__ = ["create", "delete", "get", "listing", "require_known", "reset_password", "update"]


def require_known(session: Session, user_ids: Iterable[str], field: str) -> None:
    """Invalid, naming them, if any of `user_ids` (given in `field`) is no user's id."""
    wanted = set(user_ids)
    known = set(session.scalars(select(User.id).where(User.id.in_(wanted)))) if wanted else set()
    if unknown := wanted - known:
        raise Invalid(f"{field} names no user: {sorted(unknown)}", title="Unknown users")


def get(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user {user_id}")
    return user


def create(
    session: Session, kdf: PasswordKdf, username: str, password: str, role: str, attribute: str
) -> User:
    """A new account; Invalid if the name has the form of a user id or the password is weak,
    Conflict if the name is taken."""
    if id_shaped(username):
        # Clients that name users by login name take an id in the same place (Teaclave's facade
        # does): a name that reads as an id could pass for the user who has that id.
        raise Invalid(f"username {username!r} has the form of a user id", title="Invalid username")
    require_strong(password, username)
    password_hash = kdf.hash(password)  # before the query: no connection held meanwhile
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise Conflict(f"username {username!r} is taken")
    user = User(username=username, password_hash=password_hash, role=role, attribute=attribute)
    session.add(user)
    session.flush()
    return user


def listing(session: Session, offset: int, limit: int) -> Slice[User]:
    return page(session, select(User).order_by(User.created_at, User.id), offset, limit)


def update(session: Session, user_id: str, role: str | None, attribute: str | None) -> User:
    user = get(session, user_id)
    if role is not None and role != user.role:
        user.role = role
        user.token_epoch += 1  # a token must not outlive the role it was issued for
    if attribute is not None:
        user.attribute = attribute
    session.flush()
    return user


def delete(session: Session, admin: User, user_id: str) -> None:
    """Deletes the account (its tokens die with it: they name a user that no longer exists);
    Conflict for the admin's own, or one that created tasks (which keep their creator)."""
    user = get(session, user_id)
    if user.id == admin.id:
        raise Conflict("an admin cannot delete their own account")
    session.delete(user)
    try:
        session.flush()
    except IntegrityError as err:
        session.rollback()
        raise Conflict(f"user {user_id} created tasks, which must keep their creator") from err


def reset_password(session: Session, kdf: PasswordKdf, user_id: str, password: str) -> None:
    """Sets a password the user must change at their next login (until then their tokens
    may do nothing else), revokes their tokens, and withdraws their approvals of tasks not
    yet invoked: whoever knows the new password, the admin too, cannot act as them unseen."""
    user = get(session, user_id)
    require_strong(password, user.username)
    user.password_hash = kdf.hash(password)
    user.token_epoch += 1
    user.password_reset_at, user.must_change_password = datetime.now(UTC), True
    _withdraw_approvals(session, user.id)
    session.flush()


def _withdraw_approvals(session: Session, user_id: str) -> None:
    """The user's approvals of tasks not yet invoked stop counting: an Approved task goes back
    to DataAssigned. Each task's version is raised, so that an approval or an invocation racing
    with this one reads the task again (or finds it no longer Approved)."""
    approved = select(TaskParticipant.task_id).where(
        TaskParticipant.user_id == user_id, TaskParticipant.approved.is_(True)
    )
    pending = (State.DATA_ASSIGNED, State.APPROVED)
    withdrawn = next_state(State.APPROVED, Action.WITHDRAW)
    session.execute(
        sql_update(Task)
        .where(Task.id.in_(approved), Task.state.in_(pending))
        .values(
            state=case((Task.state == State.APPROVED, withdrawn), else_=Task.state),
            version=Task.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(
        sql_update(TaskParticipant)
        .where(
            TaskParticipant.user_id == user_id,
            TaskParticipant.task_id.in_(select(Task.id).where(Task.state.in_(pending))),
        )
        .values(approved=False)
        .execution_options(synchronize_session=False)
    )
