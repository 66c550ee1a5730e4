"""The static memory plan: tensors alive at the same time never share bytes, dead tensors'
space is reused, and every offset is aligned."""

from __future__ import annotations

import itertools

import numpy as np

from teaclave_infer.builder.arena import ALIGN, lifetimes, plan_arena
from teaclave_infer.builder.plan import Call, Plan, TensorSpec


def chain(n: int, size: int = 1000) -> Plan:
    """input -> k0 -> k1 -> ... -> output, plus one constant per call."""
    plan = Plan(kernels=["k"])
    x = plan.add_tensor(TensorSpec((size,), "float32"))
    plan.inputs = [x]
    for _ in range(n):
        c = plan.add_tensor(TensorSpec((size,), "float32"))
        plan.constants[c] = np.zeros(size, np.float32)
        y = plan.add_tensor(TensorSpec((size,), "float32"))
        plan.calls.append(Call(0, (x, c), (y,)))
        x = y
    plan.outputs = [x]
    return plan


def assert_no_live_overlap(plan: Plan) -> None:
    layout = plan_arena(plan)
    live = lifetimes(plan)
    for a, b in itertools.combinations(layout.offsets, 2):
        (fa, la), (fb, lb) = live[a], live[b]
        if fa <= lb and fb <= la:
            ea = layout.offsets[a] + plan.tensors[a].nbytes
            eb = layout.offsets[b] + plan.tensors[b].nbytes
            assert ea <= layout.offsets[b] or eb <= layout.offsets[a], (a, b)
    assert all(o % ALIGN == 0 for o in layout.offsets.values())
    assert all(
        layout.offsets[t] + plan.tensors[t].nbytes <= layout.arena_bytes for t in layout.offsets
    )


def test_a_chain_needs_two_buffers_whatever_its_length():
    plan = chain(20)
    layout = plan_arena(plan)
    assert_no_live_overlap(plan)
    assert layout.arena_bytes == 2 * 4032  # 1000 floats, aligned up to 64 bytes
    assert layout.total_bytes == 21 * 4032


def test_constants_take_no_arena_space():
    plan = chain(3)
    assert not set(plan.constants) & set(plan_arena(plan).offsets)


def test_kernel_outputs_never_alias_their_inputs():
    plan = chain(5)
    layout = plan_arena(plan)
    for call in plan.calls:
        for i in call.inputs:
            if i in layout.offsets:
                assert layout.offsets[i] != layout.offsets[call.outputs[0]]


def test_random_graphs_keep_live_tensors_apart():
    rng = np.random.default_rng(0)
    for _ in range(50):
        plan = Plan(kernels=["k"])
        tensors = [plan.add_tensor(TensorSpec((int(rng.integers(1, 500)),), "uint8"))]
        plan.inputs = list(tensors)
        for _ in range(int(rng.integers(1, 15))):
            ins = tuple(
                int(t) for t in rng.choice(tensors, size=min(2, len(tensors)), replace=False)
            )
            outs = tuple(
                plan.add_tensor(TensorSpec((int(rng.integers(1, 500)),), "uint8"))
                for _ in range(int(rng.integers(1, 3)))
            )
            plan.calls.append(Call(0, ins, outs))
            tensors.extend(outs)
        plan.outputs = [tensors[-1], tensors[1] if len(tensors) > 1 else tensors[0]]
        assert_no_live_overlap(plan)
        layout = plan_arena(plan)
        assert layout.arena_bytes <= layout.total_bytes
