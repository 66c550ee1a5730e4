"""Shared test helpers: small ONNX models built with onnx.helper, a build + run round trip, and the
onnxruntime reference every compiler test compares against."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper, numpy_helper

from teaclave_infer.executor import Limits, run

if TYPE_CHECKING:  # the builder (TVM) only where a test builds: the fast tier imports neither
    from teaclave_infer.builder import BuildResult

# Big models (VGG-19 embeds 550 MB of weights) need more than the executor's default limits.
TEST_LIMITS = Limits(deadline_s=600, memory_bytes=2 << 30)

RTOL, ATOL = 1e-3, 1e-4


def vi(name: str, dtype: int, shape: Sequence[int | str] | None) -> onnx.ValueInfoProto:
    """A typed graph input or output; shape None leaves it to shape inference."""
    return helper.make_tensor_value_info(name, dtype, None if shape is None else list(shape))


def init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array, name)


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    initializers: Sequence[onnx.TensorProto] = (),
    opset: int = 17,
) -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), "test", list(inputs), list(outputs), list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)  # fills output shapes
    onnx.checker.check_model(model, full_check=True)
    return model


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def build_model(
    tmp_path: Path, model: onnx.ModelProto | Path, name: str = "model", **options: object
) -> BuildResult:
    if isinstance(model, onnx.ModelProto):
        tmp_path.mkdir(parents=True, exist_ok=True)
        path = tmp_path / f"{name}.onnx"
        onnx.save(model, str(path))
    else:
        path = model
    from teaclave_infer.builder import BuildOptions, build

    return build(path, tmp_path / "out", BuildOptions(name=name, **options))  # type: ignore[arg-type]


def run_built(
    result: BuildResult, feeds: Mapping[str, np.ndarray], profile: str | None = None
) -> tuple[int, dict[str, np.ndarray]]:
    """Runs the function once with every input given (by ONNX name) and every output asked for;
    returns the return value and the outputs by ONNX name."""
    manifest = result.manifest
    files = {f"in_{i['id']}": npy(feeds[i["onnx_name"]]) for i in manifest["inputs"]}
    if result.weights is not None:
        files["weights"] = result.weights.read_bytes()
    arguments = {i["id"]: f"in_{i['id']}" for i in manifest["inputs"]}
    arguments |= {o["id"]: f"out_{o['id']}" for o in manifest["outputs"]}
    out = run(
        result.wasm.read_bytes(),
        arguments,
        files,
        [f"out_{o['id']}" for o in manifest["outputs"]],
        TEST_LIMITS,
        profile=profile or manifest["profile"]["name"],
    )
    assert out.ok, out.message
    assert out.return_value is not None
    outputs = {
        o["onnx_name"]: np.load(io.BytesIO(out.outputs[f"out_{o['id']}"]))
        for o in manifest["outputs"]
        if f"out_{o['id']}" in out.outputs
    }
    return out.return_value, outputs


def reference(
    model: onnx.ModelProto | Path, feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feeds)), strict=True))


def assert_matches_onnxruntime(
    tmp_path: Path,
    model: onnx.ModelProto | Path,
    feeds: Mapping[str, np.ndarray],
    **options: object,
) -> tuple[int, dict[str, np.ndarray]]:
    """Builds the model, runs it in the sandbox and checks every output against onnxruntime, and
    the return value against the manifest's rule."""
    result = build_model(tmp_path, model, **options)
    rv, outputs = run_built(result, feeds)
    expected = reference(model, feeds)
    assert outputs.keys() == expected.keys()
    for name, want in expected.items():
        got = outputs[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=name)
    first = expected[next(iter(expected))]
    if result.manifest["return_value"] == "0":
        assert rv == 0
    else:
        assert rv == int(np.argmax(first))
    return rv, outputs
