"""Data: uploaded blobs, input and output files, their owners, their stored bytes.

Each operation takes the session, the caller and plain values, checks the access policy
(policy.py) and raises the domain's errors; it flushes and leaves the commit to its caller, so
that an API route stores its idempotency record in the same transaction."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session
from teaclave_client.crypto import stored_cmac

from .blobs import BlobMissing, BlobStore
from .errors import Conflict, Gone, Invalid
from .models import Blob, DataFile, FileOwner, User
from .policy import claim_place, owned_blob, owned_file, owners_of, pending_file
from .urls import UrlError, url_key
from .users import require_known

__all__ = [
    "FileDraft",
    "Owners",
    "accept",
    "decline",
    "input_from_output",
    "owners",
    "register",
    "store_blob",
    "verified_content",
]


@dataclass(frozen=True)
class FileDraft:
    """A file as its registering user declares it (`owners`: besides the caller)."""

    kind: str  # input | output
    url: str
    schema: str
    id: str | None = None
    wrapped_key: str = ""
    iv: str = ""
    cmac: str | None = None
    owners: tuple[str, ...] = ()


@dataclass(frozen=True)
class Owners:
    accepted: list[str]
    pending: list[str]  # named by another user, not accepted yet


def owners(session: Session, file_id: str) -> Owners:
    """The file's owners who accepted it and those who have not yet, in one query."""
    rows = session.execute(
        select(FileOwner.user_id, FileOwner.accepted).where(FileOwner.file_id == file_id)
    ).all()
    return Owners(
        accepted=sorted(u for u, ok in rows if ok), pending=sorted(u for u, ok in rows if not ok)
    )


def store_blob(session: Session, blobs: BlobStore, user: User, data: bytes) -> Blob:
    """Stores an (encrypted) upload as the caller's: only they may register it as a file."""
    blob_id, sha256 = blobs.put(data)
    blob = Blob(id=blob_id, owner_id=user.id, size=len(data), sha256=sha256)
    session.add(blob)
    session.flush()
    return blob


def register(session: Session, user: User, draft: FileDraft) -> DataFile:
    """Records an input or output file the caller declares: an input in the blob store must
    be a blob the caller uploaded, every owner must exist, and its place must be free or its
    owners' already. The co-owners the caller names own it once they accept it."""
    if draft.kind == "input" and draft.url.startswith("blob:"):
        owned_blob(session, draft.url, user)
    f = DataFile(
        id=draft.id,
        kind=draft.kind,
        url=draft.url,
        schema=draft.schema,
        wrapped_key=draft.wrapped_key,
        key_file_id=draft.id or "",
        iv=draft.iv.lower(),
        cmac=draft.cmac.lower() if draft.cmac is not None else None,
        created_by=user.id,
    )
    all_owners = sorted({user.id, *draft.owners})
    require_known(session, all_owners, "owners")
    return _record(session, user, f, all_owners)


def input_from_output(session: Session, user: User, output_id: str) -> DataFile:
    """An input file of the bytes a task wrote to an output of the caller's, owned by the
    output's owners (who all accepted the output)."""
    output = owned_file(session, output_id, user)
    if output.kind != "output" or output.cmac is None:
        raise Conflict(f"{output_id} is not an output written by a task", title="Not finished")
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
    accepted = owners_of(session, output.id)
    return _record(session, user, f, accepted, frozenset(accepted))


def _record(
    session: Session,
    user: User,
    f: DataFile,
    all_owners: list[str],
    accepted: frozenset[str] = frozenset(),
) -> DataFile:
    """Records the file; the owners other than the caller own it once they accept it (unless
    they already have: `accepted`)."""
    if f.id is not None and session.get(DataFile, f.id) is not None:
        raise Conflict(f"file id {f.id} is taken: wrap the key for a fresh one")
    try:
        place = url_key(f.url)
    except UrlError as err:
        raise Invalid(f"url: {err}", title="Invalid URL") from None
    claim_place(session, place, all_owners)
    session.add(f)
    session.flush()
    consented = accepted | {user.id}
    session.add_all(FileOwner(file_id=f.id, user_id=o, accepted=o in consented) for o in all_owners)
    session.flush()
    return f


def accept(session: Session, user: User, file_id: str) -> DataFile:
    """The caller accepts to co-own a file another user named them owner of."""
    pending_file(session, file_id, user).accepted = True
    session.flush()
    return owned_file(session, file_id, user)


def decline(session: Session, user: User, file_id: str) -> None:
    """The caller refuses to co-own a file another user named them owner of."""
    session.delete(pending_file(session, file_id, user))
    session.flush()


def verified_content(blobs: BlobStore, f: DataFile) -> Iterator[bytes]:
    """The file's encrypted bytes from the blob store, in chunks, once their tag is checked
    against the registered cmac (before the first chunk): Conflict if the file lives elsewhere,
    is not written yet or does not check, Gone if its blob was deleted."""
    if not f.url.startswith("blob:") or f.url == "blob:" or f.cmac is None:
        raise Conflict(f"file {f.id} has no bytes here", title="Not in the blob store")
    blob_id = f.url.removeprefix("blob:")
    try:
        with blobs.open(blob_id) as stream:
            tag = stored_cmac(f.schema, stream)
    except BlobMissing:
        raise Gone(f"the blob of file {f.id} was deleted") from None
    if not hmac.compare_digest(tag, bytes.fromhex(f.cmac)):
        raise Conflict(f"the stored bytes of file {f.id} are not its cmac's", title="Integrity")
    return _chunks(blobs, blob_id)


def _chunks(blobs: BlobStore, blob_id: str) -> Iterator[bytes]:
    with blobs.open(blob_id) as stream:
        while chunk := stream.read(1 << 16):
            yield chunk
