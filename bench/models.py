#!/usr/bin/env python3
"""Latency and throughput of built functions against onnxruntime native and onnxruntime-web,
all measured interleaved in one process.

    python bench/models.py [--models mnist8,cnn24,mnist,resnet50]
                           [--runners wasm,wasm-direct,ort-web,ort-1t,ort]
                           [--calls N | --seconds 1.0] [--resnet50-batch64]
                           [--json bench/results/models.json] [--plot bench/results/models.png]

Models (bench/graphs.py): `mnist8`, the ONNX model zoo's mnist-8 structure (1.6 MFLOP) and
`cnn24`, a 24-MFLOP MNIST CNN, both made with onnx.helper (random weights, seed 0); `mnist`, this
repository's MNIST (functions/mnist/mnist.onnx); `resnet50`, onnx's light_resnet50 with weights
made random as in the tests. Each at batch 1 and 64 (the graph input's first dim rewritten),
except ResNet-50: batch 1 only unless --resnet50-batch64, since at over a second per image in
wasm its 20+ timed batch-64 calls would take more than half an hour.

Runners, each timed per call after a warm-up, round-robin in 10 rounds so that machine noise
hits all alike:
  wasm     the function built with profile `fast`, one `teaclave_infer.executor.run()` per call
           (fresh store, instantiate, read the .npy input, run, write the output; the module
           compiled once, cached): the in-executor latency
  wasm-direct  the same built with `winograd=False` (every conv direct); not run by default
  ort-1t   onnxruntime native CPU, 1 intra-op thread
  ort      onnxruntime native CPU, its default threads
  ort-web  onnxruntime-web's wasm backend (1 thread, SIMD) in Node: bench/web/ort_runner.mjs,
           times taken inside Node; skipped with a note without `node` or bench/web/node_modules
           (which this script tries to make with `npm install` first)
Calls per runner: --calls N, or by default enough for about --seconds (1 s), at least 20.
Every runner's output must match onnxruntime native (atol and rtol 1e-3); the max difference is
reported. FLOPs are 2 x the MACs of Conv, Gemm and MatMul (elementwise ops ignored).
Prints a line per runner (median, p10, p90, GFLOP/s, images/s) and one per model and batch with
wasm's ratios to the others; writes the same as JSON and a bar plot (with matplotlib: `.[bench]`);
last, issue 19's markdown table from the same run: wasm against ort-web, batch 1 ms per call
for mnist8, cnn24 and mnist, and cnn24's images/s at batch 64.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench" / "web")]

from graphs import MODELS, data_input, flop_count, with_batch  # noqa: E402
from helpers import npy  # noqa: E402
from ort_web import OrtWeb, OrtWebRunner, start_ort_web  # noqa: E402

from teaclave_infer.builder import BuildOptions, build  # noqa: E402
from teaclave_infer.executor import Limits, run  # noqa: E402

RESULTS = REPO / "bench" / "results"
RUNNERS = ("wasm", "wasm-direct", "ort-web", "ort-1t", "ort")
DEFAULT_RUNNERS = ("wasm", "ort-web", "ort-1t", "ort")
LIMITS = Limits(deadline_s=600, memory_bytes=2 << 30)  # batch 64 needs more than the defaults
ROUNDS = 10
TOLERANCE = 1e-3
TABLE_MODELS = ("mnist8", "cnn24", "mnist")  # issue 19's table: batch 1 latency, in this order
THROUGHPUT_CASE = ("cnn24", 64)  # and its throughput line


# -- runners -----------------------------------------------------------------------------------


class Runner(Protocol):
    name: str

    def time(self, calls: int) -> list[float]:
        """Milliseconds of each of `calls` calls."""
        ...

    def output(self) -> np.ndarray: ...


class WasmRunner:
    def __init__(
        self, wasm: bytes, manifest: dict[str, Any], x: np.ndarray, name: str = "wasm"
    ) -> None:
        self.name = name
        (inp,), (out,) = manifest["inputs"], manifest["outputs"]
        self.wasm, self.files = wasm, {"x": npy(x)}
        self.arguments = {inp["id"]: "x", out["id"]: "y"}
        self.entry_ms: list[float] = []  # the entrypoint call alone, from the executor's laps

    def call(self) -> bytes:
        result = run(self.wasm, self.arguments, self.files, ["y"], LIMITS)
        if not result.ok:
            raise RuntimeError(f"wasm run failed: {result.message}")
        self.entry_ms.append(result.timings.get("run", math.nan) * 1000)
        return result.outputs["y"]

    def time(self, calls: int) -> list[float]:
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            self.call()
            times.append((time.perf_counter() - start) * 1000)
        return times

    def output(self) -> np.ndarray:
        return np.load(io.BytesIO(self.call()))


class OrtRunner:
    def __init__(self, name: str, model_path: Path, x: np.ndarray, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's default
        options.log_severity_level = 3  # errors only: not the light model's unused initializer
        self.name = name
        self.session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self.feeds = {self.session.get_inputs()[0].name: x}

    def time(self, calls: int) -> list[float]:
        times = []
        for _ in range(calls):
            start = time.perf_counter()
            self.session.run(None, self.feeds)
            times.append((time.perf_counter() - start) * 1000)
        return times

    def output(self) -> np.ndarray:
        return self.session.run(None, self.feeds)[0]


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Case:
    """One model at one batch size, and what each runner measured on it."""

    model: str
    batch: int
    flops: int  # per call (the whole batch)
    build_s: float | None = None  # None: wasm not run
    wasm_bytes: int = 0
    stats: dict[str, dict[str, float]] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)


def make_runners(
    case: Case, model: onnx.ModelProto, work: Path, names: list[str], web: OrtWeb | None
) -> tuple[list[Runner], np.ndarray]:
    """Saves the model, builds the function (timing the build) and opens every runner asked
    for; returns them with onnxruntime native's output, the reference."""
    path = work / f"{case.model}_b{case.batch}.onnx"
    onnx.save(model, str(path))
    data = data_input(model)
    shape = [d.dim_value for d in data.type.tensor_type.shape.dim]
    x = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    runners: list[Runner] = []
    if "wasm" in names:
        start = time.perf_counter()
        built = build(path, work / path.stem, BuildOptions(name=path.stem, profile="fast"))
        case.build_s, case.wasm_bytes = time.perf_counter() - start, built.wasm.stat().st_size
        print(f"  built {built.wasm.name} in {case.build_s:.1f} s ({case.wasm_bytes / 1e6:.1f} MB)")
        runners.append(WasmRunner(built.wasm.read_bytes(), built.manifest, x))
    if "wasm-direct" in names:
        options = BuildOptions(name=path.stem, profile="fast", winograd=False)
        built = build(path, work / f"{path.stem}_direct", options)
        runners.append(WasmRunner(built.wasm.read_bytes(), built.manifest, x, "wasm-direct"))
    if "ort-web" in names and web is not None:
        runners.append(OrtWebRunner(web, path.stem, path, x, data.name))
    for name, threads in (("ort-1t", 1), ("ort", 0)):
        if name in names:
            runners.append(OrtRunner(name, path, x, threads))
    return runners, OrtRunner("reference", path, x, 0).output()


def max_difference(runner: Runner, reference: np.ndarray, label: str) -> float:
    """The largest absolute difference from onnxruntime native; AssertionError past tolerance."""
    got = runner.output()
    assert got.shape == reference.shape, f"{label} {runner.name}: shape {got.shape}"
    np.testing.assert_allclose(
        got, reference, rtol=TOLERANCE, atol=TOLERANCE, err_msg=f"{label} {runner.name}"
    )
    return float(np.max(np.abs(got.astype(np.float64) - reference)))


def call_count(runner: Runner, calls: int | None, seconds: float) -> int:
    """Warms the runner up; then --calls, or enough calls for `seconds`, at least 20."""
    runner.time(2)  # the first call compiles (wasm) or allocates
    if calls is not None:
        return calls
    estimate_s = statistics.median(runner.time(3)) / 1000
    return min(20_000, max(20, math.ceil(seconds / max(estimate_s, 1e-6))))


def interleaved(runners: list[Runner], counts: dict[str, int]) -> dict[str, list[float]]:
    """Each runner's call times, taken round-robin over the runners in ROUNDS rounds."""
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    for k in range(ROUNDS):
        for runner in runners:
            n = counts[runner.name]
            times[runner.name] += runner.time(n * (k + 1) // ROUNDS - n * k // ROUNDS)
    return times


def summarize(times: list[float], case: Case) -> dict[str, float]:
    median = statistics.median(times)
    p10, *_, p90 = statistics.quantiles(times, n=10) if len(times) > 1 else [median, median]
    return {
        "calls": len(times),
        "median_ms": median,
        "p10_ms": p10,
        "p90_ms": p90,
        "gflops": case.flops / (median / 1000) / 1e9,
        "images_per_s": case.batch / (median / 1000),
    }


def ratios(stats: dict[str, dict[str, float]], batch: int) -> dict[str, float]:
    """wasm's median latency over each other runner's; at batch > 1 also wasm's images/s over
    ort-web's."""
    if "wasm" not in stats:
        return {}
    wasm = stats["wasm"]
    out = {
        f"wasm/{o}": wasm["median_ms"] / stats[o]["median_ms"] for o in RUNNERS[1:] if o in stats
    }
    if batch > 1 and "ort-web" in stats:
        out["throughput wasm/ort-web"] = wasm["images_per_s"] / stats["ort-web"]["images_per_s"]
    return out


def measure(
    case: Case, runners: list[Runner], reference: np.ndarray, args: argparse.Namespace
) -> None:
    label = f"{case.model} batch {case.batch}"
    counts = {r.name: call_count(r, args.calls, args.seconds) for r in runners}
    differences = {r.name: max_difference(r, reference, label) for r in runners}
    for runner in runners:
        if isinstance(runner, WasmRunner):
            runner.entry_ms.clear()
    print(f"  timing {', '.join(f'{n} x{c}' for n, c in counts.items())}")
    for name, times in interleaved(runners, counts).items():
        case.stats[name] = summarize(times, case) | {"max_abs_diff": differences[name]}
    for runner in runners:
        if isinstance(runner, WasmRunner) and runner.entry_ms:
            case.stats[runner.name]["entry_median_ms"] = statistics.median(runner.entry_ms)
    case.ratios = ratios(case.stats, case.batch)


# -- reporting ---------------------------------------------------------------------------------


def print_runners(cases: list[Case]) -> None:
    print(
        f"\n{'model':<9}{'batch':>6}  {'runner':<8}{'calls':>6}{'median ms':>11}{'p10':>9}"
        f"{'p90':>9}{'GFLOP/s':>9}{'img/s':>10}{'max diff':>10}"
    )
    for case in cases:
        for name in [r for r in RUNNERS if r in case.stats]:
            s = case.stats[name]
            print(
                f"{case.model:<9}{case.batch:>6}  {name:<8}{s['calls']:>6}{s['median_ms']:>11.3f}"
                f"{s['p10_ms']:>9.3f}{s['p90_ms']:>9.3f}{s['gflops']:>9.2f}"
                f"{s['images_per_s']:>10.1f}{s['max_abs_diff']:>10.1e}"
            )


def print_summary(cases: list[Case]) -> None:
    ratio_names = ["wasm/ort-web", "wasm/ort-1t", "wasm/ort", "throughput wasm/ort-web"]
    heads = ["MFLOP/img", *(f"{r} ms" for r in RUNNERS), *ratio_names]
    print(f"\n{'model':<9}{'batch':>6}" + "".join(f"{h:>{max(len(h) + 2, 11)}}" for h in heads))
    for case in cases:
        cells = [f"{case.flops / case.batch / 1e6:.2f}"]
        cells += [f"{case.stats[r]['median_ms']:.3f}" if r in case.stats else "-" for r in RUNNERS]
        cells += [f"{case.ratios[r]:.2f}" if r in case.ratios else "-" for r in ratio_names]
        print(
            f"{case.model:<9}{case.batch:>6}"
            + "".join(f"{c:>{max(len(h) + 2, 11)}}" for c, h in zip(cells, heads, strict=True))
        )
    print(
        "(ratios of wasm's median latency to each runner's: > 1 means wasm is slower; the last "
        "is wasm's images/s over ort-web's, at batch > 1)"
    )


def issue_table(cases: list[Case]) -> list[str]:
    """Issue 19's table in markdown: for each of TABLE_MODELS measured at batch 1, ours (`wasm`)
    and onnxruntime-web's median ms per call and ours over theirs (> 1: ours is slower); then
    THROUGHPUT_CASE as images/s, ours over theirs (> 1: ours is faster). '-' where a runner did
    not run; a model not measured has no line."""
    by_key = {(c.model, c.batch): c for c in cases}

    def line(label: str, case: Case, key: str, digits: int, ratio: float | None) -> str:
        ours, web = (case.stats.get(r, {}).get(key) for r in ("wasm", "ort-web"))
        cells = [f"{v:.{digits}f}" if v is not None else "-" for v in (ours, web)]
        shown = f"{ratio:.2f}" if ratio is not None else "-"
        return f"| {label} | {cells[0]} | {cells[1]} | {shown} |"

    lines = ["| model | ours | onnxruntime-web | ratio |", "|---|---|---|---|"]
    for model in TABLE_MODELS:
        if case := by_key.get((model, 1)):
            label = f"{model} ({case.flops / 1e6:.2f} MFLOP), ms per call"
            lines.append(line(label, case, "median_ms", 3, case.ratios.get("wasm/ort-web")))
    model, batch = THROUGHPUT_CASE
    if case := by_key.get(THROUGHPUT_CASE):
        label = f"{model} batch {batch}, images/s"
        ratio = case.ratios.get("throughput wasm/ort-web")
        lines.append(line(label, case, "images_per_s", 0, ratio))
    return lines


def print_issue_table(cases: list[Case]) -> None:
    print("\n" + "\n".join(issue_table(cases)))
    print(
        "(median of the interleaved calls above; ours: `wasm`, one executor.run() per call. "
        "ratio: ours / onnxruntime-web, ms per call (> 1: ours is slower) and images/s (> 1: ours "
        "is faster))"
    )


def write_json(cases: list[Case], path: Path, web: OrtWeb | None) -> None:
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "onnxruntime": ort.__version__,
        "ort_web": web.info if web is not None else None,
    }
    cases_json = [case.__dict__ for case in cases]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "cases": cases_json}, indent=2) + "\n")
    print(f"wrote {path}")


def plot(cases: list[Case], path: Path) -> None:
    """Grouped bars: median latency per runner for each model and batch, log scale."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: plot skipped: matplotlib is not importable (pip install -e '.[bench]')")
        return
    names = [r for r in RUNNERS if any(r in c.stats for c in cases)]
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * len(cases)), 4.5))
    for i, name in enumerate(names):
        at = [k for k, c in enumerate(cases) if name in c.stats]
        xs = [k + (i - (len(names) - 1) / 2) * width for k in at]
        bars = ax.bar(xs, [cases[k].stats[name]["median_ms"] for k in at], width, label=name)
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(range(len(cases)), [f"{c.model}\nbatch {c.batch}" for c in cases])
    ax.set_ylabel("median latency per call (ms, log)")
    ax.set_title("in-executor wasm vs onnxruntime native and onnxruntime-web")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


# -- main --------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated")
    parser.add_argument("--runners", default=",".join(DEFAULT_RUNNERS), help="comma-separated")
    parser.add_argument("--calls", type=int, help="calls per runner (default: adaptive)")
    parser.add_argument("--seconds", type=float, default=1.0, help="adaptive: time per runner")
    parser.add_argument("--resnet50-batch64", action="store_true", help="slow: minutes per call")
    parser.add_argument("--json", type=Path, default=RESULTS / "models.json")
    parser.add_argument("--plot", type=Path, default=RESULTS / "models.png")
    args = parser.parse_args()
    if args.calls is not None and args.calls < 1:
        parser.error("--calls: at least 1")
    for option, known in (("models", list(MODELS)), ("runners", list(RUNNERS))):
        chosen = getattr(args, option).split(",")
        if unknown := set(chosen) - set(known):
            parser.error(f"--{option}: unknown {sorted(unknown)}; choose from {known}")
        setattr(args, option, chosen)
    return args


def batches(model: str, args: argparse.Namespace) -> tuple[int, ...]:
    return (1,) if model == "resnet50" and not args.resnet50_batch64 else (1, 64)


def main() -> None:
    args = parse_args()
    web = start_ort_web() if "ort-web" in args.runners else None
    cases: list[Case] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.models:
                base = MODELS[name]()
                for batch in batches(name, args):
                    model = base if batch == 1 else with_batch(base, batch)
                    case = Case(name, batch, flop_count(model))
                    print(f"{name} batch {batch}: {case.flops / batch / 1e6:.2f} MFLOP per image")
                    runners, reference = make_runners(case, model, Path(tmp), args.runners, web)
                    measure(case, runners, reference, args)
                    for runner in runners:
                        if isinstance(runner, OrtWebRunner):
                            runner.close()
                    cases.append(case)
    finally:
        if web is not None:
            web.close()
    print_runners(cases)
    print_summary(cases)
    write_json(cases, args.json, web)
    plot(cases, args.plot)
    print_issue_table(cases)


if __name__ == "__main__":
    main()
