"""Table growth the memory limit refuses ends the call: `table.grow` rewritten into a guard.

wasmtime's store limits bound a table's elements, but a refused `table.grow` only returns -1 to
the guest: the host cannot tell a table bomb from any other failure, and wasmtime-py offers
neither a limiter callback nor `trap_on_grow_failure`. So a module that uses `table.grow` gets,
per table, a guard function that grows the table and, when the growth was refused although the
table's own type allowed it (only the store's limit refuses then), sets the exported global
REFUSED and traps. Every `table.grow t` in the code becomes `call guard_t`. Modules built by the
builder never grow tables (wasm-ld writes min = max): for them this costs one byte search.

Runs on a module wasmtime has already validated, with only function imports (`_validate.py`).
"""

from __future__ import annotations

import bisect
import re

from .. import leb128

__all__ = ["REFUSED", "guard_table_growth"]

REFUSED = "teaclave-infer:table-growth-refused"  # an exported i32 global: 1 once refused
U32_MAX = (1 << 32) - 1
# table.grow is 0xFC then 15 as a LEB128 (which may be padded: 0x8F 0x80 ... 0x00).
_MAYBE_GROW = re.compile(rb"\xfc[\x0f\x8f]")
# Section ids in the order a module must have them (13: tags, 12: data count).
_ORDER = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11]


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data, self.pos, self.end = data, pos, len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise ValueError(f"unexpected end at offset {self.pos}")
        self.pos += 1
        return self.data[self.pos - 1]

    def u32(self) -> int:
        value = 0
        for shift in range(0, 35, 7):
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
        raise ValueError(f"LEB128 too long at offset {self.pos}")

    def skip_leb(self) -> None:  # a signed constant of any width
        while self.byte() & 0x80:
            pass

    def skip(self, n: int) -> None:
        self.pos += n


def _memarg(r: _Reader) -> None:
    if r.u32() & 0x40:  # multi-memory's memory index (off, but cheap to read)
        r.u32()
    r.u32()


# SIMD (0xFD) opcodes with immediates: loads/stores take a memarg, const/shuffle 16 bytes, lane
# accessors a lane byte, the lane loads/stores both.
_SIMD_MEMARG = {*range(0, 12), 92, 93}
_SIMD_LANE = set(range(21, 35))
_SIMD_MEMARG_LANE = set(range(84, 92))
# 0xFC opcodes -> number of u32 immediates (trunc_sat none; bulk memory and tables 1 or 2).
_FC_IMMEDIATES = {**dict.fromkeys(range(8), 0), 8: 2, 9: 1, 10: 2, 11: 1, 12: 2, 13: 1, 14: 2}
_FC_IMMEDIATES.update({15: 1, 16: 1, 17: 1})
_U32_OPS = {0x0C, 0x0D, 0x10, 0x12, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x3F, 0x40, 0xD2}


def _grows(r: _Reader) -> list[tuple[int, int, int]]:
    """Walks one function body's instructions; (start, end, table) of each `table.grow`."""
    found = []
    for _ in range(r.u32()):  # local declarations
        r.u32()
        r.byte()
    while r.pos < r.end:
        start, op = r.pos, r.byte()
        if op in (0x02, 0x03, 0x04, 0xD0):  # block type / heap type
            r.skip_leb()
        elif op in _U32_OPS:
            r.u32()
        elif op in (0x11, 0x13):  # call_indirect: type, table
            r.u32()
            r.u32()
        elif op == 0x0E:  # br_table
            for _ in range(r.u32() + 1):
                r.u32()
        elif op == 0x1C:  # select with types
            r.skip(r.u32())
        elif 0x28 <= op <= 0x3E:
            _memarg(r)
        elif op in (0x41, 0x42):
            r.skip_leb()
        elif op in (0x43, 0x44):
            r.skip(4 if op == 0x43 else 8)
        elif op == 0xFC:
            sub = r.u32()
            if sub not in _FC_IMMEDIATES:
                raise ValueError(f"unknown instruction 0xfc {sub} at offset {start}")
            immediates = [r.u32() for _ in range(_FC_IMMEDIATES[sub])]
            if sub == 15:
                found.append((start, r.pos, immediates[0]))
        elif op == 0xFD:
            sub = r.u32()
            if sub in _SIMD_MEMARG or sub in _SIMD_MEMARG_LANE:
                _memarg(r)
            r.skip(16 if sub in (12, 13) else int(sub in _SIMD_LANE or sub in _SIMD_MEMARG_LANE))
        elif not (op in (0x00, 0x01, 0x05, 0x0B, 0x0F, 0x1A, 0x1B, 0xD1) or 0x45 <= op <= 0xC4):
            raise ValueError(f"unknown instruction 0x{op:02x} at offset {start}")
    if r.pos != r.end:
        raise ValueError("a function body runs past its end")
    return found


def _sections(wasm: bytes) -> dict[int, tuple[int, int]]:
    """Section id -> (start of its content, end); custom sections left out."""
    r, sections = _Reader(wasm, 8), {}
    while r.pos < len(wasm):
        sid = r.byte()
        size = r.u32()
        if sid:
            sections[sid] = (r.pos, r.pos + size)
        r.skip(size)
    return sections


def _vector(wasm: bytes, span: tuple[int, int] | None) -> tuple[int, bytes]:
    """A vector section's count and its items' bytes (0 and nothing when absent)."""
    if span is None:
        return 0, b""
    r = _Reader(wasm, *span)
    count = r.u32()
    return count, wasm[r.pos : span[1]]


def _tables(wasm: bytes, span: tuple[int, int] | None) -> list[tuple[int, int]]:
    """(element type byte, the most elements the table's type allows) for each table."""
    if span is None:
        return []
    r, tables = _Reader(wasm, *span), []
    for _ in range(r.u32()):
        element, flags = r.byte(), r.byte()
        if flags not in (0, 1):
            raise ValueError(f"table limits flags {flags}")
        r.u32()
        tables.append((element, min(r.u32(), U32_MAX) if flags else U32_MAX))
    return tables


def _guard(table: int, allowed: int, flag: int) -> bytes:
    """(func (param ref i32) (result i32)): table.grow; refused within its type's maximum ->
    flag = 1, unreachable; else the grow's result."""
    t = leb128.unsigned(table)
    code = (
        b"\x20\x00\x20\x01\xfc\x0f" + t + b"\x22\x02"  # r = table.grow(init, delta)
        b"\x41\x7f\x46"  # r == -1
        b"\xfc\x10" + t + b"\xad\x20\x01\xad\x7c"  # size + delta (as i64)
        b"\x42" + leb128.signed(allowed) + b"\x58\x71"  # <= allowed, and
        b"\x04\x40\x41\x01\x24" + leb128.unsigned(flag) + b"\x00\x0b"  # if: flag = 1; unreachable
        b"\x20\x02\x0b"  # r
    )
    body = b"\x01\x01\x7f" + code  # one i32 local: r
    return leb128.unsigned(len(body)) + body


def guard_table_growth(wasm: bytes) -> bytes | None:
    """The module with every `table.grow` going through a guard (see the module's doc); None
    when it has no `table.grow`. Raises ValueError for what it cannot read."""
    sections = _sections(wasm)
    code_span = sections.get(10)
    if code_span is None or not _MAYBE_GROW.search(wasm, *code_span):
        return None
    r = _Reader(wasm, *code_span)
    spans = []
    for _ in range(r.u32()):
        size = r.u32()
        spans.append((r.pos, r.pos + size))
        r.skip(size)
    # Only a body holding the byte pair may grow a table: walk those (a large model's kernels
    # hold the pair by chance in a constant or two, and walking all of them takes seconds).
    starts = [start for start, _ in spans]
    maybe = {
        bisect.bisect_right(starts, m.start()) - 1 for m in _MAYBE_GROW.finditer(wasm, *code_span)
    }
    bodies = [
        (start, end, _grows(_Reader(wasm, start, end)) if i in maybe else [])
        for i, (start, end) in enumerate(spans)
    ]
    if not any(grows for *_, grows in bodies):
        return None
    tables = _tables(wasm, sections.get(4))
    n_types, types = _vector(wasm, sections.get(1))
    n_imports, _ = _vector(wasm, sections.get(2))  # all functions (validated)
    n_funcs, funcs = _vector(wasm, sections.get(3))
    n_globals, globals_ = _vector(wasm, sections.get(6))
    n_exports, exports = _vector(wasm, sections.get(7))
    elements = sorted({element for element, _ in tables})
    new_types = b"".join(b"\x60\x02" + bytes([e]) + b"\x7f\x01\x7f" for e in elements)
    first_guard = n_imports + n_funcs
    guard_types = b"".join(leb128.unsigned(n_types + elements.index(e)) for e, _ in tables)
    guards = b"".join(_guard(t, allowed, n_globals) for t, (_, allowed) in enumerate(tables))
    code = bytearray()
    for start, end, grows in bodies:
        body, cursor = bytearray(), start
        for at, after, table in grows:
            body += wasm[cursor:at] + b"\x10" + leb128.unsigned(first_guard + table)
            cursor = after
        body += wasm[cursor:end]
        code += leb128.unsigned(len(body)) + body
    name = REFUSED.encode()
    refused_export = leb128.unsigned(len(name)) + name + b"\x03" + leb128.unsigned(n_globals)
    replaced = {
        1: leb128.unsigned(n_types + len(elements)) + types + new_types,
        3: leb128.unsigned(n_funcs + len(tables)) + funcs + guard_types,
        6: leb128.unsigned(n_globals + 1) + globals_ + b"\x7f\x01\x41\x00\x0b",  # mut i32 = 0
        7: leb128.unsigned(n_exports + 1) + exports + refused_export,
        10: leb128.unsigned(len(bodies) + len(tables)) + bytes(code) + guards,
    }
    return _rewrite(wasm, sections, replaced)


def _rewrite(wasm: bytes, sections: dict[int, tuple[int, int]], new: dict[int, bytes]) -> bytes:
    """The module with the sections in `new` replaced (or inserted in order where absent)."""
    out, r = bytearray(wasm[:8]), _Reader(wasm, 8)
    pending = sorted(new, key=_ORDER.index)
    while r.pos < len(wasm):
        header = r.pos
        sid = r.byte()
        size = r.u32()
        end = r.pos + size
        if sid:
            while pending and _ORDER.index(pending[0]) < _ORDER.index(sid):
                missing = pending.pop(0)
                out += bytes([missing]) + leb128.unsigned(len(new[missing])) + new[missing]
        if sid in new:
            pending.remove(sid)
            out += bytes([sid]) + leb128.unsigned(len(new[sid])) + new[sid]
        else:
            out += wasm[header:end]
        r.pos = end
    for missing in pending:
        out += bytes([missing]) + leb128.unsigned(len(new[missing])) + new[missing]
    return bytes(out)
