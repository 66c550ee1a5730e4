"""fold.py's constant folding gives the plan Relax's FoldConstant gives, bit for bit: the same
calls and the same constants (batch norm folded, a Winograd weight packed, a ConstantOfShape
weight materialised)."""

from __future__ import annotations

import importlib

import numpy as np
import tvm
from helpers import init, make_model, vi
from onnx import TensorProto as TP
from onnx import helper

from teaclave_infer.builder.fold import fold_constants
from teaclave_infer.builder.importer import input_shapes, to_relax
from teaclave_infer.builder.plan import Plan, read_plan

lowering = importlib.import_module("teaclave_infer.builder.lower")  # the package exports lower()


def _model():
    rng = np.random.default_rng(0)
    c = 16  # enough channels for Winograd (lower.WINOGRAD_MIN_CHANNELS)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["y", "s", "b", "m", "v"], ["z"]),
        helper.make_node(
            "ConstantOfShape",
            ["shape"],
            ["ones"],
            value=helper.make_tensor("one", TP.FLOAT, [1], [1.5]),
        ),
        helper.make_node("Mul", ["z", "ones"], ["out"]),
    ]
    inits = [
        init("w", rng.standard_normal((c, c, 3, 3)).astype(np.float32)),
        init("s", rng.uniform(0.5, 1.5, c).astype(np.float32)),
        init("b", rng.standard_normal(c).astype(np.float32)),
        init("m", rng.standard_normal(c).astype(np.float32)),
        init("v", rng.uniform(0.5, 1.5, c).astype(np.float32)),
        init("shape", np.array([1, c, 1, 1], dtype=np.int64)),
    ]
    return make_model(nodes, [vi("x", TP.FLOAT, [1, c, 8, 8])], [vi("out", TP.FLOAT, None)], inits)


def _plan(passes) -> Plan:
    model = _model()
    mod = to_relax(model, input_shapes(model, {}))
    with tvm.transform.PassContext(opt_level=3):
        return read_plan(tvm.transform.Sequential(passes)(mod))


def test_folding_gives_relax_foldconstants_plan_bit_for_bit():
    ours = lowering._passes(winograd=True)
    assert fold_constants in ours
    theirs = [p for p in ours if p is not fold_constants]
    a, b = _plan(ours), _plan(theirs)
    assert [a.kernels[c.kernel] for c in a.calls] == [b.kernels[c.kernel] for c in b.calls]
    assert any("winograd" in k for k in a.kernels)  # the packed weight was folded, not run
    assert not any("batch_norm" in k or "full" in k for k in a.kernels)
    ka, kb = (sorted(p.constants.items()) for p in (a, b))
    assert len(ka) == len(kb) >= 3
    for (_, x), (_, y) in zip(ka, kb, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
