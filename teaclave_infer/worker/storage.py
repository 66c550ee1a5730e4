"""Where a task's files live: the platform's blob store, file:// under allowed roots, or
http(s):// URLs; read and written with size limits and timeouts. Bytes here are ciphertext."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import requests

from ..errors import TaskFailed
from ..service.blobs import BlobStore

__all__ = ["Storage"]


@dataclass(frozen=True)
class Storage:
    blobs: BlobStore
    max_bytes: int
    timeout_s: float
    file_roots: tuple[Path, ...] = ()

    def fetch(self, url: str, what: str) -> bytes:
        """The file's bytes; TaskFailed("fetch") naming `what` if they cannot be had."""
        try:
            if url.startswith("blob:"):
                return self._read(self.blobs.path(url[5:]), what)
            if url.startswith("file://"):
                return self._read(self._local(url, what), what)
            if url.startswith(("http://", "https://")):
                return self._get(url, what)
        except (OSError, ValueError, requests.RequestException) as err:
            raise TaskFailed("fetch", f"{what}: cannot fetch it ({type(err).__name__})") from err
        raise TaskFailed("fetch", f"{what}: unsupported URL scheme")

    def store(self, url: str, data: bytes, what: str) -> str:
        """Writes an output; returns where it now is (`blob:` becomes `blob:<new id>`)."""
        try:
            if url.startswith("blob:"):
                blob_id, _ = self.blobs.put(data)
                return f"blob:{blob_id}"
            if url.startswith("file://"):
                _write_whole(self._local(url, what), data)
                return url
            if url.startswith(("http://", "https://")):
                requests.put(url, data=data, timeout=self.timeout_s).raise_for_status()
                return url
        except (OSError, ValueError, requests.RequestException) as err:
            raise TaskFailed("store", f"{what}: cannot store it ({type(err).__name__})") from err
        raise TaskFailed("store", f"{what}: unsupported URL scheme")

    def _local(self, url: str, what: str) -> Path:
        path = Path(unquote(urlsplit(url).path)).resolve()
        if not any(path.is_relative_to(root.resolve()) for root in self.file_roots):
            raise TaskFailed("fetch", f"{what}: file:// URLs outside the allowed roots are refused")
        return path

    def _read(self, path: Path, what: str) -> bytes:
        with path.open("rb") as f:
            data = f.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise TaskFailed("fetch", f"{what}: over the {self.max_bytes}-byte input limit")
        return data

    def _get(self, url: str, what: str) -> bytes:
        with requests.get(url, stream=True, timeout=self.timeout_s) as response:
            response.raise_for_status()
            data = bytearray()
            for chunk in response.iter_content(1 << 20):
                data += chunk
                if len(data) > self.max_bytes:
                    raise TaskFailed("fetch", f"{what}: over the {self.max_bytes}-byte input limit")
        return bytes(data)


def _write_whole(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
