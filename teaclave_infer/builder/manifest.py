"""NAME.json: what a client needs to call the function, and what the build was made of."""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path
from typing import Any

from teaclave_client.vocabulary import MANIFEST_FORMAT, DType

from ..abi import ENTRYPOINT, TEACLAVE_IMPORTS, WEIGHTS_ID, Profile, Status
from .arena import ArenaLayout
from .link import IoIds
from .plan import Plan, TensorSpec

__all__ = ["FORMAT", "make_manifest", "return_value_rule"]

FORMAT = MANIFEST_FORMAT  # the vocabulary's: clients and the service check it
_TOOLS = ("teaclave-infer", "apache-tvm", "apache-tvm-ffi", "onnx", "numpy", "ziglang")


def _tensor(ident: str, onnx_name: str, spec: TensorSpec) -> dict[str, Any]:
    return {"id": ident, "onnx_name": onnx_name, "shape": list(spec.shape), "dtype": spec.dtype}


def _input(
    ident: str, onnx_name: str, spec: TensorSpec, pixel_range: tuple[float, float] | None
) -> dict[str, Any]:
    """An input; an image one (4-D) says the pixel range the model expects, when it is known:
    what a client's `prepare-image` scales to."""
    tensor = _tensor(ident, onnx_name, spec)
    if pixel_range is not None and len(spec.shape) == 4:
        tensor["image"] = {"range": [float(v) for v in pixel_range]}
    return tensor


def returns_argmax(spec: TensorSpec) -> bool:
    """The runtime's rule (ti_entry.c): argmax for a float vector [1, N], N > 1."""
    return (
        len(spec.shape) == 2
        and spec.shape[0] == 1
        and spec.shape[1] > 1
        and spec.dtype in (DType.FLOAT32, DType.FLOAT64)
    )


def return_value_rule(plan: Plan, output_ids: list[str]) -> str:
    if plan.outputs and returns_argmax(plan.tensors[plan.outputs[0]]):
        return f"the argmax of output {output_ids[0]!r} (index of its largest score)"
    return "0"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def make_manifest(
    name: str,
    source: Path,
    plan: Plan,
    io: IoIds,
    profile: Profile,
    weights_mode: str,
    layout: ArenaLayout,
    artifacts: dict[str, bytes],
    pixel_range: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The manifest as a JSON-ready dict; keys documented in docs/guide/functions.md."""
    return {
        "format": FORMAT,
        "name": name,
        "source": {"file": source.name, "sha256": hashlib.sha256(source.read_bytes()).hexdigest()},
        "abi": {
            "imports": [f"env.{n}" for n in TEACLAVE_IMPORTS],
            "exports": [ENTRYPOINT, "memory"],
            "arguments": "each input id names (as key) the file id to read; each output id given "
            "names the file to write; files are .npy (or, for inputs, the raw tensor bytes)",
        },
        "profile": {
            "name": profile.name,
            "description": profile.description,
            "features": list(profile.llvm_features),
        },
        "weights": {
            "mode": weights_mode,
            "input_id": WEIGHTS_ID if weights_mode == "separate" else None,
        },
        "inputs": [
            _input(i, n, plan.tensors[t], pixel_range)
            for (i, n), t in zip(io.inputs, plan.inputs, strict=True)
        ],
        "outputs": [
            _tensor(i, n, plan.tensors[t])
            for (i, n), t in zip(io.outputs, plan.outputs, strict=True)
        ],
        "return_value": return_value_rule(plan, io.output_ids),
        "error_codes": {str(int(s)): s.meaning for s in Status},
        "memory": {
            "arena_bytes": layout.arena_bytes,
            "tensor_bytes": layout.total_bytes,
            "constant_bytes": sum(plan.tensors[t].nbytes for t in plan.constants),
        },
        "kernels": len(plan.kernels),
        "artifacts": {
            file: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for file, data in artifacts.items()
        },
        "tools": {dist: _version(dist) for dist in _TOOLS},
    }
