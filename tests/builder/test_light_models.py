"""The 9 real architectures ONNX ships in onnx/backend/test/data/light, compiled and compared
with onnxruntime: squeezenet in both weight modes, the big ones in one each.

These files build every weight with ConstantOfShape (one value repeated), which makes most
outputs uniform and a comparison nearly blind. Each test first replaces those weights with
seeded random ones, scaled by fan-in, so that every channel carries a different signal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import assert_matches_onnxruntime
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from teaclave_infer.builder.importer import graph_inputs

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
QUICK = {"light_squeezenet"}  # small enough for the default tier
MODELS = sorted(p.stem for p in LIGHT.glob("light_*.onnx"))


def randomized(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """The model with each ConstantOfShape weight replaced by a random initializer."""
    rng = np.random.default_rng(seed)
    inits = {i.name: i for i in model.graph.initializer}
    graph = model.graph
    for node in [n for n in graph.node if n.op_type == "ConstantOfShape" and n.input[0] in inits]:
        shape = tuple(int(d) for d in numpy_helper.to_array(inits[node.input[0]]))
        value = rng.random(shape, dtype=np.float32)  # in float32: VGG-19 has 143M weights
        if len(shape) >= 2:  # in place: VGG-19's largest weight is 400 MB
            value *= 2
            value -= 1
            value *= np.float32(np.sqrt(3.0 / np.prod(shape[1:])))
        else:  # biases, batch-norm scales and variances: positive, near 1
            value += 0.5
        graph.initializer.append(numpy_helper.from_array(value, node.output[0]))
        # IR version 3 files must list every initializer as a graph input
        graph.input.append(helper.make_tensor_value_info(node.output[0], TP.FLOAT, shape))
        graph.node.remove(node)
        graph.initializer.remove(inits[node.input[0]])
    used = {i.name for i in graph.initializer}
    for vi in [i for i in graph.input if i.name not in used and i.name.endswith("__SHAPE")]:
        graph.input.remove(vi)
    return model


def cases() -> list:
    """Each quick model in both weight modes; each big one in one mode, alternating: the two
    modes share every kernel and differ in where the weights come from, and each mode still meets
    the big weights (this halves the slow tier, minutes of builds)."""
    modes = ("embedded", "separate")
    quick = [(n, w) for n in MODELS if n in QUICK for w in modes]
    big = [n for n in MODELS if n not in QUICK]
    slow = [pytest.param(n, modes[i % 2], marks=pytest.mark.slow) for i, n in enumerate(big)]
    return quick + slow


@pytest.mark.parametrize(("name", "weights"), cases())
def test_light_model_matches_onnxruntime(tmp_path, name, weights):
    model = randomized(onnx.load(str(LIGHT / f"{name}.onnx")))
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    (data,) = graph_inputs(model)
    shape = [d.dim_value for d in data.type.tensor_type.shape.dim]
    x = np.random.default_rng(1).uniform(0, 1, shape).astype(np.float32)
    assert_matches_onnxruntime(tmp_path, path, {data.name: x}, name=name, weights=weights)
