"""wasmtime engines with explicit features per profile, and the epoch ticker for deadlines.

One engine per (profile, fuel on/off, wasm stack size, pooled), shared by every invocation.
wasmtime-py aborts the process on an invalid engine config, so no user value reaches `Config`
except the stack size, checked by `Limits`. wasmtime 50 cannot turn reference types off
(ARCHITECTURE.md); SIMD goes off only together with relaxed SIMD.

Invocations (`pooled`) take their instance, memory and tables from wasmtime's pooling allocator.
Each call still gets a fresh store and a memory in its initial state, but a slot's first
KEEP_RESIDENT bytes are reset in place between calls instead of being unmapped: a fresh mapping
costs a page fault per page the next call touches (a model's weights, read or copied in, its
arena), which measured more than the kernels themselves on small models (bench/executor.py).
wasmtime-py has no API for it; its C bindings do.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass

import wasmtime
from teaclave_client.vocabulary import MAX_TABLES, TABLE_ELEMENT_BYTES
from wasmtime import _ffi as ffi

from ..abi import PROFILES, Profile, WasmFeature

__all__ = ["EngineKey", "Ticker", "engine_for", "pool_slot"]

TICK_S = 0.01  # deadline granularity: an interrupted call stops within one tick of its deadline
POOL_SLOTS = 32  # invocations alive at once per engine; more wait for a slot (pool_slot)
KEEP_RESIDENT = 32 << 20  # of each slot's memory: MNIST-size weights and arena stay mapped
WARM_SLOTS = 4  # idle slots that keep their resident pages (at most 4 x KEEP_RESIDENT)
WASM32_MEMORY = 4 << 30  # a wasm32 memory's whole address space: any call's limit fits a slot


@dataclass(frozen=True)
class EngineKey:
    profile: str
    fuel: bool
    wasm_stack_bytes: int
    pooled: bool = False  # executor.run's invocations; the kernel harnesses keep their stores

    def describe(self) -> str:
        """Every config choice, for the module cache's key."""
        simd, bulk_memory = _switches(_profile(self.profile))
        return (
            f"profile={self.profile};simd={simd};bulk_memory={bulk_memory};relaxed_simd=False;"
            f"multi_value=False;tail_call=False;threads=False;gc=False;memory64=False;"
            f"exceptions=False;fuel={self.fuel};epochs=True;stack={self.wasm_stack_bytes};"
            f"table_grow=guarded-1;pooled={self.pooled}"  # guarded: by compile_checked
        )


def _profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}")
    return PROFILES[name]


def _switches(profile: Profile) -> tuple[bool, bool]:
    """(SIMD, bulk memory): the profile's features that wasmtime can turn off. Sign extension
    and non-trapping float-to-int have no switch in wasmtime-py: always on."""
    return WasmFeature.SIMD128 in profile.features, WasmFeature.BULK_MEMORY in profile.features


@functools.cache
def engine_for(key: EngineKey) -> wasmtime.Engine:
    """The shared engine for a key; only the profile's features are on."""
    simd, bulk_memory = _switches(_profile(key.profile))
    config = wasmtime.Config()
    config.wasm_simd = simd
    config.wasm_relaxed_simd = False
    config.wasm_bulk_memory = bulk_memory
    config.wasm_multi_value = False
    config.wasm_tail_call = False
    config.wasm_threads = False
    config.wasm_gc = False
    config.wasm_function_references = False
    config.wasm_memory64 = False
    config.wasm_multi_memory = False
    config.wasm_exceptions = False
    config.wasm_wide_arithmetic = False
    config.wasm_custom_page_sizes = False
    config.wasm_stack_switching = False
    config.consume_fuel = key.fuel
    config.epoch_interruption = True
    config.max_wasm_stack = key.wasm_stack_bytes
    # All a wasm32 memory can grow to is reserved and no memory moves: the host functions read
    # a memory's base once a call (_raw.MemoryView).
    config.memory_reservation = WASM32_MEMORY
    config.memory_may_move = False
    if key.pooled:
        _pooling(config)
    return wasmtime.Engine(config)


def _pooling(config: wasmtime.Config) -> None:
    """Room for POOL_SLOTS instances as large as any call's limits allow (the store's limits
    still hold each call to its own)."""
    most_elements = WASM32_MEMORY // 256 // (MAX_TABLES * TABLE_ELEMENT_BYTES)  # Limits' share
    pool = ffi.wasmtime_pooling_allocation_config_new()
    try:
        ffi.wasmtime_pooling_allocation_config_total_core_instances_set(pool, POOL_SLOTS)
        ffi.wasmtime_pooling_allocation_config_total_memories_set(pool, POOL_SLOTS)
        ffi.wasmtime_pooling_allocation_config_total_tables_set(pool, POOL_SLOTS * MAX_TABLES)
        ffi.wasmtime_pooling_allocation_config_max_tables_per_module_set(pool, MAX_TABLES)
        ffi.wasmtime_pooling_allocation_config_table_elements_set(pool, most_elements)
        ffi.wasmtime_pooling_allocation_config_max_memory_size_set(pool, WASM32_MEMORY)
        ffi.wasmtime_pooling_allocation_config_max_core_instance_size_set(pool, 16 << 20)
        ffi.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(pool, KEEP_RESIDENT)
        ffi.wasmtime_pooling_allocation_config_table_keep_resident_set(pool, 64 << 10)
        ffi.wasmtime_pooling_allocation_config_max_unused_warm_slots_set(pool, WARM_SLOTS)
        ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pool)  # copies the settings
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pool)


@functools.cache
def pool_slot(key: EngineKey) -> threading.BoundedSemaphore:
    """Held from a pooled invocation's instantiation until its store is closed: a call beyond
    POOL_SLOTS waits rather than fails to instantiate."""
    return threading.BoundedSemaphore(POOL_SLOTS)


class Ticker:
    """Advances an engine's epoch every TICK_S while at least one invocation runs on it.

    A store's deadline is a number of ticks from now, so one invocation's deadline never
    interrupts another's (what a per-call `increment_epoch` would do)."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self.engine = engine
        self.active = 0
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> Ticker:
        with self.lock:
            self.active += 1
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="epoch-ticker", daemon=True)
                self.thread.start()
            self.wake.set()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.active -= 1

    def _loop(self) -> None:
        while True:
            self.wake.wait()
            self.engine.increment_epoch()
            with self.lock:
                if self.active == 0:
                    self.wake.clear()
            time.sleep(TICK_S)


@functools.cache
def ticker_for(engine_key: EngineKey) -> Ticker:
    return Ticker(engine_for(engine_key))
