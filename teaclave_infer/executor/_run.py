"""run(): instantiate a function, place argv, call entrypoint, collect outputs."""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import wasmtime

from ..abi import ENTRYPOINT, IMPORT_MODULE, TEACLAVE_IMPORTS, pack_arguments
from ..errors import ExecutionError, InvalidModuleError
from ._files import FileContext, GuestMemory

__all__ = ["Result", "engine_for", "load", "run"]

PAGE = 65536


@dataclass(frozen=True)
class Result:
    return_value: int
    outputs: dict[str, bytes] = field(default_factory=dict)


@functools.cache
def engine_for(profile: str) -> wasmtime.Engine:
    """An engine with exactly the profile's wasm features on (see ARCHITECTURE.md: wasmtime 50
    cannot turn reference types off, and SIMD only together with relaxed SIMD)."""
    config = wasmtime.Config()
    fast = profile == "fast"
    config.wasm_simd = fast
    config.wasm_relaxed_simd = False
    config.wasm_bulk_memory = fast
    config.wasm_multi_value = False
    config.wasm_tail_call = False
    config.wasm_threads = False
    return wasmtime.Engine(config)


def check_imports(module: wasmtime.Module) -> None:
    """Every import must be one of Teaclave's five file functions with its exact type."""
    for imp in module.imports:
        params = TEACLAVE_IMPORTS.get(imp.name or "")
        ty = imp.type
        ok = (
            imp.module == IMPORT_MODULE
            and params is not None
            and isinstance(ty, wasmtime.FuncType)
            and [str(p) for p in ty.params] == ["i32"] * params
            and [str(r) for r in ty.results] == ["i32"]
        )
        if not ok:
            raise InvalidModuleError(f"forbidden import {imp.module}.{imp.name}: {ty}")


class _Host:
    """The five host functions over one store's memory and file context."""

    def __init__(self, store: wasmtime.Store, ctx: FileContext) -> None:
        self.store, self.ctx = store, ctx
        self.memory: wasmtime.Memory | None = None

    def guest(self) -> GuestMemory:
        assert self.memory is not None  # set before entrypoint runs
        base = ctypes.addressof(self.memory.data_ptr(self.store).contents)
        return GuestMemory(base, self.memory.data_len(self.store))

    def functions(self) -> dict[str, Callable[..., int]]:
        ctx = self.ctx
        return {
            "teaclave_open_input": lambda p: ctx.open_input(self.guest().c_string(p)),
            "teaclave_create_output": lambda p: ctx.create_output(self.guest().c_string(p)),
            "teaclave_read_file": lambda fd, p, n: ctx.read(fd, self.guest().span(p, n), n),
            "teaclave_write_file": lambda fd, p, n: ctx.write(fd, self.guest().span(p, n), n),
            "teaclave_close_file": ctx.close,
        }

    def link(self, linker: wasmtime.Linker) -> None:
        i32 = wasmtime.ValType.i32()
        for name, fn in self.functions().items():
            ty = wasmtime.FuncType([i32] * TEACLAVE_IMPORTS[name], [i32])
            linker.define_func(IMPORT_MODULE, name, ty, _never_raises(fn))


def _never_raises(fn: Callable[..., int]) -> Callable[..., int]:
    def call(*args: int) -> int:
        try:
            return int(fn(*args))
        except Exception:  # an exception must never unwind into wasm: the guest sees -1
            return -1

    return call


def _place_argv(store: wasmtime.Store, memory: wasmtime.Memory, argv: list[bytes]) -> int:
    """Writes the pointer array and the strings into fresh pages; returns the array's address."""
    strings = b"".join(a + b"\0" for a in argv)
    need = len(strings) + 4 * len(argv)
    base = memory.grow(store, max(1, -(-need // PAGE))) * PAGE
    table, cursor = bytearray(), base + 4 * len(argv)
    for a in argv:
        table += cursor.to_bytes(4, "little")
        cursor += len(a) + 1
    memory.write(store, bytes(table) + strings, base)
    return base


def load(wasm: bytes, profile: str = "fast") -> wasmtime.Module:
    """Compiles and checks a function for the profile's engine."""
    try:
        module = wasmtime.Module(engine_for(profile), wasm)
    except wasmtime.WasmtimeError as err:
        raise InvalidModuleError(f"not a valid module for profile {profile}: {err}") from err
    check_imports(module)
    return module


def run(
    function: bytes | wasmtime.Module,
    arguments: Mapping[str, object],
    inputs: Mapping[str, bytes],
    outputs: Sequence[str] = (),
    profile: str = "fast",
) -> Result:
    """Calls the function's entrypoint once, in a fresh store. `function` is wasm bytes or a
    module from `load(..., profile)`. Outputs exist only if the call returned."""
    module = load(function, profile) if isinstance(function, bytes) else function
    engine = engine_for(profile)
    store = wasmtime.Store(engine)
    host = _Host(store, FileContext(inputs, outputs))
    linker = wasmtime.Linker(engine)
    host.link(linker)
    exports = linker.instantiate(store, module).exports(store)
    memory, entry = exports.get("memory"), exports.get(ENTRYPOINT)
    if not isinstance(memory, wasmtime.Memory) or not isinstance(entry, wasmtime.Func):
        raise InvalidModuleError("the module must export `memory` and `entrypoint`")
    host.memory = memory
    argv = pack_arguments(arguments)
    argv_ptr = _place_argv(store, memory, argv)
    try:
        rv = entry(store, len(argv), argv_ptr)
    except wasmtime.Trap as err:
        raise ExecutionError(f"the function trapped: {err.message}") from err
    return Result(int(rv), dict(host.ctx.written))
