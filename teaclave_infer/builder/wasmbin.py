"""Keep only the wanted exports of a linked module.

zig links every WASI module with a crt that exports `_initialize` (reactor) or `_start`
(command), and no linker flag drops it. Our functions have no constructors to run, and Teaclave's
ABI calls `entrypoint` only, so the builder removes that export. Written by hand because only a
few lines of the binary format are involved: sections are (id, LEB128 size, payload); the export
section (id 7) is a vector of (name, kind byte, LEB128 index).
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["keep_exports"]

_HEADER = b"\0asm\x01\0\0\0"
_EXPORT_SECTION = 7


def _uleb(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def _enc(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _filter_exports(payload: bytes, keep: Collection[str]) -> bytes:
    count, pos = _uleb(payload, 0)
    kept = []
    for _ in range(count):
        start = pos
        length, pos = _uleb(payload, pos)
        name = payload[pos : pos + length].decode()
        _, pos = _uleb(payload, pos + length + 1)  # skip kind, read index
        if name in keep:
            kept.append(payload[start:pos])
    return _enc(len(kept)) + b"".join(kept)


def keep_exports(wasm: bytes, keep: Collection[str]) -> bytes:
    """The module with every export not named in `keep` removed."""
    if not wasm.startswith(_HEADER):
        raise ValueError("not a WebAssembly module")
    out, pos = bytearray(_HEADER), len(_HEADER)
    while pos < len(wasm):
        section = wasm[pos]
        size, start = _uleb(wasm, pos + 1)
        payload = wasm[start : start + size]
        if section == _EXPORT_SECTION:
            payload = _filter_exports(payload, keep)
        out += bytes([section]) + _enc(len(payload)) + payload
        pos = start + size
    return bytes(out)
