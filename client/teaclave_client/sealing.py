"""File keys sealed to the platform, and receipts signed by it.

A file key never travels or rests in the clear: the owner wraps it to the platform's X25519 key
with HPKE (RFC 9180, base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM), binding
the file's id and schema in `info`, so a wrapped key cannot be moved to another file or schema.
Only a worker unwraps it, in memory, for one task.

A finished task carries a receipt: canonical JSON (sorted keys, no spaces, UTF-8) of what ran,
signed with the platform's Ed25519 key. `verify_receipt` checks it against the published key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .crypto import SCHEMAS
from .errors import IntegrityError, ReceiptError

__all__ = [
    "HPKE_SUITE",
    "INFO_LABEL",
    "ReceiptError",
    "canonical_json",
    "key_id",
    "unwrap_key",
    "verify_receipt",
    "wrap_key",
]

HPKE_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
INFO_LABEL = b"teaclave-infer/file-key/v1"


def _info(file_id: str, schema: str) -> bytes:
    if schema not in SCHEMAS or not file_id or "\0" in file_id:
        raise ValueError(f"cannot bind a key to file {file_id!r} with schema {schema!r}")
    return b"\0".join((INFO_LABEL, file_id.encode(), schema.encode()))


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64") from None


def key_id(public_key_raw: bytes) -> str:
    """A short name for a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_key_raw).hexdigest()[:16]


def wrap_key(key: bytes, platform_public_key: str, file_id: str, schema: str) -> str:
    """The file key sealed to the platform's published X25519 key (base64 of both)."""
    if len(key) != SCHEMAS.get(schema, -1):
        raise ValueError(f"{schema} needs a {SCHEMAS.get(schema)}-byte key, not {len(key)} bytes")
    public = X25519PublicKey.from_public_bytes(_b64(platform_public_key, "the platform key"))
    sealed = HPKE_SUITE.encrypt(key, public, _info(file_id, schema))
    return base64.b64encode(sealed).decode()


def unwrap_key(wrapped: str, private_key: X25519PrivateKey, file_id: str, schema: str) -> bytes:
    """The file key, for the platform only; IntegrityError if it was sealed to another key, file
    or schema, or altered."""
    try:
        key = HPKE_SUITE.decrypt(
            _b64(wrapped, "the wrapped key"), private_key, _info(file_id, schema)
        )
    except (InvalidTag, ValueError):
        raise IntegrityError(
            f"the key of file {file_id} does not open: sealed to another platform key, file or "
            "schema, or altered"
        ) from None
    if len(key) != SCHEMAS[schema]:
        raise IntegrityError(f"the key of file {file_id} is not a {schema} key")
    return key


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify_receipt(receipt: dict[str, Any], signing_public_key: str) -> dict[str, Any]:
    """The receipt's payload if it is signed by the platform key (base64 Ed25519, as published
    at /v1/platform/keys); ReceiptError otherwise."""
    try:
        payload, signature = receipt["payload"], _b64(receipt["signature"], "the signature")
        raw = _b64(signing_public_key, "the signing key")
        public = Ed25519PublicKey.from_public_bytes(raw)
    except (KeyError, TypeError, ValueError) as err:
        raise ReceiptError(f"malformed receipt or key: {err}") from None
    if receipt.get("key_id") != key_id(raw):
        raise ReceiptError(f"the receipt names key {receipt.get('key_id')}, not {key_id(raw)}")
    try:
        public.verify(signature, canonical_json(payload))
    except InvalidSignature:
        raise ReceiptError("the receipt's signature does not match its contents") from None
    return dict(payload)
