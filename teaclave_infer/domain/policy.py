"""Who may do what to which object: every object-level check of the API, in one place.

The rules: a caller names only objects it owns or was granted, and one it may not know of is a
404 (its existence stays hidden); one it may know of but not act on is a 403. The admin
administers accounts and may disable or delete a function, but a private function's allowlist
and payload, and every file, belong to their owners alone.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .errors import Conflict, Forbidden, Invalid, NotFound
from .json_sql import json_array_has
from .models import Blob, DataFile, FileOwner, Function, Place, Role, Task, TaskParticipant, User

__all__ = [
    "all_owners",
    "claim_place",
    "may_use",
    "owned_blob",
    "owned_file",
    "owned_function",
    "owners_of",
    "participant_task",
    "pending_file",
    "sees_task_data",
    "usable_by",
    "usable_file",
    "visible_function",
]

# The fields of a function the admin may change on a function that is not theirs.
ADMIN_FUNCTION_FIELDS = frozenset({"disabled"})


def may_use(function: Function, user: User) -> bool:
    """Public, owned, or on the allowlist: who may run the function and read its payload."""
    return function.public or function.owner_id == user.id or user.id in function.allowlist


def usable_by(user: User) -> ColumnElement[bool]:
    """`may_use` as a WHERE clause on functions, for listings paged in SQL."""
    return or_(
        Function.public, Function.owner_id == user.id, json_array_has(Function.allowlist, user.id)
    )


def visible_function(session: Session, function_id: str, user: User) -> Function:
    """The function if the caller may know of it (the admin knows of every function)."""
    function = session.get(Function, function_id)
    if function is None or not (may_use(function, user) or user.role == Role.PLATFORM_ADMIN):
        raise NotFound(f"no function {function_id}")
    return function


def owned_function(
    session: Session, function_id: str, user: User, fields: frozenset[str] = frozenset()
) -> Function:
    """The function if the caller owns it, or is the admin and changes only what an admin may
    (`fields`, empty for a delete); a 403 otherwise."""
    function = visible_function(session, function_id, user)
    admin_may = user.role == Role.PLATFORM_ADMIN and fields <= ADMIN_FUNCTION_FIELDS
    if function.owner_id != user.id and not admin_may:
        raise Forbidden("only the function's owner may do this")
    return function


def owners_of(session: Session, file_id: str) -> list[str]:
    """The file's owners who accepted it (the co-owners named by another user who have not
    accepted yet do not count for anything)."""
    query = select(FileOwner.user_id).where(FileOwner.file_id == file_id, FileOwner.accepted)
    return sorted(session.scalars(query))


def all_owners(session: Session, file_id: str) -> list[str]:
    """The file's owners, those who have not accepted yet too."""
    return sorted(session.scalars(select(FileOwner.user_id).where(FileOwner.file_id == file_id)))


def owned_file(session: Session, file_id: str, user: User) -> DataFile:
    """The file if the caller owns it; a 404 otherwise."""
    f = session.get(DataFile, file_id)
    if f is None or user.id not in owners_of(session, file_id):
        raise NotFound(f"no file {file_id} of yours")
    return f


def usable_file(session: Session, file_id: str, user: User) -> tuple[DataFile, list[str]]:
    """The caller's file and its owners, once all have accepted it (two statements): a 404 if
    it is not the caller's, a 409 while a co-owner named by another user has yet to accept (a
    file cannot be used before)."""
    f = session.get(DataFile, file_id)
    rows = session.execute(
        select(FileOwner.user_id, FileOwner.accepted).where(FileOwner.file_id == file_id)
    )
    owners = {user_id: accepted for user_id, accepted in rows}
    if f is None or not owners.get(user.id, False):
        raise NotFound(f"no file {file_id} of yours")
    if not all(owners.values()):
        raise Conflict(f"file {f.id} waits for its co-owners to accept", title="Awaiting co-owners")
    return f, sorted(owners)


def pending_file(session: Session, file_id: str, user: User) -> FileOwner:
    """The caller's ownership of a file that another user named them co-owner of, not yet
    accepted; a 404 otherwise."""
    owner = session.get(FileOwner, (file_id, user.id))
    if owner is None or owner.accepted:
        raise NotFound(f"no file {file_id} waiting for you to accept it")
    return owner


def owned_blob(session: Session, url: str, user: User) -> None:
    """A `blob:` URL may be registered as a file only by the user who uploaded that blob."""
    blob = session.get(Blob, url.removeprefix("blob:"))
    if blob is None or blob.owner_id != user.id:
        raise Invalid(f"{url} is not a blob you uploaded", title="Unknown blob")


def claim_place(session: Session, url_key: str, owners: list[str]) -> None:
    """A file may be registered at a place (a file:// path or an http(s):// URL; "" for the
    blob store) only if that place is free or already these owners': a user can never point an
    output at another user's file, nor an input at another user's output. A place's first file
    claims it; two claims at once cannot both win (its row's primary key)."""
    if not url_key:
        return
    taken = Conflict("another user's file is registered at that URL", title="Place taken")
    place = session.get(Place, url_key)
    if place is not None:
        if place.owners != " ".join(owners):
            raise taken
        return
    session.add(Place(url_key=url_key, owners=" ".join(owners)))
    try:
        session.flush()
    except IntegrityError:  # claimed meanwhile by a concurrent registration
        raise taken from None


def participant_task(session: Session, task_id: str, user: User) -> Task:
    """The task if the caller takes part in it; a 404 otherwise (its existence stays hidden)."""
    task = session.get(Task, task_id)
    if task is None or session.get(TaskParticipant, (task_id, user.id)) is None:
        raise NotFound(f"no task {task_id}")
    return task


def sees_task_data(task: Task, user: User) -> bool:
    """Whether the caller sees a task's return value, receipt and outputs: its creator and the
    owners of its inputs and outputs do; the owner of a private function, who takes part only
    to approve, does not."""
    owners = (u for o in (task.input_owners, task.output_owners) for us in o.values() for u in us)
    return user.id == task.creator_id or user.id in set(owners)
