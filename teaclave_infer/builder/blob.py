"""The plan and constants as one blob, the runtime's `ti.h` layout: the embedded data of a
function, or its `NAME.weights` file.

Layout (little-endian): header "TIWB", version, model id (sha256 of the blob with the id zeroed),
counts, arena and blob sizes; tensor records; calls; call arguments; then the constants, each at a
64-byte aligned offset. The wasm carries the same model id, so weights of another model are
refused.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np
from teaclave_client.vocabulary import MAX_NDIM

from .arena import ALIGN, ArenaLayout
from .plan import Plan, dl_dtype

__all__ = ["MAGIC", "VERSION", "pack_blob"]

MAGIC = b"TIWB"
VERSION = 1
_HEADER = struct.Struct("<4sI32s8I")
_TENSOR = struct.Struct(f"<4B3I{MAX_NDIM}q")
_CALL = struct.Struct("<3I")
_ID_SLICE = slice(8, 40)
STORAGE_ARENA, STORAGE_CONST = 0, 1


def _pad(n: int) -> int:
    return -n % ALIGN


def pack_blob(plan: Plan, layout: ArenaLayout) -> tuple[bytes, bytes]:
    """Returns (blob, model id)."""
    args = [t for call in plan.calls for t in call.args]
    tables = _HEADER.size + len(plan.tensors) * _TENSOR.size + len(plan.calls) * _CALL.size
    tables += 4 * len(args)
    const_offsets: dict[int, int] = {}
    cursor = tables + _pad(tables)
    for tid in sorted(plan.constants):
        const_offsets[tid] = cursor
        cursor += plan.tensors[tid].nbytes
        cursor += _pad(cursor)
    if cursor >= 1 << 32 or layout.arena_bytes >= 1 << 32:
        raise ValueError("the weights or the arena exceed 4 GiB, past wasm32's reach")

    parts = [
        _HEADER.pack(
            MAGIC,
            VERSION,
            bytes(32),
            len(plan.tensors),
            len(plan.calls),
            len(args),
            layout.arena_bytes,
            cursor,
            0,
            0,
            0,
        )
    ]
    for tid, spec in enumerate(plan.tensors):
        if len(spec.shape) > MAX_NDIM:
            raise ValueError(f"tensor {tid} has {len(spec.shape)} dims, more than {MAX_NDIM}")
        const = tid in plan.constants
        storage, offset = (
            (STORAGE_CONST, const_offsets[tid])
            if const
            else (STORAGE_ARENA, layout.offsets.get(tid, 0))
        )
        code, bits = dl_dtype(spec.dtype)
        shape = list(spec.shape) + [0] * (MAX_NDIM - len(spec.shape))
        parts.append(
            _TENSOR.pack(storage, code, bits, len(spec.shape), offset, spec.nbytes, 0, *shape)
        )
    first = 0
    for call in plan.calls:
        parts.append(_CALL.pack(call.kernel, first, len(call.args)))
        first += len(call.args)
    parts.append(np.asarray(args, dtype="<u4").tobytes())
    parts.append(bytes(_pad(tables)))
    for tid in sorted(plan.constants):
        data = (
            np.ascontiguousarray(plan.constants[tid])
            .astype(plan.constants[tid].dtype.newbyteorder("<"), copy=False)
            .tobytes()
        )
        parts.extend([data, bytes(_pad(len(data)))])
    blob = bytearray(b"".join(parts))
    assert len(blob) == cursor
    model_id = hashlib.sha256(blob).digest()
    blob[_ID_SLICE] = model_id
    return bytes(blob), model_id
