"""`teaclave-file-128` (teaclave_client.protected_fs): Teaclave's own vector decrypts; our files
have the SDK's layout, read back by a walk written here independently of the module (node
positions enumerated in file order: metadata, then each MHT node followed by its 96 data
nodes); every size round-trips; every tamper is IntegrityError with no destination written."""

from __future__ import annotations

import inspect
import io
import os
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from paths import VECTORS
from teaclave_client import protected_fs as pfs
from teaclave_client.errors import IntegrityError

VECTOR = VECTORS / "teaclave-file-128"
VECTOR_CMAC = bytes.fromhex("fd9b319ae0fc595a98ee4135667ac0ac")
KEY = bytes(range(16))
N = 4096
# 98 data nodes: MHT node 0 full, MHT node 1 with two; 101 nodes in all.
TAMPERED_SIZE = 3072 + 97 * N + 10


def test_teaclaves_vector_decrypts(tmp_path):
    enc = (VECTOR / "psi0.txt.enc").read_bytes()
    with open(VECTOR / "psi0.txt.enc", "rb") as f:
        assert pfs.stored_cmac(f) == VECTOR_CMAC
    assert pfs.decrypt(bytes(16), enc, VECTOR_CMAC) == (VECTOR / "psi0.txt").read_bytes()
    name = pfs.decrypt_file(bytes(16), VECTOR / "psi0.txt.enc", tmp_path / "out", VECTOR_CMAC)
    assert name == "psi0.txt.enc"
    assert (tmp_path / "out").read_bytes() == (VECTOR / "psi0.txt").read_bytes()


def _walk(key: bytes, data: bytes) -> bytes:
    """An independent reader: the metadata by hand, then nodes in file order."""
    from teaclave_client._pfs_layout import metadata_key

    assert data[:8] == b"ELIF_XGS" and data[8:12] == bytes([1, 0, 1, 0])
    gcm = AESGCM(metadata_key(key, data[16:48]))
    md = gcm.decrypt(bytes(12), data[96 : 96 + 3372] + data[80:96], None)
    size = struct.unpack_from("<Q", md, 260)[0]
    out, entries = bytearray(md[300 : 300 + min(size, 3072)]), {0: md[268:300]}
    nodes = [data[i : i + N] for i in range(N, len(data), N)]
    mht_number = 0
    while nodes:
        mht = AESGCM(entries[mht_number][:16]).decrypt(
            bytes(12), nodes.pop(0) + entries[mht_number][16:], None
        )
        for child in range(32):
            entries[32 * mht_number + 1 + child] = mht[3072 + 32 * child : 3104 + 32 * child]
        for slot in range(96):
            if not nodes or len(out) >= size:
                break
            entry = mht[32 * slot : 32 * slot + 32]
            out += AESGCM(entry[:16]).decrypt(bytes(12), nodes.pop(0) + entry[16:], None)
        mht_number += 1
    return bytes(out[:size])


@pytest.mark.parametrize("size", [0, 1, 3072, 3073, 4096 * 97, 3072 + 96 * N, 3072 + 96 * N + 1])
def test_round_trips_and_the_layout(size):
    plaintext = os.urandom(size)
    data, cmac = pfs.encrypt(KEY, plaintext, "f.enc")
    data_nodes = max(0, -(-(size - 3072) // N))
    assert len(data) == N * (1 + data_nodes + -(-data_nodes // 96))
    assert data[80:96] == cmac
    assert _walk(KEY, data) == plaintext
    assert pfs.decrypt(KEY, data, cmac) == plaintext


def test_several_mib_stream_through_files_with_a_second_tree_level(tmp_path):
    """3169 data nodes: MHT node 33 is a child of MHT node 1, not of the root."""
    plaintext = os.urandom(3072 + 33 * 96 * N + 1)
    (tmp_path / "plain").write_bytes(plaintext)
    cmac = pfs.encrypt_file(KEY, tmp_path / "plain", tmp_path / "data.enc")
    data = (tmp_path / "data.enc").read_bytes()
    assert _walk(KEY, data) == plaintext
    assert pfs.decrypt_file(KEY, tmp_path / "data.enc", tmp_path / "back", cmac) == "data.enc"
    assert (tmp_path / "back").read_bytes() == plaintext


@pytest.fixture(scope="module")
def sealed() -> tuple[bytes, bytes, bytes]:
    plaintext = os.urandom(TAMPERED_SIZE)
    data, cmac = pfs.encrypt(KEY, plaintext, "t.enc")
    return plaintext, data, cmac


def _refused(tmp_path: Path, data: bytes, key: bytes = KEY, cmac: bytes | None = None) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(data)
    with pytest.raises(IntegrityError):
        pfs.decrypt_file(key, src, dst, cmac)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # no destination, no temp file


def _flipped(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x10]) + data[offset + 1 :]


def test_a_bit_flip_in_any_node_is_refused(tmp_path, sealed):
    _, data, _ = sealed
    for node in range(len(data) // N):
        offset = node * N + int.from_bytes(os.urandom(2)) % N
        _refused(tmp_path, _flipped(data, offset))


@pytest.mark.parametrize("offset", [*range(0, 96), 96 + 3372, N - 1])
def test_a_bit_flip_anywhere_in_the_metadata_plain_part_or_padding_is_refused(
    tmp_path, sealed, offset
):
    _, data, cmac = sealed
    _refused(tmp_path, _flipped(data, offset))
    _refused(tmp_path, _flipped(data, offset), cmac=cmac)


@pytest.mark.parametrize("a,b", [(2, 3), (1, 2), (1, 98), (97, 99), (0, 1)])
def test_swapped_nodes_are_refused(tmp_path, sealed, a, b):
    _, data, _ = sealed
    nodes = [data[i : i + N] for i in range(0, len(data), N)]
    nodes[a], nodes[b] = nodes[b], nodes[a]
    _refused(tmp_path, b"".join(nodes))


def test_another_files_metadata_node_is_refused(tmp_path, sealed):
    plaintext, data, cmac = sealed
    other, _ = pfs.encrypt(KEY, plaintext, "t.enc")
    _refused(tmp_path, other[:N] + data[N:])
    _refused(tmp_path, other[:N] + data[N:], cmac=cmac)


@pytest.mark.parametrize("cut", [0, 1, 95, N - 1, N, 2 * N, 50 * N + 7, -N, -1])
def test_truncation_is_refused(tmp_path, sealed, cut):
    _, data, cmac = sealed
    _refused(tmp_path, data[:cut], cmac=cmac)


def test_an_extended_file_is_refused(tmp_path, sealed):
    _, data, cmac = sealed
    _refused(tmp_path, data + data[-N:], cmac=cmac)


def test_a_wrong_key_or_an_unregistered_cmac_is_refused(tmp_path, sealed):
    _, data, cmac = sealed
    _refused(tmp_path, data, key=bytes(16))
    _refused(tmp_path, data, cmac=_flipped(cmac, 3))
    _, small_cmac = pfs.encrypt(KEY, b"x", "s.enc")
    _refused(tmp_path, data, cmac=small_cmac)  # a real cmac, of another file


def test_every_encryption_is_fresh_and_names_are_checked():
    a, cmac_a = pfs.encrypt(KEY, b"same", "n.enc")
    b, cmac_b = pfs.encrypt(KEY, b"same", "n.enc")
    assert a[16:48] != b[16:48] and cmac_a != cmac_b  # a new key id, so a new metadata key
    for bad in ["", "a/b", "x\0y", "n" * 259]:
        with pytest.raises(ValueError, match="file name"):
            pfs.encrypt(KEY, b"", bad)
    with pytest.raises(ValueError, match="16-byte key"):
        pfs.decrypt(bytes(32), a)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://example.org/data/out.enc?x=1", "out.enc"),
        ("file:///srv/shared/psi%20out.enc", "psi out.enc"),
        ("blob:", "fallback"),
        ("https://example.org/", "fallback"),
        ("https://example.org/" + "n" * 259, "fallback"),
    ],
)
def test_the_name_stored_for_a_url_is_the_one_teaclave_stages_it_under(url, name):
    assert pfs.name_for(url, "fallback") == name


def test_no_public_function_writes_the_plaintext_of_a_file_that_fails(tmp_path, sealed):
    """The last node tampered: every node before it verifies, so a reader that writes as it
    goes would have written them. No public decrypting function takes a stream to write to
    (one did), and the in-memory and file forms give nothing."""
    _, data, cmac = sealed
    last = _flipped(data, len(data) - 1)
    for name in pfs.__all__:
        function = getattr(pfs, name)
        if name.startswith("decrypt") and "out" in inspect.signature(function).parameters:
            out = io.BytesIO()
            with pytest.raises(IntegrityError):
                function(KEY, io.BytesIO(last), out, cmac)
            assert out.getvalue() == b"", f"{name} wrote plaintext of a file that failed"
    with pytest.raises(IntegrityError):
        pfs.decrypt(KEY, last, cmac)
    _refused(tmp_path, last, cmac=cmac)
