"""File keys sealed to the platform, and receipts signed by it.

A file key never travels or rests in the clear: the owner wraps it to the platform's X25519 key
with HPKE (RFC 9180, base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM), binding
the file's id and schema in `info`, so a wrapped key cannot be moved to another file or schema.
Only a worker unwraps it, in memory, for one task.

A finished task carries a receipt: a payload saying what ran, signed with the platform's Ed25519
key; `verify_receipt` checks it against the published key. The payload's `receipt_version` says
which bytes were signed (RECEIPT_FORMATS): 2 is RFC 8785 canonical JSON; a payload without it is
v1, made before receipts had versions, signed over Python's json.dumps with sorted keys and no
spaces. The version is inside the signed bytes, so it cannot be changed or dropped either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .crypto import SCHEMAS
from .errors import IntegrityError, ReceiptError
from .vocabulary import KEY_WRAP_INFO, RECEIPT_VERSION

__all__ = [
    "HPKE_SUITE",
    "INFO_LABEL",
    "RECEIPT_FORMATS",
    "RECEIPT_VERSION",
    "UNVERSIONED",
    "ReceiptError",
    "canonical_json",
    "key_id",
    "receipt_body",
    "receipt_version",
    "unwrap_key",
    "verify_receipt",
    "wrap_key",
]

HPKE_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_128_GCM)
INFO_LABEL = KEY_WRAP_INFO.encode()


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
    """RFC 8785 (JSON Canonicalization Scheme) UTF-8 bytes of value; ValueError (rfc8785's
    CanonicalizationError) for what it cannot hold: NaN, infinities, integers beyond 2**53,
    non-string keys, lone surrogates."""
    return rfc8785.dumps(value)


def _legacy_json(value: Any) -> bytes:
    """What receipts without a version (v1) were signed over; kept only to verify them."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


UNVERSIONED = 1  # a payload without `receipt_version`: signed before receipts had versions
RECEIPT_FORMATS: dict[int, Callable[[Any], bytes]] = {UNVERSIONED: _legacy_json, 2: canonical_json}


def receipt_version(payload: Mapping[str, Any]) -> int:
    """The payload's format: its `receipt_version`, UNVERSIONED (1) without one; ReceiptError
    for a version this client does not know (an explicit 1 included: no receipt ever said so)."""
    if "receipt_version" not in payload:
        return UNVERSIONED
    version = payload["receipt_version"]
    if type(version) is int and version != UNVERSIONED and version in RECEIPT_FORMATS:
        return version
    known = f"{RECEIPT_VERSION}, or none (v{UNVERSIONED})"
    raise ReceiptError(f"unknown receipt version {version!r}: known are {known}")


def receipt_body(payload: Mapping[str, Any]) -> bytes:
    """The bytes a receipt's signature covers, in the payload's format; ReceiptError for an
    unknown version or a payload with no canonical form."""
    body = RECEIPT_FORMATS[receipt_version(payload)]
    try:
        return body(payload)
    except (ValueError, TypeError) as err:  # UnicodeEncodeError is a ValueError
        raise ReceiptError(f"the receipt's payload has no canonical JSON: {err}") from None


def verify_receipt(receipt: dict[str, Any], signing_public_key: str) -> dict[str, Any]:
    """The receipt's payload if it is signed by the platform key (base64 Ed25519, as published
    at /v1/platform/keys) in a format this client knows; ReceiptError otherwise."""
    try:
        payload, signature = receipt["payload"], _b64(receipt["signature"], "the signature")
        raw = _b64(signing_public_key, "the signing key")
        public = Ed25519PublicKey.from_public_bytes(raw)
    except (KeyError, TypeError, ValueError) as err:
        raise ReceiptError(f"malformed receipt or key: {err}") from None
    if not isinstance(payload, dict):
        raise ReceiptError("malformed receipt: its payload is not an object")
    if receipt.get("key_id") != key_id(raw):
        raise ReceiptError(f"the receipt names key {receipt.get('key_id')}, not {key_id(raw)}")
    body = receipt_body(payload)
    try:
        public.verify(signature, body)
    except InvalidSignature:
        version = receipt_version(payload)
        raise ReceiptError(
            f"the receipt's signature does not match its contents (format v{version})"
        ) from None
    return dict(payload)
