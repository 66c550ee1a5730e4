"""Teaclave's file crypto, checked both ways against an independent AES-GCM written here with
cryptography's AESGCM (key, 12-byte iv, AAD = 8 zero bytes, file = ciphertext || tag), and every
way a file can be wrong."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from teaclave_client.crypto import (
    IntegrityError,
    decrypt,
    decrypt_file,
    encrypt,
    encrypt_file,
    generate_key,
)

SCHEMAS = ["aes-gcm-128", "aes-gcm-256"]
DATA = os.urandom(3 * (1 << 20) + 123)  # several chunks, and not a multiple of the block


def reference_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    return AESGCM(key).encrypt(iv, plaintext, bytes(8))


def reference_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    return AESGCM(key).decrypt(iv, data, bytes(8))


@pytest.mark.parametrize("schema", SCHEMAS)
def test_our_files_open_with_the_reference(tmp_path, schema):
    key = generate_key(schema)
    assert len(key) == {"aes-gcm-128": 16, "aes-gcm-256": 32}[schema]
    sealed, meta = encrypt(schema, key, DATA)
    assert reference_decrypt(key, meta.iv, sealed) == DATA and sealed[-16:] == meta.cmac
    (tmp_path / "plain").write_bytes(DATA)
    meta = encrypt_file(schema, key, tmp_path / "plain", tmp_path / "sealed")
    sealed = (tmp_path / "sealed").read_bytes()
    assert reference_decrypt(key, meta.iv, sealed) == DATA and sealed[-16:] == meta.cmac


@pytest.mark.parametrize("schema", SCHEMAS)
def test_reference_files_open_with_ours(tmp_path, schema):
    key, iv = generate_key(schema), os.urandom(12)
    sealed = reference_encrypt(key, iv, DATA)
    assert decrypt(schema, key, iv, sealed, cmac=sealed[-16:]) == DATA
    (tmp_path / "sealed").write_bytes(sealed)
    decrypt_file(schema, key, iv, tmp_path / "sealed", tmp_path / "plain", cmac=sealed[-16:])
    assert (tmp_path / "plain").read_bytes() == DATA


def test_a_known_vector():
    """AES-128-GCM of 'teaclave' under key 00..0f, iv 00..0b, AAD 8 zero bytes."""
    key, iv = bytes(range(16)), bytes(range(12))
    sealed = reference_encrypt(key, iv, b"teaclave")
    assert decrypt("aes-gcm-128", key, iv, sealed) == b"teaclave"
    assert len(sealed) == 8 + 16


def test_every_encryption_takes_a_fresh_iv():
    key = generate_key("aes-gcm-128")
    first, second = encrypt("aes-gcm-128", key, b"x" * 64), encrypt("aes-gcm-128", key, b"x" * 64)
    assert first[1].iv != second[1].iv and first[0] != second[0]


def _tampered(sealed: bytes) -> dict[str, bytes]:
    flip = lambda i: sealed[:i] + bytes([sealed[i] ^ 0x01]) + sealed[i + 1 :]  # noqa: E731
    return {
        "first-byte": flip(0),
        "middle": flip(len(sealed) // 2),
        "tag": flip(len(sealed) - 1),
        "truncated": sealed[:-1],
        "no-tag": sealed[:-16],
        "empty": b"",
        "extended": sealed + b"\0",
    }


@pytest.mark.parametrize(
    "case",
    [
        "first-byte",
        "middle",
        "tag",
        "truncated",
        "no-tag",
        "empty",
        "extended",
        "wrong-key",
        "wrong-iv",
        "wrong-cmac",
    ],
)
def test_every_tampering_is_one_integrity_error_and_no_plaintext(tmp_path, case):
    schema, key = "aes-gcm-256", generate_key("aes-gcm-256")
    sealed, meta = encrypt(schema, key, DATA)
    data, use_key, iv, cmac = _tampered(sealed).get(case, sealed), key, meta.iv, meta.cmac
    if case == "wrong-key":
        use_key = generate_key(schema)
    elif case == "wrong-iv":
        iv = os.urandom(12)
    elif case == "wrong-cmac":
        cmac = os.urandom(16)
    elif case != "tag":
        cmac = None  # check the tag inside the file, not the registered one
    with pytest.raises(IntegrityError):
        decrypt(schema, use_key, iv, data, cmac=cmac)
    (tmp_path / "sealed").write_bytes(data)
    with pytest.raises(IntegrityError):
        decrypt_file(schema, use_key, iv, tmp_path / "sealed", tmp_path / "plain", cmac=cmac)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sealed"]  # no plaintext left behind


def test_raw_passes_through_and_keys_are_checked(tmp_path):
    assert encrypt("raw", b"", b"abc")[0] == b"abc" and decrypt("raw", b"", b"", b"abc") == b"abc"
    with pytest.raises(ValueError, match="16-byte key"):
        encrypt("aes-gcm-128", bytes(32), b"abc")
    with pytest.raises(ValueError, match="unknown schema"):
        generate_key("rot13")
