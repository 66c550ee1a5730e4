"""The platform's long-term keys: X25519 (file keys are sealed to it with HPKE) and Ed25519
(receipts are signed with it). Created on first start in the data dir, readable by the owner
only; a worker on another machine is given a copy of the same directory."""

from __future__ import annotations

import base64
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from teaclave_client.files import PRIVATE, write_atomic
from teaclave_client.sealing import (
    INFO_LABEL,
    RECEIPT_VERSION,
    key_id,
    receipt_body,
    unwrap_key,
)

from ..errors import TeaclaveInferError

__all__ = ["PlatformKeys"]

_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


def _write_private(path: Path, key: X25519PrivateKey | Ed25519PrivateKey) -> None:
    """Writes a PEM key with mode 0600 from the start (O_EXCL: never over an existing key)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomic(path, pem, PRIVATE, replace=False)


def _read_private(path: Path) -> Any:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TeaclaveInferError(f"{path} is readable by others (mode {oct(mode & 0o777)}): 0600")
    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class PlatformKeys:
    sealing: X25519PrivateKey
    signing: Ed25519PrivateKey

    @classmethod
    def load_or_create(cls, directory: Path, create: bool = True) -> PlatformKeys:
        """The keys in `directory`; made there first if missing and `create` (the service
        does; a standalone worker must be given the service's)."""
        paths = directory / "x25519.pem", directory / "ed25519.pem"
        if not create and not all(p.exists() for p in paths):
            raise TeaclaveInferError(
                f"no platform keys in {directory}: copy the service's keys directory there"
            )
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not paths[0].exists():
            _write_private(paths[0], X25519PrivateKey.generate())
        if not paths[1].exists():
            _write_private(paths[1], Ed25519PrivateKey.generate())
        sealing, signing = (_read_private(p) for p in paths)
        if not isinstance(sealing, X25519PrivateKey) or not isinstance(signing, Ed25519PrivateKey):
            raise TeaclaveInferError(f"{directory} holds keys of the wrong types")
        return cls(sealing, signing)

    def public(self) -> dict[str, Any]:
        """What /v1/platform/keys publishes."""
        sealing = self.sealing.public_key().public_bytes(*_RAW)
        signing = self.signing.public_key().public_bytes(*_RAW)
        return {
            "sealing": {
                "algorithm": "HPKE base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM",
                "public_key": _b64(sealing),
                "key_id": key_id(sealing),
                "info": INFO_LABEL.decode() + "\\0<file id>\\0<schema>",
            },
            "signing": {
                "algorithm": "Ed25519 over RFC 8785 canonical JSON of the receipt's payload",
                "receipt_version": RECEIPT_VERSION,
                "public_key": _b64(signing),
                "key_id": key_id(signing),
            },
        }

    def unwrap(self, wrapped: str, file_id: str, schema: str) -> bytes:
        return unwrap_key(wrapped, self.sealing, file_id, schema)

    def sign(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A receipt: the payload with its `receipt_version`, the Ed25519 signature of its
        canonical bytes (sealing.receipt_body) and the signing key's id."""
        payload = {**payload, "receipt_version": RECEIPT_VERSION}
        raw = self.signing.public_key().public_bytes(*_RAW)
        signature = self.signing.sign(receipt_body(payload))
        return {"payload": payload, "signature": _b64(signature), "key_id": key_id(raw)}
