"""The platform's blob store: uploaded functions and (encrypted) files, by id, in the data dir."""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from pathlib import Path

__all__ = ["BlobStore"]


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, blob_id: str) -> Path:
        if not blob_id.isalnum():
            raise ValueError(f"bad blob id {blob_id!r}")
        return self.root / blob_id

    def put(self, data: bytes) -> tuple[str, str]:
        """Stores bytes whole (never half-written); returns (blob id, sha256)."""
        blob_id = uuid.uuid4().hex
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, self.path(blob_id))
        return blob_id, hashlib.sha256(data).hexdigest()

    def get(self, blob_id: str) -> bytes:
        return self.path(blob_id).read_bytes()

    def delete(self, blob_id: str) -> None:
        self.path(blob_id).unlink(missing_ok=True)
