"""Default schedules: rules, no search, a few milliseconds per kernel.

Unscheduled TIR runs each reduction as one scalar loop nest per output element. The rules here
restructure every kernel for WebAssembly as compiled by wasmtime's Cranelift:

- Reductions (conv2d, dense, matmul) whose output row divides by 4: a block of at most 8 vectors
  of the output is accumulated in registers over the whole reduction (Cranelift has 16 SIMD
  registers; the rest hold operands), its shape chosen for the fewest loads per multiply-add;
  the epilogue (bias, activation) runs on the block straight from the registers. Two reduction
  steps an iteration: wasmtime's epoch check at each loop header makes Cranelift keep the
  accumulators in stack slots across it, and two steps share that cost.
- Reductions whose row does not divide by 4 (7x7, 14x14 feature maps): the lanes come from
  another axis (a conv's output channels), the output is accumulated in NCHW4c order, and the
  epilogue writes it back. The weight is read from a copy with those 4 lanes contiguous, made
  once a call, and the output is register-blocked as above; when no read can be copied so (a
  grouped conv's input needs the same axis), an L1-resident tile is accumulated instead, the
  reduction loops outside it.
- Small reductions (pooling windows, a 1-channel 3x3 conv) stay as lowered: that is faster.
- Winograd convs (lower.py; blocks `data_rows`, `data_pack`, `bgemm`, `inverse_rows`,
  `inverse`): every intermediate is laid out channels-last, so that the lanes are 4 channels
  (tiles are gathered from rows at a stride and their count often does not divide by 4). A block
  of tiles goes through all the stages at a time, so the intermediates stay in cache. Each
  transform runs per tile and vector of channels, its rows pass into a local array and then its
  columns pass, unrolled so that the constant matrices fold into adds and a few multiplies; the
  batched GEMM is register-blocked as above, lanes over output channels.
- Elementwise chains are inlined into one loop, which is vectorized when its innermost extent
  divides by 4 (otherwise it would become per-lane code). Nothing is `parallel`: there are no
  threads in the sandbox.

A rule that does not apply leaves its kernel as it was; a kernel's result never depends on its
schedule (the tests compare every model with onnxruntime).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import tvm
from tvm import s_tir, tirx

__all__ = ["default_schedule", "schedule_kernels"]

LANES = 4  # f32 lanes in a 128-bit wasm vector
TILE_BYTES = 8 << 10  # an output tile that stays in L1 with its inputs' rows
ACCUMULATORS = 8  # vectors kept in registers: Cranelift has 16, the rest hold operands
MIN_REDUCTION = 16  # a pooling window or a 1-channel 3x3 conv: as lowered is faster
WINOGRAD_BLOCK = 128 << 10  # a block of tiles' transformed inputs and products, in L2
UNROLL_STEPS = 2  # reduction steps per loop iteration of a register block (_unroll_steps)


def schedule_kernels(
    kernels: tvm.IRModule, tuned: Mapping[str, tirx.PrimFunc] | None = None
) -> tvm.IRModule:
    """Every PrimFunc of `kernels` (symbol -> PrimFunc) with its tuned schedule if `tuned` has
    one, else the default schedule."""
    tuned = tuned or {}
    return tvm.IRModule(
        {gv: tuned.get(gv.name_hint) or default_schedule(f) for gv, f in kernels.functions.items()}
    )


def default_schedule(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """The kernel scheduled by the rules, or unchanged when they do not apply."""
    sch = traced_default(tvm.IRModule({"main": func}))
    if sch is None:
        return func
    return sch.mod["main"].with_attr("global_symbol", func.attrs["global_symbol"])


def traced_default(mod: tvm.IRModule) -> s_tir.Schedule | None:
    """The rules applied to `mod["main"]`, with their trace (the tuner records it next to its
    own candidates), or None when a rule did not fit the kernel."""
    sch = s_tir.Schedule(mod)
    try:
        _schedule(sch)
    except s_tir.schedule.ScheduleError:
        return None
    return sch


def _schedule(sch: s_tir.Schedule) -> None:
    if {"data_pack", "bgemm", "inverse"} <= {sch.get(b).name_hint for b in _blocks(sch)}:
        _winograd(sch)
        return
    _inline_elementwise(sch)
    reductions = [b for b in _blocks(sch) if _is_reduction(sch, b)]
    tiled = set()  # epilogues moved into a reduction's tiles
    if len(reductions) == 1:
        tiled = _schedule_reduction(sch, reductions[0])
    for block in _blocks(sch):
        if not _is_reduction(sch, block) and sch.get(block).name_hint not in tiled:
            _vectorize_elementwise(sch, block)


def _winograd(sch: s_tir.Schedule) -> None:
    """lower.py's Winograd conv: data_pad -> data_rows, data_pack (B^T d B, a dimension at a
    time) -> bgemm (per transformed position, a GEMM over input channels) -> inverse_rows,
    inverse (A^T m A) -> output."""
    for constant in ("A", "B"):  # into the blocks that read them: their entries fold
        sch.compute_inline(sch.get_sblock(constant))
    _inline_elementwise(sch)  # the output copy, bias, activation: one loop
    channels_last = {
        "data_pad": lambda n, c, y, x: (n, y, x, c),
        "data_rows": lambda c, p, y, x: (p, y, x, c),
        "data_pack": lambda e, u, c, p: (e, u, p, c),
        "bgemm": lambda e, u, c, p: (e, u, p, c),
        "inverse_rows": lambda c, p, e, x: (p, e, x, c),
        "inverse": lambda c, p, h, w: (p, h, w, c),
    }
    for name, layout in channels_last.items():
        block = sch.get_sblock(name)
        sch.transform_layout(block, ("write", 0), tirx.IndexMap.from_func(layout))
    batch, channel, row, column = sch.get_loops(sch.get_sblock("data_pad"))
    sch.reorder(batch, row, column, channel)
    # A block of tiles at a time, all stages: their intermediates stay in cache and are the
    # same few pages for every block (a fresh instance touches each new page once, slowly).
    # Each block reads all the packed weights again: a block may be as large as they are.
    bgemm = sch.get_sblock("bgemm")
    eps, nu, co, tile, ci = sch.get_loops(bgemm)
    alpha, cout, tiles, cin = _extents(sch, [eps, co, tile, ci])
    per_tile = alpha * alpha * (cin + cout) * 4
    budget = max(WINOGRAD_BLOCK, alpha * alpha * cin * cout * 4)
    block = _largest_divisor(tiles, max(1, budget // per_tile))
    tiles, tile = sch.split(tile, [None, block])
    sch.reorder(tiles, eps, nu, tile, co, ci)
    if cout % LANES == 0:
        _register_blocked(sch, bgemm, [eps, nu, tile, co], [ci])
    sch.compute_at(sch.get_sblock("data_pack"), tiles, preserve_unit_loops=True)
    for name in ("inverse_rows", "inverse"):
        sch.reverse_compute_at(sch.get_sblock(name), tiles, preserve_unit_loops=True)
    eps, nu, ci, tile, r = sch.get_loops(sch.get_sblock("data_pack"))[-5:]
    _winograd_transform(sch, "data_pack", "data_rows", tile, ci, [r, eps, nu])
    co, tile, vh, vw, r = sch.get_loops(sch.get_sblock("inverse"))[-5:]
    _winograd_transform(sch, "inverse", "inverse_rows", tile, co, [r, vh, vw])


def _winograd_transform(
    sch: s_tir.Schedule,
    name: str,
    rows_name: str,
    tile: s_tir.LoopRV,
    channel: s_tir.LoopRV,
    unrolled: list[s_tir.LoopRV],
) -> None:
    """Per tile and 4 channels (one vector), the whole small transform in registers: its rows
    pass (block `rows_name`) into a local array, then its columns pass, every loop unrolled so
    that the constant matrix entries fold (zeros vanish, ones become adds)."""
    block = sch.get_sblock(name)
    lanes = None
    if _extents(sch, [channel])[0] % LANES == 0:
        channel, lanes = sch.split(channel, [None, LANES])
    sch.reorder(tile, channel, *unrolled, *([lanes] if lanes else []))
    accumulator = sch.cache_write(block, 0, "local")
    sch.reverse_compute_at(accumulator, channel, preserve_unit_loops=True)
    rows = sch.get_sblock(rows_name)
    sch.compute_at(rows, channel, preserve_unit_loops=True)
    sch.set_scope(rows, 0, "local")
    c, _, y, x, r = sch.get_loops(rows)[-5:]
    sch.reorder(y, x, r, c)
    for loop in [*unrolled, y, x, r]:
        sch.unroll(loop)
    if lanes is not None:
        sch.vectorize(lanes)
        sch.vectorize(c)
    sch.decompose_reduction(block, unrolled[0])
    sch.decompose_reduction(rows, y)
    inits = [*_blocks_named(sch, name + "_init"), *_blocks_named(sch, rows_name + "_init")]
    for other in [accumulator, *inits]:
        _vectorize_innermost(sch, other)


def _blocks(sch: s_tir.Schedule) -> list[s_tir.SBlockRV]:
    root = sch.get_sblock("root")
    return sch.get_child_blocks(root)


def _iter_kinds(sch: s_tir.Schedule, block: s_tir.SBlockRV) -> list[int]:
    return [int(iv.iter_type) for iv in sch.get(block).iter_vars]


def _is_reduction(sch: s_tir.Schedule, block: s_tir.SBlockRV) -> bool:
    return any(kind == tirx.IterVar.CommReduce for kind in _iter_kinds(sch, block))


def _inline_elementwise(sch: s_tir.Schedule) -> None:
    """Inlines every spatial block that is not an output into its consumers (chains of add,
    relu, ...), except what feeds a reduction: a padded input read many times stays a buffer."""
    changed = True
    while changed:
        changed = False
        for block in _blocks(sch):
            if _is_reduction(sch, block) or not sch.get_consumers(block):
                continue
            if any(_is_reduction(sch, c) for c in sch.get_consumers(block)):
                continue
            try:
                sch.compute_inline(block)
            except s_tir.schedule.ScheduleError:
                continue
            changed = True
            break


def _extents(sch: s_tir.Schedule, loops: list[s_tir.LoopRV]) -> list[int]:
    return [int(sch.get(loop).extent) for loop in loops]


def _schedule_reduction(sch: s_tir.Schedule, block: s_tir.SBlockRV) -> set[str]:
    """Tiles the reduction's output, moves its reduction loops outside the tile and runs its
    epilogue per tile. Returns the names of the epilogue blocks it moved into the tiles."""
    kinds = _iter_kinds(sch, block)
    loops = sch.get_loops(block)
    if len(loops) != len(kinds):
        return set()  # not a plain loop nest: leave it
    spatial = [lp for lp, k in zip(loops, kinds, strict=True) if k == tirx.IterVar.DataPar]
    reduce = [lp for lp, k in zip(loops, kinds, strict=True) if k == tirx.IterVar.CommReduce]
    if not spatial or not reduce or math.prod(_extents(sch, reduce)) < MIN_REDUCTION:
        return set()
    if _extents(sch, spatial[-1:])[0] % LANES == 0:
        return _register_blocked(sch, block, spatial, reduce)
    rank = len(spatial)
    block, spatial, axis = _lanes_from_another_axis(sch, block, spatial)
    if axis is not None and _lanes_contiguous(sch, block, axis, rank):
        return _register_blocked(sch, block, spatial, reduce)
    return _l1_tiled(sch, block, spatial, reduce)


def _lanes_contiguous(sch: s_tir.Schedule, block: s_tir.SBlockRV, axis: int, rank: int) -> bool:
    """After _lanes_from_another_axis (lanes from spatial axis `axis` of `rank`): copies each
    read indexed by the lanes' axis but not by the output's innermost one (a conv's weight,
    [CO, CI, KH, KW]) into a buffer whose lanes are contiguous ([CO/4, CI, KH, KW, 4]: a few KB
    a call), so that a reduction step loads them as one vector instead of gathering four floats;
    the output can then be register-blocked (0.60-0.73x of the L1 tile's time on 7x7 and 14x14
    convs, measured). False, with nothing changed, when no read is like that or when another
    read needs the lanes' axis too (a grouped conv's input: gathered either way)."""
    stmt = sch.get(block)
    lane, row = stmt.iter_vars[axis].var, stmt.iter_vars[rank - 1].var
    written = {w.source.name for w in stmt.writes}
    repack = []
    for index, read in enumerate(stmt.reads):
        if read.source.name in written:
            continue
        used = [tirx.analysis.undefined_vars(r.min) for r in read.region]
        lane_dims = [d for d, vs in enumerate(used) if any(v.same_as(lane) for v in vs)]
        if not lane_dims:
            continue
        dim = lane_dims[0]
        if (
            len(lane_dims) > 1
            or any(v.same_as(row) for vs in used for v in vs)
            or not read.region[dim].min.same_as(lane)
            or int(read.source.shape[dim]) % LANES
        ):
            return False
        repack.append((index, dim, len(read.region)))
    for index, dim, ndim in reversed(repack):  # a copy is a new read: later indices first
        copy = sch.cache_read(block, index, "global")
        sch.transform_layout(copy, ("write", 0), _lanes_last(dim, ndim))
    return bool(repack)


def _lanes_last(dim: int, ndim: int) -> tirx.IndexMap:
    """Axis `dim` of an `ndim`-axis buffer split in LANES, the lanes innermost."""

    def index(*idx: tirx.PrimExpr) -> list[tirx.PrimExpr]:
        return [*idx[:dim], idx[dim] // LANES, *idx[dim + 1 :], idx[dim] % LANES]

    return tirx.IndexMap.from_func(index, ndim=ndim)


def _l1_tiled(
    sch: s_tir.Schedule,
    block: s_tir.SBlockRV,
    spatial: list[s_tir.LoopRV],
    reduce: list[s_tir.LoopRV],
) -> set[str]:
    """Accumulates a tile of the output that stays in L1, the reduction loops outside it and
    its innermost axis vectorized; the epilogue runs on each finished tile."""
    itemsize = max(1, tvm.DataType(sch.get(block).writes[0].source.dtype).bits // 8)
    outer, inner = _tile(sch, spatial, TILE_BYTES // itemsize)
    sch.reorder(*outer, *reduce, *inner)
    tiled = set()
    if outer:
        for consumer in sch.get_consumers(block):
            sch.reverse_compute_at(consumer, outer[-1], preserve_unit_loops=True)
            _vectorize_innermost(sch, consumer)
            tiled.add(sch.get(consumer).name_hint)
    _vectorize_innermost(sch, block)
    sch.decompose_reduction(block, reduce[0])
    for init in _blocks_named(sch, sch.get(block).name_hint + "_init"):
        _vectorize_innermost(sch, init)
    return tiled


def _largest_divisor(extent: int, limit: int) -> int:
    return max(d for d in range(1, min(extent, limit) + 1) if extent % d == 0)


def _register_blocked(
    sch: s_tir.Schedule,
    block: s_tir.SBlockRV,
    spatial: list[s_tir.LoopRV],
    reduce: list[s_tir.LoopRV],
) -> set[str]:
    """Accumulates a small block of the output in registers over the whole reduction: up to
    ACCUMULATORS vectors, 4 lanes of the innermost axis times rows of another (a conv's output
    channels, a dense's rows), each step one vector load shared by the rows and one broadcast
    per row. Then the epilogue runs on that block straight from the registers."""
    extents = _extents(sch, spatial)
    # Measured on MNIST-size convs: 2 vectors x 4 channels beats 1 vector x 8 channels by 1.3x
    # (half the broadcasts per multiply-add). Without 2 vectors in a row, 2 rows of another axis.
    # With no other axis to block (a dense layer at batch 1), the whole block is of the row: a
    # pass over the weights then uses whole cache lines of each row (measured 3.4x on 9216x128).
    alone = all(e == 1 for e in extents[:-1])
    vectors = _largest_divisor(extents[-1] // LANES, ACCUMULATORS if alone else 2)
    uses = _reads_use(sch, block, len(spatial))
    blocks: dict[int, int] = {}  # spatial axis -> rows kept in registers
    for limit in (ACCUMULATORS // vectors // 2, 2) if vectors == 1 else (ACCUMULATORS // vectors,):
        free = [i for i in range(len(spatial) - 1) if i not in blocks]
        options = [(i, _largest_divisor(extents[i], limit)) for i in free]
        options = [(i, k) for i, k in options if k > 1]
        if options:
            # fewest loads per multiply-add: block the axis that the vector operand ignores
            axis, rows = min(
                options,
                key=lambda o: _loads(uses, {**blocks, o[0]: o[1]}, vectors, len(spatial) - 1),
            )
            blocks[axis] = rows
    outer = list(spatial)
    vec_outer, vec_unrolled, lanes = sch.split(spatial[-1], [None, vectors, LANES])
    outer[-1] = vec_outer
    inner = [vec_unrolled, lanes]
    for axis in sorted(blocks, reverse=True):
        rows_outer, rows_inner = sch.split(spatial[axis], [None, blocks[axis]])
        outer[axis] = rows_outer
        inner.insert(0, rows_inner)
    sch.reorder(*outer, *reduce, *inner)
    accumulator = sch.cache_write(block, 0, "local")
    sch.reverse_compute_at(accumulator, outer[-1], preserve_unit_loops=True)
    epilogue = [c for c in sch.get_consumers(accumulator) if not _is_reduction(sch, c)]
    for consumer in epilogue:
        sch.reverse_compute_at(consumer, outer[-1], preserve_unit_loops=True)
    for loop in inner[:-1]:
        sch.unroll(loop)
    sch.vectorize(lanes)
    sch.decompose_reduction(block, reduce[0])
    _unroll_steps(sch, reduce[-1])
    for other in [accumulator, *epilogue, *_blocks_named(sch, sch.get(block).name_hint + "_init")]:
        _vectorize_innermost(sch, other)
    return {sch.get(b).name_hint for b in [accumulator, *epilogue]}


def _unroll_steps(sch: s_tir.Schedule, loop: s_tir.LoopRV) -> None:
    """Unrolls UNROLL_STEPS steps of a register block's innermost reduction loop. Wasmtime
    checks its epoch (our deadline) at every loop header, and the check's slow path is a call,
    which clobbers every vector register: Cranelift keeps the accumulators in stack slots across
    the header, a store and a load per accumulator per iteration (wasmtime issue #7244); with
    several steps an iteration that traffic is shared by all of them. (More steps make LLVM
    hoist the loads of the next steps and Cranelift spill those instead.)"""
    if _extents(sch, [loop])[0] % UNROLL_STEPS == 0:  # a 3-wide window's row: measured no gain
        sch.unroll(sch.split(loop, [None, UNROLL_STEPS])[1])


def _reads_use(sch: s_tir.Schedule, block: s_tir.SBlockRV, rank: int) -> list[set[int]]:
    """For each buffer the block reads, the spatial axes (of the first `rank`) its index uses."""
    stmt = sch.get(block)
    axes = [stmt.iter_vars[i].var for i in range(rank)]
    uses = []
    written = {w.source.name for w in stmt.writes}
    for read in stmt.reads:
        if read.source.name in written:  # the accumulator itself
            continue
        used = [v for r in read.region for v in tirx.analysis.undefined_vars(r.min)]
        uses.append({i for i, a in enumerate(axes) if any(v.same_as(a) for v in used)})
    return uses


def _loads(uses: list[set[int]], blocks: dict[int, int], vectors: int, last: int) -> float:
    """Loads per vector multiply-add of a register block: each read is loaded once per
    combination of the blocked axes it depends on (`last`: the vectorized axis)."""
    loads = 0
    for used in uses:
        count = vectors if last in used else 1
        for axis, rows in blocks.items():
            count *= rows if axis in used else 1
        loads += count
    return loads / (vectors * math.prod(list(blocks.values())))


def _lanes_from_another_axis(
    sch: s_tir.Schedule, block: s_tir.SBlockRV, spatial: list[s_tir.LoopRV]
) -> tuple[s_tir.SBlockRV, list[s_tir.LoopRV], int | None]:
    """When the output's innermost axis cannot be cut into vectors (a 7x7 or 14x14 feature map),
    takes the lanes from the innermost axis that can (a conv's output channels): splits 4 off it,
    moves them innermost, and stores the accumulator with those 4 lanes contiguous
    (NCHW -> NCHW4c), written back to the real layout by the epilogue, once per element."""
    extents = _extents(sch, spatial)
    axis = next((i for i in reversed(range(len(spatial) - 1)) if extents[i] % LANES == 0), None)
    write = sch.get(block).writes[0]
    indices = [sch.get(block).iter_vars[i].var for i in range(len(spatial))]
    if (
        axis is None
        or len(write.region) != len(spatial)
        or not all(
            r.extent == 1 and r.min.same_as(v) for r, v in zip(write.region, indices, strict=True)
        )
    ):
        return block, spatial, None  # not an output indexed by its loops in order: leave it
    if not sch.get_consumers(block):  # the output is a parameter: accumulate in a copy
        sch.cache_write(block, 0, "global")
    rank = len(spatial)

    def nchwc(*idx: tvm.tirx.PrimExpr) -> list[tvm.tirx.PrimExpr]:
        return [*idx[:axis], idx[axis] // LANES, *idx[axis + 1 :], idx[axis] % LANES]

    sch.transform_layout(block, ("write", 0), tvm.tirx.IndexMap.from_func(nchwc, ndim=rank))
    outer_part, lanes = sch.split(spatial[axis], [None, LANES])
    spatial = [*spatial[:axis], outer_part, *spatial[axis + 1 :], lanes]
    sch.reorder(*spatial)
    return block, spatial, axis


def _blocks_named(sch: s_tir.Schedule, name: str) -> list[s_tir.SBlockRV]:
    try:
        return [sch.get_sblock(name)]
    except (s_tir.schedule.ScheduleError, ValueError):
        return []


def _tile(
    sch: s_tir.Schedule, spatial: list[s_tir.LoopRV], budget: int
) -> tuple[list[s_tir.LoopRV], list[s_tir.LoopRV]]:
    """Splits the spatial loops into (outer, inner) with an inner tile of at most `budget`
    elements: whole innermost axes while they fit, then a divisor of the next one."""
    extents = _extents(sch, spatial)
    size = 1
    cut = len(spatial)
    while cut > 0 and size * extents[cut - 1] <= budget:
        cut -= 1
        size *= extents[cut]
    if cut == 0:
        return [], spatial
    extent = extents[cut - 1]
    factor = max(d for d in range(1, extent + 1) if extent % d == 0 and size * d <= budget)
    if factor == 1:
        return spatial[:cut], spatial[cut:]
    outer_part, inner_part = sch.split(spatial[cut - 1], [None, factor])
    return [*spatial[: cut - 1], outer_part], [inner_part, *spatial[cut:]]


def _vectorize_innermost(sch: s_tir.Schedule, block: s_tir.SBlockRV) -> None:
    loops = sch.get_loops(block)
    if not loops:
        return
    extent = int(sch.get(loops[-1]).extent)
    if extent % LANES or extent < LANES:
        return
    _, lanes = sch.split(loops[-1], [None, LANES])
    sch.vectorize(lanes)


def _vectorize_elementwise(sch: s_tir.Schedule, block: s_tir.SBlockRV) -> None:
    """Vectorizes a spatial block's innermost loop by 4 lanes when it divides. (Fusing loops to
    get there would cost a division per lane to recover the indices.)"""
    kinds = _iter_kinds(sch, block)
    if len(kinds) == len(sch.get_loops(block)) and all(k == tirx.IterVar.DataPar for k in kinds):
        _vectorize_innermost(sch, block)
