"""Load and check an ONNX model, resolve static input shapes, import it into Relax."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx
import tvm
from teaclave_client.vocabulary import DType
from tvm.relax.frontend.onnx import from_onnx, onnx_frontend

from ..errors import ModelLoadError, UnsupportedModelError

__all__ = ["graph_inputs", "input_shapes", "load_onnx", "named_by_onnx", "to_relax"]

# ONNX element types the runtime can read and write (.npy descr and DLPack code exist for each).
SUPPORTED_DTYPES = {d.onnx_type: d for d in DType}


def load_onnx(path: Path) -> onnx.ModelProto:
    """Reads and checks an ONNX file; every operator must be one the importer knows."""
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(str(path))  # from the file: a proto would be serialized again
    except FileNotFoundError as err:
        raise ModelLoadError(f"{path}: no such file") from err
    except Exception as err:  # onnx raises DecodeError, ValidationError, OSError...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelLoadError(f"{path}: not a valid ONNX model: {first}") from err
    known = onnx_frontend._get_convert_map()
    unknown = sorted({n.op_type for n in model.graph.node if n.op_type not in known})
    if unknown:
        raise UnsupportedModelError(f"{path}: unsupported ONNX operator(s): {', '.join(unknown)}")
    return model


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The model's real inputs, in ONNX order (initializers listed as inputs are not inputs)."""
    initializers = {init.name for init in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def _static_shape(info: onnx.ValueInfoProto, override: Sequence[int] | None) -> list[int]:
    dims = info.type.tensor_type.shape.dim
    if override is not None:
        if len(override) != len(dims) or any(n <= 0 for n in override):
            raise UnsupportedModelError(
                f"--shape {info.name}: expected {len(dims)} positive dims, got {list(override)}"
            )
        fixed = [(d.dim_value, n) for d, n in zip(dims, override, strict=True) if d.dim_value > 0]
        if any(a != b for a, b in fixed):
            raise UnsupportedModelError(f"--shape {info.name}: contradicts the model's shape")
        return list(override)
    if any(d.dim_value <= 0 for d in dims):
        shown = ",".join(d.dim_param or "?" if d.dim_value <= 0 else str(d.dim_value) for d in dims)
        raise UnsupportedModelError(
            f"input {info.name!r} has a dynamic shape [{shown}]: "
            f"pass --shape {info.name}=N,... with every dimension fixed"
        )
    return [d.dim_value for d in dims]


def input_shapes(
    model: onnx.ModelProto, overrides: Mapping[str, Sequence[int]]
) -> dict[str, list[int]]:
    """Static shapes of all graph inputs; every dimension must be known or given."""
    inputs = graph_inputs(model)
    unknown = set(overrides) - {i.name for i in inputs}
    if unknown:
        raise UnsupportedModelError(f"--shape names no input of the model: {sorted(unknown)}")
    shapes = {}
    for info in inputs:
        elem = info.type.tensor_type.elem_type
        if elem not in SUPPORTED_DTYPES:
            name = onnx.TensorProto.DataType.Name(elem)
            raise UnsupportedModelError(f"input {info.name!r} has unsupported dtype {name}")
        shapes[info.name] = _static_shape(info, overrides.get(info.name))
    return shapes


def to_relax(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]) -> tvm.IRModule:
    """Imports the model into Relax with the given static input shapes."""
    try:
        return from_onnx(model, shape_dict={k: list(v) for k, v in shapes.items()})
    except Exception as err:  # the frontend raises bare TVMError/ValueError/KeyError
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise UnsupportedModelError(f"the ONNX importer rejected the model: {first}") from err


def _static(info: onnx.ValueInfoProto) -> bool:
    tensor = info.type.tensor_type
    return tensor.HasField("shape") and all(d.HasField("dim_value") for d in tensor.shape.dim)


def data_dependent_nodes(
    model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]
) -> list[onnx.NodeProto]:
    """The nodes, in graph order, whose output shape ONNX's shape inference cannot tell from
    the static input shapes: the size of their output depends on the data (NonMaxSuppression,
    NonZero...), and a function's tensors all have static shapes."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    for info in fixed.graph.input:
        for dim, size in zip(
            info.type.tensor_type.shape.dim, shapes.get(info.name, ()), strict=False
        ):
            dim.Clear()
            dim.dim_value = size
    try:
        inferred = onnx.shape_inference.infer_shapes(fixed)
    except Exception:  # onnx raises several kinds; inference is only a hint here
        return []
    graph = inferred.graph
    infos = {v.name: v for v in (*graph.value_info, *graph.output)}
    return [n for n in graph.node if any(o in infos and not _static(infos[o]) for o in n.output)]


def named_by_onnx(
    err: UnsupportedModelError, model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]
) -> UnsupportedModelError:
    """A failure of lowering or planning, which names Relax's ops (`relax.tensor_to_shape`),
    said in the model's words: the ONNX operator and node at fault, where one is found."""
    nodes = data_dependent_nodes(model, shapes)
    if not nodes:
        return err
    node = nodes[0]
    return UnsupportedModelError(
        f"ONNX operator {node.op_type} (node {node.name or node.output[0]!r}) is not supported: "
        f"the shape of its output depends on the input data, and a function's tensors have "
        f"static shapes ({err})"
    )
