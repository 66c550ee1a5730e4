"""Teaclave's file context: the guest names files by function-level ids, never paths.

Handles count from 1 per invocation and are never reused; write handles are marked
`0x4000_0000 | n`; at most 1023 per invocation. Every error is -1 to the guest, never an
exception: these methods run inside host callbacks, where an exception would unwind into wasm.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["FileContext"]

WRITE_FLAG = 0x4000_0000
MAX_HANDLES = 1023
ERROR = -1


@dataclass
class _Open:
    fid: str
    write: bool
    position: int = 0
    chunks: list[bytes] = field(default_factory=list)


class GuestMemory:
    """Bounds-checked access to a guest's linear memory (guest pointers arrive as signed i32)."""

    def __init__(self, base: int, size: int) -> None:
        self.base, self.size = base, size

    def span(self, ptr: int, length: int) -> int | None:
        """The host address of guest [ptr, ptr+length), or None when it runs past the memory."""
        ptr &= 0xFFFF_FFFF
        if length < 0 or ptr + length > self.size:
            return None
        return self.base + ptr

    def c_string(self, ptr: int, limit: int = 4096) -> str | None:
        start = self.span(ptr, 0)
        if start is None:
            return None
        available = min(limit, self.size - (ptr & 0xFFFF_FFFF))
        raw = ctypes.string_at(start, available)
        end = raw.find(b"\0")
        return raw[:end].decode("utf-8", "replace") if end >= 0 else None


class FileContext:
    """Inputs granted to one invocation and the outputs it produced."""

    def __init__(self, inputs: Mapping[str, bytes], outputs: Sequence[str]) -> None:
        self.inputs = dict(inputs)
        self.output_ids = set(outputs) - set(inputs)
        self.handles: dict[int, _Open] = {}
        self.opened = 0
        self.written: dict[str, bytes] = {}

    def _new(self, entry: _Open) -> int:
        if self.opened >= MAX_HANDLES:
            return ERROR
        self.opened += 1
        handle = self.opened | (WRITE_FLAG if entry.write else 0)
        self.handles[handle] = entry
        return handle

    def open_input(self, fid: str | None) -> int:
        return self._new(_Open(fid, False)) if fid in self.inputs else ERROR

    def create_output(self, fid: str | None) -> int:
        if fid not in self.output_ids or fid in self.written:
            return ERROR
        if any(h.fid == fid for h in self.handles.values()):
            return ERROR
        return self._new(_Open(fid, True))

    def read(self, handle: int, dst: int | None, size: int) -> int:
        entry = self.handles.get(handle)
        if entry is None or entry.write or dst is None:
            return ERROR
        data = self.inputs[entry.fid]
        chunk = data[entry.position : entry.position + size]
        ctypes.memmove(dst, chunk, len(chunk))
        entry.position += len(chunk)
        return len(chunk)

    def write(self, handle: int, src: int | None, size: int) -> int:
        entry = self.handles.get(handle)
        if entry is None or not entry.write or src is None:
            return ERROR
        entry.chunks.append(ctypes.string_at(src, size))
        return size

    def close(self, handle: int) -> int:
        entry = self.handles.pop(handle, None)
        if entry is None:
            return ERROR
        if entry.write:
            self.written[entry.fid] = b"".join(entry.chunks)
        return 0
