#!/usr/bin/env python3
"""Every conv and dense kernel of the benchmark models, timed as wasm in wasmtime, as a fraction
of the machine's measured multiply-add peak and of its roofline, per profile, in one run.

    python bench/kernels.py [--models mnist8,cnn24,mnist] [--profiles fast,teaclave]
                            [--batch 1] [--rounds 3] [--seconds 0.02]

Each kernel is lowered as a build lowers it (Winograd on), scheduled as a build schedules it
(a shipped tuning record when one matches the kernel, else the default rules: builder._schedule)
and timed in the builder's harness (builder/kernel_bench.py: the kernel linked with
runtime/ti_bench.c, its arguments filled with data, run under the profile's engine). The peak is
bench/peak.py's: a loop of independent f32x4.mul and f32x4.add chains under the `fast` engine,
of f32.mul and f32.add under `teaclave`'s (no SIMD); WebAssembly SIMD128 has no fused
multiply-add without relaxed SIMD, which our engines turn off. Peak loops and kernels are timed
in turn in each of --rounds rounds (each kernel for at least --seconds a round), so that machine
noise hits all alike; the medians over the rounds are reported.

FLOPs are 2 x the multiply-accumulates of the direct computation: a Winograd kernel (marked *)
is counted as the direct 3x3 conv it replaces, which does about 4x its multiplies, so it may
exceed 100% of the peak. The kernels' FLOPs of each model are checked against bench/graphs.py's
count of its ONNX graph.

The roofline: a kernel takes at least its FLOPs at the peak, and at least the time to read its
arguments' bytes once (bench/peak.py's StreamLoop, timed in the same rounds over a buffer of the
kernel's size, warm in cache as the kernel's are). A dense layer at batch 1 does 2 FLOPs per
weight it reads (4 bytes): its bound is the read, not the multiply-adds.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import tvm_ffi
from tvm import tirx

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from graphs import MODELS, flop_count, with_batch  # noqa: E402
from peak import Peak, PeakRuns, StreamLoop  # noqa: E402

from teaclave_infer.abi import PROFILES, Profile  # noqa: E402
from teaclave_infer.builder import SHIPPED_TUNING, BuildOptions, _schedule  # noqa: E402
from teaclave_infer.builder.importer import input_shapes, to_relax  # noqa: E402
from teaclave_infer.builder.kernel_bench import ArgSpec, KernelBench, _bench, arg_specs  # noqa: E402
from teaclave_infer.builder.lower import WINOGRAD_TILE, lower  # noqa: E402
from teaclave_infer.builder.plan import kernel_functions, read_plan  # noqa: E402
from teaclave_infer.builder.tune import lookup  # noqa: E402
from teaclave_infer.errors import TeaclaveInferError  # noqa: E402

DEFAULT_MODELS = ("mnist8", "cnn24", "mnist")
TIMED = ("conv2d", "matmul", "dense")  # the kernels timed: a name with one of these in it


@dataclass
class Kernel:
    """One conv or dense kernel of a model, built for one profile, and its times."""

    model: str
    profile: str
    symbol: str
    specs: list[ArgSpec]
    flops: int  # direct-equivalent
    winograd: bool
    schedule: str  # "tuned" (a shipped record), "rules" (the default rules), "lowered" (neither)
    func: tirx.PrimFunc  # scheduled
    bench: KernelBench | None = None  # once loaded in the harness
    stream: StreamLoop | None = None  # a read of its arguments' bytes, for its roofline
    seconds: list[float] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(spec.nbytes for spec in self.specs)

    def load(self, work: Path) -> None:
        """Compiles the kernel into the timing harness, in a folder of its own under `work`."""
        folder = work / f"{self.profile}_{self.model}_{self.symbol}"
        folder.mkdir()
        self.bench = _bench(self.func, PROFILES[self.profile], folder)
        self.stream = StreamLoop(self.profile, self.nbytes)

    def time(self, seconds: float) -> None:
        """One more median per call, over repeats of at least `seconds` in all; and one more
        read of as many bytes."""
        assert self.bench is not None and self.stream is not None, "load() first"
        self.seconds.append(self.bench.time(min_total_s=seconds))
        self.stream.gbps(seconds)

    def roof_s(self, peak: Peak) -> float:
        """The roofline: the longer of its FLOPs at the peak and its bytes at the read's speed."""
        assert self.stream is not None, "load() first"
        read_s = self.nbytes / (statistics.median(self.stream.runs) * 1e9)
        return max(self.flops / (peak.gflops * 1e9), read_s)


def direct_flops(symbol: str, specs: list[ArgSpec]) -> int:
    """2 x the MACs of a conv2d, Winograd conv2d or matmul kernel, from its arguments: the data,
    the weight (OIHW; a Winograd kernel's packed [alpha, alpha, CI, CO]), ..., the output."""
    out, data, weight = math.prod(specs[-1].shape), specs[0].shape, specs[1].shape
    if "winograd" in symbol:  # the direct conv's r x r window, r = alpha - tile + 1
        return 2 * out * weight[2] * (weight[0] - WINOGRAD_TILE + 1) ** 2
    if "conv2d" in symbol:
        return 2 * out * math.prod(weight[1:])
    return 2 * out * data[-1]  # matmul, dense: the reduction is the data's last axis


def model_kernels(name: str, model: onnx.ModelProto, profile: Profile) -> list[Kernel]:
    """The model's conv and dense kernels as a build would lower and schedule them for
    `profile` (not compiled yet)."""
    mod = lower(to_relax(model, input_shapes(model, {})), winograd=True)
    kernels = kernel_functions(mod, read_plan(mod))
    scheduled = _schedule(kernels, profile, BuildOptions(profile=profile.name))
    tuned = lookup(kernels, profile, SHIPPED_TUNING)
    found = []
    for gvar, func in scheduled.functions_items():
        symbol = gvar.name_hint
        if not any(kind in symbol for kind in TIMED):
            continue
        if symbol in tuned:
            schedule = "tuned"
        elif tvm_ffi.structural_equal(func, kernels[symbol]):
            schedule = "lowered"
        else:
            schedule = "rules"
        specs = arg_specs(func)
        flops = direct_flops(symbol, specs)
        winograd = "winograd" in symbol
        found.append(Kernel(name, profile.name, symbol, specs, flops, winograd, schedule, func))
    return found


def check_flops(name: str, model: onnx.ModelProto, kernels: list[Kernel]) -> None:
    """The kernels of one profile must add up to the graph's Conv, Gemm and MatMul FLOPs."""
    counted, expected = sum(k.flops for k in kernels), flop_count(model)
    if counted != expected:
        raise SystemExit(f"{name}: the kernels count {counted} FLOPs, the ONNX graph {expected}")


def measure(kernels: list[Kernel], peaks: list[PeakRuns], rounds: int, seconds: float) -> None:
    """Every peak loop and every kernel in turn, `rounds` times."""
    for k in range(rounds):
        print(f"round {k + 1}/{rounds}", flush=True)
        for runs in peaks:
            runs.round()
        for kernel in kernels:
            kernel.time(seconds)


def shape(spec: ArgSpec) -> str:
    return "x".join(map(str, spec.shape))


def print_peaks(peaks: dict[str, Peak]) -> None:
    for peak in peaks.values():
        kind = "SIMD128 f32x4" if peak.simd else "scalar f32"
        shapes = ", ".join(f"{c}x{u}: {g:.1f}" for (c, u), g in peak.by_shape.items())
        print(
            f"peak {peak.profile:<9} {kind} mul + add: {peak.gflops:.1f} GFLOP/s "
            f"(GFLOP/s by chains of each x steps unrolled: {shapes})"
        )
    print(
        "(independent mul and add chains, no fused multiply-add: SIMD128 has none without "
        "relaxed SIMD, which our engines turn off)"
    )


def print_kernels(kernels: list[Kernel], peaks: dict[str, Peak]) -> None:
    """A line per kernel, grouped by profile in the order of `peaks`."""
    rows = [
        (
            f"{kernel.symbol}{'*' if kernel.winograd else ''}",
            f"{shape(kernel.specs[0])} * {shape(kernel.specs[1])} -> {shape(kernel.specs[-1])}",
            kernel,
        )
        for kernel in sorted(kernels, key=lambda k: list(peaks).index(k.profile))
    ]
    name_w = max(len("kernel"), *(len(r[0]) for r in rows)) + 2
    shape_w = max(len("data * weight -> out"), *(len(r[1]) for r in rows)) + 2
    print(
        f"\n{'profile':<9}{'model':<8}{'kernel':<{name_w}}{'data * weight -> out':<{shape_w}}"
        f"{'schedule':<9}{'MFLOP':>8}{'MB':>7}{'us':>10}{'GFLOP/s':>9}{'of peak':>9}"
        f"{'roof us':>9}{'of roof':>9}"
    )
    for name, shapes, kernel in rows:
        median = statistics.median(kernel.seconds)
        gflops = kernel.flops / median / 1e9
        roof = kernel.roof_s(peaks[kernel.profile])
        print(
            f"{kernel.profile:<9}{kernel.model:<8}{name:<{name_w}}{shapes:<{shape_w}}"
            f"{kernel.schedule:<9}{kernel.flops / 1e6:>8.3f}{kernel.nbytes / 1e6:>7.2f}"
            f"{median * 1e6:>10.1f}{gflops:>9.2f}{gflops / peaks[kernel.profile].gflops:>9.0%}"
            f"{roof * 1e6:>9.1f}{roof / median:>9.0%}"
        )


def print_totals(kernels: list[Kernel], peaks: dict[str, Peak]) -> None:
    for profile, peak in peaks.items():
        mine = [k for k in kernels if k.profile == profile]
        total_s = sum(statistics.median(k.seconds) for k in mine)
        roof_s = sum(k.roof_s(peak) for k in mine)
        gflops = sum(k.flops for k in mine) / total_s / 1e9
        print(
            f"{profile}: all {len(mine)} kernels {total_s * 1e3:.2f} ms, {gflops:.2f} GFLOP/s, "
            f"{gflops / peak.gflops:.0%} of the peak, {roof_s / total_s:.0%} of the roofline"
        )
    print(
        "(* Winograd: FLOPs of the direct 3x3 conv it replaces, about 4x its multiplies. "
        "schedule: tuned = a shipped tuning record, rules = the default rules, lowered = neither "
        "applied. us: median over the rounds of the harness's median per call. MB: the "
        "arguments' bytes; roof us: the longer of the FLOPs at the peak and the bytes at the "
        "read speed measured over as many bytes)"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated")
    parser.add_argument("--profiles", default="fast,teaclave", help="comma-separated")
    parser.add_argument("--batch", type=int, default=1, help="the models' batch size")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--seconds", type=float, default=0.02, help="each kernel's time a round")
    args = parser.parse_args()
    for option, known in (("models", list(MODELS)), ("profiles", list(PROFILES))):
        chosen = getattr(args, option).split(",")
        if unknown := set(chosen) - set(known):
            parser.error(f"--{option}: unknown {sorted(unknown)}; choose from {known}")
        setattr(args, option, chosen)
    if args.batch < 1 or args.rounds < 1 or args.seconds <= 0:
        parser.error("--batch and --rounds: at least 1; --seconds: more than 0")
    return args


def main() -> None:
    args = parse_args()
    kernels: list[Kernel] = []
    with tempfile.TemporaryDirectory(prefix="bench-kernels-") as tmp:
        try:
            for name in args.models:
                model = MODELS[name]()
                model = with_batch(model, args.batch) if args.batch > 1 else model
                for profile in args.profiles:
                    print(f"building {name}'s kernels for {profile}", flush=True)
                    found = model_kernels(name, model, PROFILES[profile])
                    check_flops(name, model, found)
                    for kernel in found:
                        kernel.load(Path(tmp))
                    kernels += found
            peaks = [PeakRuns(profile) for profile in args.profiles]
            measure(kernels, peaks, args.rounds, args.seconds)
        except TeaclaveInferError as err:
            raise SystemExit(f"bench/kernels.py: {err}") from err
    measured = {runs.profile: runs.peak() for runs in peaks}
    print()
    print_peaks(measured)
    print_kernels(kernels, measured)
    print_totals(kernels, measured)


if __name__ == "__main__":
    main()
