"""Data: blob uploads, input and output file registration, inputs from finished outputs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..deps import CurrentUser, SessionDep
from ..idempotency import remember, replay
from ..models import DataFile, FileOwner, User
from ..problems import Problem
from ..schemas import FilePublic, InputFileCreate, InputFromOutput, OutputFileCreate

router = APIRouter(prefix="/v1", tags=["data"])


def owners_of(session: Session, file_id: str) -> list[str]:
    return sorted(session.scalars(select(FileOwner.user_id).where(FileOwner.file_id == file_id)))


def public(session: Session, f: DataFile) -> FilePublic:
    return FilePublic(
        id=f.id,
        kind=f.kind,
        url=f.url,
        schema_=f.schema,
        iv=f.iv,
        cmac=f.cmac,
        owners=owners_of(session, f.id),
        created_at=f.created_at,
    )


def owned_file(session: Session, file_id: str, user: User) -> DataFile:
    """The file if the caller owns it; a 404 otherwise (others do not learn it exists)."""
    f = session.get(DataFile, file_id)
    if f is None or user.id not in owners_of(session, file_id):
        raise Problem(404, "Not found", f"no file {file_id} of yours")
    return f


def _owners(session: Session, user: User, others: list[str]) -> list[str]:
    owners = sorted({user.id, *others})
    known = set(session.scalars(select(User.id).where(User.id.in_(owners))))
    if unknown := set(owners) - known:
        raise Problem(422, "Unknown users", f"owners names no user: {sorted(unknown)}")
    return owners


def _register(
    request: Request, session: Session, user: User, f: DataFile, owners: list[str]
) -> dict[str, Any]:
    if f.id is not None and session.get(DataFile, f.id) is not None:
        raise Problem(409, "Conflict", f"file id {f.id} is taken: wrap the key for a fresh one")
    session.add(f)
    session.flush()
    session.add_all(FileOwner(file_id=f.id, user_id=o) for o in owners)
    session.flush()
    body = public(session, f).model_dump(mode="json", by_alias=True)
    remember(request, session, user, 201, body)
    session.commit()
    return body


@router.post("/blobs", status_code=201)
async def upload(request: Request, user: CurrentUser) -> dict[str, Any]:
    """Stores the request body (an encrypted file) in the platform's blob store."""
    limit = request.app.state.settings.max_upload_bytes
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise Problem(413, "Too large", f"the upload is over {limit} bytes")
    blob_id, sha256 = request.app.state.blobs.put(bytes(data))
    return {"url": f"blob:{blob_id}", "bytes": len(data), "sha256": sha256}


@router.post("/files/inputs", status_code=201)
def register_input(
    body: InputFileCreate, request: Request, user: CurrentUser, session: SessionDep
) -> Any:
    if (previous := replay(request, session, user)) is not None:
        return previous
    if body.url.startswith("blob:") and not request.app.state.blobs.path(body.url[5:]).exists():
        raise Problem(422, "Unknown blob", f"{body.url} was not uploaded")
    f = DataFile(
        id=body.id,
        kind="input",
        url=body.url,
        schema=body.schema_,
        wrapped_key=body.wrapped_key,
        key_file_id=body.id or "",
        iv=body.iv.lower(),
        cmac=body.cmac.lower(),
        created_by=user.id,
    )
    return _register(request, session, user, f, _owners(session, user, body.owners))


@router.post("/files/outputs", status_code=201)
def register_output(
    body: OutputFileCreate, request: Request, user: CurrentUser, session: SessionDep
) -> Any:
    if (previous := replay(request, session, user)) is not None:
        return previous
    f = DataFile(
        id=body.id,
        kind="output",
        url=body.url,
        schema=body.schema_,
        wrapped_key=body.wrapped_key,
        key_file_id=body.id or "",
        created_by=user.id,
    )
    return _register(request, session, user, f, _owners(session, user, body.owners))


@router.post("/files/inputs/from-output", status_code=201)
def input_from_output(
    body: InputFromOutput, request: Request, user: CurrentUser, session: SessionDep
) -> Any:
    if (previous := replay(request, session, user)) is not None:
        return previous
    output = owned_file(session, body.output_id, user)
    if output.kind != "output" or output.cmac is None:
        raise Problem(409, "Not finished", f"{body.output_id} is not an output written by a task")
    f = DataFile(
        kind="input",
        url=output.url,
        schema=output.schema,
        iv=output.iv,
        wrapped_key=output.wrapped_key,
        key_file_id=output.key_file_id or output.id,
        cmac=output.cmac,
        created_by=user.id,
    )
    return _register(request, session, user, f, owners_of(session, output.id))


@router.get("/files/{file_id}")
def get_file(file_id: str, user: CurrentUser, session: SessionDep) -> Any:
    return public(session, owned_file(session, file_id, user)).model_dump(
        mode="json", by_alias=True
    )


@router.get("/files/{file_id}/content")
def get_content(file_id: str, request: Request, user: CurrentUser, session: SessionDep) -> Any:
    """The (encrypted) bytes of a file in the platform's blob store, for its owners."""
    return blob_content(request, owned_file(session, file_id, user))


def blob_content(request: Request, f: DataFile) -> FileResponse:
    """The file's encrypted bytes from the blob store: a 409 if it lives elsewhere, a 410 if
    its blob was deleted."""
    if not f.url.startswith("blob:") or f.url == "blob:":
        raise Problem(409, "Not in the blob store", f"file {f.id} is at {f.url or 'no URL'}")
    path = request.app.state.blobs.path(f.url[5:])
    if not path.exists():
        raise Problem(410, "Gone", f"the blob of file {f.id} was deleted")
    return FileResponse(path, media_type="application/octet-stream")
