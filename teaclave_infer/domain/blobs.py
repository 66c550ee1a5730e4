"""The platform's blob store: uploaded functions and (encrypted) files, by id.

`BlobStore` is what the API and the workers see; where the bytes live is the implementation's
business. `LocalBlobStore` keeps them in a directory (the data dir, or a directory the API and
its workers share); a worker on another machine uses the API's blob endpoints instead (see
worker/remote_blobs.py). Blobs hold only ciphertext or public wasm: a store is never trusted with
plaintext.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from teaclave_client.files import PRIVATE, write_atomic

__all__ = ["BlobMissing", "BlobStore", "LocalBlobStore", "valid_blob_id"]


class BlobMissing(FileNotFoundError):
    """No blob has that id (never stored, or deleted)."""


def valid_blob_id(blob_id: str) -> str:
    """The id if it is one this platform makes (hex); ValueError otherwise, so that no id can
    name anything outside the store."""
    if not (0 < len(blob_id) <= 64 and blob_id.isascii() and blob_id.isalnum()):
        raise ValueError(f"bad blob id {blob_id!r}")
    return blob_id


class BlobStore(Protocol):
    def put(self, data: bytes) -> tuple[str, str]:
        """Stores bytes whole (never half-written); returns (blob id, sha256 hex)."""
        ...

    def get(self, blob_id: str, max_bytes: int | None = None) -> bytes:
        """The blob's bytes; BlobMissing if there is none, ValueError if it is over
        `max_bytes`."""
        ...

    def open(self, blob_id: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """The blob as a readable binary stream (for bytes too large to hold at once)."""
        ...

    def delete(self, blob_id: str) -> None:
        """Forgets the blob; nothing happens if there is none."""
        ...


class LocalBlobStore:
    """Blobs as files in one directory, each written to a temp file and renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, blob_id: str) -> Path:
        return self.root / valid_blob_id(blob_id)

    def put(self, data: bytes) -> tuple[str, str]:
        blob_id = uuid.uuid4().hex
        write_atomic(self._path(blob_id), data, PRIVATE, replace=False)
        return blob_id, hashlib.sha256(data).hexdigest()

    def get(self, blob_id: str, max_bytes: int | None = None) -> bytes:
        with self.open(blob_id) as f:
            data = f.read() if max_bytes is None else f.read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:
            raise ValueError(f"over the {max_bytes}-byte limit")
        return data

    @contextlib.contextmanager
    def open(self, blob_id: str) -> Iterator[BinaryIO]:
        try:
            f = self._path(blob_id).open("rb")
        except FileNotFoundError:
            raise BlobMissing(f"no blob {blob_id}") from None
        with f:
            yield f

    def delete(self, blob_id: str) -> None:
        self._path(blob_id).unlink(missing_ok=True)
