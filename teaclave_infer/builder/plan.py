"""The execution plan, read off a lowered module's `main`: tensors, constants, kernel calls, and
the graph's inputs and outputs. Everything after this stage is plain Python and numpy."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import tvm
from teaclave_client.vocabulary import DType
from tvm import relax, tirx

from ..errors import UnsupportedModelError

__all__ = ["Call", "Plan", "TensorSpec", "read_plan"]


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str  # numpy's name: "float32", "uint8", "bool"

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class Call:
    kernel: int  # index into Plan.kernels
    inputs: tuple[int, ...]  # tensor ids, then the outputs the kernel writes
    outputs: tuple[int, ...]

    @property
    def args(self) -> tuple[int, ...]:
        return self.inputs + self.outputs


@dataclass
class Plan:
    tensors: list[TensorSpec] = field(default_factory=list)
    constants: dict[int, np.ndarray] = field(default_factory=dict)  # tensor id -> value
    kernels: list[str] = field(default_factory=list)  # symbol names, in order of first call
    calls: list[Call] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)  # in ONNX order
    outputs: list[int] = field(default_factory=list)  # in ONNX order

    def add_tensor(self, spec: TensorSpec) -> int:
        self.tensors.append(spec)
        return len(self.tensors) - 1


_Value = int | list[int]  # a tensor, or a tuple of tensors (flattened)
_CALL_TIR = tvm.ir.Op.get("relax.call_tir")


def _spec(ty: object, what: str) -> TensorSpec:
    if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
        raise UnsupportedModelError(f"{what} has no static tensor type ({ty})")
    try:
        shape = tuple(int(d) for d in ty.shape.values)
    except TypeError as err:
        raise UnsupportedModelError(f"{what} has a symbolic shape {ty.shape}") from err
    return TensorSpec(shape, str(ty.dtype))


def _specs(ty: object, what: str) -> list[TensorSpec]:
    if isinstance(ty, relax.TupleType):
        return [s for f in ty.fields for s in _specs(f, what)]
    return [_spec(ty, what)]


class _Reader:
    """Walks `main` once, binding each Relax variable to tensor ids."""

    def __init__(self, mod: tvm.IRModule) -> None:
        self.mod = mod
        self.plan = Plan()
        self.env: dict[object, _Value] = {}
        self.consts: dict[object, int] = {}
        self.kernel_index: dict[str, int] = {}

    def flat(self, value: _Value) -> list[int]:
        return value if isinstance(value, list) else [value]

    def const(self, expr: tvm.ir.expr.GenericConst) -> int:
        if expr not in self.consts:
            array = expr.value.numpy()
            tid = self.plan.add_tensor(TensorSpec(tuple(array.shape), str(array.dtype)))
            self.plan.constants[tid] = np.ascontiguousarray(array)
            self.consts[expr] = tid
        return self.consts[expr]

    def expr(self, expr: object) -> _Value:
        if isinstance(expr, relax.Var):
            return self.env[expr]
        if isinstance(expr, tvm.ir.expr.GenericConst):
            return self.const(expr)
        if isinstance(expr, relax.Tuple):
            return [t for f in expr.fields for t in self.flat(self.expr(f))]
        if isinstance(expr, relax.TupleGetItem):
            return self.flat(self.expr(expr.tuple_value))[expr.index]
        if isinstance(expr, relax.Call) and expr.op.same_as(_CALL_TIR):
            return self.call_tir(expr)
        what = getattr(getattr(expr, "op", None), "name", type(expr).__name__)
        raise UnsupportedModelError(f"the lowered graph still contains {what}; it has no kernel")

    def call_tir(self, call: relax.Call) -> _Value:
        gvar, args = call.args[0], call.args[1]
        if len(call.args) > 2:
            raise UnsupportedModelError(f"kernel {gvar.name_hint} takes symbolic shape arguments")
        inputs = [t for a in args.fields for t in self.flat(self.expr(a))]
        outs = [self.plan.add_tensor(s) for s in _specs(call.ty_args[0], gvar.name_hint)]
        symbol = re.sub(r"\W", "_", gvar.name_hint)
        kernel = self.kernel_index.setdefault(symbol, len(self.plan.kernels))
        if kernel == len(self.plan.kernels):
            self.plan.kernels.append(symbol)
        self.plan.calls.append(Call(kernel, tuple(inputs), tuple(outs)))
        return outs if isinstance(call.ty_args[0], relax.TupleType) else outs[0]

    def read(self) -> Plan:
        main = self.mod["main"]
        for param in main.params:
            tid = self.plan.add_tensor(_spec(param.ty, f"input {param.name}"))
            self.env[param] = tid
            self.plan.inputs.append(tid)
        body = main.body
        for block in body.blocks:
            for binding in block.bindings:
                if not isinstance(binding, relax.VarBinding):
                    raise UnsupportedModelError(f"unexpected binding {type(binding).__name__}")
                self.env[binding.var] = self.expr(binding.value)
        self.plan.outputs = self.flat(self.expr(body.body))
        return self.plan


def kernel_functions(mod: tvm.IRModule, plan: Plan) -> tvm.IRModule:
    """The PrimFuncs the plan calls, each exported under its symbol name."""
    funcs = {}
    for gvar, func in mod.functions.items():
        symbol = re.sub(r"\W", "_", gvar.name_hint)
        if isinstance(func, tirx.PrimFunc) and symbol in plan.kernels:
            funcs[tvm.ir.GlobalVar(symbol)] = func.with_attr("global_symbol", symbol)
    return tvm.IRModule(funcs)


def read_plan(mod: tvm.IRModule) -> Plan:
    """Reads the execution plan off a lowered module's `main`."""
    plan = _Reader(mod).read()
    for tid, spec in enumerate(plan.tensors):
        if spec.dtype not in {d.value for d in DType}:
            raise UnsupportedModelError(f"tensor {tid} {list(spec.shape)} has dtype {spec.dtype}")
    return plan


def dl_dtype(dtype: str) -> tuple[int, int]:
    """numpy's dtype name -> DLPack (code, bits), as the runtime's tensor records carry them."""
    code, bits = DType(dtype).dlpack
    return int(code), bits
