"""Teaclave's file context: the guest names files by function-level ids, never paths.

Handles count from 1 per invocation and are never reused; write handles are marked
`0x4000_0000 | n`; at most `max_handles` per invocation. Every error is -1 to the guest, never an
exception: these methods run inside host callbacks, where an exception would unwind into wasm.
Outputs stay in memory; the caller keeps them only if the call succeeds.
"""

from __future__ import annotations

import ctypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from teaclave_client.vocabulary import HANDLES, OUTPUT_BYTES, WRITE_FLAG
from teaclave_client.vocabulary import IMPORT_ERROR as ERROR

__all__ = ["ERROR", "FileContext"]


@dataclass
class _Open:
    fid: str
    write: bool
    position: int = 0
    chunks: list[bytes] = field(default_factory=list)


def _address(data: bytes) -> int:
    """Where the bytes object keeps its bytes (ctypes passes a bytes object's own buffer)."""
    return ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p).value or 0


class FileContext:
    """Inputs granted to one invocation, and the outputs it writes."""

    def __init__(
        self,
        inputs: Mapping[str, bytes],
        outputs: Sequence[str],
        max_handles: int = HANDLES.default,
        output_bytes: int = OUTPUT_BYTES.default,
    ) -> None:
        # read-only bytes, so that a read copies from them straight into the guest's memory
        self.inputs = {fid: bytes(data) for fid, data in inputs.items()}
        self.output_ids = set(outputs) - set(inputs)  # an input id is never an output
        self.max_handles, self.output_budget = max_handles, output_bytes
        self.handles: dict[int, _Open] = {}
        self.issued = 0
        self.written: dict[str, bytes] = {}
        self.output_limit_hit = False

    def _issue(self, entry: _Open) -> int:
        if self.issued >= self.max_handles:
            return ERROR
        self.issued += 1
        handle = self.issued | (WRITE_FLAG if entry.write else 0)
        self.handles[handle] = entry
        return handle

    def open_input(self, fid: str | None) -> int:
        return self._issue(_Open(fid, False)) if fid is not None and fid in self.inputs else ERROR

    def create_output(self, fid: str | None) -> int:
        if fid is None or fid not in self.output_ids or fid in self.written:
            return ERROR
        if any(h.write and h.fid == fid for h in self.handles.values()):
            return ERROR
        return self._issue(_Open(fid, True))

    def read(self, handle: int, dst: int | None, size: int) -> int:
        entry = self.handles.get(handle)
        if entry is None or entry.write or dst is None:
            return ERROR
        data = self.inputs[entry.fid]
        count = max(0, min(size, len(data) - entry.position))
        if count:  # from the bytes' own buffer: a slice would copy them first (a model's weights)
            ctypes.memmove(dst, _address(data) + entry.position, count)
        entry.position += count
        return count

    def write(self, handle: int, src: int | None, size: int) -> int:
        entry = self.handles.get(handle)
        if entry is None or not entry.write or src is None:
            return ERROR
        if size > self.output_budget:
            self.output_limit_hit = True
            return ERROR
        self.output_budget -= size
        if size:  # an empty write costs nothing, so it must keep nothing either
            entry.chunks.append(ctypes.string_at(src, size))
        return size

    def close(self, handle: int) -> int:
        entry = self.handles.pop(handle, None)
        if entry is None:
            return ERROR
        if entry.write:
            self.written[entry.fid] = b"".join(entry.chunks)
        return 0
