"""What a worker may do through the API (its blob endpoints) and how it proves it is one.

The credential is the platform's Ed25519 signing key, which every worker already holds (the
platform's key files are copied to it; they are never served). Each request carries

    Authorization: TeaclaveWorker time=<unix s>, nonce=<32 hex>, body-sha256=<64 hex>,
                   signature=<base64url of Ed25519 over LABEL + method, target, time, nonce
                   and the body's sha256, one a line>

The API checks it against the public key: the signature binds the method, the endpoint with its
blob id, and the body, so it cannot be moved to another request; the time must be within
WINDOW_S of the API's clock, and a nonce is accepted once in that window (per API process).
Receipts are signed over canonical JSON, which starts with "{", never with LABEL: neither
signature can pass for the other. A user's bearer token is no worker credential.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import threading
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from ..errors import TeaclaveInferError
from .models import Blob, DataFile, Function

__all__ = [
    "EMPTY_SHA256",
    "SCHEME",
    "WINDOW_S",
    "CredentialRefused",
    "Replays",
    "SignedRequest",
    "blob_in_use",
    "sign_request",
    "verify_request",
]

SCHEME = "TeaclaveWorker"
WINDOW_S = 60.0
LABEL = b"teaclave-infer worker request v1\n"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_HEADER = re.compile(
    rf"{SCHEME} time=(?P<time>\d{{1,12}}), nonce=(?P<nonce>[0-9a-f]{{32}}), "
    r"body-sha256=(?P<body>[0-9a-f]{64}), signature=(?P<signature>[A-Za-z0-9_-]{86})"
)


class CredentialRefused(TeaclaveInferError):
    """The request carries no valid worker credential; the message says which part failed."""


@dataclass(frozen=True)
class SignedRequest:
    time: int
    nonce: str
    body_sha256: str
    signature: bytes

    def message(self, method: str, target: str) -> bytes:
        fields = (method.upper(), target, str(self.time), self.nonce, self.body_sha256)
        return LABEL + "\n".join(fields).encode()


def sign_request(
    key: Ed25519PrivateKey, method: str, target: str, body_sha256: str, now: float
) -> str:
    """The Authorization header for a request to `target` (the API path, e.g.
    /v1/worker/blobs/<id>) with a body of that sha256, made at `now` (unix seconds)."""
    unsigned = SignedRequest(int(now), secrets.token_hex(16), body_sha256, b"")
    signature = key.sign(unsigned.message(method, target))
    encoded = base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    return (
        f"{SCHEME} time={unsigned.time}, nonce={unsigned.nonce}, "
        f"body-sha256={body_sha256}, signature={encoded}"
    )


def _parse(header: str | None) -> SignedRequest:
    if not header or not header.startswith(f"{SCHEME} "):
        raise CredentialRefused(f"no worker credential: send Authorization: {SCHEME} ...")
    match = _HEADER.fullmatch(header)
    if match is None:
        raise CredentialRefused("a malformed worker credential")
    try:
        signature = base64.urlsafe_b64decode(match["signature"] + "==")
    except (binascii.Error, ValueError):
        raise CredentialRefused("a malformed worker credential") from None
    return SignedRequest(int(match["time"]), match["nonce"], match["body"], signature)


class Replays:
    """The nonces of requests accepted within the window: each is accepted once."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}
        self._prune_at = 4096
        self._lock = threading.Lock()

    def first_use(self, nonce: str, time: int, now: float) -> bool:
        with self._lock:
            if len(self._expiry) >= self._prune_at:  # forget what the window refuses anyway
                self._expiry = {n: t for n, t in self._expiry.items() if t >= now}
                self._prune_at = max(4096, 2 * len(self._expiry))
            if nonce in self._expiry:
                return False
            self._expiry[nonce] = time + WINDOW_S
            return True


def verify_request(
    public: Ed25519PublicKey,
    header: str | None,
    method: str,
    target: str,
    now: float,
    replays: Replays,
) -> SignedRequest:
    """The signed request if `header` is a valid credential for `method` on `target` at
    `now`; CredentialRefused otherwise. The caller checks the body against `body_sha256`."""
    signed = _parse(header)
    if abs(now - signed.time) > WINDOW_S:
        raise CredentialRefused(f"the credential's time is not within {WINDOW_S:g} s of ours")
    try:
        public.verify(signed.signature, signed.message(method, target))
    except InvalidSignature:
        raise CredentialRefused(
            "the signature is not the platform key's for this request"
        ) from None
    if not replays.first_use(signed.nonce, signed.time, now):
        raise CredentialRefused("this credential was used already")
    return signed


def blob_in_use(session: Session, blob_id: str) -> bool:
    """Whether a function, a file or a user's upload holds the blob: a worker may delete only
    the blobs it stored and did not record (an output whose task ended otherwise)."""
    return bool(
        session.scalar(
            select(
                or_(
                    exists().where(Function.id == blob_id),
                    exists().where(Blob.id == blob_id),
                    exists().where(DataFile.url == f"blob:{blob_id}"),
                )
            )
        )
    )
