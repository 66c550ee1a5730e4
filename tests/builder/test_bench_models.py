"""The benchmarks' models and counts (bench/graphs.py, bench/kernels.py) and issue 19's table
(bench/models.py): mnist-8's structure and FLOPs, its build against onnxruntime in both
profiles, the kernels' direct-equivalent FLOPs against the graph's, the table's lines."""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort
import pytest
from helpers import assert_matches_onnxruntime
from paths import BENCH

sys.path.insert(0, str(BENCH))

from graphs import cnn24, flop_count, mnist8, with_batch
from kernels import model_kernels
from models import Case, issue_table

from teaclave_infer.abi import PROFILES


def scores(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_mnist8_has_the_zoo_structure_and_batches() -> None:
    model = mnist8()
    ops = [n.op_type for n in model.graph.node]
    assert ops == ["Conv", "Add", "Relu", "MaxPool"] * 2 + ["Reshape", "MatMul", "Add"]
    # 8 5x5 filters on 28x28, 16 5x5x8 filters on 14x14, 256x10: 2 x MACs
    assert flop_count(model) == 2 * (8 * 28 * 28 * 25 + 16 * 14 * 14 * 200 + 256 * 10)
    x = np.random.default_rng(1).uniform(0, 1, (64, 1, 28, 28)).astype(np.float32)
    batched = scores(with_batch(model, 64), x)
    assert batched.shape == (64, 10)
    np.testing.assert_allclose(batched[5:6], scores(model, x[5:6]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("profile", ["fast", "teaclave"])
def test_mnist8_matches_onnxruntime(tmp_path, profile: str) -> None:
    x = np.random.default_rng(2).uniform(0, 1, (1, 1, 28, 28)).astype(np.float32)
    assert_matches_onnxruntime(tmp_path, mnist8(), {"x": x}, profile=profile)


def test_kernel_flops_add_up_to_the_graphs() -> None:
    """cnn24's second conv is Winograd: counted as the direct conv, the kernels' FLOPs are the
    graph's."""
    model = cnn24()
    kernels = model_kernels("cnn24", model, PROFILES["teaclave"])
    assert sum(k.flops for k in kernels) == flop_count(model)
    (winograd,) = [k for k in kernels if k.winograd]
    assert winograd.flops == 2 * 64 * 24 * 24 * 32 * 3 * 3
    assert {k.schedule for k in kernels} <= {"tuned", "rules", "lowered"}


def case(model: str, batch: int, ours: float | None, web: float | None) -> Case:
    """A measured case with the median ms of `wasm` and `ort-web` (None: that runner not run)."""
    measured = Case(model, batch, flops=batch * 2_000_000)
    for runner, ms in (("wasm", ours), ("ort-web", web)):
        if ms is not None:
            measured.stats[runner] = {"median_ms": ms, "images_per_s": batch / (ms / 1000)}
    if ours is not None and web is not None:
        measured.ratios["wasm/ort-web"] = ours / web
        measured.ratios["throughput wasm/ort-web"] = web / ours
    return measured


def test_issue_table_lines() -> None:
    cases = [
        case("mnist", 1, 3.0, 1.5),
        case("cnn24", 64, 128.0, 160.0),
        case("cnn24", 1, 2.5, None),
        case("mnist8", 1, 0.5, 0.25),
        case("mnist8", 64, 9.0, 8.0),
    ]
    assert issue_table(cases) == [
        "| model | ours | onnxruntime-web | ratio |",
        "|---|---|---|---|",
        "| mnist8 (2.00 MFLOP), ms per call | 0.500 | 0.250 | 2.00 |",
        "| cnn24 (2.00 MFLOP), ms per call | 2.500 | - | - |",
        "| mnist (2.00 MFLOP), ms per call | 3.000 | 1.500 | 2.00 |",
        "| cnn24 batch 64, images/s | 500 | 400 | 1.25 |",
    ]
    assert issue_table([case("resnet50", 1, 1.0, 1.0)]) == issue_table([])[:2]
