"""Where a client keeps the keys of the files it registers: in memory, or one 0600 file per key
(keys never leave this machine unwrapped)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from .files import write_private

__all__ = ["DirectoryKeyStore", "KeyStore", "MemoryKeyStore", "write_private"]


class KeyStore(Protocol):
    """Where the client keeps the keys of the files it registered (file id -> schema, key)."""

    def put(self, file_id: str, schema: str, key: bytes) -> None: ...

    def get(self, file_id: str) -> tuple[str, bytes] | None: ...


class MemoryKeyStore:
    """Keys for the life of the process."""

    def __init__(self) -> None:
        self._keys: dict[str, tuple[str, bytes]] = {}

    def put(self, file_id: str, schema: str, key: bytes) -> None:
        self._keys[file_id] = (schema, key)

    def get(self, file_id: str) -> tuple[str, bytes] | None:
        return self._keys.get(file_id)


class DirectoryKeyStore:
    """One 0600 JSON file per key in a 0700 directory: keys that outlive the process (the CLI's
    `task result` needs the key `infer` or `data register-output` made)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, file_id: str) -> Path:
        if not file_id.isalnum():
            raise ValueError(f"not a file id: {file_id!r}")
        return self.directory / f"{file_id}.json"

    def put(self, file_id: str, schema: str, key: bytes) -> None:
        body = {"file_id": file_id, "schema": schema, "key": key.hex()}
        write_private(self._path(file_id), json.dumps(body).encode())

    def get(self, file_id: str) -> tuple[str, bytes] | None:
        try:
            body = json.loads(self._path(file_id).read_text())
        except FileNotFoundError:
            return None
        return str(body["schema"]), bytes.fromhex(body["key"])
