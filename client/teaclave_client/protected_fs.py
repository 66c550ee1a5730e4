"""`teaclave-file-128`: Teaclave's SGX protected files with a user key, read and written.

The layout is in `_pfs_layout`. The file's cmac, the one Teaclave registers with it, is the
metadata node's GMAC (bytes 80..96): it authenticates the metadata, which holds the key and tag
of the Merkle tree's root, which authenticates every other node. Reading checks, in order: the
registered cmac, the metadata node (magic, version, user-key mode, its untouched plain bytes, its
GCM tag), the file's length against the size it declares, then each node against the (key, tag)
its parent holds, before any of its bytes are written out. Any failure is IntegrityError; the
`*_file` functions then leave no destination behind (they write through files.atomic_file).

Differences from the SDK, on purpose: the file name stored in the metadata is not compared with
the name a file is read under (files here travel through blob stores under other names; the
name is authenticated all the same), and a file longer than its size requires is refused, not
read up to its size.
"""

from __future__ import annotations

import hmac
import io
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from . import _pfs_layout as layout
from .errors import IntegrityError
from .files import PRIVATE, atomic_file

__all__ = [
    "KEY_BYTES",
    "NODE_SIZE",
    "decrypt",
    "decrypt_file",
    "encrypt",
    "encrypt_file",
    "encrypt_stream",
    "name_for",
    "stored_cmac",
]

NODE_SIZE, KEY_BYTES, TAG_BYTES = layout.NODE_SIZE, layout.KEY_BYTES, layout.TAG_BYTES
_ENTRY = KEY_BYTES + TAG_BYTES


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError(f"teaclave-file-128 needs a {KEY_BYTES}-byte key, not {len(key)} bytes")


def stored_cmac(f: BinaryIO) -> bytes:
    """The cmac a stored file carries (its metadata GMAC), read without its key; fewer than 16
    bytes if the file is too short to have one."""
    f.seek(layout.CMAC_OFFSET)
    return f.read(TAG_BYTES)


def encrypt_stream(key: bytes, src: BinaryIO, out: BinaryIO, name: str) -> bytes:
    """Writes src's bytes to `out` (an empty seekable file) as a protected file named `name`
    (the SDK refuses to open it under any other name); returns its cmac. The data are read and
    written node by node; the MHT nodes (4 KiB per 384 KiB of data) are kept until the end,
    when they are sealed children first and written into the gaps left for them."""
    _check_key(key)
    layout.check_name(name)
    head = _read_up_to(src, layout.HEAD_BYTES)
    size, mhts = len(head), list[bytearray]()
    while len(head) == layout.HEAD_BYTES and (block := _read_up_to(src, NODE_SIZE)):
        d = (size - layout.HEAD_BYTES) // NODE_SIZE
        if d % layout.DATA_PER_MHT == 0:
            mhts.append(bytearray(NODE_SIZE))
        ciphertext, node_key, tag = layout.seal_node(block.ljust(NODE_SIZE, b"\0"))
        slot = layout.data_slot(d)
        mhts[-1][slot : slot + _ENTRY] = node_key + tag
        out.seek(layout.data_position(d) * NODE_SIZE)
        out.write(ciphertext)
        size += len(block)
    root = _write_mht_nodes(mhts, out)
    out.seek(0)
    node = layout.seal_metadata(
        key, layout.Metadata(name, size, root[:KEY_BYTES], root[KEY_BYTES:], head)
    )
    out.write(node)
    out.seek(0, io.SEEK_END)
    return node[layout.CMAC_OFFSET : layout.CMAC_OFFSET + TAG_BYTES]


def _read_up_to(src: BinaryIO, n: int) -> bytes:
    """n bytes, fewer only at the end of src (a pipe may return less on one read)."""
    data = src.read(n)
    while 0 < len(data) < n and (more := src.read(n - len(data))):
        data += more
    return data


def _write_mht_nodes(mhts: list[bytearray], out: BinaryIO) -> bytes:
    """Seals MHT nodes last to first (a child's number is above its parent's, so its entry is
    in the parent before the parent is sealed); returns the root's (key, tag), zero if none."""
    root = bytes(_ENTRY)
    for m in reversed(range(len(mhts))):
        ciphertext, node_key, tag = layout.seal_node(bytes(mhts[m]))
        out.seek(layout.mht_position(m) * NODE_SIZE)
        out.write(ciphertext)
        if m == 0:
            root = node_key + tag
        else:
            slot = layout.child_slot(m)
            mhts[(m - 1) // layout.CHILDREN_PER_MHT][slot : slot + _ENTRY] = node_key + tag
    return root


def _decrypt_into(key: bytes, src: BinaryIO, out: BinaryIO, cmac: bytes | None = None) -> str:
    """Writes the plaintext of the protected file `src` (seekable) to `out`, node by node, each
    after it verified; returns the name stored in it. IntegrityError if the file is not exactly
    what was written with this key (and, if given, with this cmac). Private: nodes verified
    before a failing one are already in `out`, so only callers that discard `out` on failure
    (decrypt's buffer, decrypt_file's atomic file) may use it."""
    _check_key(key)
    md, length = _verified_metadata(key, src, cmac)
    out.write(md.head)
    remaining = md.size - layout.HEAD_BYTES
    for block in _data_blocks(src, md, length):
        out.write(block[: min(NODE_SIZE, remaining)])
        remaining -= NODE_SIZE
    return md.name


def _verified_metadata(
    key: bytes, src: BinaryIO, cmac: bytes | None
) -> tuple[layout.Metadata, int]:
    """The metadata and the file's length, once the cmac, the metadata node and the length the
    size implies all check."""
    length = src.seek(0, io.SEEK_END)
    if cmac is not None and not hmac.compare_digest(stored_cmac(src), cmac):
        raise IntegrityError("the file's metadata GMAC is not the registered cmac")
    md = layout.open_metadata(key, _read_node(src, 0, length))
    data_nodes, mht_nodes = layout.node_counts(md.size)
    if length != NODE_SIZE * (1 + data_nodes + mht_nodes):
        raise IntegrityError(
            f"the file is {length} bytes: a protected file of {md.size} bytes has "
            f"{NODE_SIZE * (1 + data_nodes + mht_nodes)} (truncated or extended)"
        )
    return md, length


def _data_blocks(src: BinaryIO, md: layout.Metadata, length: int) -> Iterator[bytes]:
    """The data nodes' plaintexts in order, each opened with the entry its MHT node holds; an
    MHT node is opened when its first data node is reached (its parent has a lower number, so
    it is open by then). MHT nodes are kept: 4 KiB per 384 KiB of data."""
    data_nodes, _ = layout.node_counts(md.size)
    mhts: dict[int, bytes] = {}
    if data_nodes:
        root = _read_node(src, 1, length)
        mhts[0] = layout.open_node(root, md.mht_key + md.mht_tag, "MHT node 0")
    for d in range(data_nodes):
        m = d // layout.DATA_PER_MHT
        if m not in mhts:
            entry = _entry(mhts[(m - 1) // layout.CHILDREN_PER_MHT], layout.child_slot(m))
            node = _read_node(src, layout.mht_position(m), length)
            mhts[m] = layout.open_node(node, entry, f"MHT node {m}")
        node = _read_node(src, layout.data_position(d), length)
        yield layout.open_node(node, _entry(mhts[m], layout.data_slot(d)), f"data node {d}")


def _entry(mht: bytes, slot: int) -> bytes:
    return mht[slot : slot + _ENTRY]


def _read_node(src: BinaryIO, position: int, length: int) -> bytes:
    if (position + 1) * NODE_SIZE > length:
        raise IntegrityError(
            f"the file is truncated: it is {length} bytes, node {position} is missing"
        )
    src.seek(position * NODE_SIZE)
    return src.read(NODE_SIZE)


def encrypt(key: bytes, plaintext: bytes, name: str) -> tuple[bytes, bytes]:
    """(file bytes, cmac) for a plaintext held in memory, stored under `name`."""
    out = io.BytesIO()
    cmac = encrypt_stream(key, io.BytesIO(plaintext), out, name)
    return out.getvalue(), cmac


def decrypt(key: bytes, data: bytes, cmac: bytes | None = None) -> bytes:
    """The plaintext of a protected file held in memory; IntegrityError (and no plaintext) if
    any part of it fails."""
    out = io.BytesIO()
    _decrypt_into(key, io.BytesIO(data), out, cmac)
    return out.getvalue()


def encrypt_file(key: bytes, src: Path, dst: Path, name: str | None = None) -> bytes:
    """Encrypts src into dst (stored under dst's name unless `name` is given); returns the
    cmac. dst is written whole or not at all."""
    with src.open("rb") as f, atomic_file(dst, PRIVATE) as out:
        return encrypt_stream(key, f, out, name or dst.name)


def decrypt_file(key: bytes, src: Path, dst: Path, cmac: bytes | None = None) -> str:
    """Decrypts src into dst; dst appears only if every node verified. Returns the stored name."""
    with src.open("rb") as f, atomic_file(dst, PRIVATE) as out:
        return _decrypt_into(key, f, out, cmac)


def name_for(url: str, default: str) -> str:
    """The name Teaclave stages a file from `url` under (the last segment of its path), which
    its own reader requires a protected file to store; `default` for a `blob:` URL or a
    segment the SDK could not store."""
    segment = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    if url.startswith("blob:"):
        return default
    try:
        layout.check_name(segment)
    except ValueError:
        return default
    return segment
