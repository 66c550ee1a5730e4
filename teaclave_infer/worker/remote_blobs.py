"""The blob store of a worker that does not share the API's blob directory: the API's worker
endpoints (api/routes/worker_blobs.py), each request signed with the platform's signing key
(domain/worker_access.py). Bytes here are ciphertext or public wasm, as in every blob store.

Failures are OSErrors (requests' own errors are): what Storage turns into "cannot fetch it".
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO, cast

import requests

from ..domain.blobs import BlobMissing, BlobStore, LocalBlobStore, valid_blob_id
from ..domain.keys import PlatformKeys
from ..domain.settings import Settings
from ..domain.worker_access import EMPTY_SHA256, sign_request

__all__ = ["RemoteBlobError", "RemoteBlobStore", "blob_store_for"]

PREFIX = "/v1/worker/blobs"


class RemoteBlobError(OSError):
    """The API refused a blob request or answered in a way it never should."""

    def __init__(self, what: str, response: requests.Response) -> None:
        super().__init__(f"{what}: the platform answered {response.status_code}")
        self.response = response


class RemoteBlobStore:
    def __init__(
        self,
        platform_url: str,
        keys: PlatformKeys,
        timeout_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        http: requests.Session | None = None,
    ) -> None:
        self.base, self.keys, self.timeout_s, self.clock = (
            platform_url.rstrip("/"),
            keys,
            timeout_s,
            clock,
        )
        self.http = http or requests.Session()

    def _request(
        self, method: str, target: str, body: bytes = b"", stream: bool = False
    ) -> requests.Response:
        digest = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        headers = {
            "Authorization": sign_request(self.keys.signing, method, target, digest, self.clock()),
            "Content-Type": "application/octet-stream",
        }
        return self.http.request(
            method,
            self.base + target,
            data=body or None,
            headers=headers,
            stream=stream,
            timeout=self.timeout_s,
            allow_redirects=False,  # the credential goes to the platform only
        )

    def put(self, data: bytes) -> tuple[str, str]:
        response = self._request("POST", PREFIX, data)
        if response.status_code != 201:
            raise RemoteBlobError("storing a blob", response)
        stored = response.json()
        sha256 = hashlib.sha256(data).hexdigest()
        if stored.get("sha256") != sha256 or stored.get("bytes") != len(data):
            raise RemoteBlobError("storing a blob (the platform stored other bytes)", response)
        return valid_blob_id(str(stored.get("id", ""))), sha256

    def get(self, blob_id: str, max_bytes: int | None = None) -> bytes:
        data = bytearray()
        with self.open(blob_id) as f:
            while chunk := f.read(1 << 16):
                data += chunk
                if max_bytes is not None and len(data) > max_bytes:
                    raise ValueError(f"over the {max_bytes}-byte limit")
        return bytes(data)

    @contextlib.contextmanager
    def open(self, blob_id: str) -> Iterator[BinaryIO]:
        response = self._request("GET", f"{PREFIX}/{valid_blob_id(blob_id)}", stream=True)
        with response:
            if response.status_code == 404:
                raise BlobMissing(f"no blob {blob_id}")
            if response.status_code != 200:
                raise RemoteBlobError(f"reading blob {blob_id}", response)
            response.raw.decode_content = True
            yield cast(BinaryIO, response.raw)

    def delete(self, blob_id: str) -> None:
        response = self._request("DELETE", f"{PREFIX}/{valid_blob_id(blob_id)}")
        if response.status_code not in (204, 404):
            raise RemoteBlobError(f"deleting blob {blob_id}", response)


def blob_store_for(settings: Settings, keys: PlatformKeys | None = None) -> BlobStore:
    """The worker's blob store: the blob directory it shares with the API, or, for a worker
    given the platform's address and no blob directory, the API's worker endpoints (signed
    with `keys`, by default the platform keys in settings.keys_dir)."""
    if settings.platform_url is None or settings.blob_path is not None:
        return LocalBlobStore(settings.blob_dir)
    if keys is None:
        keys = PlatformKeys.load_or_create(settings.keys_dir, create=False)
    return RemoteBlobStore(settings.platform_url, keys, settings.fetch_timeout_s)
