"""The machine's f32 multiply-add peak as WebAssembly in wasmtime, per profile: the ceiling a
kernel's GFLOP/s are a fraction of (bench/kernels.py); and its read speed (StreamLoop, below),
the other side of a kernel's roofline.

A hand-written loop keeps `chains` independent multiply chains (x = x * m) and as many add chains
(y = y + a), enough of them to hide the operations' latency, so that it is bound by the CPU's
multiply and add throughput alone: SIMD128 (f32x4.mul, f32x4.add: 4 FLOPs each) under the `fast`
profile's engine, scalar f32 (1 FLOP each) under the `teaclave` profile's, which has no SIMD.
Equal numbers of multiplies and adds, since a kernel's multiply-accumulate is one of each: wasm
SIMD128 has no fused multiply-add (only relaxed SIMD's f32x4.relaxed_madd, and every engine of
ours turns relaxed SIMD off), so a kernel's real multiplies and adds cannot pass this peak.
m = 1 and a = 0 come in as arguments: the values never change (no denormals, no overflow) and
the compiler cannot fold them.
The engine is the executor's own (executor._engine.engine_for), epoch interruption included.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import TypeVar

import wasmtime

from teaclave_infer.abi import PROFILES, WasmFeature
from teaclave_infer.executor import EngineKey, Limits, engine_for

__all__ = [
    "SHAPES",
    "Peak",
    "PeakLoop",
    "PeakRuns",
    "StreamLoop",
    "measure_peak",
    "peak_wat",
    "stream_bytes",
    "stream_wat",
]

# (multiply chains = add chains, steps unrolled in a loop iteration) tried; the fastest counts.
# Measured on the 2-core Xeon VM, SIMD, GFLOP/s with 4, 6, 8, 12 chains: unrolled 1x, 5.6 to 7.6;
# 4x: 11.4, 14.4, 15.9, 16.8; 8x: 13.3, 18.0, 17.8, 18.9; 16x: 14.8 to 16.0.
SHAPES = ((4, 4), (6, 4), (8, 4), (12, 4), (6, 8), (8, 8), (12, 8))
UNROLL = 4
EXPORT = "peak"
T = TypeVar("T")


def peak_wat(simd: bool, chains: int, unroll: int = UNROLL) -> str:
    """A module exporting `peak(iters: i32, m: f32, a: f32) -> f32`: `iters` iterations of
    `unroll` steps of `chains` multiply and `chains` add chains, on f32x4 vectors (simd) or f32
    scalars; it returns lane 0 of the sum of every chain, so that none is dead code."""
    ty, op = ("v128", "f32x4") if simd else ("f32", "f32")

    def splat(name: str) -> str:
        return f"(f32x4.splat (local.get {name}))" if simd else f"(local.get {name})"

    xs = [f"$x{k}" for k in range(chains)]
    ys = [f"$y{k}" for k in range(chains)]
    step = "".join(
        f"(local.set {x} ({op}.mul (local.get {x}) (local.get $m)))"
        f"(local.set {y} ({op}.add (local.get {y}) (local.get $a)))"
        for x, y in zip(xs, ys, strict=True)
    )
    total = "(local.get $x0)"
    for name in [*xs[1:], *ys]:
        total = f"({op}.add {total} (local.get {name}))"
    result = f"(f32x4.extract_lane 0 {total})" if simd else total
    return f"""(module
  (func (export "{EXPORT}") (param $iters i32) (param $mul f32) (param $add f32) (result f32)
    (local $m {ty}) (local $a {ty}) {" ".join(f"(local {v} {ty})" for v in xs + ys)}
    (local.set $m {splat("$mul")})
    (local.set $a {splat("$add")})
    {"".join(f"(local.set {v} (local.get $m))" for v in xs + ys)}
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $iters)))
        {step * unroll}
        (local.set $iters (i32.sub (local.get $iters) (i32.const 1)))
        (br $next)))
    {result}))
"""


STREAM_EXPORT = "stream"
STREAM_STEP = 128  # bytes read an iteration: 8 vectors or 32 scalars, into 8 sums


def stream_bytes(nbytes: int) -> int:
    """The bytes a read loop of `nbytes` reads a pass: rounded up to whole steps."""
    return -(-nbytes // STREAM_STEP) * STREAM_STEP


def stream_wat(simd: bool, nbytes: int) -> str:
    """A module exporting `stream(reps: i32) -> f32`: `reps` passes reading its `nbytes` of
    memory (zeros, rounded up to STREAM_STEP) in order, into 8 independent sums (v128 or f32
    loads): the least a kernel reading that many bytes must do."""
    size = stream_bytes(nbytes)
    ty, load, add = ("v128", "v128.load", "f32x4.add") if simd else ("f32", "f32.load", "f32.add")
    width = 16 if simd else 4
    step = "".join(
        f"(local.set $s{k % 8} ({add} (local.get $s{k % 8}) "
        f"({load} offset={k * width} (local.get $p))))"
        for k in range(STREAM_STEP // width)
    )
    total = "(local.get $s0)"
    for k in range(1, 8):
        total = f"({add} {total} (local.get $s{k}))"
    result = f"(f32x4.extract_lane 0 {total})" if simd else total
    return f"""(module
  (memory (export "memory") {max(1, -(-size // 65536))})
  (func (export "{STREAM_EXPORT}") (param $reps i32) (result f32)
    (local $p i32) {" ".join(f"(local $s{k} {ty})" for k in range(8))}
    (block $done
      (loop $rep
        (br_if $done (i32.eqz (local.get $reps)))
        (local.set $p (i32.const 0))
        (loop $next
          {step}
          (local.set $p (i32.add (local.get $p) (i32.const {STREAM_STEP})))
          (br_if $next (i32.lt_u (local.get $p) (i32.const {size}))))
        (local.set $reps (i32.sub (local.get $reps) (i32.const 1)))
        (br $rep)))
    {result}))
"""


def _instance(profile: str, wat: str) -> tuple[wasmtime.Store, wasmtime.Instance]:
    """A fresh instance of `wat` under the profile's engine (the executor's own)."""
    engine = engine_for(EngineKey(profile, fuel=False, wasm_stack_bytes=Limits().wasm_stack_bytes))
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 40)  # nothing ticks this engine's epoch here
    return store, wasmtime.Instance(store, wasmtime.Module(engine, wasmtime.wat2wasm(wat)), [])


def _export(store: wasmtime.Store, instance: wasmtime.Instance, name: str, kind: type[T]) -> T:
    export = instance.exports(store)[name]
    assert isinstance(export, kind)
    return export


class StreamLoop:
    """The read bandwidth of a profile's wasm over a buffer of a kernel's size (its arguments'
    bytes), warm in cache as a kernel's are when it is called again: with the multiply-add peak,
    the roofline a kernel's time is held to (a dense layer at batch 1 reads each weight once)."""

    def __init__(self, profile: str, nbytes: int) -> None:
        simd = WasmFeature.SIMD128 in PROFILES[profile].features
        self.nbytes = stream_bytes(nbytes)
        self.store, instance = _instance(profile, stream_wat(simd, nbytes))
        self.func = _export(self.store, instance, STREAM_EXPORT, wasmtime.Func)
        self.memory = _export(self.store, instance, "memory", wasmtime.Memory)
        self.runs: list[float] = []

    def gbps(self, seconds: float = 0.02) -> float:
        """GB/s of a call of about `seconds` after one to size it (and warm the cache); kept in
        `runs`."""
        reps = 4
        start = time.perf_counter()
        self.func(self.store, reps)
        once = max(time.perf_counter() - start, 1e-7)
        reps = max(reps, round(reps * seconds / once))
        start = time.perf_counter()
        self.func(self.store, reps)
        self.runs.append(reps * self.nbytes / (time.perf_counter() - start) / 1e9)
        return self.runs[-1]


class PeakLoop:
    """One peak loop compiled for a profile's engine, ready to call."""

    def __init__(self, profile: str, chains: int, unroll: int = UNROLL) -> None:
        self.simd = WasmFeature.SIMD128 in PROFILES[profile].features
        self.store, instance = _instance(profile, peak_wat(self.simd, chains, unroll))
        self.func = _export(self.store, instance, EXPORT, wasmtime.Func)
        self.flops_per_iter = unroll * 2 * chains * (4 if self.simd else 1)

    def call(self, iters: int) -> float:
        """Runs `iters` iterations (m = 1, a = 0: every chain keeps its value 1)."""
        return float(self.func(self.store, iters, 1.0, 0.0))

    def gflops(self, seconds: float = 0.02) -> float:
        """GFLOP/s of a call that runs about `seconds`, after one to size it."""
        iters = 1000
        start = time.perf_counter()
        self.call(iters)
        once = max(time.perf_counter() - start, 1e-7)
        iters = max(iters, round(iters * seconds / once))
        start = time.perf_counter()
        self.call(iters)
        return iters * self.flops_per_iter / (time.perf_counter() - start) / 1e9


@dataclass(frozen=True)
class Peak:
    profile: str
    simd: bool
    gflops: float  # the median over the rounds of the fastest loop shape
    shape: tuple[int, int]  # its (chains, unroll)
    by_shape: dict[tuple[int, int], float]  # every shape's median GFLOP/s


class PeakRuns:
    """A profile's peak loops, one per (chains, unroll) shape, each timed once a round (so that a
    caller can interleave the rounds with its own measurements)."""

    def __init__(self, profile: str, shapes: tuple[tuple[int, int], ...] = SHAPES) -> None:
        self.profile = profile
        self.loops = {shape: PeakLoop(profile, *shape) for shape in shapes}
        self.runs: dict[tuple[int, int], list[float]] = {shape: [] for shape in shapes}

    def round(self) -> None:
        for shape, loop in self.loops.items():
            self.runs[shape].append(loop.gflops())

    def peak(self) -> Peak:
        """The fastest shape's median GFLOP/s over the rounds run so far (at least one)."""
        by_shape = {shape: statistics.median(r) for shape, r in self.runs.items()}
        best = max(by_shape, key=by_shape.__getitem__)
        simd = next(iter(self.loops.values())).simd
        return Peak(self.profile, simd, by_shape[best], best, by_shape)


def measure_peak(
    profile: str, rounds: int = 5, shapes: tuple[tuple[int, int], ...] = SHAPES
) -> Peak:
    """The profile's peak: each loop shape timed `rounds` times, interleaved."""
    runs = PeakRuns(profile, shapes)
    for _ in range(rounds):
        runs.round()
    return runs.peak()
