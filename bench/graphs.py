"""The benchmarks' models and what is counted on them: the graphs made here with onnx.helper
(random weights, fixed seeds), the repository's MNIST, ResNet-50 from onnx's light models; a
batch rewrite and a FLOP count. Shared by bench/models.py, bench/kernels.py and bench/winograd.py.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "builder")]

from test_light_models import LIGHT, randomized  # noqa: E402

from teaclave_infer.builder.importer import graph_inputs  # noqa: E402

__all__ = ["MODELS", "cnn24", "data_input", "flop_count", "mnist8", "with_batch"]


def _weights(seed: int) -> Callable[..., TensorProto]:
    """A maker of initializers uniform in +-sqrt(3 / fan-in), fan-in being the product of all
    dims but the first unless given, or +-0.1 for a bias (a vector, or bias=True), from `seed`."""
    rng = np.random.default_rng(seed)

    def weight(name: str, *shape: int, bias: bool = False, fan_in: int = 0) -> TensorProto:
        fan_in = fan_in or math.prod(shape[1:])
        bound = 0.1 if bias or len(shape) == 1 else math.sqrt(3.0 / fan_in)
        return numpy_helper.from_array(rng.uniform(-bound, bound, shape).astype(np.float32), name)

    return weight


def _model(name: str, nodes: list[onnx.NodeProto], inits: list[TensorProto]) -> onnx.ModelProto:
    """One 1x1x28x28 input `x`, one 1x10 output `scores`, opset 17, checked."""
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model


def cnn24(seed: int = 0) -> onnx.ModelProto:
    """Conv 1->32 3x3 + Relu, Conv 32->64 3x3 + Relu, MaxPool 2x2, Flatten, Gemm 9216->128 + Relu,
    Gemm 128->10: about 24 MFLOP per image."""
    weight = _weights(seed)
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
    return _model("cnn24", nodes, inits)


def mnist8(seed: int = 0) -> onnx.ModelProto:
    """The ONNX model zoo's mnist-8 structure: Conv 1->8 5x5 same, + bias, Relu, MaxPool 2x2
    stride 2; Conv 8->16 5x5 same, + bias, Relu, MaxPool 3x3 stride 3; Reshape to (1, 256);
    MatMul 256x10, + bias. The biases are separate Adds of (C, 1, 1) as in the zoo's file; the
    same padding is explicit pads of 2 (the zoo's SAME_UPPER pads 2 on each side too).
    About 1.57 MFLOP per image."""
    weight = _weights(seed)
    inits = [weight("w1", 8, 1, 5, 5), weight("b1", 8, 1, 1, bias=True)]
    inits += [weight("w2", 16, 8, 5, 5), weight("b2", 16, 1, 1, bias=True)]
    inits += [weight("w3", 256, 10, fan_in=256), weight("b3", 1, 10, bias=True)]
    inits.append(numpy_helper.from_array(np.array([1, 256], np.int64), "flat_shape"))
    same = {"kernel_shape": [5, 5], "pads": [2, 2, 2, 2]}
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], **same),
        helper.make_node("Add", ["c1", "b1"], ["a1"]),
        helper.make_node("Relu", ["a1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], **same),
        helper.make_node("Add", ["c2", "b2"], ["a2"]),
        helper.make_node("Relu", ["a2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[3, 3], strides=[3, 3]),
        helper.make_node("Reshape", ["p2", "flat_shape"], ["f"]),
        helper.make_node("MatMul", ["f", "w3"], ["m"]),
        helper.make_node("Add", ["m", "b3"], ["scores"]),
    ]
    return _model("mnist8", nodes, inits)


MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "mnist8": mnist8,
    "cnn24": cnn24,
    "mnist": lambda: onnx.load(str(REPO / "functions" / "mnist" / "mnist.onnx")),
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
