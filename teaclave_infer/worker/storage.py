"""Where a task's files live: the platform's blob store, file:// under allowed roots, or
http(s):// URLs through the address policy; read and written with a size limit and a total
deadline. Bytes here are ciphertext.

Failures say only that the file cannot be fetched (or stored), the same words whatever the cause
(a refused address, a closed port, a timeout, an HTTP status, a file too large or missing), so a
task's result cannot probe the worker's network or disk; the cause is logged at debug level on
the worker. A file:// output is created, never overwritten: written to a temporary file in its
directory, then hard-linked to its name, which fails if anything (a file, a symlink) is there.
"""

from __future__ import annotations

import http.client
import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from teaclave_client.files import PRIVATE, write_atomic
from teaclave_client.vocabulary import FailureKind

from ..domain.blobs import BlobStore
from ..errors import TaskFailed
from . import transfer
from .addresses import AddressPolicy

__all__ = ["Storage"]

log = logging.getLogger(__name__)

_FAILURES = (OSError, ValueError, http.client.HTTPException, transfer.TransferFailed)
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Storage:
    blobs: BlobStore
    max_bytes: int
    timeout_s: float  # the whole of one fetch or one upload
    file_roots: tuple[Path, ...] = ()
    policy: AddressPolicy = field(default_factory=AddressPolicy)
    clock: Callable[[], float] = time.monotonic

    def fetch(self, url: str, what: str) -> bytes:
        """The file's bytes; TaskFailed("fetch", "<what>: cannot fetch it") if they cannot be
        had, for any reason."""
        try:
            if url.startswith("blob:"):
                return self._read_blob(url[5:])
            if url.startswith("file://"):
                return self._read_file(url)
            if url.startswith(("http://", "https://")):
                deadline = transfer.Deadline(self.timeout_s, self.clock)
                return transfer.get(self.policy, url, self.max_bytes, deadline)
            raise ValueError("unsupported URL scheme")
        except _FAILURES as err:
            log.debug("fetch failed", extra={"what": what, "error": repr(err)})
            raise TaskFailed(FailureKind.FETCH, f"{what}: cannot fetch it") from None

    def store(self, url: str, data: bytes, what: str) -> str:
        """Writes an output; returns where it now is (`blob:` becomes `blob:<new id>`).
        TaskFailed("store", "<what>: cannot store it") if it cannot be written, for any reason,
        among them a file:// target that exists."""
        try:
            if url.startswith("blob:"):
                blob_id, _ = self.blobs.put(data)
                return f"blob:{blob_id}"
            if url.startswith("file://"):
                self._create_file(url, data)
                return url
            if url.startswith(("http://", "https://")):
                deadline = transfer.Deadline(self.timeout_s, self.clock)
                transfer.put(self.policy, url, data, deadline)
                return url
            raise ValueError("unsupported URL scheme")
        except _FAILURES as err:
            log.debug("store failed", extra={"what": what, "error": repr(err)})
            raise TaskFailed(FailureKind.STORE, f"{what}: cannot store it") from None

    def _read_blob(self, blob_id: str) -> bytes:
        return self.blobs.get(blob_id, self.max_bytes)

    def _limited(self, data: bytes) -> bytes:
        if len(data) > self.max_bytes:
            raise ValueError(f"over the {self.max_bytes}-byte input limit")
        return data

    def _read_file(self, url: str) -> bytes:
        root, path = self._under_root(_local_path(url).resolve())
        directory = _open_directory(root, path.parent)
        try:
            fd = os.open(path.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory)
        finally:
            os.close(directory)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # no FIFO or device
                raise ValueError(f"{path}: not a regular file")
            return self._limited(f.read(self.max_bytes + 1))

    def _create_file(self, url: str, data: bytes) -> None:
        """Creates the file at `url` with `data`, all or nothing; FileExistsError if there is
        anything at its name. Only its directory's path is resolved (and must stay under a
        root), so a symlink at the name itself is never followed."""
        path = _local_path(url)
        root, directory = self._under_root(path.parent.resolve())
        if path.name in ("", ".", ".."):
            raise ValueError(f"{path}: not a file name")
        dir_fd = _open_directory(root, directory)
        try:  # refused if the name exists (a link never follows the new name)
            write_atomic(Path(path.name), data, PRIVATE, replace=False, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)

    def _under_root(self, path: Path) -> tuple[Path, Path]:
        """(the allowed root `path` lies under, `path`), both resolved; PermissionError if none."""
        for root in self.file_roots:
            resolved = root.resolve()
            if path.is_relative_to(resolved):
                return resolved, path
        raise PermissionError(f"{path}: outside the allowed file roots")


def _local_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file://{parts.netloc}: only local files")
    path = Path(unquote(parts.path))
    if not path.is_absolute():
        raise ValueError(f"{path}: not an absolute path")
    return path


def _open_directory(root: Path, directory: Path) -> int:
    """A descriptor of `directory` (resolved, under `root`), reached from `root` one component
    at a time without following a symlink: a directory swapped for a symlink after `directory`
    was resolved (a race) is refused rather than followed out of the root."""
    fd = os.open(root, _DIRECTORY)
    try:
        for part in directory.relative_to(root).parts:
            parent, fd = fd, -1
            try:
                fd = os.open(part, _DIRECTORY, dir_fd=parent)
            finally:
                os.close(parent)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise
    return fd
