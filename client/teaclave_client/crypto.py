"""Teaclave's file crypto, byte-compatible: `aes-gcm-128`, `aes-gcm-256`, `teaclave-file-128`
and `raw`.

An encrypted file is AES-GCM(key, iv, AAD = 8 zero bytes) ciphertext followed by its 16-byte
tag; the tag is the file's `cmac`, registered with the file and checked before use. A `raw` file
is plaintext; its cmac is the first 16 bytes of its SHA-256 (ours: Teaclave checks nothing). Every
encryption takes a fresh random 12-byte iv. Any failure (wrong key or iv, a flipped bit, a
truncated file, a tag that is not the registered cmac) raises IntegrityError and yields no
plaintext: files are decrypted into a temporary file that replaces the destination only once the
tag is verified. Files are processed in chunks, so a large one is never held in memory.
A `teaclave-file-128` file is an SGX protected file (protected_fs.py): it has no iv (give b""),
its cmac is its metadata node's GMAC, and it stores a file name (`name`; Teaclave's own reader
opens it only under that name).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import protected_fs
from .errors import IntegrityError
from .files import PRIVATE, atomic_file
from .vocabulary import IV_BYTES, SCHEMAS, TAG_BYTES, Schema  # SCHEMAS: schema -> key bytes

__all__ = [
    "SCHEMAS",
    "Encrypted",
    "IntegrityError",
    "decrypt",
    "decrypt_file",
    "encrypt",
    "encrypt_file",
    "generate_key",
    "raw_cmac",
    "stored_cmac",
]

AAD = bytes(8)
CHUNK = 1 << 20
PFS = Schema.TEACLAVE_FILE_128.value
DEFAULT_NAME = "file.enc"  # the name stored in a teaclave-file-128 file unless one is given


@dataclass(frozen=True)
class Encrypted:
    iv: bytes
    cmac: bytes  # the GCM tag, also the file's last 16 bytes (raw: a digest, see raw_cmac)


def _key_bytes(schema: str, key: bytes) -> int:
    if schema not in SCHEMAS:
        raise ValueError(f"unknown schema {schema!r}: one of {sorted(SCHEMAS)}")
    if len(key) != SCHEMAS[schema]:
        raise ValueError(f"{schema} needs a {SCHEMAS[schema]}-byte key, not {len(key)} bytes")
    return SCHEMAS[schema]


def generate_key(schema: str) -> bytes:
    _key_bytes(schema, bytes(SCHEMAS.get(schema, 0)))
    return AESGCM.generate_key(bit_length=8 * SCHEMAS[schema]) if SCHEMAS[schema] else b""


def raw_cmac(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()[:TAG_BYTES]


def stored_cmac(schema: str, f: BinaryIO) -> bytes:
    """The cmac a stored file carries, read without its key (an encrypted file's last 16
    bytes, a raw file's digest): what a platform checks against the registered cmac before it
    serves the file."""
    _key_bytes(schema, bytes(SCHEMAS.get(schema, 0)))
    if schema == PFS:
        return protected_fs.stored_cmac(f)
    if SCHEMAS[schema]:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - TAG_BYTES))
        return f.read(TAG_BYTES)
    digest = hashlib.sha256()
    while chunk := f.read(CHUNK):
        digest.update(chunk)
    return digest.digest()[:TAG_BYTES]


def encrypt(
    schema: str, key: bytes, plaintext: bytes, name: str = DEFAULT_NAME
) -> tuple[bytes, Encrypted]:
    """(file bytes, iv and cmac) for a plaintext held in memory; `name` is stored in a
    teaclave-file-128 file, ignored otherwise."""
    if not _key_bytes(schema, key):
        return plaintext, Encrypted(b"", raw_cmac(plaintext))
    if schema == PFS:
        sealed, cmac = protected_fs.encrypt(key, plaintext, name)
        return sealed, Encrypted(b"", cmac)
    iv = os.urandom(IV_BYTES)
    sealed = AESGCM(key).encrypt(iv, plaintext, AAD)
    return sealed, Encrypted(iv, sealed[-TAG_BYTES:])


def decrypt(schema: str, key: bytes, iv: bytes, data: bytes, cmac: bytes | None = None) -> bytes:
    """The plaintext of file bytes; IntegrityError for anything but the exact file."""
    if not _key_bytes(schema, key):
        if cmac is not None and not hmac.compare_digest(raw_cmac(data), cmac):
            raise IntegrityError("the raw file's digest is not the registered cmac")
        return data
    if schema == PFS:
        _no_iv(iv)
        return protected_fs.decrypt(key, data, cmac)
    if len(data) < TAG_BYTES or len(iv) != IV_BYTES:
        raise IntegrityError("the file is truncated or the iv is not 12 bytes")
    if cmac is not None and not hmac.compare_digest(data[-TAG_BYTES:], cmac):
        raise IntegrityError("the file's tag is not the registered cmac")
    try:
        return AESGCM(key).decrypt(iv, data, AAD)
    except InvalidTag:
        raise IntegrityError(
            "authentication failed: wrong key or iv, or the file was altered"
        ) from None


def encrypt_file(
    schema: str, key: bytes, src: Path, dst: Path, name: str | None = None
) -> Encrypted:
    """Encrypts src into dst chunk by chunk; dst is written whole or not at all. A
    teaclave-file-128 file stores `name`, by default dst's name (as Teaclave's tools do)."""
    if not _key_bytes(schema, key):
        data = src.read_bytes()
        _replace_with(dst, lambda out: out.write(data))
        return Encrypted(b"", raw_cmac(data))
    if schema == PFS:
        return Encrypted(b"", protected_fs.encrypt_file(key, src, dst, name))
    iv = os.urandom(IV_BYTES)
    encryptor = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    encryptor.authenticate_additional_data(AAD)

    def write(out: BinaryIO) -> None:
        with src.open("rb") as f:
            while chunk := f.read(CHUNK):
                out.write(encryptor.update(chunk))
        out.write(encryptor.finalize() + encryptor.tag)

    _replace_with(dst, write)
    return Encrypted(iv, encryptor.tag)


def decrypt_file(
    schema: str, key: bytes, iv: bytes, src: Path, dst: Path, cmac: bytes | None = None
) -> None:
    """Decrypts src into dst chunk by chunk; dst appears only if the tag verifies."""
    if not _key_bytes(schema, key):
        data = decrypt(schema, key, iv, src.read_bytes(), cmac)
        _replace_with(dst, lambda out: out.write(data))
        return
    if schema == PFS:
        _no_iv(iv)
        protected_fs.decrypt_file(key, src, dst, cmac)
        return
    size = src.stat().st_size
    if size < TAG_BYTES or len(iv) != IV_BYTES:
        raise IntegrityError(f"{src.name} is truncated or the iv is not 12 bytes")
    with src.open("rb") as f:
        f.seek(size - TAG_BYTES)
        tag = f.read(TAG_BYTES)
    if cmac is not None and not hmac.compare_digest(tag, cmac):
        raise IntegrityError(f"{src.name}: its tag is not the registered cmac")
    decryptor = Cipher(algorithms.AES(key), modes.GCM(iv, tag)).decryptor()
    decryptor.authenticate_additional_data(AAD)

    def write(out: BinaryIO) -> None:
        remaining = size - TAG_BYTES
        with src.open("rb") as f:
            while remaining > 0:
                chunk = f.read(min(CHUNK, remaining))
                remaining -= len(chunk)
                out.write(decryptor.update(chunk))
        try:
            out.write(decryptor.finalize())
        except InvalidTag:
            raise IntegrityError(
                f"{src.name}: authentication failed: wrong key or iv, or the file was altered"
            ) from None

    _replace_with(dst, write)


def _no_iv(iv: bytes) -> None:
    if iv:
        raise IntegrityError("a teaclave-file-128 file has no iv: this one was given one")


def _replace_with(dst: Path, write: Callable[[BinaryIO], object]) -> None:
    """Runs write(file) on a temporary file beside dst (0600: it may be plaintext), then moves
    it into place; on any error the temporary file (and what it holds) is deleted."""
    with atomic_file(dst, PRIVATE) as out:
        write(out)
