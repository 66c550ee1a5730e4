"""Users: the caller's own record, and the admin's endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..deps import AdminUser, CurrentUser, SessionDep
from ..models import User
from ..problems import Problem
from ..schemas import Page, PasswordReset, UserCreate, UserPublic, UserUpdate
from ..security import hash_password

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
def create_user(body: UserCreate, admin: AdminUser, session: SessionDep) -> UserPublic:
    if session.query(User).filter_by(username=body.username).first() is not None:
        raise Problem(409, "Conflict", f"username {body.username!r} is taken")
    user = User(
        username=body.username,
        password_hash=hash_password(body.password),
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
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[UserPublic]:
    total = session.scalar(select(func.count()).select_from(User)) or 0
    rows = session.scalars(
        select(User).order_by(User.created_at, User.id).offset(offset).limit(limit)
    )
    return Page(
        items=[UserPublic.model_validate(u) for u in rows], total=total, offset=offset, limit=limit
    )


@router.get("/{user_id}")
def get_user(user_id: str, admin: AdminUser, session: SessionDep) -> UserPublic:
    return UserPublic.model_validate(_get(session, user_id))


@router.patch("/{user_id}")
def update_user(
    user_id: str, body: UserUpdate, admin: AdminUser, session: SessionDep
) -> UserPublic:
    user = _get(session, user_id)
    if body.role is not None and body.role != user.role:
        user.role = body.role
        user.token_epoch += 1  # a token must not outlive the role it was issued for
    if body.attribute is not None:
        user.attribute = body.attribute
    session.commit()
    return UserPublic.model_validate(user)


@router.delete("/{user_id}", status_code=204)
def delete_user(user_id: str, admin: AdminUser, session: SessionDep) -> None:
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
    user_id: str, body: PasswordReset, admin: AdminUser, session: SessionDep
) -> None:
    user = _get(session, user_id)
    user.password_hash = hash_password(body.password)
    user.token_epoch += 1
    session.commit()
