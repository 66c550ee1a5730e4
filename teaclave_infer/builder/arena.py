"""Static memory plan: every non-constant tensor gets an offset in one arena, and tensors whose
lifetimes do not overlap share space.

Greedy by size: tensors are placed largest first, each at the lowest aligned offset that does not
collide with an already placed tensor alive at the same time. A kernel's outputs are alive at the
call that reads its inputs, so no kernel ever writes over its own inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

from .plan import Plan

__all__ = ["ALIGN", "ArenaLayout", "plan_arena"]

ALIGN = 64  # TVM's kernels assume 64-byte aligned data


@dataclass(frozen=True)
class ArenaLayout:
    offsets: dict[int, int]  # tensor id -> byte offset in the arena
    arena_bytes: int
    total_bytes: int  # what one buffer per tensor would need


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def lifetimes(plan: Plan) -> dict[int, tuple[int, int]]:
    """(first, last) call index of each arena tensor; inputs are born at -1, outputs live on past
    the last call."""
    live: dict[int, tuple[int, int]] = {t: (-1, -1) for t in plan.inputs}
    for step, call in enumerate(plan.calls):
        for t in call.outputs:
            live.setdefault(t, (step, step))
        for t in call.inputs:
            if t in live:
                live[t] = (live[t][0], step)
    for t in plan.outputs:
        if t in live:
            live[t] = (live[t][0], len(plan.calls))
    return {t: span for t, span in live.items() if t not in plan.constants}


def plan_arena(plan: Plan) -> ArenaLayout:
    """Assigns arena offsets to every non-constant tensor of the plan."""
    live = lifetimes(plan)
    size = {t: _aligned(plan.tensors[t].nbytes) for t in live}
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    offsets: dict[int, int] = {}
    for t in sorted(live, key=lambda t: (-size[t], t)):
        first, last = live[t]
        busy = sorted((o, e) for o, e, f, la in placed if f <= last and first <= la)
        offset = 0
        for start, end in busy:
            if offset + size[t] <= start:
                break
            offset = max(offset, end)
        offsets[t] = offset
        placed.append((offset, offset + size[t], first, last))
    arena = max((e for _, e, _, _ in placed), default=0)
    return ArenaLayout(dict(sorted(offsets.items())), arena, sum(size.values()))
