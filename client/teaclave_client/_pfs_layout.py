"""The bytes of Teaclave's `teaclave-file-128` schema: the SGX protected-file layout in user-key
mode, as the Teaclave SGX SDK's `sgx_protected_fs` crate writes it (facts read from its
`tfs/src/sys/`; the code is ours).

A file is a sequence of 4 KiB nodes; a node's physical number is its offset / 4096:
  0        the metadata node: a plain part (magic, version, flags, the key id, the GMAC) and an
           AES-GCM encrypted part (file name, size, the root MHT node's key and tag, the first
           3072 bytes of data), zero-padded to 4096 bytes
  1        MHT node 0, the root of the Merkle hash tree, once the data exceed 3072 bytes
  2..97    data nodes 0..95 (4096 bytes of data each), attached to MHT node 0
  98       MHT node 1, followed by its 96 data nodes, and so on: MHT node m is at 1 + 97·m
An MHT node holds a (key, GCM tag) pair for each of its 96 data nodes, then one for each of its
32 child MHT nodes; MHT node m > 0 is child (m-1) % 32 of MHT node (m-1) // 32. Every node is
AES-GCM with its own key, a zero nonce and no AAD: sound only because no key is used twice. The
metadata key comes from the user key and a fresh random key id; every other node key is fresh
random bytes (the SDK derives them from a random master key: a reader cannot tell, it only takes
them from the parent node).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.cmac import CMAC

from .errors import IntegrityError
from .vocabulary import TAG_BYTES, Schema

NODE_SIZE = 4096
HEAD_BYTES = NODE_SIZE * 3 // 4  # data held in the metadata node: 3072
KEY_BYTES = Schema.TEACLAVE_FILE_128.key_bytes
DATA_PER_MHT, CHILDREN_PER_MHT = 96, 32  # (key, tag) pairs: 3/4 and 1/4 of an MHT node
NAME_BYTES = 260  # the file name field, NUL-terminated

_MAGIC, _MAJOR, _MINOR, _USER_KEY = 0x5347_585F_4649_4C45, 1, 0, 1  # "SGX_FILE" as a u64
# magic, major, minor, encrypt flags, update flag, key policy, ISV SVN, key id, CPU SVN,
# attribute mask, GMAC: 96 bytes; the key id is at 16 and the GMAC (the cmac) at 80.
_PLAIN = struct.Struct("<QBBBBHH32s16s16s16s")
_ENCRYPTED = struct.Struct(f"<{NAME_BYTES}sQ16s16s{HEAD_BYTES}s")  # 3372 bytes
_PADDING = NODE_SIZE - _PLAIN.size - _ENCRYPTED.size
CMAC_OFFSET = 80
_ZERO_NONCE = bytes(12)

# SP 800-108 counter-mode input as the SDK lays out its KDF struct: counter 1 (u32), the label
# zero-padded to 64 bytes, 4 pad bytes, the node number (u64, 0 here), the key id (32 bytes),
# the output length in bits (u32, 128), 4 pad bytes; little-endian, one AES-CMAC block of output.
# Not cryptography's KBKDFCMAC: it writes the counter big-endian (and the length, and no pad
# bytes); even given the rest of this input as `fixed`, its counter makes other bytes (tried).
_KDF_INPUT = struct.Struct("<I64s4xQ32sI4x")
_METADATA_LABEL = b"SGX-PROTECTED-FS-METADATA-KEY"


def metadata_key(user_key: bytes, key_id: bytes) -> bytes:
    """The key of a metadata node: AES-CMAC(user key, the KDF input for this key id)."""
    mac = CMAC(algorithms.AES(user_key))
    mac.update(_KDF_INPUT.pack(1, _METADATA_LABEL, 0, key_id, 8 * KEY_BYTES))
    return mac.finalize()


@dataclass(frozen=True)
class Metadata:
    """The encrypted part of a metadata node."""

    name: str
    size: int
    mht_key: bytes  # MHT node 0's key and tag; zero for a file of at most 3072 bytes
    mht_tag: bytes
    head: bytes  # the first min(size, 3072) bytes of data


def check_name(name: str) -> bytes:
    """The name as stored; ValueError unless the SDK could have written it."""
    raw = name.encode("utf-8")
    if not raw or len(raw) >= NAME_BYTES - 1 or b"\0" in raw or "/" in name:
        raise ValueError(
            f"a teaclave-file-128 file name must be 1-258 bytes, no / or NUL: {name!r}"
        )
    return raw


def seal_metadata(user_key: bytes, md: Metadata) -> bytes:
    """The 4096-byte metadata node, under a fresh key id."""
    key_id = os.urandom(32)
    encrypted = _ENCRYPTED.pack(check_name(md.name), md.size, md.mht_key, md.mht_tag, md.head)
    sealed = AESGCM(metadata_key(user_key, key_id)).encrypt(_ZERO_NONCE, encrypted, None)
    gmac = sealed[-TAG_BYTES:]
    plain = _PLAIN.pack(
        _MAGIC, _MAJOR, _MINOR, _USER_KEY, 0, 0, 0, key_id, bytes(16), bytes(16), gmac
    )
    return plain + sealed[:-TAG_BYTES] + bytes(_PADDING)


def open_metadata(user_key: bytes, node: bytes) -> Metadata:
    """The metadata node's encrypted part; IntegrityError for anything the SDK did not write
    with this key. The plain part is not covered by the GMAC (only the key id is, through the
    key), so every field of it that user-key mode leaves zero, and the padding, must be zero."""
    magic, major, minor, flags, update, policy, svn, key_id, cpu_svn, attributes, gmac = (
        _PLAIN.unpack_from(node)
    )
    if magic != _MAGIC:
        raise IntegrityError("not a teaclave-file-128 file: its first node has no SGX_FILE magic")
    if (major, minor, flags) != (_MAJOR, _MINOR, _USER_KEY):
        raise IntegrityError(
            f"a protected file of version {major}.{minor} with encrypt flags {flags}: only "
            "version 1.0 with a user key (flags 1) is teaclave-file-128"
        )
    if update:
        raise IntegrityError("the protected file was left mid-update (it needs its recovery file)")
    if policy or svn or any(cpu_svn + attributes) or any(node[_PLAIN.size + _ENCRYPTED.size :]):
        raise IntegrityError("unauthenticated bytes of the metadata node were altered")
    try:
        encrypted = AESGCM(metadata_key(user_key, key_id)).decrypt(
            _ZERO_NONCE, node[_PLAIN.size : _PLAIN.size + _ENCRYPTED.size] + gmac, None
        )
    except InvalidTag:
        raise IntegrityError(
            "the metadata node failed authentication: wrong key, or altered"
        ) from None
    raw_name, size, mht_key, mht_tag, head = _ENCRYPTED.unpack(encrypted)
    try:
        name = raw_name[: raw_name.index(b"\0")].decode("utf-8")
    except ValueError:
        raise IntegrityError("the metadata node's file name is not a NUL-terminated name") from None
    return Metadata(name, size, mht_key, mht_tag, head[: min(size, HEAD_BYTES)])


def node_counts(size: int) -> tuple[int, int]:
    """(data nodes, MHT nodes) of a file of `size` bytes."""
    data = max(0, -(-(size - HEAD_BYTES) // NODE_SIZE))
    return data, -(-data // DATA_PER_MHT)


def data_position(d: int) -> int:
    """The physical number of data node d: after the metadata node and its MHT nodes."""
    return d + 2 + d // DATA_PER_MHT


def mht_position(m: int) -> int:
    return 1 + (DATA_PER_MHT + 1) * m


def data_slot(d: int) -> int:
    """Where data node d's (key, tag) is in MHT node d // 96."""
    return (d % DATA_PER_MHT) * (KEY_BYTES + TAG_BYTES)


def child_slot(m: int) -> int:
    """Where MHT node m's (key, tag) is in its parent, MHT node (m - 1) // 32."""
    return (DATA_PER_MHT + (m - 1) % CHILDREN_PER_MHT) * (KEY_BYTES + TAG_BYTES)


def seal_node(plaintext: bytes) -> tuple[bytes, bytes, bytes]:
    """(ciphertext, key, tag) of a 4096-byte node under a fresh random key."""
    key = os.urandom(KEY_BYTES)
    sealed = AESGCM(key).encrypt(_ZERO_NONCE, plaintext, None)
    return sealed[:-TAG_BYTES], key, sealed[-TAG_BYTES:]


def open_node(ciphertext: bytes, entry: bytes, what: str) -> bytes:
    """A node's plaintext, given its (key, tag) entry from the parent; IntegrityError if the
    node is not the one that entry was made for."""
    try:
        return AESGCM(entry[:KEY_BYTES]).decrypt(_ZERO_NONCE, ciphertext + entry[KEY_BYTES:], None)
    except InvalidTag:
        raise IntegrityError(f"{what} failed authentication: altered, moved or swapped") from None
