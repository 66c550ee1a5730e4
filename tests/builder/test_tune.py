"""The kernel timing harness and MetaSchedule tuning with wasmtime as the runner, on MNIST's
kernels: a short search writes records that a later lowering of the same model finds again, and
the tuned kernels compute what the untuned ones do."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import tvm
import tvm_ffi
from paths import REPO
from tvm import te, tirx

from teaclave_infer.abi import PROFILES
from teaclave_infer.builder.importer import input_shapes, load_onnx, to_relax
from teaclave_infer.builder.kernel_bench import BENCH_SYMBOL, bench_module, run_kernel, time_kernel
from teaclave_infer.builder.lower import lower
from teaclave_infer.builder.plan import kernel_functions, read_plan
from teaclave_infer.builder.tune import (
    _SEARCHES,
    KEEP_RECORDS,
    TunedKernel,
    _cost_model,
    _workload,
    apply_database,
    lookup,
    tune,
)
from teaclave_infer.builder.tune_progress import BAR_WIDTH, TuneProgress
from teaclave_infer.errors import BuildError

MNIST = REPO / "functions" / "mnist" / "mnist.onnx"
FAST = PROFILES["fast"]
# The smallest convolution and the dense layer: enough to search, quick to build.
TUNED = ("fused_conv2d_add_relu", "fused_matmul_add3")


def mnist_kernels() -> tvm.IRModule:
    model = load_onnx(MNIST)
    mod = lower(to_relax(model, input_shapes(model, {})))
    return kernel_functions(mod, read_plan(mod))


@pytest.fixture(scope="module")
def kernels() -> tvm.IRModule:
    return mnist_kernels()


@pytest.fixture(scope="module")
def tuned(kernels, tmp_path_factory) -> tuple[Path, dict[str, TunedKernel], list[str]]:
    """A database from an 8-trial search over TUNED, what tune returned, and its progress."""
    database = tmp_path_factory.mktemp("tuning")
    lines: list[str] = []
    subset = tvm.IRModule({name: kernels[name] for name in TUNED})
    return database, tune(subset, FAST, 8, database, lines.append, seed=0), lines


def test_time_kernel_gives_seconds_per_call(kernels):
    seconds = time_kernel(kernels["fused_conv2d_add_relu"], FAST)
    assert 0 < seconds < 1


def test_harness_computes_the_kernel(kernels):
    x, weight, bias, out = run_kernel(kernels["fused_matmul_add3"], FAST)
    assert out.shape == (1, 10)
    np.testing.assert_allclose(out, x @ weight + bias, rtol=1e-5, atol=1e-5)


def test_dynamic_shapes_are_refused():
    n = tirx.Var("n", "int64")
    a = te.placeholder((n,), "float32", name="A")
    b = te.compute((n,), lambda i: a[i] + 1.0, name="B")
    with pytest.raises(BuildError, match="dynamic shape"):
        time_kernel(te.create_prim_func([a, b]), FAST)


def test_tune_writes_a_database_per_profile(tuned):
    database, result, lines = tuned
    assert set(result) == set(TUNED)
    assert all(t.seconds > 0 for t in result.values())
    records = (database / "fast" / "records.json").read_text().splitlines()
    assert 0 < len(records) <= KEEP_RECORDS * len(TUNED)  # compacted after the search
    assert any(TUNED[0] in line for line in lines)
    # the progress ends each kernel's search with its 8 trials counted, of 16 in all
    assert any(f"{TUNED[0]} 8/8, best" in line for line in lines)
    assert any("16/16 trials" in line for line in lines)
    assert apply_database(mnist_kernels(), PROFILES["teaclave"], database) == {}


def test_a_later_build_finds_the_records(tuned):
    database, result, _ = tuned
    later = mnist_kernels()  # lowered again, as the next build does
    found = lookup(later, FAST, database)
    assert set(found) == set(TUNED)  # and no record for the kernels not tuned
    for name in TUNED:
        assert found[name].seconds == result[name].seconds
        assert found[name].func.attrs["global_symbol"] == name
        assert not tvm_ffi.structural_equal(found[name].func, later[name])


def test_tuned_kernels_compute_the_same(tuned, kernels):
    database, _, _ = tuned
    for name, func in apply_database(kernels, FAST, database).items():
        untuned, scheduled = run_kernel(kernels[name], FAST), run_kernel(func, FAST)
        np.testing.assert_allclose(scheduled[-1], untuned[-1], rtol=1e-5, atol=1e-5)


def test_tune_skips_kernels_with_records(tuned, kernels):
    database, result, _ = tuned
    lines: list[str] = []
    again = tune(tvm.IRModule({n: kernels[n] for n in TUNED}), FAST, 8, database, lines.append)
    assert lines == []
    assert {n: t.seconds for n, t in again.items()} == {n: t.seconds for n, t in result.items()}


def test_progress_counts_trials_of_the_budget_and_the_time():
    lines: list[str] = []
    now = [100.0]
    progress = TuneProgress(["a", "b"], 10, lines.append, clock=lambda: now[0])
    now[0] = 105.0
    progress.measured("a", 5, None)
    now[0] = 120.0
    progress.measured("b", 10, 42e-6)
    assert lines[0] == (
        f"tune     [{'#' * 5}{'-' * 15}] 5/20 trials, 5 s, about 15 s left: a 5/10, none valid yet"
    )
    bar = f"[{'#' * 15}{'-' * 5}]"
    assert lines[1] == f"tune     {bar} 15/20 trials, 20 s, about 7 s left: b 10/10, best 42.0 us"
    progress.measured("a", 5, 3e-6)
    assert lines[2].startswith(f"tune     [{'#' * BAR_WIDTH}] 20/20 trials, 20 s: a 10/10")


def test_the_build_says_how_it_searches(tuned, monkeypatch):
    """A search without a cost model is random sampling: the build says so, and how to get one."""
    _, _, lines = tuned
    searches = [line for line in lines if line.startswith("tune     search: ")]
    assert searches == [f"tune     search: {_SEARCHES[_cost_model()]}"]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert _cost_model() == "random" and ".[tune]" in _SEARCHES["random"]


def test_trials_must_be_positive(kernels, tmp_path):
    with pytest.raises(BuildError, match="trials"):
        tune(kernels, FAST, 0, tmp_path)


def test_the_default_schedule_is_one_of_the_candidates(tuned):
    """The rules' schedule is timed in the same harness and recorded: what a build gets is never
    slower than it."""
    _, result, lines = tuned
    for name in TUNED:
        (line,) = [line for line in lines if name in line and "default schedule" in line]
        default_us = float(line.split("default schedule")[1].split()[0])
        assert result[name].seconds * 1e6 <= default_us + 0.051


def test_winograd_workloads_are_left_to_the_generic_rules(kernels):
    """TOPI annotates blocks of a Winograd conv (its transform matrices) with the MetaSchedule
    rules meant for them: the tuner's workload drops those annotations."""
    winograd = kernels["fused_conv2d_winograd2_add2_relu2"]
    assert "schedule_rule" in winograd.script()
    workload = _workload(winograd)
    assert "schedule_rule" not in workload.script()
    assert "schedule_rule" in winograd.script()  # the kernel itself is left as it was
    assert workload["main"].attrs["global_symbol"] == BENCH_SYMBOL
    # kernels without the annotation are unchanged, so their records made before still match
    dense = kernels["fused_matmul_add3"]
    assert tvm_ffi.structural_equal(_workload(dense), bench_module(dense))


def test_a_build_that_tunes_needs_a_database(tmp_path):
    from teaclave_infer.builder import BuildOptions, build

    with pytest.raises(BuildError, match="tuning-db"):
        build(MNIST, tmp_path / "out", BuildOptions(tune_trials=4))
    assert not (tmp_path / "out").exists()
