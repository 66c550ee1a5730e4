"""`teaclave-file-128` wherever a schema is accepted on the client: crypto.py's functions (no
iv; the cmac is the metadata GMAC; the name stored), and `teaclave-client encrypt/decrypt`,
Teaclave's own file among them, with the exit statuses and one-line errors scripts rely on."""

from __future__ import annotations

import os

import pytest
from cli_helpers import Cli
from paths import VECTORS
from teaclave_client import protected_fs
from teaclave_client.crypto import (
    IntegrityError,
    decrypt,
    decrypt_file,
    encrypt,
    encrypt_file,
    generate_key,
    stored_cmac,
)

SCHEMA = "teaclave-file-128"
VECTOR = VECTORS / "teaclave-file-128"
VECTOR_CMAC = "fd9b319ae0fc595a98ee4135667ac0ac"


def test_crypto_takes_the_schema_in_memory_and_in_files(tmp_path):
    key, plaintext = generate_key(SCHEMA), os.urandom(10_000)
    assert len(key) == 16
    sealed, meta = encrypt(SCHEMA, key, plaintext, name="in.enc")
    assert meta.iv == b"" and sealed[80:96] == meta.cmac and len(sealed) == 4 * 4096
    assert decrypt(SCHEMA, key, b"", sealed, meta.cmac) == plaintext
    (tmp_path / "sealed").write_bytes(sealed)
    with open(tmp_path / "sealed", "rb") as f:
        assert stored_cmac(SCHEMA, f) == meta.cmac
    with pytest.raises(IntegrityError, match="no iv"):
        decrypt(SCHEMA, key, bytes(12), sealed, meta.cmac)
    (tmp_path / "plain").write_bytes(plaintext)
    meta = encrypt_file(SCHEMA, key, tmp_path / "plain", tmp_path / "out.enc")
    assert meta.iv == b""
    data = (tmp_path / "out.enc").read_bytes()
    back = tmp_path / "back"
    assert protected_fs.decrypt_file(key, tmp_path / "out.enc", back, meta.cmac) == "out.enc"
    decrypt_file(SCHEMA, key, b"", tmp_path / "out.enc", back, meta.cmac)
    assert back.read_bytes() == plaintext
    (tmp_path / "bad").write_bytes(data[:-1])
    with pytest.raises(IntegrityError):
        decrypt_file(SCHEMA, key, b"", tmp_path / "bad", tmp_path / "never", meta.cmac)
    assert not (tmp_path / "never").exists()


def test_the_cli_encrypts_and_decrypts_it_and_reads_teaclaves_file(tmp_path, capsys):
    cli = Cli(capsys, tmp_path / "home", "http://127.0.0.1:9")  # no service needed
    plain = tmp_path / "plain.bin"
    plain.write_bytes(os.urandom(5000))
    key_file = tmp_path / "k.json"
    shown = cli.json(
        "encrypt",
        str(plain),
        str(tmp_path / "a.enc"),
        "--schema",
        SCHEMA,
        "--key-file",
        str(key_file),
    )
    assert shown["iv"] == "" and shown["schema"] == SCHEMA
    sealed = (tmp_path / "a.enc").read_bytes()
    assert sealed[80:96].hex() == shown["cmac"]
    cli("decrypt", str(tmp_path / "a.enc"), str(tmp_path / "back"), "--key-file", str(key_file))
    assert (tmp_path / "back").read_bytes() == plain.read_bytes()
    shown = cli.json(
        "encrypt", str(plain), str(tmp_path / "b.enc"), "--schema", SCHEMA, "--name", "x.enc"
    )
    key = bytes.fromhex(shown["key"])
    assert protected_fs.decrypt_file(key, tmp_path / "b.enc", tmp_path / "b") == "x.enc"
    cli("encrypt", str(plain), str(tmp_path / "c.enc"), "--schema", SCHEMA, "--name", "a/b", code=1)
    assert "file name" in cli.err and len(cli.err.strip().splitlines()) == 1
    assert not (tmp_path / "c.enc").exists()

    teaclaves = ["--schema", SCHEMA, "--key", "00" * 16]
    enc = str(VECTOR / "psi0.txt.enc")
    cli("decrypt", enc, str(tmp_path / "psi0.txt"), *teaclaves, "--cmac", VECTOR_CMAC)
    assert (tmp_path / "psi0.txt").read_bytes() == (VECTOR / "psi0.txt").read_bytes()
    for args in (["--cmac", "00" * 16], ["--iv", "00" * 12], ["--key", "01" * 16]):
        cli("decrypt", enc, str(tmp_path / "nothing"), *teaclaves, *args, code=8)
        assert len(cli.err.strip().splitlines()) == 1 and "Traceback" not in cli.err
        assert not (tmp_path / "nothing").exists()
