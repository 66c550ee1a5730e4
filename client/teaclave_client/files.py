"""Files written whole or not at all: the one way this project and teaclave-infer write a file
that someone may read while it is being written, or that a crash must not leave half-written.

The data goes to a new temporary file beside the target (created with O_EXCL and the final
mode, so a secret is never readable by others, not even for a moment), is flushed to disk, then
renamed over the target (or linked to it, refusing an existing one); the directory is flushed
too, so the new name survives a crash. On any error the temporary file is deleted and the
target is as it was. Standard library only: the executor imports this module.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

__all__ = ["PRIVATE", "atomic_file", "write_atomic", "write_private"]

PRIVATE = 0o600  # keys, tokens, passwords, ciphertext of others
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@contextmanager
def atomic_file(
    path: Path, mode: int = 0o666, *, replace: bool = True, dir_fd: int | None = None
) -> Iterator[BinaryIO]:
    """A binary file to write `path`'s new content to; it becomes `path` when the block ends
    without an error. `mode` is subject to the umask, as for open(). With `replace=False`,
    FileExistsError if `path` exists (then nothing is written). With `dir_fd`, `path` is a
    name in that open directory (the caller resolved it safely) and no path is followed."""
    name = os.fspath(path) if dir_fd is not None else os.path.basename(path)
    directory = dir_fd if dir_fd is not None else os.open(Path(path).parent, os.O_DIRECTORY)
    temp = f".{os.path.basename(name)}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(temp, _FLAGS, mode, dir_fd=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            if replace:
                os.replace(temp, name, src_dir_fd=directory, dst_dir_fd=directory)
            else:  # link refuses an existing name, and never follows one
                os.link(temp, name, src_dir_fd=directory, dst_dir_fd=directory)
                os.unlink(temp, dir_fd=directory)
            os.fsync(directory)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=directory)
            raise
    finally:
        if dir_fd is None:
            os.close(directory)


def write_atomic(
    path: Path, data: bytes, mode: int = 0o666, *, replace: bool = True, dir_fd: int | None = None
) -> None:
    """Writes `data` to `path` whole or not at all (see atomic_file)."""
    with atomic_file(path, mode, replace=replace, dir_fd=dir_fd) as out:
        out.write(data)


def write_private(path: Path, data: bytes, *, replace: bool = True) -> None:
    """Writes a secret: the file is created 0600 (in a directory made 0700 if it is new) and
    replaced whole."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, data, PRIVATE, replace=replace)
