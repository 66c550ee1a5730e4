"""Data: blob uploads, input and output file registration, inputs from finished outputs,
co-owners accepting or declining, stored bytes. The rules are the domain's (domain/files.py);
these routes parse, enforce the upload's size and Idempotency-Key, and render."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ...domain import files as domain
from ...domain.blobs import BlobStore
from ...domain.models import DataFile, User
from ...domain.policy import owned_file
from ..bounded import Id
from ..deps import CurrentUser, PlatformDep, SessionDep
from ..idempotency import remember, replay
from ..problems import Problem
from ..schemas import FilePublic, InputFileCreate, InputFromOutput, OutputFileCreate

router = APIRouter(prefix="/v1", tags=["data"])


def _public(session: Session, f: DataFile) -> dict[str, Any]:
    """The file as its owners see it, as JSON."""
    owners = domain.owners(session, f.id)
    return FilePublic(
        id=f.id,
        kind=f.kind,
        url=f.url,
        schema_=f.schema,
        iv=f.iv,
        cmac=f.cmac,
        owners=owners.accepted,
        pending_owners=owners.pending,
        created_at=f.created_at,
    ).model_dump(mode="json", by_alias=True)


def _created(request: Request, session: Session, user: User, f: DataFile) -> dict[str, Any]:
    """The new file's body, stored for its Idempotency-Key in the same transaction."""
    body = _public(session, f)
    remember(request, session, user, 201, body)
    session.commit()
    return body


@router.post("/blobs", status_code=201)
async def upload(
    request: Request, platform: PlatformDep, user: CurrentUser, session: SessionDep
) -> dict[str, Any]:
    """Stores the request body (an encrypted file) in the platform's blob store, as the
    caller's: only they may register it as a file."""
    limit = platform.settings.max_upload_bytes
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise Problem(413, "Too large", f"the upload is over {limit} bytes")
    return await run_in_threadpool(_store_blob, session, platform.blobs, user, bytes(data))


def _store_blob(session: Session, blobs: BlobStore, user: User, data: bytes) -> dict[str, Any]:
    blob = domain.store_blob(session, blobs, user, data)
    session.commit()
    return {"url": f"blob:{blob.id}", "bytes": blob.size, "sha256": blob.sha256}


@router.post("/files/inputs", status_code=201)
def register_input(
    body: InputFileCreate, request: Request, user: CurrentUser, session: SessionDep
) -> Any:
    if (previous := replay(request, session, user)) is not None:
        return previous
    draft = domain.FileDraft(
        kind="input",
        url=body.url,
        schema=body.schema_,
        id=body.id,
        wrapped_key=body.wrapped_key,
        iv=body.iv,
        cmac=body.cmac,
        owners=tuple(body.owners),
    )
    return _created(request, session, user, domain.register(session, user, draft))


@router.post("/files/outputs", status_code=201)
def register_output(
    body: OutputFileCreate, request: Request, user: CurrentUser, session: SessionDep
) -> Any:
    if (previous := replay(request, session, user)) is not None:
        return previous
    draft = domain.FileDraft(
        kind="output",
        url=body.url,
        schema=body.schema_,
        id=body.id,
        wrapped_key=body.wrapped_key,
        owners=tuple(body.owners),
    )
    return _created(request, session, user, domain.register(session, user, draft))


@router.post("/files/inputs/from-output", status_code=201)
def input_from_output(
    body: InputFromOutput, request: Request, user: CurrentUser, session: SessionDep
) -> Any:
    if (previous := replay(request, session, user)) is not None:
        return previous
    f = domain.input_from_output(session, user, body.output_id)
    return _created(request, session, user, f)


@router.get("/files/{file_id}")
def get_file(file_id: Id, user: CurrentUser, session: SessionDep) -> Any:
    return _public(session, owned_file(session, file_id, user))


@router.post("/files/{file_id}/accept")
def accept(file_id: Id, user: CurrentUser, session: SessionDep) -> Any:
    """The caller accepts to co-own a file another user named them owner of."""
    f = domain.accept(session, user, file_id)
    session.commit()
    return _public(session, f)


@router.post("/files/{file_id}/decline", status_code=204)
def decline(file_id: Id, user: CurrentUser, session: SessionDep) -> None:
    """The caller refuses to co-own a file another user named them owner of."""
    domain.decline(session, user, file_id)
    session.commit()


@router.get("/files/{file_id}/content")
def get_content(
    file_id: Id, platform: PlatformDep, user: CurrentUser, session: SessionDep
) -> StreamingResponse:
    """The (encrypted) bytes of a file in the platform's blob store, for its owners, once
    they check against its cmac."""
    content = domain.verified_content(platform.blobs, owned_file(session, file_id, user))
    return StreamingResponse(content, media_type="application/octet-stream")
