"""Time one TIR kernel as wasm inside wasmtime, the way a function will run it.

The kernel is compiled under the fixed symbol `ti_bench_kernel` and linked with
`runtime/ti_bench.c` (its arguments as DLTensors, a loop calling it) and `runtime/ti_mem.c` (the
workspace hooks and error sink every kernel object imports). The host gives each argument a
shape and deterministic data, then times `ti_bench_run`. MetaSchedule's own runners need a TVM
runtime on the device; this harness is what the tuner (`tune.py`) measures with instead.
"""

from __future__ import annotations

import functools
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tvm
import tvm_ffi
import tvm_ffi.libinfo
import wasmtime
from teaclave_client.vocabulary import MAX_NDIM
from tvm import tirx

from ..abi import Profile
from ..errors import BuildError, ToolchainError
from ..executor import EngineKey, Limits
from ..executor._engine import TICK_S, ticker_for
from .codegen import wasm_target

__all__ = [
    "BENCH_SYMBOL",
    "ArgSpec",
    "KernelBench",
    "arg_specs",
    "bench_module",
    "build_bench",
    "link_bench",
    "run_kernel",
    "time_kernel",
]

BENCH_SYMBOL = "ti_bench_kernel"
RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"
HARNESS_SOURCES = ("ti_bench.c", "ti_mem.c")
DEADLINE_S = 20.0  # one ti_bench_run call; a schedule this slow is not worth waiting for
_MIN_REPEAT_S = 0.005  # each timed repeat runs the kernel at least this long


@dataclass(frozen=True)
class ArgSpec:
    """One kernel argument: a dense tensor with a static shape."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


def arg_specs(func: tirx.PrimFunc) -> list[ArgSpec]:
    """The kernel's arguments, in order. Raises BuildError for a scalar or dynamic argument."""
    specs = []
    for param in func.params:
        ty = param.ty
        if not isinstance(ty, tirx.BufferType):
            raise BuildError(f"kernel argument {param.name}: not a buffer, cannot be timed")
        if not all(isinstance(d, tirx.IntImm) for d in ty.shape):
            raise BuildError(f"kernel argument {param.name}: dynamic shape {list(ty.shape)}")
        specs.append(ArgSpec(str(ty.dtype), tuple(int(d) for d in ty.shape)))
    return specs


def bench_module(func: tirx.PrimFunc) -> tvm.IRModule:
    """The kernel alone, under the symbol the harness calls."""
    return tvm.IRModule({"main": func.with_attr("global_symbol", BENCH_SYMBOL)})


def _zig(args: list[str], cwd: Path, what: str) -> None:
    cmd = [sys.executable, "-m", "ziglang", "cc", *args]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ToolchainError(f"zig cc failed to {what}", proc.stderr.strip())


def _flags(profile: Profile) -> list[str]:
    # link.py's target flags: a kernel may call libc's math and memory functions (wasi-libc).
    return ["-target", "wasm32-wasi", f"-mcpu={profile.zig_cpu}", "-O2", "-mexec-model=reactor"]


@functools.cache
def _harness_objects(profile: Profile) -> tuple[Path, ...]:
    """The harness compiled once per process and profile; candidates then only link."""
    out = Path(_scratch().name) / profile.name
    out.mkdir(exist_ok=True)
    includes = [f"-I{RUNTIME_DIR}", f"-I{tvm_ffi.libinfo.find_include_path()}"]
    objects = []
    for source in HARNESS_SOURCES:
        obj = out / source.replace(".c", ".o")
        cflags = ["-std=c23", "-Wall", "-Wextra", "-Werror", *includes]
        _zig(
            [*_flags(profile), *cflags, "-c", str(RUNTIME_DIR / source), "-o", str(obj)],
            out,
            f"compile the timing harness {source}",
        )
        objects.append(obj)
    return tuple(objects)


@functools.cache
def _scratch() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="ti-bench-")


def link_bench(kernel_o: Path, profile: Profile, out: Path) -> Path:
    """Links a kernel object (symbol `ti_bench_kernel`) with the harness into `out` (a wasm)."""
    stack = f"-Wl,-z,stack-size={profile.stack_size}"
    objects = [str(o) for o in _harness_objects(profile)]
    _zig(
        [*_flags(profile), stack, "-Wl,--strip-debug", *objects, str(kernel_o), "-o", str(out)],
        out.parent,
        "link the timing harness",
    )
    return out


def build_bench(
    mod: tvm.IRModule, profile: Profile, workdir: Path, target: tvm.target.Target | None = None
) -> Path:
    """Compiles a one-kernel module from `bench_module` and links it: returns the wasm's path."""
    try:
        built = tirx.build(mod, target=target or wasm_target(profile))
        kernel_o = workdir / "kernel.o"
        built.write_to_file(str(kernel_o))
    except Exception as err:  # TVM's C++ errors surface as several Python types
        raise ToolchainError("TVM could not compile the kernel for wasm32", str(err)) from err
    return link_bench(kernel_o, profile, workdir / "bench.wasm")


class KernelBench:
    """A linked harness loaded in wasmtime, its arguments filled with deterministic data (floats
    uniform in [-1, 1), integers and booleans 0: in bounds for any index argument)."""

    def __init__(self, wasm: Path, specs: Sequence[ArgSpec], profile: Profile) -> None:
        self.key = EngineKey(profile.name, fuel=False, wasm_stack_bytes=Limits().wasm_stack_bytes)
        self.ticker = ticker_for(self.key)
        self.store = wasmtime.Store(self.ticker.engine)
        try:
            module = wasmtime.Module.from_file(self.ticker.engine, str(wasm))
            exports = wasmtime.Instance(self.store, module, []).exports(self.store)
        except wasmtime.WasmtimeError as err:
            raise BuildError(f"timing harness {wasm} does not load: {err}") from err
        self.memory = exports["memory"]
        self._run_fn = exports["ti_bench_run"]
        self.specs = list(specs)
        self.data = self._place(exports)

    def _place(self, exports: wasmtime.InstanceExports) -> list[int]:
        """Describes every argument to the harness and writes its data; returns their addresses."""
        if any(len(s.shape) > MAX_NDIM for s in self.specs):
            raise BuildError(f"a kernel argument has more than {MAX_NDIM} dimensions")
        if self._call(exports["ti_bench_init"], len(self.specs)) != 0:
            raise BuildError("timing harness: out of memory for the argument tables")
        rng = np.random.default_rng(0)
        addresses = []
        for i, spec in enumerate(self.specs):
            shape_at = self._call(exports["ti_bench_shape"], i)
            self.memory.write(self.store, np.array(spec.shape, "<i8").tobytes(), shape_at)
            dtype = tvm_ffi.dtype(spec.dtype)
            args = (i, dtype.type_code, dtype.bits, len(spec.shape), spec.nbytes)
            at = self._call(exports["ti_bench_tensor"], *args)
            if at == 0:
                raise BuildError(f"timing harness: no memory for argument {i} ({spec})")
            self.memory.write(self.store, _fill(spec, rng).tobytes(), at)
            addresses.append(at)
        return addresses

    def _call(self, fn: wasmtime.Func, *args: int) -> int:
        self.store.set_epoch_deadline(max(1, round(DEADLINE_S / TICK_S)))
        try:
            with self.ticker:  # the epoch advances only while something runs
                result = fn(self.store, *args)
        except wasmtime.Trap as err:
            raise BuildError(f"the kernel trapped in the timing harness: {err}") from err
        return int(result)

    def run(self, iters: int = 1) -> None:
        """Calls the kernel `iters` times. Raises BuildError if it reports an error or traps."""
        if self._call(self._run_fn, iters) != 0:
            raise BuildError("the kernel reported an error in the timing harness")

    def time(self, min_total_s: float = 0.02, min_repeats: int = 3, max_repeats: int = 50) -> float:
        """Median seconds per call over repeats of about _MIN_REPEAT_S each, after a warm-up."""
        start = time.perf_counter()
        self.run(1)  # warm-up: first touches of memory, and an estimate of one call
        once = max(time.perf_counter() - start, 1e-7)
        number = max(1, math.ceil(_MIN_REPEAT_S / once))
        per_call: list[float] = []
        total = 0.0
        while len(per_call) < max_repeats and (len(per_call) < min_repeats or total < min_total_s):
            start = time.perf_counter()
            self.run(number)
            elapsed = time.perf_counter() - start
            per_call.append(elapsed / number)
            total += elapsed
        return statistics.median(per_call)

    def read(self, i: int) -> np.ndarray:
        """Argument i's data as an array (outputs after `run`)."""
        spec = self.specs[i]
        raw = self.memory.read(self.store, self.data[i], self.data[i] + spec.nbytes)
        return np.frombuffer(bytes(raw), dtype=spec.dtype).reshape(spec.shape)


def _fill(spec: ArgSpec, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, spec.shape).astype(dtype)
    return np.zeros(spec.shape, dtype)


def _bench(func: tirx.PrimFunc, profile: Profile, workdir: Path) -> KernelBench:
    specs = arg_specs(func)
    for spec in specs:
        try:
            np.dtype(spec.dtype)
        except TypeError as err:
            raise BuildError(f"the timing harness cannot fill dtype {spec.dtype}") from err
    return KernelBench(build_bench(bench_module(func), profile, workdir), specs, profile)


def time_kernel(func: tirx.PrimFunc, profile: Profile) -> float:
    """Seconds per call of the kernel (scheduled or not) as wasm in wasmtime, for `profile`."""
    with tempfile.TemporaryDirectory(prefix="ti-bench-") as tmp:
        return _bench(func, profile, Path(tmp)).time()


def run_kernel(func: tirx.PrimFunc, profile: Profile) -> list[np.ndarray]:
    """Every argument after one call on the deterministic inputs: compare two schedules' outputs
    with it."""
    with tempfile.TemporaryDirectory(prefix="ti-bench-") as tmp:
        bench = _bench(func, profile, Path(tmp))
        bench.run()
        return [bench.read(i).copy() for i in range(len(bench.specs))]
