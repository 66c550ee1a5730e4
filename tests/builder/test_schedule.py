"""The default schedules: each rule applies to the kernels it is meant for (a vectorized loop
appears), and every model still matches onnxruntime, scheduled or not, in both profiles."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tvm
from helpers import assert_matches_onnxruntime, init, make_model, vi
from onnx import TensorProto as TP
from onnx import helper
from tvm import s_tir, tirx

from teaclave_infer.builder.importer import input_shapes, to_relax
from teaclave_infer.builder.lower import lower
from teaclave_infer.builder.plan import kernel_functions, read_plan
from teaclave_infer.builder.schedule import UNROLL_STEPS, default_schedule

rng = np.random.default_rng(11)


def rand(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def conv(
    cin: int, cout: int, size: int, *, bias: bool = True, relu: bool = True, **attrs: object
) -> onnx.ModelProto:
    """One Conv (+ Relu) on a [2, cin, size, size] input: its kernel is the test's subject."""
    ins = ["x", "w", "b"] if bias else ["x", "w"]
    nodes = [helper.make_node("Conv", ins, ["c"], kernel_shape=[3, 3], **attrs)]
    if relu:
        nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    group = int(attrs.get("group", 1))  # type: ignore[call-overload]
    inits = [init("w", rand(cout, cin // group, 3, 3) * 0.3)]
    if bias:
        inits.append(init("b", rand(cout)))
    out = "y" if relu else "c"
    return make_model(
        nodes, [vi("x", TP.FLOAT, [2, cin, size, size])], [vi(out, TP.FLOAT, None)], inits
    )


def dense(batch: int, k: int, n: int) -> onnx.ModelProto:
    return make_model(
        [
            helper.make_node("Gemm", ["x", "w", "b"], ["g"], transB=1),
            helper.make_node("Relu", ["g"], ["y"]),
        ],
        [vi("x", TP.FLOAT, [batch, k])],
        [vi("y", TP.FLOAT, None)],
        [init("w", rand(n, k) * 0.1), init("b", rand(n))],
    )


def pools(size: int) -> onnx.ModelProto:
    return make_model(
        [
            helper.make_node("MaxPool", ["x"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
            helper.make_node("GlobalAveragePool", ["m"], ["y"]),
        ],
        [vi("x", TP.FLOAT, [1, 8, size, size])],
        [vi("y", TP.FLOAT, None)],
    )


# name -> (model, whether its heaviest kernel must come out vectorized)
CASES = {
    "conv_rows_of_28": (conv(8, 8, 28, pads=[1, 1, 1, 1]), True),  # row vectors
    "conv_7x7_channel_lanes": (conv(8, 16, 9), True),  # 7x7 out: NCHW4c accumulator
    "conv_14x14_no_bias_no_relu": (conv(4, 8, 16, bias=False, relu=False), True),  # cache_write
    "conv_stride_2": (conv(8, 8, 18, strides=[2, 2], pads=[1, 1, 1, 1]), True),
    "conv_depthwise": (conv(8, 8, 12, group=8, pads=[1, 1, 1, 1]), True),
    "conv_odd_channels": (conv(3, 5, 11), False),  # no axis divides by 4: left to LLVM
    "dense_batch_8": (dense(8, 96, 64), True),
    "dense_10_columns": (dense(1, 576, 10), False),
    "dense_batch_1": (dense(1, 300, 96), True),  # 8 vectors of the one row
    "pools": (pools(12), False),
}


def _kernels(model: onnx.ModelProto) -> dict[str, object]:
    mod = lower(to_relax(model, input_shapes(model, {})))
    funcs = kernel_functions(mod, read_plan(mod))
    return {gv.name_hint: f for gv, f in funcs.functions.items()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rules_apply_to_their_kernels(case):
    model, vectorized = CASES[case]
    kernels = _kernels(model)
    heaviest = next(
        (n for n in kernels if "conv" in n or "matmul" in n or "pool" in n), next(iter(kernels))
    )
    scheduled = default_schedule(kernels[heaviest])
    assert not scheduled.same_as(kernels[heaviest]) or not vectorized
    assert ("T.vectorized" in scheduled.script()) == vectorized, heaviest
    assert scheduled.attrs["global_symbol"] == kernels[heaviest].attrs["global_symbol"]


def test_a_register_block_takes_several_reduction_steps_an_iteration():
    """Wasmtime's epoch check at each loop header spills the accumulators: a dense layer's
    reduction over 300 runs as 300 / UNROLL_STEPS iterations of UNROLL_STEPS unrolled steps."""
    kernels = _kernels(CASES["dense_batch_1"][0])
    (name,) = [n for n in kernels if "matmul" in n]
    sch = s_tir.Schedule(tvm.IRModule({"main": default_schedule(kernels[name])}))
    loops = [sch.get(lp) for lp in sch.get_loops(sch.get_sblock("matmul_update"))]
    nest = [(int(lp.extent), lp.kind) for lp in loops]
    steps = (300 // UNROLL_STEPS, tirx.ForKind.SERIAL), (UNROLL_STEPS, tirx.ForKind.UNROLLED)
    assert UNROLL_STEPS > 1
    assert any(tuple(nest[i : i + 2]) == steps for i in range(len(nest) - 1)), nest


def _allocated(func: tirx.PrimFunc) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in b.shape) for b in func.body.block.alloc_buffers]


def test_channel_lanes_read_a_copy_of_the_weight_with_its_lanes_innermost():
    """A 7x7 output takes its lanes from the output channels: the weight [16, 8, 3, 3] is read
    from a copy laid out [16/4, 8, 3, 3, 4], one vector a step; a grouped conv's input needs
    the output channel too, so it keeps the gathered reads and no copy."""
    kernels = _kernels(CASES["conv_7x7_channel_lanes"][0])
    (name,) = [n for n in kernels if "conv" in n]
    assert (4, 8, 3, 3, 4) in _allocated(default_schedule(kernels[name]))
    grouped = _kernels(conv(8, 8, 9, group=2))  # 7x7 out; the input's channel needs the lanes
    (name,) = [n for n in grouped if "conv" in n]
    scheduled = default_schedule(grouped[name])
    assert "T.vectorized" in scheduled.script()  # lanes from the channels, but no copy
    assert (2, 4, 3, 3, 4) not in _allocated(scheduled)


@pytest.mark.parametrize("schedule", ["default", "none"])
@pytest.mark.parametrize("profile", ["fast", "teaclave"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_scheduled_models_match_onnxruntime(tmp_path, case, profile, schedule):
    model, _ = CASES[case]
    (data,) = [i for i in model.graph.input if i.name == "x"]
    shape = [d.dim_value for d in data.type.tensor_type.shape.dim]
    feeds = {"x": rand(*shape)}
    assert_matches_onnxruntime(tmp_path, model, feeds, profile=profile, schedule=schedule)
