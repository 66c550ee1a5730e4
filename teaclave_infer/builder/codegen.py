"""Compile the plan's TIR kernels with TVM's LLVM into one relocatable wasm32 object.

Kernel `K` becomes `int __tvm_ffi_K(void *self, const TVMFFIAny *args, int32_t n, TVMFFIAny *ret)`
(tvm-ffi's packed ABI); the object imports only `TVMFFIErrorSetRaisedFromCStrParts` and the data
symbols `__TVMBackendAllocWorkspace` / `__TVMBackendFreeWorkspace`, which the runtime defines.

Compiling is most of a build (15 s of SqueezeNet's 19 s, 38 s of DenseNet-121's 57 s), so objects
are cached (as ccache or tinygrad's compile cache do) under the sha256 of every input: the
kernels' TIR as text, the target, the TVM version and this module's source. The cache is
$TEACLAVE_KERNEL_CACHE, else ~/.cache/teaclave-infer/kernels ($XDG_CACHE_HOME if set);
TEACLAVE_KERNEL_CACHE=off turns it off. Anyone who can write there can change what a build
links, like any other file of the user's.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import tvm
from teaclave_client.files import write_atomic
from tvm import tirx

from ..abi import Profile
from ..errors import ToolchainError
from .arena import ALIGN

__all__ = ["CACHE_VARIABLE", "compile_kernels", "kernel_cache", "wasm_target", "workspace_bytes"]

CACHE_VARIABLE = "TEACLAVE_KERNEL_CACHE"
STACK_ALLOCA_BYTES = 1024  # TVM's kMaxStackAlloca: a smaller buffer is a stack array
_SOURCE = Path(__file__).read_bytes()  # a change here (flags, target) is a new key


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


def kernel_cache() -> Path | None:
    """Where compiled kernels are kept (see the module's docstring); None: nowhere."""
    configured = os.environ.get(CACHE_VARIABLE)
    if configured is not None:
        return None if configured.strip().lower() in ("", "off") else Path(configured)
    home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(home) / "teaclave-infer" / "kernels"


def compile_kernels(kernels: tvm.IRModule, profile: Profile, cache: Path | None = None) -> bytes:
    """Returns the wasm32 object file holding the kernels (PrimFuncs with a global_symbol),
    from `cache` when it holds one made from the same inputs (and into it otherwise: a cache
    that cannot be written is skipped, never a failed build)."""
    target = wasm_target(profile)
    material = [kernels.script(), str(target.export()), tvm.__version__]
    key = hashlib.sha256("\0".join(material).encode() + _SOURCE).hexdigest()
    cached = cache / f"{key}.o" if cache is not None else None
    if cached is not None:
        try:
            return cached.read_bytes()
        except OSError:
            pass  # not there yet, or not readable: compile
    data = _compile(kernels, target)
    if cached is not None:
        try:
            cached.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # shapes of a model
            write_atomic(cached, data)
        except OSError:
            pass  # a read-only or full cache: the build goes on without it
    return data


# TVM's default TIR pipeline, less one pass: it renormalizes GPU-style index splits, took a third
# of the pipeline's time on our unrolled loops (SqueezeNet's kernels), and leaves our objects
# byte for byte the same (SqueezeNet, Inception v1) or within 0.05% of their size (ShuffleNet).
_SKIPPED_PASSES = ["s_tir.RenormalizeSplitPattern"]


def _compile(kernels: tvm.IRModule, target: tvm.target.Target) -> bytes:
    try:
        with tvm.transform.PassContext(disabled_pass=_SKIPPED_PASSES):
            built = tirx.build(kernels, target=target)
        with tempfile.TemporaryDirectory(prefix="ti-kernels-") as tmp:
            path = Path(tmp) / "kernels.o"
            built.write_to_file(str(path))
            return path.read_bytes()
    except Exception as err:  # TVM's C++ errors surface as several Python types
        raise ToolchainError("TVM could not compile the kernels for wasm32", str(err)) from err


def workspace_bytes(kernels: tvm.IRModule) -> int:
    """What the compiled kernels ask the runtime for at once through __TVMBackendAllocWorkspace,
    at most: TVM gives each intermediate buffer of STACK_ALLOCA_BYTES or more a workspace, freed
    before the kernel returns, so this is the largest kernel's sum of global intermediates (at
    full size: TVM may only shrink them), each rounded as the runtime rounds it (to ALIGN, its
    TI_ALIGN). `local` buffers shrink to a tile on the stack; one that did not would be found by
    growing memory, as any allocation past the heap is (ti_mem.c)."""
    most = 0
    for func in kernels.functions.values():
        if not isinstance(func, tirx.PrimFunc):
            continue
        total = 0
        for buffer in func.body.block.alloc_buffers:
            size = tvm.DataType(buffer.dtype).bits // 8
            for extent in buffer.shape:
                size *= int(extent)
            if buffer.scope() == "global" and size >= STACK_ALLOCA_BYTES:
                total += -(-size // ALIGN) * ALIGN
        most = max(most, total)
    return most
