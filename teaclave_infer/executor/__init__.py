"""Run one function invocation in a wasmtime sandbox with Teaclave's file context.

result = run(wasm, {"input_img": "img"}, {"img": npy_bytes}, outputs=["scores"])
if result.ok: print(result.return_value, result.outputs)
"""

from ._cache import ModuleCache, Wasm
from ._engine import EngineKey, engine_for
from ._limits import Limits, Result, ResultKind
from ._run import DEFAULT_CACHE, run
from ._validate import compile_checked, validate

__all__ = [
    "DEFAULT_CACHE",
    "EngineKey",
    "Limits",
    "ModuleCache",
    "Result",
    "ResultKind",
    "Wasm",
    "compile_checked",
    "engine_for",
    "run",
    "validate",
]
