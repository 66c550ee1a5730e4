"""The blob store for workers that do not share the API's blob directory, behind the worker
credential (domain/worker_access.py): read any blob, store one, delete one nothing holds.

The credential is checked before a byte of a body is read; a body is read up to the upload
limit and must hash to what was signed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ...domain.blobs import BlobMissing, valid_blob_id
from ...domain.worker_access import (
    EMPTY_SHA256,
    SCHEME,
    CredentialRefused,
    Replays,
    SignedRequest,
    blob_in_use,
    verify_request,
)
from ..bounded import Id
from ..deps import Platform, PlatformDep, SessionDep
from ..problems import Problem

__all__ = ["StoredBlob", "replays", "router", "wall_clock"]

router = APIRouter(prefix="/v1/worker", tags=["worker"])
PREFIX = "/v1/worker/blobs"
_REPLAYS = Replays()


def wall_clock() -> Callable[[], float]:
    """Unix time, for the credential's window (tests override this dependency)."""
    return time.time


def replays() -> Replays:
    """This process's record of nonces accepted (tests may override it)."""
    return _REPLAYS


ClockDep = Annotated[Callable[[], float], Depends(wall_clock)]
ReplaysDep = Annotated[Replays, Depends(replays)]


class StoredBlob(BaseModel):
    id: str
    sha256: str
    bytes: int


def _worker(
    request: Request,
    platform: Platform,
    clock: Callable[[], float],
    seen: Replays,
    target: str,
) -> SignedRequest:
    """The request's worker credential for `target`; a 401 if it has none that holds."""
    try:
        return verify_request(
            platform.keys.signing.public_key(),
            request.headers.get("authorization"),
            request.method,
            target,
            clock(),
            seen,
        )
    except CredentialRefused as err:
        raise _refused(str(err)) from None


def _refused(detail: str) -> Problem:
    return Problem(401, "Not a worker", detail, headers={"WWW-Authenticate": SCHEME})


def _bodiless(signed: SignedRequest) -> None:
    if not hmac.compare_digest(signed.body_sha256, EMPTY_SHA256):
        raise _refused("the credential was signed for a body")


def _checked_id(blob_id: str) -> str:
    try:
        return valid_blob_id(blob_id)
    except ValueError:
        raise Problem(404, "Not found", f"no blob {blob_id}") from None


@router.get("/blobs/{blob_id}", response_class=StreamingResponse)
def read_blob(
    blob_id: Id, request: Request, platform: PlatformDep, clock: ClockDep, seen: ReplaysDep
) -> StreamingResponse:
    """The blob's bytes (ciphertext or a function's wasm), streamed."""
    _bodiless(_worker(request, platform, clock, seen, f"{PREFIX}/{blob_id}"))
    stack = ExitStack()
    try:
        stream = stack.enter_context(platform.blobs.open(_checked_id(blob_id)))
    except BlobMissing:
        raise Problem(404, "Not found", f"no blob {blob_id}") from None
    return StreamingResponse(_chunks(stack, stream), media_type="application/octet-stream")


def _chunks(stack: ExitStack, stream: BinaryIO) -> Iterator[bytes]:
    with stack:
        while chunk := stream.read(1 << 16):
            yield chunk


@router.post("/blobs", status_code=201)
async def store_blob(
    request: Request, platform: PlatformDep, clock: ClockDep, seen: ReplaysDep
) -> StoredBlob:
    """Stores the body (an output's ciphertext) as a new blob."""
    signed = _worker(request, platform, clock, seen, PREFIX)
    limit = platform.settings.max_upload_bytes
    data, digest = bytearray(), hashlib.sha256()
    async for chunk in request.stream():
        data += chunk
        digest.update(chunk)
        if len(data) > limit:
            raise Problem(413, "Too large", f"the blob is over {limit} bytes")
    if not hmac.compare_digest(digest.hexdigest(), signed.body_sha256):
        raise _refused("the body is not the one the credential signed")
    blob_id, sha256 = await run_in_threadpool(platform.blobs.put, bytes(data))
    return StoredBlob(id=blob_id, sha256=sha256, bytes=len(data))


@router.delete("/blobs/{blob_id}", status_code=204)
def delete_blob(
    blob_id: Id,
    request: Request,
    platform: PlatformDep,
    session: SessionDep,
    clock: ClockDep,
    seen: ReplaysDep,
) -> None:
    """Deletes a blob that no function, file or upload holds (an output a worker stored for a
    task that ended otherwise); a 409 for any other."""
    _bodiless(_worker(request, platform, clock, seen, f"{PREFIX}/{blob_id}"))
    if blob_in_use(session, _checked_id(blob_id)):
        raise Problem(409, "In use", f"blob {blob_id} is held by a function or a file")
    platform.blobs.delete(blob_id)
