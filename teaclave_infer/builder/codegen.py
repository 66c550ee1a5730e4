"""Compile the plan's TIR kernels with TVM's LLVM into one relocatable wasm32 object.

Kernel `K` becomes `int __tvm_ffi_K(void *self, const TVMFFIAny *args, int32_t n, TVMFFIAny *ret)`
(tvm-ffi's packed ABI); the object imports only `TVMFFIErrorSetRaisedFromCStrParts` and the data
symbols `__TVMBackendAllocWorkspace` / `__TVMBackendFreeWorkspace`, which the runtime defines.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import tvm
from tvm import tirx

from ..abi import Profile
from ..errors import ToolchainError

__all__ = ["compile_kernels", "wasm_target"]


def wasm_target(profile: Profile) -> tvm.target.Target:
    return tvm.target.Target(
        {
            "kind": "llvm",
            "mtriple": "wasm32-unknown-unknown-wasm",
            "mcpu": "mvp",
            "mattr": list(profile.llvm_features),
            "vector-width": 128,  # wasm's only width; also silences TVM's warning about it
        }
    )


def compile_kernels(kernels: tvm.IRModule, profile: Profile) -> bytes:
    """Returns the wasm32 object file holding the kernels (PrimFuncs with a global_symbol)."""
    try:
        built = tirx.build(kernels, target=wasm_target(profile))
        with tempfile.TemporaryDirectory(prefix="ti-kernels-") as tmp:
            path = Path(tmp) / "kernels.o"
            built.write_to_file(str(path))
            return path.read_bytes()
    except Exception as err:  # TVM's C++ errors surface as several Python types
        raise ToolchainError("TVM could not compile the kernels for wasm32", str(err)) from err
