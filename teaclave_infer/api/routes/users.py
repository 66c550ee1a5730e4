"""Users: the caller's own record, and the admin's endpoints."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ...domain.lifecycle import Action, State, next_state
from ...domain.models import Task, TaskParticipant, User
from ...domain.password_policy import require_strong
from ..bounded import Id, Limit, Offset
from ..deps import AdminUser, CurrentUser, KdfDep, SessionDep
from ..problems import Problem
from ..schemas import Page, PasswordReset, UserCreate, UserPublic, UserUpdate

router = APIRouter(prefix="/v1/users", tags=["users"])


def _get(session: SessionDep, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise Problem(404, "Not found", f"no user {user_id}")
    return user


@router.get("/me")
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.post("", status_code=201)
def create_user(body: UserCreate, admin: AdminUser, session: SessionDep, kdf: KdfDep) -> UserPublic:
    require_strong(body.password, body.username)
    password_hash = kdf.hash(body.password)  # before the query: no connection held meanwhile
    if session.query(User).filter_by(username=body.username).first() is not None:
        raise Problem(409, "Conflict", f"username {body.username!r} is taken")
    user = User(
        username=body.username,
        password_hash=password_hash,
        role=body.role,
        attribute=body.attribute,
    )
    session.add(user)
    session.commit()
    return UserPublic.model_validate(user)


@router.get("")
def list_users(
    admin: AdminUser,
    session: SessionDep,
    offset: Offset = 0,
    limit: Limit = 100,
) -> Page[UserPublic]:
    total = session.scalar(select(func.count()).select_from(User)) or 0
    rows = session.scalars(
        select(User).order_by(User.created_at, User.id).offset(offset).limit(limit)
    )
    return Page(
        items=[UserPublic.model_validate(u) for u in rows], total=total, offset=offset, limit=limit
    )


@router.get("/{user_id}")
def get_user(user_id: Id, admin: AdminUser, session: SessionDep) -> UserPublic:
    return UserPublic.model_validate(_get(session, user_id))


@router.patch("/{user_id}")
def update_user(user_id: Id, body: UserUpdate, admin: AdminUser, session: SessionDep) -> UserPublic:
    user = _get(session, user_id)
    if body.role is not None and body.role != user.role:
        user.role = body.role
        user.token_epoch += 1  # a token must not outlive the role it was issued for
    if body.attribute is not None:
        user.attribute = body.attribute
    session.commit()
    return UserPublic.model_validate(user)


@router.delete("/{user_id}", status_code=204)
def delete_user(user_id: Id, admin: AdminUser, session: SessionDep) -> None:
    user = _get(session, user_id)
    if user.id == admin.id:
        raise Problem(409, "Conflict", "an admin cannot delete their own account")
    session.delete(user)  # its tokens die with it: they name a user that no longer exists
    try:
        session.commit()
    except IntegrityError as err:
        session.rollback()
        raise Problem(
            409,
            "Conflict",
            f"user {user_id} created tasks, which must keep their creator",
        ) from err


@router.post("/{user_id}/password", status_code=204)
def reset_password(
    user_id: Id, body: PasswordReset, admin: AdminUser, session: SessionDep, kdf: KdfDep
) -> None:
    """Sets a password the user must change at their next login (until then their tokens
    may do nothing else), revokes their tokens, and withdraws their approvals of tasks not
    yet invoked: whoever knows the new password, the admin too, cannot act as them unseen."""
    user = _get(session, user_id)
    require_strong(body.password, user.username)
    user.password_hash = kdf.hash(body.password)
    user.token_epoch += 1
    user.password_reset_at, user.must_change_password = datetime.now(UTC), True
    _withdraw_approvals(session, user.id)
    session.commit()


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
        update(Task)
        .where(Task.id.in_(approved), Task.state.in_(pending))
        .values(
            state=case((Task.state == State.APPROVED, withdrawn), else_=Task.state),
            version=Task.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(TaskParticipant)
        .where(
            TaskParticipant.user_id == user_id,
            TaskParticipant.task_id.in_(select(Task.id).where(Task.state.in_(pending))),
        )
        .values(approved=False)
        .execution_options(synchronize_session=False)
    )
