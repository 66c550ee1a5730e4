"""Two edits of a linked module: keep only the wanted exports, and fill a zeroed array with data.

zig links every WASI module with a crt that exports `_initialize` (reactor) or `_start`
(command), and no linker flag drops it. Our functions have no constructors to run, and Teaclave's
ABI calls `entrypoint` only, so the builder removes that export.

Embedded weights (hundreds of MB for VGG) are not compiled through clang and wasm-ld: the model's
C declares a zeroed array of their size (which the linker places in memory without writing any
bytes), the linker exports its address, and the weights become one more active data segment at
that address here: VGG-19's link takes 1.6-2.2 s instead of 8.1 s.

Written by hand because only a few lines of the binary format are involved: sections are (id,
LEB128 size, payload); the export section (id 7) is a vector of (name, kind byte, LEB128 index);
a global (section 6) is (type, mutability, constant expression); an active data segment (section
11, counted again in section 12) is (0, offset expression, bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from .. import leb128

Bytes = bytes | memoryview

__all__ = ["embed_data", "keep_exports"]

_HEADER = b"\0asm\x01\0\0\0"
_IMPORTS, _GLOBALS, _EXPORTS, _DATA, _DATA_COUNT = 2, 6, 7, 11, 12
_GLOBAL_KIND = 3
_I32_CONST, _END = 0x41, 0x0B


def _sections(wasm: bytes) -> dict[int, tuple[int, int, int]]:
    """Section id -> (start of its header, start of its payload, end); custom sections left out."""
    if not wasm.startswith(_HEADER):
        raise ValueError("not a WebAssembly module")
    found, pos = {}, len(_HEADER)
    while pos < len(wasm):
        size, start = leb128.read_unsigned(wasm, pos + 1)
        if wasm[pos]:
            found[wasm[pos]] = (pos, start, start + size)
        pos = start + size
    return found


def _splice(wasm: bytes, new: dict[int, tuple[int, list[Bytes]]]) -> bytes:
    """The module with the sections in `new` (id -> (where it starts or goes, its payload's
    pieces)) in place of the old ones, copied once."""
    sections = _sections(wasm)
    view, pieces, pos = memoryview(wasm), [], 0
    for sid, (at, payload) in sorted(new.items(), key=lambda item: item[1][0]):
        size = sum(len(memoryview(p)) for p in payload)
        pieces += [view[pos:at], bytes([sid]) + leb128.unsigned(size), *payload]
        pos = sections[sid][2] if sid in sections else at
    return b"".join([*pieces, view[pos:]])


def _exports(payload: bytes) -> list[tuple[str, int, int, bytes]]:
    """(name, kind, index, its bytes) of each export."""
    count, pos = leb128.read_unsigned(payload, 0)
    found = []
    for _ in range(count):
        start = pos
        length, pos = leb128.read_unsigned(payload, pos)
        name, kind = payload[pos : pos + length].decode(), payload[pos + length]
        index, pos = leb128.read_unsigned(payload, pos + length + 1)
        found.append((name, kind, index, payload[start:pos]))
    return found


def _export_section(
    wasm: bytes, sections: dict[int, tuple[int, int, int]], keep: Callable[[str], bool]
) -> tuple[int, list[Bytes]]:
    """The export section with only the exports whose name `keep` accepts, for _splice."""
    at, start, end = sections[_EXPORTS]
    kept = [raw for name, _, _, raw in _exports(wasm[start:end]) if keep(name)]
    return at, [leb128.unsigned(len(kept)), *kept]


def keep_exports(wasm: bytes, keep: Collection[str]) -> bytes:
    """The module with every export not named in `keep` removed."""
    sections = _sections(wasm)
    if _EXPORTS not in sections:
        return wasm
    return _splice(wasm, {_EXPORTS: _export_section(wasm, sections, keep.__contains__)})


def _imported_globals(payload: bytes) -> int:
    count, pos = leb128.read_unsigned(payload, 0)
    globals_ = 0
    for _ in range(count):
        for _field in range(2):  # module and name
            length, pos = leb128.read_unsigned(payload, pos)
            pos += length
        kind, pos = payload[pos], pos + 1
        if kind == 0:  # a function: its type index
            _, pos = leb128.read_unsigned(payload, pos)
        elif kind in (1, 2):  # a table (element type first) or a memory: limits
            pos += kind == 1
            flags, pos = payload[pos], pos + 1
            for _limit in range(1 + (flags & 1)):
                _, pos = leb128.read_unsigned(payload, pos)
        elif kind == _GLOBAL_KIND:
            globals_, pos = globals_ + 1, pos + 2  # value type, mutability
        else:
            raise ValueError(f"an import of kind {kind}")
    return globals_


def _address(wasm: bytes, sections: dict[int, tuple[int, int, int]], symbol: str) -> int:
    """The value of the exported i32 global `symbol`: where the linker placed that array."""
    _, start, end = sections[_EXPORTS]
    found = [i for n, k, i, _ in _exports(wasm[start:end]) if (n, k) == (symbol, _GLOBAL_KIND)]
    if not found:
        raise ValueError(f"the module exports no global {symbol!r}")
    index = found[0]
    if _IMPORTS in sections:
        _, start, end = sections[_IMPORTS]
        index -= _imported_globals(wasm[start:end])
    _, start, end = sections[_GLOBALS]
    count, pos = leb128.read_unsigned(wasm, start)
    for current in range(count):
        pos += 2  # value type, mutability
        if current == index:
            if wasm[pos] != _I32_CONST:
                break
            address, pos = leb128.read_signed(wasm, pos + 1)
            if wasm[pos] == _END:
                return address & 0xFFFFFFFF
            break
        while wasm[pos] != _END:  # skip a constant expression (what wasm-ld writes)
            op, pos = wasm[pos], pos + 1
            if op in (0x41, 0x42):  # i32.const, i64.const
                _, pos = leb128.read_signed(wasm, pos)
            elif op == 0x23:  # global.get
                _, pos = leb128.read_unsigned(wasm, pos)
            else:
                raise ValueError(f"a global's initializer has opcode 0x{op:02x}")
        pos += 1
    raise ValueError(f"global {symbol!r} is not an i32 constant")


def embed_data(wasm: bytes, symbol: str, data: Bytes) -> bytes:
    """The module with `data` written, by one more active data segment, to the address of the
    zeroed array whose address the module exports as the global `symbol`; that export dropped."""
    sections = _sections(wasm)
    address = _address(wasm, sections, symbol)
    if _DATA not in sections:  # wasm-ld writes one for the model's tables
        raise ValueError("the module has no data section")
    offset = leb128.signed(address - (address >> 31 << 32))  # an i32 constant: signed
    segment: list[Bytes] = [b"\0", bytes([_I32_CONST]), offset, bytes([_END])]
    segment += [leb128.unsigned(len(memoryview(data))), data]
    data_at, start, end = sections[_DATA]
    count, first = leb128.read_unsigned(wasm, start)
    segments = memoryview(wasm)[first:end]
    new = {
        _DATA: (data_at, [leb128.unsigned(count + 1), segments, *segment]),
        _EXPORTS: _export_section(wasm, sections, lambda name: name != symbol),
    }
    if _DATA_COUNT in sections:
        new[_DATA_COUNT] = (sections[_DATA_COUNT][0], [leb128.unsigned(count + 1)])
    return _splice(wasm, new)
