"""The client's verbs on files (its data): upload ciphertext, register inputs (their keys
wrapped to the platform's sealing key, bound to the file's id) and outputs (fresh keys kept
here), fetch and decrypt a written output."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from .accounts import Accounts
from .crypto import SCHEMAS, decrypt, encrypt, generate_key
from .errors import IntegrityError, TeaclaveClientError
from .models import FileInfo, parse
from .sealing import wrap_key
from .vocabulary import DEFAULT_SCHEMA

__all__ = ["FileVerbs"]

MAX_REMEMBERED_INPUTS = 4096  # the tags of inputs kept to check receipts (the oldest goes)


class FileVerbs(Accounts):
    # The tags of the inputs this client registered (an input's never changes): a result is
    # checked against them without asking the platform again. Set up by `Client`.
    _input_cmacs: dict[str, str]

    def upload(self, data: bytes) -> str:
        """Stores encrypted bytes in the platform's blob store; returns its `blob:` URL."""
        headers = {"Content-Type": "application/octet-stream"}
        return str(self._json("POST", "/v1/blobs", data=data, headers=headers)["url"])

    def download(self, file_id: str) -> bytes:
        """A file's encrypted bytes from the platform's blob store (its owners only)."""
        return self._request("GET", f"/v1/files/{file_id}/content").content

    def get_file(self, file_id: str) -> FileInfo:
        return parse(FileInfo, self._json("GET", f"/v1/files/{file_id}"))

    def _wrap(self, key: bytes, file_id: str, schema: str) -> str:
        return wrap_key(key, self.platform_keys()["sealing"]["public_key"], file_id, schema)

    def register_input_file(
        self,
        url: str,
        schema: str,
        key: bytes,
        iv: bytes,
        cmac: bytes,
        *,
        file_id: str | None = None,
        owners: Sequence[str] = (),
    ) -> FileInfo:
        """An input file already encrypted with `key` and placed at `url` (`blob:...` from
        `upload`, `https://...` or `file://...`). The key is wrapped to the platform key here,
        bound to the file's id, and kept in this client's key store."""
        file_id = file_id or uuid.uuid4().hex
        body: dict[str, Any] = {
            "id": file_id,
            "url": url,
            "schema": schema,
            "iv": iv.hex(),
            "cmac": cmac.hex(),
            "owners": list(owners),
        }
        if SCHEMAS.get(schema):
            body["wrapped_key"] = self._wrap(key, file_id, schema)
        info = parse(FileInfo, self._json("POST", "/v1/files/inputs", json=body))
        self.keys.put(info.id, schema, key)
        self._remember_input(info)
        return info

    def put_input(
        self, plaintext: bytes, schema: str = DEFAULT_SCHEMA, owners: Sequence[str] = ()
    ) -> FileInfo:
        """Encrypts with a fresh key, uploads and registers: the usual way to give an input.
        A teaclave-file-128 file stores the file's id as its name."""
        key, file_id = generate_key(schema), uuid.uuid4().hex
        sealed, meta = encrypt(schema, key, plaintext, name=file_id)
        return self.register_input_file(
            self.upload(sealed), schema, key, meta.iv, meta.cmac, file_id=file_id, owners=owners
        )

    def register_output_file(
        self,
        url: str = "blob:",
        schema: str = DEFAULT_SCHEMA,
        key: bytes | None = None,
        *,
        file_id: str | None = None,
        owners: Sequence[str] = (),
    ) -> FileInfo:
        """An output file the platform encrypts with `key` (fresh if None; kept in the key
        store) and stores at `url` (`blob:`: the platform's store)."""
        key = key if key is not None else generate_key(schema)
        file_id = file_id or uuid.uuid4().hex
        body = {
            "id": file_id,
            "url": url,
            "schema": schema,
            "wrapped_key": self._wrap(key, file_id, schema),
            "owners": list(owners),
        }
        info = parse(FileInfo, self._json("POST", "/v1/files/outputs", json=body))
        self.keys.put(info.id, schema, key)
        return info

    def _remember_input(self, info: FileInfo) -> None:
        if len(self._input_cmacs) >= MAX_REMEMBERED_INPUTS:
            del self._input_cmacs[next(iter(self._input_cmacs))]
        self._input_cmacs[info.id] = info.cmac or ""

    def _input_cmac(self, file_id: str) -> str:
        """The tag of an input: remembered if this client registered it, else asked."""
        return self._input_cmacs.get(file_id) or self.get_file(file_id).cmac or ""

    def fetch_output(self, file_id: str, cmac: str | None = None, iv: str | None = None) -> bytes:
        """An output's plaintext, decrypted with the key in the store. Its tag must be the
        `cmac` given (the receipt's) and the one the platform recorded. Given both `cmac` and
        `iv` (a task's result holds them), the file's record is not fetched: decryption itself
        checks the bytes against the receipt's tag."""
        stored = self.keys.get(file_id)
        if stored is None:
            raise IntegrityError(f"no key for file {file_id} in this client's key store")
        if cmac is None or iv is None:
            info = self.get_file(file_id)
            if info.cmac is None:
                raise TeaclaveClientError(f"file {file_id} has not been written yet")
            if cmac is not None and info.cmac.lower() != cmac.lower():
                raise IntegrityError(f"file {file_id}: its cmac is not the one the receipt names")
            cmac, iv = info.cmac, info.iv
        schema, key = stored
        try:
            iv_bytes, tag = bytes.fromhex(iv), bytes.fromhex(cmac)
        except ValueError:
            raise IntegrityError(f"file {file_id}: its iv or cmac is not hex") from None
        return decrypt(schema, key, iv_bytes, self.download(file_id), tag)
