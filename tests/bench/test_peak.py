"""bench/peak.py's loops: they compute every chain (so none is dead code), they compile under
their profile's engine only, and the peak is the fastest loop shape's median; the read loop
reads every byte of its buffer once a pass."""

from __future__ import annotations

import sys

import pytest
import wasmtime
from paths import BENCH

sys.path.insert(0, str(BENCH))

import numpy as np
from peak import PeakLoop, PeakRuns, StreamLoop, peak_wat

from teaclave_infer.executor import EngineKey, Limits, engine_for


def engine(profile: str) -> wasmtime.Engine:
    return engine_for(EngineKey(profile, fuel=False, wasm_stack_bytes=Limits().wasm_stack_bytes))


@pytest.mark.parametrize(("profile", "lanes"), [("fast", 4), ("teaclave", 1)])
@pytest.mark.parametrize("chains", [1, 3])
def test_every_chain_is_computed(profile: str, lanes: int, chains: int) -> None:
    loop = PeakLoop(profile, chains, unroll=2)
    assert loop.flops_per_iter == 2 * 2 * chains * lanes
    # every chain starts at m = 2; a = 1; 3 iterations of 2 steps: x = 2 * 2^6, y = 2 + 6
    got = loop.func(loop.store, 3, 2.0, 1.0)
    assert got == chains * 2.0**7 + chains * 8.0
    assert loop.call(5) == 2 * chains  # m = 1, a = 0: every chain keeps its 1


def test_simd_loop_needs_the_fast_engine() -> None:
    simd = wasmtime.wat2wasm(peak_wat(simd=True, chains=2))
    wasmtime.Module(engine("fast"), simd)
    with pytest.raises(wasmtime.WasmtimeError, match="SIMD"):
        wasmtime.Module(engine("teaclave"), simd)
    wasmtime.Module(engine("teaclave"), wasmtime.wat2wasm(peak_wat(simd=False, chains=2)))


def test_peak_is_the_fastest_shape_median() -> None:
    runs = PeakRuns("fast", shapes=((2, 1), (4, 2)))
    runs.runs = {(2, 1): [5.0, 9.0, 6.0], (4, 2): [8.0, 1.0, 7.0]}  # medians 6 and 7
    peak = runs.peak()
    assert (peak.gflops, peak.shape, peak.simd) == (7.0, (4, 2), True)
    assert peak.by_shape == {(2, 1): 6.0, (4, 2): 7.0}


@pytest.mark.parametrize(("profile", "lanes"), [("fast", 4), ("teaclave", 1)])
@pytest.mark.parametrize("nbytes", [128, 70_000 * 128])  # one step; past one 64 KiB page
def test_the_read_loop_reads_every_byte_once_a_pass(profile: str, lanes: int, nbytes: int) -> None:
    loop = StreamLoop(profile, nbytes)
    loop.memory.write(loop.store, np.ones(nbytes // 4, np.float32).tobytes(), 0)
    # lane 0 of the sum: every `lanes`-th float of the buffer, 3 passes
    assert loop.func(loop.store, 3) == 3 * nbytes // 4 // lanes
    assert loop.gbps(seconds=0.001) > 0 and len(loop.runs) == 1
