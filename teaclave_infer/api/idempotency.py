"""`Idempotency-Key` on create endpoints: a retry with the same key gets the first response."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..domain.models import IdempotencyRecord, User
from .problems import Problem

__all__ = ["remember", "replay"]


def _key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 128:
        raise Problem(422, "Invalid Idempotency-Key", "use 1 to 128 characters")
    return key


def replay(request: Request, session: Session, user: User) -> JSONResponse | None:
    """The stored response for this key, if the same user made this request before."""
    key = _key(request)
    if key is None:
        return None
    record = session.get(IdempotencyRecord, (user.id, key))
    if record is None:
        return None
    if record.request != f"{request.method} {request.url.path}":
        raise Problem(422, "Idempotency-Key reused", f"the key was used for {record.request}")
    return JSONResponse(record.body, status_code=record.status, headers={"Idempotent-Replay": "1"})


def remember(request: Request, session: Session, user: User, status: int, body: Any) -> None:
    """Stores the response in the same transaction as the change it describes. Two requests
    with one key at the same time both miss `replay`: the second to store its response gets a
    409 (its change rolled back with it), and its retry replays the first's."""
    key = _key(request)
    if key is None:
        return
    session.flush()  # the change itself, so that only the record can conflict below
    session.add(
        IdempotencyRecord(
            user_id=user.id,
            key=key,
            status=status,
            body=body,
            request=f"{request.method} {request.url.path}",
        )
    )
    try:
        session.flush()
    except IntegrityError as err:
        session.rollback()
        raise Problem(
            409, "Idempotency-Key in use", "a request with this key ran at the same time: retry"
        ) from err
