"""Users: the caller's own record, and the admin's endpoints. The rules are the domain's
(domain/users.py)."""

from __future__ import annotations

from fastapi import APIRouter

from ...domain import users as domain
from ..bounded import Id, Limit, Offset
from ..deps import AdminUser, CurrentUser, KdfDep, SessionDep
from ..schemas import Page, PasswordReset, UserCreate, UserPublic, UserUpdate

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.get("/me")
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.post("", status_code=201)
def create_user(body: UserCreate, admin: AdminUser, session: SessionDep, kdf: KdfDep) -> UserPublic:
    user = domain.create(session, kdf, body.username, body.password, body.role, body.attribute)
    session.commit()
    return UserPublic.model_validate(user)


@router.get("")
def list_users(
    admin: AdminUser,
    session: SessionDep,
    offset: Offset = 0,
    limit: Limit = 100,
) -> Page[UserPublic]:
    found = domain.listing(session, offset, limit)
    items = [UserPublic.model_validate(u) for u in found.items]
    return Page(items=items, total=found.total, offset=offset, limit=limit)


@router.get("/{user_id}")
def get_user(user_id: Id, admin: AdminUser, session: SessionDep) -> UserPublic:
    return UserPublic.model_validate(domain.get(session, user_id))


@router.patch("/{user_id}")
def update_user(user_id: Id, body: UserUpdate, admin: AdminUser, session: SessionDep) -> UserPublic:
    user = domain.update(session, user_id, body.role, body.attribute)
    session.commit()
    return UserPublic.model_validate(user)


@router.delete("/{user_id}", status_code=204)
def delete_user(user_id: Id, admin: AdminUser, session: SessionDep) -> None:
    domain.delete(session, admin, user_id)
    session.commit()


@router.post("/{user_id}/password", status_code=204)
def reset_password(
    user_id: Id, body: PasswordReset, admin: AdminUser, session: SessionDep, kdf: KdfDep
) -> None:
    """Sets a password the user must change at their next login (until then their tokens
    may do nothing else), revokes their tokens, and withdraws their approvals of tasks not
    yet invoked."""
    domain.reset_password(session, kdf, user_id, body.password)
    session.commit()
