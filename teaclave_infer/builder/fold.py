"""Constant folding: every `call_tir` whose arguments are all constants is run once on the
build machine and replaced by its result (batch norms folded into scales and shifts, Winograd
weights packed, ConstantOfShape weights materialised).

Relax's own FoldConstant does the same and gives bit-identical plans on MNIST and the ONNX light
models, but costs 9-20x more: 67 s against 7.8 s on DenseNet-121, 37 s against 3.9 s on
Inception v2, 23 s against 1.2 s on ShuffleNet (measured with apache-tvm 0.27, the same LLVM
host target). Here each kernel is compiled once however many calls share it, and a variable bound
to a constant is replaced by the constant, so a chain of folds (var + eps -> sqrt -> divide)
folds in one walk. Relax's pass still runs after this one, for what this one leaves (a call with
several outputs); on the models above it then finds nothing and takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

__all__ = ["fold_constants"]

_CALL_TIR = tvm.ir.Op.get("relax.call_tir")
_Const = tvm.ir.expr.GenericConst
_HOST = {"kind": "llvm"}  # the build machine: the constants are computed here, once


@mutator
class _Folder(PyExprMutator):
    def __init__(self, mod: tvm.IRModule) -> None:
        super().__init__(mod)
        self.source = mod
        self.kernels: dict[str, Callable[..., Any]] = {}

    def _kernel(self, gvar: tvm.ir.GlobalVar) -> Callable[..., Any]:
        if gvar.name_hint not in self.kernels:
            func = self.source[gvar].with_attr("global_symbol", "fold")
            built = tvm.compile(tvm.IRModule({"fold": func}), target=_HOST)
            self.kernels[gvar.name_hint] = built["fold"]
        return self.kernels[gvar.name_hint]

    def _bound(self, var: relax.Var) -> relax.Expr:
        value = self.lookup_binding(var)
        return value if isinstance(value, _Const) else var

    def visit_var_(self, var: relax.Var) -> relax.Expr:
        return self._bound(super().visit_var_(var))

    def visit_dataflow_var_(self, var: relax.DataflowVar) -> relax.Expr:
        return self._bound(super().visit_dataflow_var_(var))

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if not call.op.same_as(_CALL_TIR) or len(call.args) != 2:
            return call
        args, ty = call.args[1].fields, call.ty_args[0]
        if not isinstance(ty, relax.TensorType) or not all(isinstance(a, _Const) for a in args):
            return call
        out = tvm.runtime.empty([int(d) for d in ty.shape.values], str(ty.dtype))
        self._kernel(call.args[0])(*(a.value for a in args), out)
        return relax.const(out)


def _fold(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
    """`mod` with main's constant calls replaced by their results."""
    folded = _Folder(mod).visit_expr(mod["main"])
    mod = tvm.IRModule(dict(mod.functions.items()), attrs=mod.attrs)
    mod["main"] = folded
    return mod


fold_constants = tvm.transform.module_pass(_fold, opt_level=0, name="FoldConstants")
