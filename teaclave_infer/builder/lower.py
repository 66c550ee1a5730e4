"""Relax -> fused TIR kernels: after these passes `main` is a flat dataflow block of
`call_tir(kernel, args)` bindings, which is the execution plan."""

from __future__ import annotations

import tvm
from tvm import relax

from ..errors import UnsupportedModelError

__all__ = ["lower"]


def _passes() -> list[tvm.transform.Pass]:
    return [
        relax.transform.DecomposeOpsForInference(),  # batch norm etc. into arithmetic
        relax.transform.LegalizeOps(),  # every Relax op into a TIR PrimFunc
        relax.transform.AnnotateTIROpPattern(),  # elementwise / injective / reduction ...
        relax.transform.FoldConstant(),  # weights computed in the graph become constants
        relax.transform.FuseOps(),  # group kernels, e.g. conv + bias + relu
        relax.transform.FuseTIR(),  # each group into one PrimFunc
        relax.transform.DeadCodeElimination(),
    ]


def lower(mod: tvm.IRModule) -> tvm.IRModule:
    """Legalizes and fuses a Relax module."""
    try:
        with tvm.transform.PassContext(opt_level=3):
            return tvm.transform.Sequential(_passes())(mod)
    except Exception as err:  # TVM raises its own error types from C++
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise UnsupportedModelError(f"lowering the model failed: {first}") from err
