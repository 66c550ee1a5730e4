"""Winograd F(4x4, 3x3) convs: which convs take it, that its weight transform is folded into a
constant and its kernel scheduled, and that models match onnxruntime with it on and off."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
import tvm
from helpers import assert_matches_onnxruntime, init, make_model, vi
from onnx import TensorProto as TP
from onnx import helper

from teaclave_infer.builder.importer import input_shapes, to_relax
from teaclave_infer.builder.lower import WINOGRAD_TILE, lower
from teaclave_infer.builder.plan import kernel_functions, read_plan
from teaclave_infer.builder.schedule import default_schedule

rng = np.random.default_rng(5)
BLOCKS = ("data_rows", "data_pack", "bgemm", "inverse_rows", "inverse")
TRANSFORMS = ("data_rows", "data_pack", "inverse_rows", "inverse")


def conv(
    cin: int, cout: int, size: int, *, batch: int = 1, pad: int = 1, **attrs: object
) -> onnx.ModelProto:
    """Conv 3x3 + bias + Relu on a [batch, cin, size, size] input."""
    nodes = [
        helper.make_node(
            "Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[pad] * 4, **attrs
        ),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    group = int(attrs.get("group", 1))  # type: ignore[call-overload]
    weight = rng.standard_normal((cout, cin // group, 3, 3)).astype(np.float32)
    bias = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    inits = [init("w", (weight * np.sqrt(2 / (9 * cin))).astype(np.float32)), init("b", bias)]
    shape = [batch, cin, size, size]
    return make_model(nodes, [vi("x", TP.FLOAT, shape)], [vi("y", TP.FLOAT, None)], inits)


def two_convs(cin: int, mid: int, size: int, batch: int) -> onnx.ModelProto:
    """Two chained 3x3 convs (pad 0 then pad 1): the second reads the first's output."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], kernel_shape=[3, 3], pads=[1] * 4),
    ]
    inits = [
        init("w1", (rng.standard_normal((mid, cin, 3, 3)) * np.sqrt(2 / (9 * cin))).astype("f4")),
        init("w2", (rng.standard_normal((mid, mid, 3, 3)) * np.sqrt(2 / (9 * mid))).astype("f4")),
        init("b2", (rng.standard_normal(mid) * 0.1).astype(np.float32)),
    ]
    shape = [batch, cin, size, size]
    return make_model(nodes, [vi("x", TP.FLOAT, shape)], [vi("y", TP.FLOAT, None)], inits)


# name -> (model, whether its conv takes Winograd)
CASES = {
    "even_pad1_batch1": (conv(16, 32, 28), True),  # whole tiles
    "odd_pad1_batch2": (conv(32, 16, 13, batch=2), True),  # 13 = 3 tiles + 1: cut back
    "odd_pad0_batch1": (conv(16, 16, 9, pad=0), True),  # 7x7 output
    "even_pad0_batch2": (conv(20, 24, 10, batch=2, pad=0), True),  # 8x8: whole tiles
    "channels_not_4": (conv(18, 17, 11), True),  # scalar transforms, unblocked GEMM
    "chain": (two_convs(16, 16, 12, 2), True),
    "few_channels": (conv(3, 32, 12), False),  # < WINOGRAD_MIN_CHANNELS: direct
    "many_pairs": (conv(160, 128, 6), False),  # > WINOGRAD_MAX_PAIRS: direct
    "stride_2": (conv(16, 16, 12, strides=[2, 2]), False),
    "dilated": (conv(16, 16, 12, dilations=[2, 2], pad=2), False),
    "depthwise": (conv(16, 16, 12, group=16), False),
}


def _kernels(model: onnx.ModelProto, winograd: bool = True) -> dict[str, object]:
    mod = lower(to_relax(model, input_shapes(model, {})), winograd=winograd)
    funcs = kernel_functions(mod, read_plan(mod))
    return {gv.name_hint: f for gv, f in funcs.functions.items()}


def _block_names(func: object) -> set[str]:
    names: set[str] = set()
    script = func.script()  # type: ignore[attr-defined]
    for name in BLOCKS:
        if f'T.sblock("{name}")' in script:
            names.add(name)
    return names


@pytest.mark.parametrize("case", sorted(CASES))
def test_winograd_takes_the_convs_it_is_for(case):
    model, winograd = CASES[case]
    convs = {n: f for n, f in _kernels(model).items() if "conv" in n}
    assert convs
    for name, func in convs.items():
        assert (_block_names(func) == set(BLOCKS)) == winograd, name
        assert ("winograd" in name) == winograd, name
    assert all("winograd" not in n for n in _kernels(model, winograd=False))


def test_weight_transform_is_folded_into_a_constant():
    model, _ = CASES["even_pad1_batch1"]
    mod = lower(to_relax(model, input_shapes(model, {})))
    plan = read_plan(mod)
    alpha = WINOGRAD_TILE + 2
    shapes = [plan.tensors[t].shape for t in plan.constants]
    assert (alpha, alpha, 16, 32) in shapes  # [6, 6, CI, CO], computed at build time
    assert (32, 16, 3, 3) not in shapes  # the raw weight is gone
    assert len(plan.calls) == 1  # no weight transform left to run in the function


def test_transforms_sum_over_one_dimension_at_a_time():
    """B^T d B and A^T m A as two passes of 6 terms, not one of 36 (lower.py's _winograd)."""
    model, _ = CASES["even_pad1_batch1"]
    (func,) = [f for n, f in _kernels(model).items() if "winograd" in n]
    sch = tvm.s_tir.Schedule(tvm.IRModule({"main": func}))
    for name in TRANSFORMS:
        iters = sch.get(sch.get_sblock(name)).iter_vars
        reduce = [v for v in iters if int(v.iter_type) == tvm.tirx.IterVar.CommReduce]
        assert [int(v.dom.extent) for v in reduce] == [WINOGRAD_TILE + 2], name


SCHEDULED = {
    **{case: CASES[case][0] for case in ("even_pad1_batch1", "odd_pad1_batch2", "channels_not_4")},
    "wide": conv(480, 480, 4),  # one tile's intermediates exceed the block budget
}


@pytest.mark.parametrize("case", sorted(SCHEDULED))
def test_winograd_kernel_is_scheduled(case, monkeypatch):
    lowering = sys.modules[lower.__module__]
    monkeypatch.setattr(lowering, "WINOGRAD_MAX_PAIRS", 480 * 480)  # let "wide" qualify
    model = SCHEDULED[case]
    (func,) = [f for n, f in _kernels(model).items() if "winograd" in n]
    scheduled = default_schedule(func)
    assert not scheduled.same_as(func)
    script = scheduled.script()
    assert "T.unroll" in script  # the transforms' constant reductions
    allocations = [line.strip() for line in script.splitlines() if "alloc_buffer" in line]
    for name in ("data_rows", "inverse_rows"):  # a tile's rows pass stays local to it
        assert any(a.startswith(f"{name}_local = ") and 'scope="local"' in a for a in allocations)
    assert "T.vectorized" in script or case == "channels_not_4"  # lanes: 4 channels
    assert scheduled.attrs["global_symbol"] == func.attrs["global_symbol"]


# The profile changes how a kernel is scheduled (SIMD128 lanes or scalar code), not what it
# computes: the tile-edge cases (odd sizes, padding, batches) run in `fast`, and `teaclave` runs
# the cases that reach each of the schedule's paths (whole vectors of channels, and not).
BOTH_PROFILES = ("even_pad1_batch1", "channels_not_4", "few_channels", "many_pairs")
PROFILED = [(c, "fast") for c in sorted(CASES)] + [(c, "teaclave") for c in BOTH_PROFILES]


@pytest.mark.parametrize("winograd", [True, False])
@pytest.mark.parametrize(("case", "profile"), PROFILED)
def test_models_match_onnxruntime(tmp_path, case, profile, winograd):
    model, _ = CASES[case]
    (data,) = [i for i in model.graph.input if i.name == "x"]
    shape = [d.dim_value for d in data.type.tensor_type.shape.dim]
    feeds = {"x": rng.standard_normal(shape).astype(np.float32)}
    assert_matches_onnxruntime(tmp_path, model, feeds, profile=profile, winograd=winograd)
