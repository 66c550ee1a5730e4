"""The builder's export filter on a hand-written module."""

from __future__ import annotations

import wasmtime

from teaclave_infer.builder.wasmbin import keep_exports


def test_keep_exports_drops_the_rest():
    wasm = wasmtime.wat2wasm(
        '(module (memory (export "memory") 1) (func (export "_initialize"))'
        ' (func (export "entrypoint") (param i32 i32) (result i32) i32.const 7))'
    )
    kept = keep_exports(bytes(wasm), ("entrypoint", "memory"))
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, kept)
    assert sorted(e.name for e in module.exports) == ["entrypoint", "memory"]
    store = wasmtime.Store(engine)
    entry = wasmtime.Instance(store, module, []).exports(store)["entrypoint"]
    assert entry(store, 0, 0) == 7
