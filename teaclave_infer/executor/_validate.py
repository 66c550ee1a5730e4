"""Validation before anything runs: Teaclave's five imports with their exact types, an
`entrypoint (i32, i32) -> i32` export and a memory export; then `table.grow` guarded
(`_tables.py`)."""

from __future__ import annotations

import wasmtime

from ..abi import ENTRYPOINT, IMPORT_MODULE, TEACLAVE_IMPORTS
from ..errors import ForbiddenImportError, InvalidModuleError
from ._tables import REFUSED, guard_table_growth

__all__ = ["compile_checked", "validate"]


def _signature(ty: wasmtime.FuncType) -> str:
    params = ", ".join(str(p) for p in ty.params)
    results = ", ".join(str(r) for r in ty.results)
    return f"({params}) -> ({results})"


def _kind(ty: object) -> str:
    return type(ty).__name__.removesuffix("Type").lower()


def validate(module: wasmtime.Module) -> None:
    """Raises ForbiddenImportError or InvalidModuleError naming the offending item."""
    for imp in module.imports:
        name, ty = f"{imp.module}.{imp.name}", imp.type
        params = TEACLAVE_IMPORTS.get(imp.name or "") if imp.module == IMPORT_MODULE else None
        if params is None:
            raise ForbiddenImportError(f"forbidden import {name} ({_kind(ty)})")
        want = f"({', '.join(['i32'] * params)}) -> (i32)"
        if not isinstance(ty, wasmtime.FuncType) or _signature(ty) != want:
            got = _signature(ty) if isinstance(ty, wasmtime.FuncType) else _kind(ty)
            raise ForbiddenImportError(f"import {name} must be a function {want}, not {got}")
    exports = {e.name: e.type for e in module.exports}
    entry = exports.get(ENTRYPOINT)
    if not isinstance(entry, wasmtime.FuncType):
        raise InvalidModuleError(f"missing export: function {ENTRYPOINT}")
    if _signature(entry) != "(i32, i32) -> (i32)":
        raise InvalidModuleError(
            f"export {ENTRYPOINT} must be (i32, i32) -> (i32), not {_signature(entry)}"
        )
    if not isinstance(exports.get("memory"), wasmtime.MemoryType):
        raise InvalidModuleError("missing export: memory `memory`")


def _compile(engine: wasmtime.Engine, wasm: bytes, profile: str) -> wasmtime.Module:
    try:
        return wasmtime.Module(engine, wasm)
    except wasmtime.WasmtimeError as err:
        detail = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
        raise InvalidModuleError(f"invalid module for profile {profile}: {detail}") from err


def compile_checked(engine: wasmtime.Engine, wasm: bytes, profile: str) -> wasmtime.Module:
    """Compiles bytes into a validated module, its `table.grow`s guarded (compiled twice when it
    has any); errors name what is wrong."""
    if not wasm.startswith(b"\0asm"):
        raise InvalidModuleError("not a WebAssembly module (no \\0asm magic)")
    module = _compile(engine, wasm, profile)
    validate(module)
    if any(e.name == REFUSED for e in module.exports):  # the guard's flag is ours alone
        raise InvalidModuleError(f"export {REFUSED!r}: the name is reserved")
    try:
        guarded = guard_table_growth(wasm)
    except ValueError as err:  # wasmtime accepted what the guard cannot read: refuse, closed
        raise InvalidModuleError(f"table.grow cannot be guarded: {err}") from err
    if guarded is None:
        return module
    module = _compile(engine, guarded, profile)
    validate(module)
    return module
