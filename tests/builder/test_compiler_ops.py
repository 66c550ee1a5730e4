"""Small models built with onnx.helper, compiled to wasm, run in the sandbox and compared with
onnxruntime, in both weight modes and both profiles."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
import pytest
from helpers import assert_matches_onnxruntime, init, make_model, vi
from onnx import TensorProto as TP
from onnx import helper

rng = np.random.default_rng(7)
Case = tuple[onnx.ModelProto, dict[str, np.ndarray]]


def rand(*shape: int, dtype: str = "float32") -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def node(op: str, ins: list[str], outs: list[str], **attrs: object) -> onnx.NodeProto:
    return helper.make_node(op, ins, outs, **attrs)


def conv_groups_strides_padding() -> Case:
    return make_model(
        [
            node("Conv", ["x", "w1", "b1"], ["c1"], group=2, strides=[2, 2], pads=[1, 2, 1, 0]),
            node("Conv", ["c1", "w2"], ["c2"], group=6, dilations=[2, 2], pads=[2, 2, 2, 2]),
            node("Conv", ["c2", "w3", "b3"], ["y"], kernel_shape=[1, 1]),
        ],
        [vi("x", TP.FLOAT, [1, 4, 13, 11])],
        [vi("y", TP.FLOAT, None)],
        [
            init("w1", rand(6, 2, 3, 3)),
            init("b1", rand(6)),
            init("w2", rand(6, 1, 3, 3)),
            init("w3", rand(5, 6, 1, 1)),
            init("b3", rand(5)),
        ],
    ), {"x": rand(1, 4, 13, 11)}


def pooling() -> Case:
    return make_model(
        [
            node("MaxPool", ["x"], ["m"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
            node(
                "AveragePool",
                ["m"],
                ["a"],
                kernel_shape=[2, 2],
                pads=[1, 1, 0, 0],
                count_include_pad=0,
            ),
            node("GlobalAveragePool", ["a"], ["g"]),
            node("GlobalMaxPool", ["m"], ["h"]),
            node("Add", ["g", "h"], ["y"]),
        ],
        [vi("x", TP.FLOAT, [1, 3, 15, 15])],
        [vi("y", TP.FLOAT, [1, 3, 1, 1])],
    ), {"x": rand(1, 3, 15, 15)}


def gemm_matmul() -> Case:
    return make_model(
        [
            node("Gemm", ["x", "w", "b"], ["g"], transB=1, alpha=0.5, beta=2.0),
            node("MatMul", ["g", "m"], ["y"]),
        ],
        [vi("x", TP.FLOAT, [2, 20])],
        [vi("y", TP.FLOAT, [2, 7])],
        [init("w", rand(16, 20)), init("b", rand(16)), init("m", rand(16, 7))],
    ), {"x": rand(2, 20)}


def batchnorm_after_conv() -> Case:
    return make_model(
        [
            node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            node("BatchNormalization", ["c", "s", "bias", "mean", "var"], ["y"], epsilon=1e-3),
        ],
        [vi("x", TP.FLOAT, [1, 3, 8, 8])],
        [vi("y", TP.FLOAT, [1, 4, 8, 8])],
        [
            init("w", rand(4, 3, 3, 3)),
            init("s", rand(4)),
            init("bias", rand(4)),
            init("mean", rand(4)),
            init("var", np.abs(rand(4)) + 0.5),
        ],
    ), {"x": rand(1, 3, 8, 8)}


def shape_ops() -> Case:
    shape = np.array([1, 12, 10], dtype=np.int64)
    return make_model(
        [
            node("Add", ["x", "bias"], ["a"]),  # broadcast [4] over [1, 3, 5, 4]
            node("Mul", ["a", "scale"], ["m"]),  # broadcast [3, 1, 1]
            node("Transpose", ["m"], ["t"], perm=[0, 2, 1, 3]),
            node("Concat", ["t", "t"], ["c"], axis=2),
            node("Reshape", ["c", "shape"], ["r"]),
            node("Flatten", ["r"], ["y"], axis=2),
        ],
        [vi("x", TP.FLOAT, [1, 3, 5, 4])],
        [vi("y", TP.FLOAT, [12, 10])],  # Flatten(axis=2) of [1, 12, 10]
        [init("bias", rand(4)), init("scale", rand(3, 1, 1)), init("shape", shape)],
    ), {"x": rand(1, 3, 5, 4)}


def activations() -> Case:
    return make_model(
        [
            node("Clip", ["x", "lo", "hi"], ["c"]),
            node("Sigmoid", ["c"], ["s"]),
            node("Tanh", ["x"], ["t"]),
            node("Add", ["s", "t"], ["a"]),
            node("Softmax", ["a"], ["y"], axis=-1),
        ],
        [vi("x", TP.FLOAT, [1, 12])],
        [vi("y", TP.FLOAT, [1, 12])],
        [init("lo", np.array(-0.5, np.float32)), init("hi", np.array(0.8, np.float32))],
    ), {"x": rand(1, 12) * 3}


def uint8_input_cast() -> Case:
    return make_model(
        [
            node("Cast", ["img"], ["f"], to=TP.FLOAT),
            node("Div", ["f", "k"], ["n"]),
            node("Conv", ["n", "w"], ["c"]),
            node("Relu", ["c"], ["r"]),
            node("Flatten", ["r"], ["y"]),
        ],
        [vi("img", TP.UINT8, [1, 1, 6, 6])],
        [vi("y", TP.FLOAT, [1, 32])],
        [init("k", np.array(255.0, np.float32)), init("w", rand(2, 1, 3, 3))],
    ), {"img": rng.integers(0, 256, (1, 1, 6, 6), dtype=np.uint8)}


def batch_of_three() -> Case:
    return make_model(
        [
            node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
            node("Relu", ["c"], ["r"]),
            node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
            node("Flatten", ["p"], ["f"]),
            node("Gemm", ["f", "d"], ["y"]),
        ],
        [vi("x", TP.FLOAT, [3, 2, 8, 8])],
        [vi("y", TP.FLOAT, [3, 10])],
        [init("w", rand(4, 2, 3, 3)), init("b", rand(4)), init("d", rand(64, 10))],
    ), {"x": rand(3, 2, 8, 8)}


def two_inputs_two_outputs() -> Case:
    return make_model(
        [
            node("MatMul", ["a", "b"], ["m"]),
            node("Softmax", ["m"], ["probs"]),
            node("ArgMax", ["m"], ["label"], axis=1, keepdims=0),
        ],
        [vi("a", TP.FLOAT, [1, 5]), vi("b", TP.FLOAT, [5, 9])],
        [vi("probs", TP.FLOAT, [1, 9]), vi("label", TP.INT64, [1])],
    ), {"a": rand(1, 5), "b": rand(5, 9)}


def int_output_first() -> Case:
    """The first output is not a float vector, so the return value is 0."""
    return make_model(
        [node("ArgMax", ["x"], ["i"], axis=1, keepdims=1), node("Neg", ["x"], ["n"])],
        [vi("x", TP.FLOAT, [1, 6])],
        [vi("i", TP.INT64, [1, 1]), vi("n", TP.FLOAT, [1, 6])],
    ), {"x": rand(1, 6)}


def bool_and_where() -> Case:
    """A bool tensor crosses kernel boundaries and leaves as an output."""
    return make_model(
        [
            node("Greater", ["x", "t"], ["mask"]),
            node("Where", ["mask", "x", "z"], ["y"]),
            node("Not", ["mask"], ["inv"]),
        ],
        [vi("x", TP.FLOAT, [2, 7])],
        [vi("y", TP.FLOAT, None), vi("inv", TP.BOOL, None)],
        [init("t", np.array(0.1, np.float32)), init("z", rand(2, 7))],
    ), {"x": rand(2, 7)}


CASES: dict[str, Callable[[], Case]] = {
    f.__name__: f
    for f in [
        conv_groups_strides_padding,
        pooling,
        gemm_matmul,
        batchnorm_after_conv,
        shape_ops,
        activations,
        uint8_input_cast,
        batch_of_three,
        two_inputs_two_outputs,
        int_output_first,
        bool_and_where,
    ]
}


@pytest.mark.parametrize("weights", ["embedded", "separate"])
@pytest.mark.parametrize("profile", ["fast", "teaclave"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_onnxruntime(tmp_path, case, profile, weights):
    model, feeds = CASES[case]()
    assert_matches_onnxruntime(tmp_path, model, feeds, profile=profile, weights=weights)


def test_return_value_is_the_argmax_of_a_score_vector(tmp_path):
    model, feeds = activations()
    rv, outputs = assert_matches_onnxruntime(tmp_path, model, feeds)
    assert rv == int(np.argmax(outputs["y"]))


def test_kernels_with_scratch_space_use_the_workspace_hooks(tmp_path):
    """A softmax over 3000 values needs scratch buffers too big for the stack: TVM asks the
    runtime's workspace allocator for them."""
    model = make_model(
        [node("Softmax", ["x"], ["y"])], [vi("x", TP.FLOAT, [1, 3000])], [vi("y", TP.FLOAT, None)]
    )
    assert_matches_onnxruntime(tmp_path, model, {"x": rand(1, 3000) * 4}, keep=True)
    kernels = (tmp_path / "out" / "model.build" / "kernels.o").read_bytes()
    assert b"__TVMBackendAllocWorkspace" in kernels
