#!/usr/bin/env python3
"""Build time, wasm size, memory plan and latency of built functions, against onnxruntime
measured in the same run.

    python bench/build_and_run.py [--runs 20]

For MNIST (functions/mnist/mnist.onnx) and ResNet-50 (onnx's light_resnet50, weights made random
as in the tests): builds the `fast` profile with embedded weights, then times one inference as
the executor runs it (fresh store, instantiate, read the .npy input, run, return) with the
module compiled once (the executor's cache), and onnxruntime on the same input with 1 thread
and with its default.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from graphs import MODELS  # noqa: E402
from helpers import npy  # noqa: E402

from teaclave_infer.builder import BuildOptions, build  # noqa: E402
from teaclave_infer.builder.importer import graph_inputs  # noqa: E402
from teaclave_infer.executor import run  # noqa: E402


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bench(name: str, model_path: Path, work: Path, runs: int) -> dict[str, float | str]:
    start = time.perf_counter()
    result = build(model_path, work / name, BuildOptions(name=name))
    build_s = time.perf_counter() - start
    model = onnx.load(str(model_path))
    (data,) = graph_inputs(model)
    shape = [d.dim_value for d in data.type.tensor_type.shape.dim]
    x = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    ident = result.manifest["inputs"][0]["id"]
    wasm = result.wasm.read_bytes()
    files = {"x": npy(x)}
    wasm_ms = median_ms(lambda: run(wasm, {ident: "x"}, files), runs)  # compiled once, cached
    ort_ms = {}
    for threads in (1, 0):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
        ort_ms[threads] = median_ms(lambda s=session: s.run(None, {data.name: x}), runs)
    memory = result.manifest["memory"]
    return {
        "model": name,
        "build s": build_s,
        "wasm MB": result.wasm.stat().st_size / 1e6,
        "arena MB": memory["arena_bytes"] / 1e6,
        "tensors MB": memory["tensor_bytes"] / 1e6,
        "arena/tensors": memory["arena_bytes"] / memory["tensor_bytes"],
        "wasm ms": wasm_ms,
        "ort-1t ms": ort_ms[1],
        "ort ms": ort_ms[0],
        "wasm/ort-1t": wasm_ms / ort_ms[1],
        "wasm/ort": wasm_ms / ort_ms[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        resnet = work / "resnet50.onnx"
        onnx.save(MODELS["resnet50"](), str(resnet))
        rows.append(bench("mnist", REPO / "functions" / "mnist" / "mnist.onnx", work, args.runs))
        rows.append(bench("resnet50", resnet, work, max(3, args.runs // 4)))
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in rows:
        cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
