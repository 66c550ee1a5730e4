"""Data: blob uploads, input and output file registration, inputs from finished outputs."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from teaclave_client.crypto import stored_cmac

from ...domain.blobs import BlobMissing, BlobStore
from ...domain.models import Blob, DataFile, FileOwner, User
from ...domain.policy import claim_place, owned_blob, owned_file, owners_of, pending_file
from ...domain.urls import UrlError, url_key
from ..bounded import Id
from ..deps import CurrentUser, SessionDep
from ..idempotency import remember, replay
from ..problems import Problem
from ..schemas import FilePublic, InputFileCreate, InputFromOutput, OutputFileCreate

router = APIRouter(prefix="/v1", tags=["data"])


def public(session: Session, f: DataFile) -> FilePublic:
    return FilePublic(
        id=f.id,
        kind=f.kind,
        url=f.url,
        schema_=f.schema,
        iv=f.iv,
        cmac=f.cmac,
        owners=owners_of(session, f.id),
        pending_owners=sorted(
            session.scalars(
                select(FileOwner.user_id).where(FileOwner.file_id == f.id, ~FileOwner.accepted)
            )
        ),
        created_at=f.created_at,
    )


def _owners(session: Session, user: User, others: list[str]) -> list[str]:
    owners = sorted({user.id, *others})
    known = set(session.scalars(select(User.id).where(User.id.in_(owners))))
    if unknown := set(owners) - known:
        raise Problem(422, "Unknown users", f"owners names no user: {sorted(unknown)}")
    return owners


def _register(
    request: Request,
    session: Session,
    user: User,
    f: DataFile,
    owners: list[str],
    accepted: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Records the file; the co-owners the caller names own it once they accept it (unless
    they already have: `accepted`)."""
    if f.id is not None and session.get(DataFile, f.id) is not None:
        raise Problem(409, "Conflict", f"file id {f.id} is taken: wrap the key for a fresh one")
    try:
        place = url_key(f.url)
    except UrlError as err:
        raise Problem(422, "Invalid URL", f"url: {err}") from None
    claim_place(session, place, owners)
    session.add(f)
    session.flush()
    consented = accepted | {user.id}
    session.add_all(FileOwner(file_id=f.id, user_id=o, accepted=o in consented) for o in owners)
    session.flush()
    body = public(session, f).model_dump(mode="json", by_alias=True)
    remember(request, session, user, 201, body)
    session.commit()
    return body


@router.post("/blobs", status_code=201)
async def upload(request: Request, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    """Stores the request body (an encrypted file) in the platform's blob store, as the
    caller's: only they may register it as a file."""
    limit = request.app.state.settings.max_upload_bytes
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise Problem(413, "Too large", f"the upload is over {limit} bytes")
    return await run_in_threadpool(_store_blob, request, session, user, bytes(data))


def _store_blob(request: Request, session: Session, user: User, data: bytes) -> dict[str, Any]:
    blob_id, sha256 = request.app.state.blobs.put(data)
    session.add(Blob(id=blob_id, owner_id=user.id, size=len(data), sha256=sha256))
    session.commit()
    return {"url": f"blob:{blob_id}", "bytes": len(data), "sha256": sha256}


@router.post("/files/inputs", status_code=201)
def register_input(
    body: InputFileCreate, request: Request, user: CurrentUser, session: SessionDep
) -> Any:
    if (previous := replay(request, session, user)) is not None:
        return previous
    if body.url.startswith("blob:"):
        owned_blob(session, body.url, user)
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
    owners = owners_of(session, output.id)  # they all accepted the output
    return _register(request, session, user, f, owners, frozenset(owners))


@router.get("/files/{file_id}")
def get_file(file_id: Id, user: CurrentUser, session: SessionDep) -> Any:
    return public(session, owned_file(session, file_id, user)).model_dump(
        mode="json", by_alias=True
    )


@router.post("/files/{file_id}/accept")
def accept(file_id: Id, user: CurrentUser, session: SessionDep) -> Any:
    """The caller accepts to co-own a file another user named them owner of."""
    pending_file(session, file_id, user).accepted = True
    session.commit()
    return public(session, owned_file(session, file_id, user)).model_dump(
        mode="json", by_alias=True
    )


@router.post("/files/{file_id}/decline", status_code=204)
def decline(file_id: Id, user: CurrentUser, session: SessionDep) -> None:
    """The caller refuses to co-own a file another user named them owner of."""
    session.delete(pending_file(session, file_id, user))
    session.commit()


@router.get("/files/{file_id}/content")
def get_content(file_id: Id, request: Request, user: CurrentUser, session: SessionDep) -> Any:
    """The (encrypted) bytes of a file in the platform's blob store, for its owners."""
    return blob_content(request, owned_file(session, file_id, user))


def blob_content(request: Request, f: DataFile) -> StreamingResponse:
    """The file's encrypted bytes from the blob store once their tag is checked against the
    registered cmac: a 409 if it lives elsewhere, is not written yet or does not check, a 410
    if its blob was deleted."""
    if not f.url.startswith("blob:") or f.url == "blob:" or f.cmac is None:
        raise Problem(409, "Not in the blob store", f"file {f.id} has no bytes here")
    blobs = request.app.state.blobs
    try:
        with blobs.open(f.url[5:]) as stream:
            tag = stored_cmac(f.schema, stream)
    except BlobMissing:
        raise Problem(410, "Gone", f"the blob of file {f.id} was deleted") from None
    if not hmac.compare_digest(tag, bytes.fromhex(f.cmac)):
        raise Problem(409, "Integrity", f"the stored bytes of file {f.id} are not its cmac's")
    return StreamingResponse(_chunks(blobs, f.url[5:]), media_type="application/octet-stream")


def _chunks(blobs: BlobStore, blob_id: str) -> Iterator[bytes]:
    with blobs.open(blob_id) as stream:
        while chunk := stream.read(1 << 16):
            yield chunk
