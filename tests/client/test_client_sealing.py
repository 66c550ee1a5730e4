"""File keys sealed to the platform key with HPKE, bound to one file id and schema."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from teaclave_client.crypto import IntegrityError, encrypt, generate_key, raw_cmac
from teaclave_client.sealing import unwrap_key, wrap_key

FILE = "0123456789abcdef0123456789abcdef"


def public(private: X25519PrivateKey) -> str:
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("schema", ["aes-gcm-128", "aes-gcm-256"])
def test_a_wrapped_key_opens_only_for_its_platform_file_and_schema(schema):
    platform, other = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    key = generate_key(schema)
    wrapped = wrap_key(key, public(platform), FILE, schema)
    assert key not in base64.b64decode(wrapped)
    assert wrap_key(key, public(platform), FILE, schema) != wrapped  # fresh every time
    assert unwrap_key(wrapped, platform, FILE, schema) == key
    other_schema = "aes-gcm-256" if schema == "aes-gcm-128" else "aes-gcm-128"
    sealed = base64.b64decode(wrapped)
    flipped = base64.b64encode(sealed[:-1] + bytes([sealed[-1] ^ 1])).decode()
    for attempt in (
        lambda: unwrap_key(wrapped, other, FILE, schema),  # another platform key
        lambda: unwrap_key(wrapped, platform, "f" * 32, schema),  # moved to another file
        lambda: unwrap_key(wrapped, platform, FILE, other_schema),  # another schema
        lambda: unwrap_key(flipped, platform, FILE, schema),  # altered
        lambda: unwrap_key("not base64!", platform, FILE, schema),
    ):
        with pytest.raises(IntegrityError):
            attempt()


def test_wrapping_checks_the_key_length():
    with pytest.raises(ValueError, match="16-byte key"):
        wrap_key(bytes(32), public(X25519PrivateKey.generate()), FILE, "aes-gcm-128")


def test_a_raw_file_has_a_digest_cmac():
    sealed, meta = encrypt("raw", b"", b"plain")
    assert sealed == b"plain" and meta.cmac == raw_cmac(b"plain") and len(meta.cmac) == 16
