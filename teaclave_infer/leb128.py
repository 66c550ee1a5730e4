"""LEB128, the integer encoding of the WebAssembly binary format, for the two places that edit
modules (builder/wasmbin.py after a link, executor/_tables.py before a compile). Written here
because it is a few lines and no kept library of the field offers it on its own."""

from __future__ import annotations

__all__ = ["read_signed", "read_unsigned", "signed", "unsigned"]


def unsigned(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value == 0:
            return bytes(out + bytes([low]))
        out.append(low | 0x80)


def signed(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if (value == 0 and not low & 0x40) or (value == -1 and low & 0x40):
            return bytes(out + bytes([low]))
        out.append(low | 0x80)


def read_unsigned(data: bytes, pos: int) -> tuple[int, int]:
    """(the value, the position after it)."""
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def read_signed(data: bytes, pos: int) -> tuple[int, int]:
    value, end = read_unsigned(data, pos)
    bits = 7 * (end - pos)
    return (value - (1 << bits) if value >> (bits - 1) & 1 else value), end
