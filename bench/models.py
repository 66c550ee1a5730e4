#!/usr/bin/env python3
"""Latency and throughput of built functions against onnxruntime native and onnxruntime-web,
all measured interleaved in one process.

    python bench/models.py [--models mnist,cnn24,resnet50]
                           [--runners wasm,wasm-direct,ort-web,ort-1t,ort]
                           [--calls N | --seconds 1.0] [--resnet50-batch64]
                           [--json bench/results/models.json] [--plot bench/results/models.png]

Models: MNIST (functions/mnist/mnist.onnx); `cnn24`, a 24-MFLOP MNIST CNN made here with
onnx.helper (random weights, seed 0); ResNet-50 (onnx's light_resnet50, weights made random as
in the tests). Each at batch 1 and 64 (the graph input's first dim rewritten), except ResNet-50:
batch 1 only unless --resnet50-batch64, since at over a second per image in wasm its 20+ timed
batch-64 calls would take more than half an hour.

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
wasm's ratios to the others; writes the same as JSON and a bar plot (with matplotlib: `.[bench]`).
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench" / "web")]

from helpers import npy  # noqa: E402
from ort_web import OrtWeb, OrtWebRunner, start_ort_web  # noqa: E402
from test_light_models import LIGHT, randomized  # noqa: E402

from teaclave_infer.builder import BuildOptions, build  # noqa: E402
from teaclave_infer.builder.importer import graph_inputs  # noqa: E402
from teaclave_infer.executor import Limits, run  # noqa: E402

RESULTS = REPO / "bench" / "results"
RUNNERS = ("wasm", "wasm-direct", "ort-web", "ort-1t", "ort")
DEFAULT_RUNNERS = ("wasm", "ort-web", "ort-1t", "ort")
LIMITS = Limits(deadline_s=600, memory_bytes=2 << 30)  # batch 64 needs more than the defaults
ROUNDS = 10
TOLERANCE = 1e-3


# -- models ------------------------------------------------------------------------------------


def cnn24(seed: int = 0) -> onnx.ModelProto:
    """Conv 1->32 3x3 + Relu, Conv 32->64 3x3 + Relu, MaxPool 2x2, Flatten, Gemm 9216->128 + Relu,
    Gemm 128->10: about 24 MFLOP per image."""
    rng = np.random.default_rng(seed)

    def weight(name: str, *shape: int) -> TensorProto:
        bound = math.sqrt(3.0 / np.prod(shape[1:])) if len(shape) > 1 else 0.1
        return numpy_helper.from_array(rng.uniform(-bound, bound, shape).astype(np.float32), name)

    inits = [weight("w1", 32, 1, 3, 3), weight("b1", 32), weight("w2", 64, 32, 3, 3)]
    inits += [weight("b2", 64), weight("w3", 128, 9216), weight("b3", 128)]
    inits += [weight("w4", 10, 128), weight("b4", 10)]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["g1"], transB=1),
        helper.make_node("Relu", ["g1"], ["r3"]),
        helper.make_node("Gemm", ["r3", "w4", "b4"], ["scores"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn24",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "mnist": lambda: onnx.load(str(REPO / "functions" / "mnist" / "mnist.onnx")),
    "cnn24": cnn24,
    "resnet50": lambda: randomized(onnx.load(str(LIGHT / "light_resnet50.onnx"))),
}


def data_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    (data,) = graph_inputs(model)  # every model here has one input
    return data


def with_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """The model with its input's first dim (1) set to `batch`. Reshape shapes held as
    initializers that start with 1 (ResNet-50's [1, 2048]) get `batch` too; inferred shapes are
    dropped and inferred again, and the outputs' first dim checked."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    dim = data_input(out).type.tensor_type.shape.dim[0]
    if dim.dim_value != 1:
        raise ValueError(f"{out.graph.name}: input batch dim is {dim}, expected 1")
    dim.dim_value = batch
    inits = {i.name: i for i in out.graph.initializer}
    for node in out.graph.node:
        shape = inits.get(node.input[1]) if node.op_type == "Reshape" else None
        if shape is not None and numpy_helper.to_array(shape)[0] == 1:
            value = numpy_helper.to_array(shape).copy()
            value[0] = batch
            shape.CopyFrom(numpy_helper.from_array(value, shape.name))
    for output in out.graph.output:
        output.type.tensor_type.shape.dim[0].dim_value = batch
    del out.graph.value_info[:]
    out = onnx.shape_inference.infer_shapes(out, strict_mode=True)
    onnx.checker.check_model(out)
    return out


def flop_count(model: onnx.ModelProto) -> int:
    """2 x the multiply-accumulates of every Conv, Gemm and MatMul, from the inferred shapes."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = inferred.graph
    shapes = {i.name: list(i.dims) for i in graph.initializer}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        shapes[info.name] = [d.dim_value for d in info.type.tensor_type.shape.dim]
    total = 0
    for node in graph.node:
        if node.op_type == "Conv":  # out elements x (Cin / group) x kh x kw
            total += math.prod(shapes[node.output[0]]) * math.prod(shapes[node.input[1]][1:])
        elif node.op_type == "Gemm":  # M x N x K: K is A's second dim, or first with transA
            trans_a = next((a.i for a in node.attribute if a.name == "transA"), 0)
            total += math.prod(shapes[node.output[0]]) * shapes[node.input[0]][1 - trans_a]
        elif node.op_type == "MatMul":
            total += math.prod(shapes[node.output[0]]) * shapes[node.input[0]][-1]
    return 2 * total


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


if __name__ == "__main__":
    main()
