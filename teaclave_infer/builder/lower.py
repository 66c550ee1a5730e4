"""Relax -> fused TIR kernels: after these passes `main` is a flat dataflow block of
`call_tir(kernel, args)` bindings, which is the execution plan.

With `winograd`, a 3x3 stride-1 float32 conv whose weight is a constant, whose channels are both
at least WINOGRAD_MIN_CHANNELS and whose channel pairs are at most WINOGRAD_MAX_PAIRS becomes
Winograd F(4x4, 3x3): the weight transform is a separate call on the constant, folded by fold.py
into the packed weight [6, 6, CI, CO]; the kernel keeps the input transform, the 36 batched GEMMs
and the inverse transform, each transform a dimension at a time (`_winograd`; schedule.py's
`_winograd` schedules it). 4x fewer multiplies than the direct conv.
"""

from __future__ import annotations

from collections.abc import Callable

import tvm
from tvm import relax, te, topi
from tvm.topi.nn.winograd_util import winograd_transform_matrices

from ..errors import UnsupportedModelError
from .fold import fold_constants

__all__ = ["WINOGRAD_MAX_PAIRS", "WINOGRAD_MIN_CHANNELS", "WINOGRAD_TILE", "lower"]

# F(4x4, 3x3) beat F(2x2, 3x3) on every MNIST conv (measured in wasmtime: 0.40 vs 0.44 ms at
# 32->32@28, 0.095 vs 0.135 ms at 64->64@7) and matches onnxruntime at rtol 1e-3, atol 1e-4.
WINOGRAD_TILE = 4
# Below this (MNIST's 1->32 conv) the transforms cost more than the multiplies saved: 3x slower.
WINOGRAD_MIN_CHANNELS = 16
# The packed weight holds 36 values per channel pair where the direct conv holds 9. Above this
# many pairs the conv stays direct: ResNet-50's 256- and 512-channel convs would double its
# weights (102 -> 201 MB, in memory at every call) for kernels 1.7-2.4x faster; with this cap its
# weights grow by 8% (its 64- and 128-channel convs: 1.5-1.6x faster).
WINOGRAD_MAX_PAIRS = 128 * 128


def _passes(winograd: bool) -> list[tvm.transform.Pass]:
    custom = {"relax.nn.conv2d": _legalize_conv2d} if winograd else None
    return [
        relax.transform.DecomposeOpsForInference(),  # batch norm etc. into arithmetic
        relax.transform.LegalizeOps(custom),  # every Relax op into a TIR PrimFunc
        relax.transform.AnnotateTIROpPattern(),  # elementwise / injective / reduction ...
        fold_constants,  # weights computed in the graph become constants (fold.py)
        relax.transform.FoldConstant(),  # what fold_constants leaves (calls with several outputs)
        relax.transform.FuseOps(),  # group kernels, e.g. conv + bias + relu
        relax.transform.FuseTIR(),  # each group into one PrimFunc
        relax.transform.DeadCodeElimination(),
    ]


def lower(mod: tvm.IRModule, winograd: bool = True) -> tvm.IRModule:
    """Legalizes and fuses a Relax module; `winograd`: 3x3 convs that qualify become Winograd."""
    try:
        with tvm.transform.PassContext(opt_level=3):
            return tvm.transform.Sequential(_passes(winograd))(mod)
    except Exception as err:  # TVM raises its own error types from C++
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise UnsupportedModelError(f"lowering the model failed: {first}") from err


def _ints(values: tvm.ir.Array) -> list[int]:
    return [int(v) for v in values]


def _qualifies(call: relax.Call) -> bool:
    data, weight = call.args
    attrs = call.attrs
    if not isinstance(weight, tvm.ir.expr.GenericConst):
        return False
    shape = _ints(weight.ty.shape.values)
    return (
        (attrs.data_layout, attrs.kernel_layout, attrs.out_layout) == ("NCHW", "OIHW", "NCHW")
        and str(data.ty.dtype) == str(weight.ty.dtype) == "float32"
        and (attrs.out_dtype is None or str(attrs.out_dtype) in ("", "float32"))
        and int(attrs.groups) == 1
        and _ints(attrs.strides) == [1, 1]
        and _ints(attrs.dilation) == [1, 1]
        and shape[2:] == [3, 3]
        and min(shape[:2]) >= WINOGRAD_MIN_CHANNELS
        and shape[0] * shape[1] <= WINOGRAD_MAX_PAIRS
    )


def _legalize_conv2d(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    """A qualifying conv as Winograd on a weight packed by a separate (constant) call;
    any other conv as Relax's default legalization."""
    if not _qualifies(call):
        return tvm.ir.Op.get("relax.nn.conv2d").get_attr("FLegalize")(bb, call)
    packed = bb.emit_te(_pack_weight, call.args[1], primfunc_name_hint="winograd_weight")
    return bb.call_te(
        _winograd,
        call.args[0],
        packed,
        _ints(call.attrs.padding),
        primfunc_name_hint="conv2d_winograd",
    )


def _pack_weight(weight: te.Tensor) -> te.Tensor:
    """G w G^T per (out, in) channel pair, laid out [6, 6, CI, CO] as `bgemm` reads it.
    (TOPI's own conv2d_winograd_weight_transform fails in TVM 0.27: its memoized matrices
    reject the tensor's DataType dtype.)"""
    cout, cin, kh, kw = _ints(weight.shape)
    _, _, g = winograd_transform_matrices(WINOGRAD_TILE, kh, "float32")
    rh = te.reduce_axis((0, kh), "rh")
    rw = te.reduce_axis((0, kw), "rw")
    alpha = WINOGRAD_TILE + kh - 1
    return te.compute(
        (alpha, alpha, cin, cout),
        lambda e, n, ci, co: te.sum(weight[co, ci, rh, rw] * g[e, rh] * g[n, rw], axis=[rh, rw]),
        name="kernel_pack",
    )


def _winograd(data: te.Tensor, packed: te.Tensor, padding: list[int]) -> te.Tensor:
    """The Winograd conv, Y = A^T [(G g G^T) . (B^T d B)] A per 6x6 input tile d and channel pair:
    input transform, 36 batched GEMMs over the input channels, inverse transform. Each transform
    is applied one dimension at a time (rows, then columns): 2 x 6 x nnz(B) = 312 multiply-adds
    a tile and channel where TOPI's conv2d_winograd_nchw sums over both dimensions at once,
    nnz(B)^2 = 676, and keeps 36 partial sums live (more than the registers). The input is
    padded with zeros to whole tiles; the output reads only the conv's own positions."""
    batch, cin, height, width = _ints(data.shape)
    alpha, _, _, cout = _ints(packed.shape)
    m = WINOGRAD_TILE
    top, left, bottom, right = padding
    out_h, out_w = height + top + bottom - 2, width + left + right - 2
    tiles_h, tiles_w = -(-out_h // m), -(-out_w // m)
    per_image = tiles_h * tiles_w
    extra = [0, 0, bottom + tiles_h * m - out_h, right + tiles_w * m - out_w]
    data_pad = topi.nn.pad(data, [0, 0, top, left], extra, name="data_pad")
    a, b, _ = winograd_transform_matrices(m, alpha - m + 1, "float32")

    def tile(c: te.Var, p: te.Var, y: te.Var, x: te.Var) -> te.Tensor:
        image, at = p // per_image, p % per_image
        return data_pad[image, c, at // tiles_w * m + y, at % tiles_w * m + x]

    def transform(shape: tuple[int, ...], name: str, term: Callable[..., te.Tensor]) -> te.Tensor:
        """A sum of 6 terms per element: term(*index, r) over r."""
        r = te.reduce_axis((0, alpha), "r")
        return te.compute(shape, lambda *i: te.sum(term(*i, r), axis=r), name=name)

    n_tiles = batch * per_image
    rows = transform(
        (cin, n_tiles, alpha, alpha), "data_rows", lambda c, p, y, x, r: tile(c, p, y, r) * b[r, x]
    )
    data_pack = transform(
        (alpha, alpha, cin, n_tiles), "data_pack", lambda e, x, c, p, r: rows[c, p, r, x] * b[r, e]
    )
    ci = te.reduce_axis((0, cin), "ci")
    bgemm = te.compute(
        (alpha, alpha, cout, n_tiles),
        lambda e, nu, co, p: te.sum(data_pack[e, nu, ci, p] * packed[e, nu, ci, co], axis=ci),
        name="bgemm",
    )
    inverse_rows = transform(
        (cout, n_tiles, alpha, m), "inverse_rows", lambda c, p, e, w, r: bgemm[e, r, c, p] * a[r, w]
    )
    inverse = transform(
        (cout, n_tiles, m, m), "inverse", lambda c, p, h, w, r: inverse_rows[c, p, r, w] * a[r, h]
    )
    return te.compute(
        (batch, cout, out_h, out_w),
        lambda n, co, h, w: inverse[co, n * per_image + h // m * tiles_w + w // m, h % m, w % m],
        name="conv2d_winograd",
    )
